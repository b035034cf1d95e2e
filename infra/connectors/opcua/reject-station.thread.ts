/**
 * The body of a reject-station thread (see threaded-reject-station.ts): one OPC UA session, opened here, and the
 * rejects the parent thread sends. Nothing else runs on this thread, so a write goes out the moment its message
 * arrives and its response is read the moment it lands, whatever the parent's event loop is busy with.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { z } from 'zod';
import type { ConnectorLogger } from '../define';
import {
  RejectStationError,
  openOpcUaRejectStation,
  type OpcUaRejectStationConfig,
  type RejectFailureReason,
  type RejectSignal,
} from './reject-station';
import type { ExternalErrorKind } from '../../../activities/errors';

export type RejectThreadRequest =
  | { type: 'signal'; id: number; signal: RejectSignal; decidedAt: bigint }
  | { type: 'health'; id: number }
  | { type: 'close'; id: number };

/** A RejectStationError as it crosses the thread boundary (structured clone keeps no class). */
export interface RejectThreadError {
  reason?: RejectFailureReason;
  kind?: ExternalErrorKind;
  message: string;
}

export type RejectThreadReply =
  | { type: 'ready' }
  | { type: 'open-failed'; error: RejectThreadError }
  | { type: 'ack'; id: number; writtenAt: number; latencyMs: number }
  | { type: 'done'; id: number }
  | { type: 'error'; id: number; error: RejectThreadError }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; msg: string; meta?: Record<string, unknown> };

const port = parentPort;
if (!port) throw new Error('reject-station.thread.ts runs as a worker thread only');
const { config } = workerData as { config: z.input<typeof OpcUaRejectStationConfig> };
const reply = (msg: RejectThreadReply) => port.postMessage(msg);
const toWire = (err: unknown): RejectThreadError =>
  err instanceof RejectStationError
    ? { reason: err.reason, kind: err.kind, message: err.message }
    : { message: err instanceof Error ? err.message : String(err) };
const log: ConnectorLogger = {
  info: (msg, meta) => reply({ type: 'log', level: 'info', msg, ...(meta ? { meta } : {}) }),
  warn: (msg, meta) => reply({ type: 'log', level: 'warn', msg, ...(meta ? { meta } : {}) }),
  error: (msg, meta) => reply({ type: 'log', level: 'error', msg, ...(meta ? { meta } : {}) }),
};

openOpcUaRejectStation(config, log).then(
  (station) => {
    port.on('message', (msg: RejectThreadRequest) => {
      if (msg.type === 'signal') {
        station.signalReject(msg.signal, { decidedAt: msg.decidedAt }).then(
          (ack) => reply({ type: 'ack', id: msg.id, writtenAt: ack.writtenAt.getTime(), latencyMs: ack.latencyMs }),
          (err: unknown) => reply({ type: 'error', id: msg.id, error: toWire(err) }),
        );
      } else if (msg.type === 'health') {
        station.healthCheck().then(
          () => reply({ type: 'done', id: msg.id }),
          (err: unknown) => reply({ type: 'error', id: msg.id, error: toWire(err) }),
        );
      } else {
        void station.close().finally(() => {
          reply({ type: 'done', id: msg.id });
          port.close();
        });
      }
    });
    reply({ type: 'ready' });
  },
  (err: unknown) => {
    reply({ type: 'open-failed', error: toWire(err) });
    port.close();
  },
);
