import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import connector, {
  supplierNoticeFileName,
} from '../../infra/connectors/supplier-notice/supplier-notice-file.connector';
import webhook from '../../infra/connectors/supplier-notice/supplier-notice-webhook.connector';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

test('a SCAR notice is one file per key, written once, and a closed connector refuses', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scar-notices-'));
  try {
    const c = await connector.connect({ directory: dir }, { name: 'supplier-notices', env: {}, log, dataDir: dir });
    const notice = {
      idempotencyKey: 'scar-7-r1-request',
      scarId: '7',
      supplier: 'V100',
      kind: 'request' as const,
      text: 'three receipts rejected',
      responseDue: '2026-12-21T00:00:00.000Z',
    };
    expect(await c.port.deliver(notice)).toEqual({ reference: 'scar-7-r1-request.json' });
    // A retry with the same key finds the file and writes nothing.
    expect(await c.port.deliver({ ...notice, text: 'changed' })).toEqual({ reference: 'scar-7-r1-request.json' });
    expect(await readdir(dir)).toEqual([supplierNoticeFileName(notice)]);
    expect(JSON.parse(await readFile(join(dir, 'scar-7-r1-request.json'), 'utf8'))).toMatchObject({
      text: notice.text,
    });
    expect(await c.healthCheck()).toContain('writable');
    await c.close();
    await expect(c.port.deliver(notice)).rejects.toThrow(/closed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the webhook kind POSTs each notice as JSON with its key in Idempotency-Key', async () => {
  const received: { key: string | undefined; body: unknown }[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => (text += chunk.toString()));
    req.on('end', () => {
      received.push({ key: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(text) });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const c = await webhook.connect(
    { url: `http://127.0.0.1:${port}/scar`, timeoutMs: 5000 },
    { name: 'supplier-portal', env: {}, log, dataDir: tmpdir() },
  );
  try {
    const notice = {
      idempotencyKey: 'scar-8-r2-reopened',
      scarId: '8',
      supplier: 'V200',
      kind: 'reopened' as const,
      text: 't',
    };
    expect(await c.port.deliver(notice)).toEqual({ reference: `HTTP 202 from http://127.0.0.1:${port}` });
    expect(received).toEqual([{ key: 'scar-8-r2-reopened', body: notice }]);
  } finally {
    await c.close();
    await new Promise((resolve) => server.close(resolve));
  }
});
