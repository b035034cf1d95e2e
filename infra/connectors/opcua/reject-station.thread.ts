/**
 * The body of a reject-station thread (see threaded-reject-station.ts): one OPC UA session, opened here, and the
 * rejects the parent thread sends. Nothing else runs on this thread, so a write goes out the moment its message
 * arrives and its response is read the moment it lands, whatever the parent's event loop is busy with.
 */
import type { z } from 'zod';
import type { ExternalErrorKind } from '../../../activities/errors';
import {
  RejectStationError,
  openOpcUaRejectStation,
  type OpcUaRejectStationConfig,
  type RejectFailureReason,
  type RejectSignal,
} from './reject-station';
import { serveInThread, type ThreadReply, type ThreadRequest } from './session-thread';

/** The calls a reject thread answers, without the `id` the wire adds. */
export type RejectThreadCall = { type: 'signal'; signal: RejectSignal; decidedAt: bigint } | { type: 'health' };
export type RejectThreadAnswer = { type: 'ack'; writtenAt: number; latencyMs: number };

export type RejectThreadRequest = ThreadRequest<RejectThreadCall>;
export type RejectThreadReply = ThreadReply<RejectThreadAnswer>;

/** A RejectStationError as it crosses the thread boundary (structured clone keeps no class). */
export interface RejectThreadError {
  reason?: RejectFailureReason;
  kind?: ExternalErrorKind;
  message: string;
}

const toWire = (err: unknown): RejectThreadError =>
  err instanceof RejectStationError
    ? { reason: err.reason, kind: err.kind, message: err.message }
    : { message: err instanceof Error ? err.message : String(err) };

serveInThread<RejectThreadCall, RejectThreadAnswer>(async (config, log) => {
  const station = await openOpcUaRejectStation(config as z.input<typeof OpcUaRejectStationConfig>, log);
  return {
    async handle(call) {
      if (call.type === 'health') {
        await station.healthCheck();
        return { type: 'done' };
      }
      const ack = await station.signalReject(call.signal, { decidedAt: call.decidedAt });
      return { type: 'ack', writtenAt: ack.writtenAt.getTime(), latencyMs: ack.latencyMs };
    },
    close: () => station.close(),
  };
}, toWire);
