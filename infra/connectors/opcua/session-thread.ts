/**
 * An OPC UA connector on a worker thread of its own. In the inference worker the main thread parses frames, hashes
 * images and drives sharp, PostgreSQL and MQTT; a server's response that lands while it is busy waits for it. On its
 * own thread the session sends a request as soon as it is posted and reads the response as soon as it arrives.
 *
 * Both halves are here: `openInThread` (the calling thread: start, calls, log lines, restart of a thread that dies)
 * and `serveInThread` (the thread's body: open the connector, answer calls). A connector supplies its calls, its
 * answers and how its errors cross the boundary (structured clone keeps no class).
 */
import { parentPort, Worker, workerData } from 'node:worker_threads';
import type { ConnectorLogger } from '../define';
import type { ExternalErrorKind } from '../../../activities/errors';

/** An error as it crosses the thread boundary. */
export interface ThreadError {
  reason?: string;
  kind?: ExternalErrorKind;
  message: string;
}

/** What the thread sends: readiness, log lines, and one answer (`type` chosen by the connector) or error per call. */
export type ThreadReply<Answer extends { type: string }> =
  | { type: 'ready' }
  | { type: 'open-failed'; error: ThreadError }
  | ({ id: number } & Answer)
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; error: ThreadError }
  | { type: 'log'; level: keyof ConnectorLogger; msg: string; meta?: Record<string, unknown> };

/** What the calling thread sends: the connector's calls, and `close`. */
export type ThreadRequest<Call extends { type: string }> = ({ id: number } & Call) | { type: 'close'; id: number };

/** Omit distributed over a union, so each call keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export interface InThreadOptions {
  /** The thread's module (TypeScript, loaded through tsx). */
  entry: string;
  /** Handed to the thread as `workerData.config`. */
  config: unknown;
  log: ConnectorLogger;
  /** In log lines and errors: "reject thread". */
  threadLabel: string;
  /** Added to the restart log lines, e.g. the endpoint. */
  meta: Record<string, unknown>;
  /** What a call gets once close() has run: "reject station closed". */
  closedMessage: string;
  /** The connector's error for a thread that is not there (stopped, restarting, closed): a transient failure. */
  unavailable(message: string): Error;
  /** The connector's error rebuilt from the wire. */
  fromWire(error: ThreadError): Error;
  /** A thread that stops unexpectedly is started again after this, doubling up to `maxRestartDelayMs`. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
}

export interface InThread<Call extends { type: string }, Answer extends { type: string }> {
  call(request: WithoutId<Call>): Promise<Answer | { type: 'done' }>;
  /** Closes the connector in the thread, then ends the thread. Idempotent. */
  close(): Promise<void>;
}

// As infra/vision/onnx/threaded-model.ts: a CommonJS bootstrap registers tsx, then loads the TypeScript entry.
const bootstrap = (entry: string) =>
  `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(entry)});`;

/** One thread and the calls waiting on it. */
interface RunningThread<Call extends { type: string }, Answer extends { type: string }> {
  call(request: WithoutId<Call>): Promise<Answer | { type: 'done' }>;
  terminate(): Promise<number>;
}

/**
 * Starts a thread and resolves once its connector is open; rejects with the thread's own error when it cannot open.
 * `onStopped` runs once if the thread stops later without being asked to.
 */
async function startThread<Call extends { type: string }, Answer extends { type: string }>(
  opts: InThreadOptions,
  onStopped: (err: Error) => void,
): Promise<RunningThread<Call, Answer>> {
  const worker = new Worker(bootstrap(opts.entry), { eval: true, execArgv: [], workerData: { config: opts.config } });
  type Settled = Answer | { type: 'done' };
  const pending = new Map<number, { resolve: (msg: Settled) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let gone: Error | undefined;
  let terminating = false;
  let onOpen: ((err?: Error) => void) | undefined;

  // One listener for the thread's whole life (swapping listeners on a worker's port can drop its messages).
  worker.on('message', (msg: ThreadReply<Answer>) => {
    if (msg.type === 'log') {
      const line = msg as { level: keyof ConnectorLogger; msg: string; meta?: Record<string, unknown> };
      // debug is optional on a ConnectorLogger: without it, per-event detail is dropped.
      opts.log[line.level]?.(line.msg, line.meta);
    } else if (msg.type === 'ready') {
      onOpen?.();
    } else if (msg.type === 'open-failed') {
      onOpen?.(opts.fromWire((msg as { error: ThreadError }).error));
    } else {
      const answer = msg as { id: number; type: string; error?: ThreadError };
      const waiting = pending.get(answer.id);
      pending.delete(answer.id);
      if (answer.type === 'error') waiting?.reject(opts.fromWire(answer.error!));
      else waiting?.resolve(msg as Settled);
    }
  });
  const stopped = (err: Error) => {
    if (gone) return;
    gone = opts.unavailable(`${opts.threadLabel} stopped: ${err.message}`);
    onOpen?.(gone);
    for (const p of pending.values()) p.reject(gone);
    pending.clear();
    if (!terminating && !onOpen) onStopped(err);
  };
  worker.on('error', stopped);
  worker.on('exit', (code) => stopped(new Error(`exited (${code})`)));

  const opened = await new Promise<Error | undefined>((r) => (onOpen = r));
  onOpen = undefined;
  if (opened) {
    terminating = true;
    await worker.terminate();
    throw opened;
  }
  const call = (request: WithoutId<Call> | { type: 'close' }): Promise<Settled> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolveCall, rejectCall) => {
      pending.set(id, { resolve: resolveCall, reject: rejectCall });
      worker.postMessage({ ...request, id });
    });
  };
  return {
    call,
    async terminate() {
      terminating = true;
      if (!gone) await call({ type: 'close' }).catch(() => undefined);
      return worker.terminate();
    },
  };
}

/** Runs a connector in a thread of its own; a thread that dies is started again while calls fail fast meanwhile. */
export async function openInThread<Call extends { type: string }, Answer extends { type: string }>(
  opts: InThreadOptions,
): Promise<InThread<Call, Answer>> {
  const firstDelayMs = opts.restartDelayMs ?? 1_000;
  const maxDelayMs = opts.maxRestartDelayMs ?? 30_000;
  let thread: RunningThread<Call, Answer> | undefined;
  let closed = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let down: Error | undefined;

  // A thread that dies (an exception nothing caught) must not leave the connector dead until someone restarts the
  // worker: it is started again, and calls fail fast as unavailable meanwhile.
  const restart = (delayMs: number) => {
    if (closed) return;
    restartTimer = setTimeout(() => {
      startThread<Call, Answer>(opts, onStopped).then(
        (started) => {
          if (closed) return void started.terminate();
          thread = started;
          down = undefined;
          opts.log.info(`${opts.threadLabel} restarted`, opts.meta);
        },
        (err: unknown) => {
          opts.log.warn(`${opts.threadLabel} restart failed`, { ...opts.meta, error: String(err) });
          restart(Math.min(maxDelayMs, delayMs * 2));
        },
      );
    }, delayMs);
  };
  const onStopped = (err: Error) => {
    thread = undefined;
    down = err;
    opts.log.error(`${opts.threadLabel} stopped; starting it again`, { ...opts.meta, error: err.message });
    restart(firstDelayMs);
  };

  thread = await startThread<Call, Answer>(opts, onStopped);
  let closing: Promise<void> | undefined;
  return {
    call(request) {
      if (closed) return Promise.reject(opts.unavailable(opts.closedMessage));
      if (!thread) {
        const why = down
          ? `${opts.threadLabel} stopped (${down.message}), restarting`
          : `${opts.threadLabel} restarting`;
        return Promise.reject(opts.unavailable(why));
      }
      return thread.call(request);
    },
    close() {
      closing ??= (async () => {
        closed = true;
        clearTimeout(restartTimer);
        await thread?.terminate();
        thread = undefined;
      })();
      return closing;
    },
  };
}

/** The connector as the thread runs it: answers each call, closes on `close`. */
export interface ThreadServed<Call extends { type: string }, Answer extends { type: string }> {
  /** The answer to one call; `{ type: 'done' }` when there is nothing to return. Throws to answer an error. */
  handle(call: Call): Promise<Answer | { type: 'done' }>;
  close(): Promise<void>;
}

/**
 * The body of a connector thread: opens the connector with `workerData.config` and a logger whose lines go to the
 * calling thread, then answers calls until `close`. `toWire` keeps what the error's class carried (reason, kind).
 */
export function serveInThread<Call extends { type: string }, Answer extends { type: string }>(
  open: (config: unknown, log: ConnectorLogger) => Promise<ThreadServed<Call, Answer>>,
  toWire: (err: unknown) => ThreadError,
): void {
  const port = parentPort;
  if (!port) throw new Error('serveInThread runs in a worker thread only');
  const reply = (msg: ThreadReply<Answer>) => port.postMessage(msg);
  const log: ConnectorLogger = {
    info: (msg, meta) => reply({ type: 'log', level: 'info', msg, ...(meta ? { meta } : {}) }),
    warn: (msg, meta) => reply({ type: 'log', level: 'warn', msg, ...(meta ? { meta } : {}) }),
    error: (msg, meta) => reply({ type: 'log', level: 'error', msg, ...(meta ? { meta } : {}) }),
  };
  const { config } = workerData as { config: unknown };

  open(config, log).then(
    (served) => {
      port.on('message', (msg: ThreadRequest<Call>) => {
        if (msg.type === 'close') {
          void served.close().finally(() => {
            reply({ type: 'done', id: msg.id });
            port.close();
          });
          return;
        }
        const { id } = msg;
        // Not `close` (answered above): one of the connector's calls.
        served.handle(msg as Call).then(
          (answer) => reply({ ...answer, id }),
          (err: unknown) => reply({ type: 'error', id, error: toWire(err) }),
        );
      });
      reply({ type: 'ready' });
    },
    (err: unknown) => {
      reply({ type: 'open-failed', error: toWire(err) });
      port.close();
    },
  );
}
