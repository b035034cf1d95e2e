/**
 * The reject station on a thread of its own. In the inference worker the main thread parses frames, hashes images and
 * drives sharp, PostgreSQL and MQTT; a PLC's write response that lands while it is busy waits for it, and the reject
 * latency with it. On its own thread the OPC UA session sends a reject as soon as the verdict is posted and reads the
 * response as soon as it arrives. Same port, same errors (RejectStationError with its reason and kind), same
 * latency clock: from the verdict (`decidedAt`) to the PLC's response, read on the thread that received it.
 */
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { z } from 'zod';
import type { ConnectorLogger } from '../define';
import {
  RejectStationError,
  type OpcUaRejectStationConfig,
  type RejectAck,
  type RejectStationPort,
} from './reject-station';
import type { RejectThreadError, RejectThreadReply, RejectThreadRequest } from './reject-station.thread';

const THREAD_ENTRY = resolve(__dirname, 'reject-station.thread.ts');
// As infra/vision/onnx/threaded-model.ts: a CommonJS bootstrap registers tsx, then loads the TypeScript entry.
const bootstrap = (entry: string) =>
  `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(entry)});`;

/** Omit distributed over a union, so each request keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

const fromWire = (e: RejectThreadError): Error =>
  e.reason && e.kind ? new RejectStationError(e.reason, e.kind, e.message) : new Error(e.message);

export interface ThreadedRejectStationOptions {
  /** A thread that stops unexpectedly is started again after this, doubling up to `maxRestartDelayMs`. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  /** The thread's module; the default is reject-station.thread.ts (tests give one that speaks the same messages). */
  threadEntry?: string;
}

/** One thread and the calls waiting on it. */
interface RejectThread {
  call(request: WithoutId<RejectThreadRequest>): Promise<RejectThreadReply>;
  terminate(): Promise<number>;
}

/**
 * Starts a thread and resolves once its session is open; rejects with the thread's own error when it cannot open.
 * `onStopped` runs once if the thread stops later without being asked to.
 */
async function startThread(
  entry: string,
  config: z.input<typeof OpcUaRejectStationConfig>,
  log: ConnectorLogger,
  onStopped: (err: Error) => void,
): Promise<RejectThread> {
  const worker = new Worker(bootstrap(entry), { eval: true, execArgv: [], workerData: { config } });
  const pending = new Map<number, { resolve: (msg: RejectThreadReply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let gone: Error | undefined;
  let terminating = false;
  let onOpen: ((err?: Error) => void) | undefined;

  // One listener for the thread's whole life (swapping listeners on a worker's port can drop its messages).
  worker.on('message', (msg: RejectThreadReply) => {
    switch (msg.type) {
      case 'log':
        log[msg.level](msg.msg, msg.meta);
        return;
      case 'ready':
        onOpen?.();
        return;
      case 'open-failed':
        onOpen?.(fromWire(msg.error));
        return;
      default: {
        const waiting = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.type === 'error') waiting?.reject(fromWire(msg.error));
        else waiting?.resolve(msg);
      }
    }
  });
  const stopped = (err: Error) => {
    if (gone) return;
    gone = new RejectStationError('unavailable', 'transient', `reject thread stopped: ${err.message}`);
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
  const call: RejectThread['call'] = (request) => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolveCall, rejectCall) => {
      pending.set(id, { resolve: resolveCall, reject: rejectCall });
      worker.postMessage({ ...request, id } satisfies RejectThreadRequest);
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

export async function openOpcUaRejectStationInThread(
  config: z.input<typeof OpcUaRejectStationConfig>,
  log: ConnectorLogger,
  opts: ThreadedRejectStationOptions = {},
): Promise<RejectStationPort> {
  const entry = opts.threadEntry ?? THREAD_ENTRY;
  const firstDelayMs = opts.restartDelayMs ?? 1_000;
  const maxDelayMs = opts.maxRestartDelayMs ?? 30_000;
  let thread: RejectThread | undefined;
  let closed = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let down: Error | undefined;

  // A thread that dies (an exception nothing caught) must not leave the line without rejects until someone restarts
  // the worker: it is started again, and rejects fail fast as unavailable meanwhile.
  const restart = (delayMs: number) => {
    if (closed) return;
    restartTimer = setTimeout(() => {
      startThread(entry, config, log, onStopped).then(
        (started) => {
          if (closed) return void started.terminate();
          thread = started;
          down = undefined;
          log.info('reject thread restarted', { endpointUrl: config.endpointUrl });
        },
        (err: unknown) => {
          log.warn('reject thread restart failed', { endpointUrl: config.endpointUrl, error: String(err) });
          restart(Math.min(maxDelayMs, delayMs * 2));
        },
      );
    }, delayMs);
  };
  const onStopped = (err: Error) => {
    thread = undefined;
    down = err;
    log.error('reject thread stopped; starting it again', { endpointUrl: config.endpointUrl, error: err.message });
    restart(firstDelayMs);
  };

  thread = await startThread(entry, config, log, onStopped);
  const call = (request: WithoutId<RejectThreadRequest>): Promise<RejectThreadReply> => {
    if (closed) return Promise.reject(new RejectStationError('unavailable', 'transient', 'reject station closed'));
    if (!thread) {
      const why = down ? `reject thread stopped (${down.message}), restarting` : 'reject thread restarting';
      return Promise.reject(new RejectStationError('unavailable', 'transient', why));
    }
    return thread.call(request);
  };
  let closing: Promise<void> | undefined;

  return {
    async signalReject(signal, signalOpts): Promise<RejectAck> {
      const decidedAt = signalOpts?.decidedAt ?? process.hrtime.bigint();
      const ack = await call({ type: 'signal', signal, decidedAt });
      if (ack.type !== 'ack') throw new Error(`reject thread answered ${ack.type} to a reject`);
      return { writtenAt: new Date(ack.writtenAt), latencyMs: ack.latencyMs };
    },
    async healthCheck() {
      await call({ type: 'health' });
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
