/**
 * The reject station on a thread of its own (session-thread.ts says why). Same port, same errors (RejectStationError
 * with its reason and kind), same latency clock: from the verdict (`decidedAt`) to the PLC's response, read on the
 * thread that received it.
 */
import { resolve } from 'node:path';
import type { z } from 'zod';
import type { ConnectorLogger } from '../define';
import {
  RejectStationError,
  type OpcUaRejectStationConfig,
  type RejectAck,
  type RejectFailureReason,
  type RejectStationPort,
} from './reject-station';
import type { RejectThreadAnswer, RejectThreadCall } from './reject-station.thread';
import { openInThread, type ThreadError } from './session-thread';

const THREAD_ENTRY = resolve(__dirname, 'reject-station.thread.ts');

const fromWire = (e: ThreadError): Error =>
  e.reason && e.kind
    ? new RejectStationError(e.reason as RejectFailureReason, e.kind, e.message)
    : new Error(e.message);

export interface ThreadedRejectStationOptions {
  /** A thread that stops unexpectedly is started again after this, doubling up to `maxRestartDelayMs`. */
  restartDelayMs?: number;
  maxRestartDelayMs?: number;
  /** The thread's module; the default is reject-station.thread.ts (tests give one that speaks the same messages). */
  threadEntry?: string;
}

export async function openOpcUaRejectStationInThread(
  config: z.input<typeof OpcUaRejectStationConfig>,
  log: ConnectorLogger,
  opts: ThreadedRejectStationOptions = {},
): Promise<RejectStationPort> {
  const thread = await openInThread<RejectThreadCall, RejectThreadAnswer>({
    entry: opts.threadEntry ?? THREAD_ENTRY,
    config,
    log,
    threadLabel: 'reject thread',
    meta: { endpointUrl: config.endpointUrl },
    closedMessage: 'reject station closed',
    unavailable: (message) => new RejectStationError('unavailable', 'transient', message),
    fromWire,
    ...(opts.restartDelayMs !== undefined ? { restartDelayMs: opts.restartDelayMs } : {}),
    ...(opts.maxRestartDelayMs !== undefined ? { maxRestartDelayMs: opts.maxRestartDelayMs } : {}),
  });

  return {
    async signalReject(signal, signalOpts): Promise<RejectAck> {
      const decidedAt = signalOpts?.decidedAt ?? process.hrtime.bigint();
      const ack = await thread.call({ type: 'signal', signal, decidedAt });
      if (ack.type !== 'ack') throw new Error(`reject thread answered ${ack.type} to a reject`);
      return { writtenAt: new Date(ack.writtenAt), latencyMs: ack.latencyMs };
    },
    async healthCheck() {
      await thread.call({ type: 'health' });
    },
    close: () => thread.close(),
  };
}
