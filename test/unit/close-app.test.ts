/** closeApp: a connection that never sends a request does not hold the shutdown past the drain time. */
import { connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { closeApp } from '../../infra/http/close-app';

async function appWithSilentClient(): Promise<{ app: FastifyInstance; socket: Socket }> {
  const app = Fastify();
  app.get('/', async () => 'ok');
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  // Connected, nothing sent: what a browser's preconnect leaves open.
  const socket = await new Promise<Socket>((resolve) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
  });
  socket.on('error', () => undefined);
  return { app, socket };
}

const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([
    promise.then(() => 'closed' as const),
    new Promise<'waiting'>((r) => setTimeout(() => r('waiting'), ms)),
  ]);

test("fastify's own close waits for a connection that never sent a request", async () => {
  const { app, socket } = await appWithSilentClient();
  const closing = app.close();
  expect(await within(closing, 1_000)).toBe('waiting');
  socket.destroy();
  await closing;
});

test('closeApp ends such a connection after the drain time and resolves', async () => {
  const { app, socket } = await appWithSilentClient();
  const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const started = Date.now();
  expect(await within(closeApp(app, 300), 5_000)).toBe('closed');
  expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  await ended;
});

test('closeApp lets a request in flight finish', async () => {
  const app = Fastify();
  let release: () => void = () => undefined;
  app.get('/slow', async () => {
    await new Promise<void>((r) => (release = r));
    return 'done';
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const answer = fetch(`http://127.0.0.1:${port}/slow`).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 100));
  const closing = closeApp(app, 5_000);
  release();
  await expect(answer).resolves.toBe('done');
  await closing;
});
