/**
 * The reject station: a fail verdict becomes one OPC UA write of PartId, EventId and a new Command value at the
 * station's PLC nodes, batched per turn of the event loop and serialised per station. The session under it (security,
 * reconnection, namespace, timeouts) is session.ts.
 */
import { z } from 'zod';
import type { ConnectorLogger } from '../define';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';
import type { NodeOpcua } from './node-opcua.driver';
import {
  REJECT_STATION_NAMESPACE_URI,
  rejectStationIdentifier,
  rejectStationPath,
  type StationAddress,
} from './reject-station.address';
import { TimeoutError, opcUaSessionSettings, openOpcUaSession, refineOpcUaSecurity } from './session';
import { kindOfStatus } from './method-call';

const SYSTEM = 'opcua-reject-station';

/** A fail verdict for one part at one station: the PLC diverts the part. */
export interface RejectSignal extends StationAddress {
  partId: string;
  /** The inspection event; the PLC counts a re-sent EventId once. */
  eventId: string;
}

export interface RejectAck {
  /** When the PLC's write response arrived. */
  writtenAt: Date;
  /** From the call (or the caller's `decidedAt`) to the write response, `process.hrtime.bigint()`; includes waiting
   *  behind an earlier reject at the same station. */
  latencyMs: number;
}

/**
 * The reject station as the inference worker sees it. `signalReject` is one attempt: it never retries and never waits
 * for a reconnection; a failure is a `RejectStationError` (an `ExternalSystemError` with a `reason`) that the caller
 * counts and logs.
 */
export interface RejectStationPort {
  /** `decidedAt`: when the verdict was made (`process.hrtime.bigint()`, the same clock in every thread); default now. */
  signalReject(signal: RejectSignal, opts?: { decidedAt?: bigint }): Promise<RejectAck>;
  /** Throws when the session is down or the server does not answer a read of its state. */
  healthCheck(): Promise<void>;
  /** Ends the session and the reconnection loop; later calls fail. Idempotent. */
  close(): Promise<void>;
}

/**
 * Why a reject (or the connector) failed, for the caller's counters: `unavailable` (session down, nothing sent),
 * `timeout` (sent, no response in time: it may still land), `write-failed` (the request failed in transport),
 * `bad-status` (the PLC answered with a Bad status for a node), `invalid-signal`, `config`, `connect`, `health`.
 */
export type RejectFailureReason =
  'unavailable' | 'timeout' | 'write-failed' | 'bad-status' | 'invalid-signal' | 'config' | 'connect' | 'health';

/** An `ExternalSystemError` (same `name`, so code that duck-types connector errors keeps working) with a reason. */
export class RejectStationError extends ExternalSystemError {
  constructor(
    readonly reason: RejectFailureReason,
    kind: ExternalErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(SYSTEM, kind, message, undefined, options);
  }
}

/** The reject station's block: the session settings, with the reject-station nodes' namespace by default. */
export const rejectStationSettings = {
  /** Accepted so the block under `connectors:` in temporal.yaml can be passed as is. */
  kind: z.literal('opcua-reject-station').optional(),
  ...opcUaSessionSettings,
  /** Namespace of the reject-station nodes; its index is read from the server at each (re)connection. */
  namespaceUri: z.string().min(1).default(REJECT_STATION_NAMESPACE_URI),
};

export const OpcUaRejectStationConfig = z.strictObject(rejectStationSettings).superRefine(refineOpcUaSecurity);
export type OpcUaRejectStationConfig = z.infer<typeof OpcUaRejectStationConfig>;

interface StationNodes {
  partId: NodeOpcua.NodeId;
  eventId: NodeOpcua.NodeId;
  command: NodeOpcua.NodeId;
}

/**
 * Opens the reject station: one long-lived OPC UA session to the line PLC (session.ts) and the reject writes over it.
 * Resolves once the session is active and the namespace index is known; rejects (after closing everything it opened)
 * when that takes longer than `connectTimeoutMs`.
 */
export async function openOpcUaRejectStation(
  rawConfig: z.input<typeof OpcUaRejectStationConfig>,
  log: ConnectorLogger,
): Promise<RejectStationPort> {
  const parsed = OpcUaRejectStationConfig.safeParse(rawConfig);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new RejectStationError('config', 'validation', `reject station config is invalid: ${why}`);
  }
  const config = parsed.data;
  const label = `reject station ${config.endpointUrl}`;
  const fail = (reason: RejectFailureReason, kind: ExternalErrorKind, message: string, cause?: unknown) =>
    new RejectStationError(reason, kind, `${label}: ${message}`, cause ? { cause } : undefined);

  const session = await openOpcUaSession({
    config,
    log,
    label: 'reject station',
    applicationName: 'HoldfastRejectStation',
    clientName: 'holdfast-reject-station',
    certificateManagerName: 'reject-station-client',
    error: (reason, kind, message, cause) =>
      new RejectStationError(reason, kind, message, cause ? { cause } : undefined),
  });
  const { AttributeIds, DataType, resolveNodeId } = session.opcua;

  /** NodeIds per station, for the namespace index they were built with (a restarted PLC may renumber). */
  const nodeCache = new Map<string, StationNodes>();
  let cachedIndex = -1;
  const stationTails = new Map<string, Promise<unknown>>();
  // A value the PLC has not seen last: it acts on a change of Command. Seeded from the clock so a restarted worker does
  // not repeat its predecessor's last value; wraps within UInt32 and skips 0 (the PLC's power-on value).
  let sequence = Date.now() % 0xffff_ffff || 1;

  const nodesFor = (address: StationAddress): StationNodes => {
    const namespaceIndex = session.namespaceIndex();
    if (namespaceIndex !== cachedIndex) {
      nodeCache.clear();
      cachedIndex = namespaceIndex;
    }
    const path = rejectStationPath(address);
    let nodes = nodeCache.get(path);
    if (!nodes) {
      const nodeId = (variable: 'PartId' | 'EventId' | 'Command') =>
        resolveNodeId(`ns=${namespaceIndex};s=${rejectStationIdentifier(address, variable)}`);
      nodes = { partId: nodeId('PartId'), eventId: nodeId('EventId'), command: nodeId('Command') };
      nodeCache.set(path, nodes);
    }
    return nodes;
  };

  const unavailable = (signal: RejectSignal): RejectStationError => {
    const down = session.down() ?? { forMs: 0, reason: 'reconnecting' };
    return fail(
      'unavailable',
      'transient',
      `session down for ${down.forMs} ms (${down.reason}); reject of part ${signal.partId} not sent`,
    );
  };

  /**
   * Rejects waiting for the next WriteRequest: every station's reject decided in the same run of microtasks (a model
   * batch's verdicts resolve together) goes out in one request, one round trip and one PLC scan instead of one
   * each. A station has at most one reject here (see signalReject), so no request writes a station's nodes twice.
   */
  interface PendingReject {
    signal: RejectSignal;
    startedAt: bigint;
    resolve: (ack: RejectAck) => void;
    reject: (err: unknown) => void;
  }
  let pending: PendingReject[] = [];
  let flushScheduled = false;

  const enqueue = (signal: RejectSignal, startedAt: bigint) =>
    new Promise<RejectAck>((resolve, reject) => {
      pending.push({ signal, startedAt, resolve, reject });
      if (!flushScheduled) {
        flushScheduled = true;
        // A microtask: it runs after the verdicts already resolved in this turn have queued their rejects, and before
        // any other I/O callback gets the thread (setImmediate would wait behind the rest of the poll phase).
        queueMicrotask(() => {
          flushScheduled = false;
          const batch = pending;
          pending = [];
          void writeRejects(batch);
        });
      }
    });

  const writeRejects = async (batch: PendingReject[]): Promise<void> => {
    // Checked again here, synchronously before the write: node-opcua would otherwise park a write issued during a
    // reconnection and replay it after the repair, seconds later, when the part is long past the reject gate.
    const s = session.usable();
    if (!s) {
      for (const r of batch) r.reject(unavailable(r.signal));
      return;
    }
    // Three values per reject; the server applies a request's values in order, so each PLC sees PartId and EventId
    // before its Command.
    const nodesToWrite: NodeOpcua.WriteValueOptions[] = batch.flatMap(({ signal }) => {
      const nodes = nodesFor(signal);
      sequence = sequence >= 0xffff_ffff ? 1 : sequence + 1;
      return [
        { nodeId: nodes.partId, attributeId: AttributeIds.Value, value: { value: str(signal.partId) } },
        { nodeId: nodes.eventId, attributeId: AttributeIds.Value, value: { value: str(signal.eventId) } },
        {
          nodeId: nodes.command,
          attributeId: AttributeIds.Value,
          value: { value: { dataType: DataType.UInt32, value: sequence } },
        },
      ];
    });
    const parts = `${batch.length === 1 ? 'part' : 'parts'} ${batch.map((r) => r.signal.partId).join(', ')}`;
    let results: NodeOpcua.StatusCode[];
    try {
      results = await session.withRequestTimeout(s.write(nodesToWrite));
    } catch (err) {
      const failure =
        err instanceof TimeoutError
          ? fail(
              'timeout',
              'transient',
              `no write response within ${config.requestTimeoutMs} ms for ${parts} (it may still arrive)`,
            )
          : fail('write-failed', 'transient', `write for ${parts} failed: ${(err as Error).message}`, err);
      for (const r of batch) r.reject(failure);
      return;
    }
    const writtenAt = new Date();
    const answeredAt = process.hrtime.bigint();
    batch.forEach(({ signal, startedAt, resolve, reject }, n) => {
      for (let i = n * 3; i < n * 3 + 3; i++) {
        const status = results[i];
        if (status?.isGood()) continue;
        const nodeId = nodesToWrite[i]!.nodeId!.toString();
        if (!status) return reject(fail('bad-status', 'transient', `no status for ${nodeId} (part ${signal.partId})`));
        const kind = kindOfStatus(status);
        return reject(
          fail(
            'bad-status',
            kind,
            `write to ${nodeId} for part ${signal.partId} returned ${status.name} (${status.toString()})`,
          ),
        );
      }
      resolve({ writtenAt, latencyMs: Number(answeredAt - startedAt) / 1e6 });
    });
  };

  const str = (value: string) => ({ dataType: DataType.String, value });

  return {
    signalReject(signal, opts) {
      const startedAt = opts?.decidedAt ?? process.hrtime.bigint();
      if (session.down()) return Promise.reject(unavailable(signal));
      for (const segment of [signal.site, signal.line, signal.station]) {
        if (typeof segment !== 'string' || segment.length === 0 || segment.includes('.')) {
          return Promise.reject(
            fail(
              'invalid-signal',
              'validation',
              `station id segment "${String(segment)}" must be non-empty and contain no "."`,
            ),
          );
        }
      }
      // Rejects for one station go out one at a time, so two WriteRequests never interleave their values at the PLC.
      const key = rejectStationPath(signal);
      const previous = stationTails.get(key) ?? Promise.resolve();
      const run = previous.then(() => enqueue(signal, startedAt));
      const tail = run.catch(() => undefined);
      stationTails.set(key, tail);
      void tail.then(() => {
        if (stationTails.get(key) === tail) stationTails.delete(key);
      });
      return run;
    },

    healthCheck: () => session.healthCheck(),
    close: () => session.close(),
  };
}
