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
const BOOTSTRAP = `require(${JSON.stringify(require.resolve('tsx/cjs'))}); require(${JSON.stringify(THREAD_ENTRY)});`;

/** Omit distributed over a union, so each request keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

const fromWire = (e: RejectThreadError): Error =>
  e.reason && e.kind ? new RejectStationError(e.reason, e.kind, e.message) : new Error(e.message);

export async function openOpcUaRejectStationInThread(
  config: z.input<typeof OpcUaRejectStationConfig>,
  log: ConnectorLogger,
): Promise<RejectStationPort> {
  const worker = new Worker(BOOTSTRAP, { eval: true, execArgv: [], workerData: { config } });
  const pending = new Map<number, { resolve: (msg: RejectThreadReply) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let gone: Error | undefined;
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
  const failAll = (err: Error) => {
    gone ??= err;
    onOpen?.(err);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  worker.on('error', failAll);
  worker.on('exit', (code) =>
    failAll(new RejectStationError('unavailable', 'transient', `reject thread exited (${code})`)),
  );

  const opened = await new Promise<Error | undefined>((r) => (onOpen = r));
  onOpen = undefined;
  if (opened) {
    await worker.terminate();
    throw opened;
  }

  const call = (request: WithoutId<RejectThreadRequest>): Promise<RejectThreadReply> => {
    if (gone) return Promise.reject(gone);
    const id = nextId++;
    return new Promise((resolveCall, rejectCall) => {
      pending.set(id, { resolve: resolveCall, reject: rejectCall });
      worker.postMessage({ ...request, id } satisfies RejectThreadRequest);
    });
  };
  let closing: Promise<void> | undefined;

  return {
    async signalReject(signal, opts): Promise<RejectAck> {
      const decidedAt = opts?.decidedAt ?? process.hrtime.bigint();
      const ack = await call({ type: 'signal', signal, decidedAt });
      if (ack.type !== 'ack') throw new Error(`reject thread answered ${ack.type} to a reject`);
      return { writtenAt: new Date(ack.writtenAt), latencyMs: ack.latencyMs };
    },
    async healthCheck() {
      await call({ type: 'health' });
    },
    close() {
      closing ??= (async () => {
        if (!gone) await call({ type: 'close' }).catch(() => undefined);
        gone ??= new RejectStationError('unavailable', 'transient', 'reject station closed');
        await worker.terminate();
      })();
      return closing;
    },
  };
}
