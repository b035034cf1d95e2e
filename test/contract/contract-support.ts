/**
 * Helpers shared by the connector contracts.
 *
 * What a connector leaves behind after close(). Node's own pools and ours unref idle keep-alive sockets, so neither
 * process._getActiveHandles() nor process.getActiveResourcesInfo() lists them; every client socket is announced on the
 * `net.client.socket` diagnostics channel when it is created, TLS included, so the contract watches that instead and
 * asks each socket the connector opened whether it is still open.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { ExternalSystemError } from '../../activities/errors';

const CHANNEL = 'net.client.socket';

export interface SocketWatch {
  /** Sockets created since the watch began that are still open to `port` (or still connecting). */
  openTo(port: number): number;
  stop(): void;
}

/** Watches every client socket this process creates from now on. Create it before opening the connector. */
export function watchClientSockets(): SocketWatch {
  const sockets: Socket[] = [];
  const onSocket = (message: unknown) => sockets.push((message as { socket: Socket }).socket);
  subscribe(CHANNEL, onSocket);
  return {
    openTo: (port) => sockets.filter((s) => !s.destroyed && (s.connecting || s.remotePort === port)).length,
    stop: () => unsubscribe(CHANNEL, onSocket),
  };
}

/** Timers that keep the process alive (unref'd ones do not, and are not counted). */
export function refTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Polls `check` until it holds; fails naming `what` and the last state after `timeoutMs`. */
export async function eventually(what: string, check: () => string | true, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let state = check();
  while (state !== true && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    state = check();
  }
  if (state !== true) throw new Error(`${what} within ${timeoutMs} ms: ${state}`);
}

/** What `attempt` threw; fails the test unless it is an ExternalSystemError (the one error connectors throw). */
export async function externalError(attempt: Promise<unknown>): Promise<ExternalSystemError> {
  const outcome = await attempt.then(
    (value: unknown) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected an ExternalSystemError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.err).toBeInstanceOf(ExternalSystemError);
  return outcome.err as ExternalSystemError;
}
