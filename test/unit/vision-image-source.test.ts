/**
 * Images by reference against a real HTTP server and real files: what is read, what is refused for good, and what is
 * only unavailable for now (the frame is tried again later).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createImageFetcher, ImageUnavailableError } from '../../infra/vision/image-source';

const IMAGE = Buffer.from('\x89PNG\r\n\x1a\n-pretend-image-bytes', 'latin1');
let server: Server;
let base: string;
let dir: string;
const behaviour = new Map<string, (res: import('node:http').ServerResponse) => void>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-images-'));
  mkdirSync(join(dir, 'images'));
  writeFileSync(join(dir, 'images', 'part-1.png'), IMAGE);
  writeFileSync(join(dir, 'secret.txt'), 'not an image');
  symlinkSync(join(dir, 'secret.txt'), join(dir, 'images', 'escape.png'));
  server = createServer((req, res) => {
    const handle = behaviour.get(req.url ?? '');
    if (handle) return handle(res);
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  behaviour.set('/images/part-1.png', (res) => res.writeHead(200, { 'content-type': 'image/png' }).end(IMAGE));
  behaviour.set('/images/down.png', (res) => res.writeHead(503).end());
  behaviour.set('/images/moved.png', (res) => res.writeHead(302, { location: `${base}/private/x.png` }).end());
  behaviour.set('/images/big.png', (res) => res.writeHead(200).end(Buffer.alloc(2048)));
  behaviour.set('/images/slow.png', (res) => void setTimeout(() => res.writeHead(200).end(IMAGE), 1_000));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('image references', () => {
  const fetcher = () =>
    createImageFetcher({
      sources: [`${base}/images/`, pathToFileURL(join(dir, 'images')).href],
      timeoutMs: 300,
      maxBytes: 1024,
    });

  test('reads an image under a configured http source or file directory', async () => {
    const read = fetcher();
    expect(await read(`${base}/images/part-1.png`)).toEqual(IMAGE);
    expect(await read(pathToFileURL(join(dir, 'images', 'part-1.png')).href)).toEqual(IMAGE);
  });

  test('refuses references outside every source, however they are spelled', async () => {
    const read = fetcher();
    await expect(read(`${base}/private/x.png`)).rejects.toThrow(/not under a configured image source/);
    await expect(read(`${base}/images/../private/x.png`)).rejects.toThrow(/not under a configured image source/);
    await expect(read(`${base}/images-private/x.png`)).rejects.toThrow(/not under a configured image source/);
    await expect(read(pathToFileURL(join(dir, 'secret.txt')).href)).rejects.toThrow(/not under a configured/);
    await expect(read('file:///etc/passwd')).rejects.toThrow(/not under a configured image source/);
    await expect(read('not a url')).rejects.toThrow(/is not a URL/);
    // A link inside the directory that leads out of it.
    await expect(read(pathToFileURL(join(dir, 'images', 'escape.png')).href)).rejects.toThrow(
      /outside the image source/,
    );
  });

  test('a wrong reference is refused for good, not retried', async () => {
    const read = fetcher();
    for (const ref of [`${base}/images/missing.png`, `${base}/images/moved.png`, `${base}/images/big.png`]) {
      const err = await read(ref).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ImageUnavailableError);
    }
    await expect(read(`${base}/images/moved.png`)).rejects.toThrow(/redirects \(302\)/);
    await expect(read(`${base}/images/big.png`)).rejects.toThrow(/over 1024/);
    await expect(read(pathToFileURL(join(dir, 'images', 'nope.png')).href)).rejects.toThrow(/no such file/);
  });

  test('a source that is down, slow or failing is unavailable for now', async () => {
    const read = fetcher();
    await expect(read(`${base}/images/down.png`)).rejects.toBeInstanceOf(ImageUnavailableError);
    await expect(read(`${base}/images/slow.png`)).rejects.toThrow(/no answer within 300 ms/);
    const closed = createImageFetcher({ sources: ['http://127.0.0.1:9/images/'], timeoutMs: 300 });
    await expect(closed('http://127.0.0.1:9/images/a.png')).rejects.toBeInstanceOf(ImageUnavailableError);
  });

  test('only http:, https: and file: sources', () => {
    expect(() => createImageFetcher({ sources: ['ftp://host/images/'], timeoutMs: 100 })).toThrow(/only http/);
  });
});
