import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import type { ConnectorLogger } from '../define';
import { ExternalSystemError, type ExternalErrorKind } from '../../../activities/errors';
import { loadNodeOpcua, type NodeOpcua } from './node-opcua.driver';
import {
  REJECT_STATION_NAMESPACE_URI,
  rejectStationIdentifier,
  rejectStationPath,
  type StationAddress,
} from './reject-station.address';

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

const SecurityPolicyName = z.enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss']);

export const OpcUaRejectStationConfig = z
  .strictObject({
    /** Accepted so the block under `connectors:` in temporal.yaml can be passed as is. */
    kind: z.literal('opcua-reject-station').optional(),
    endpointUrl: z.string().regex(/^opc\.tcp:\/\/[^/\s]+/, 'expected opc.tcp://host:port'),
    /** None is for a local simulator only; a plant PLC gets Sign or SignAndEncrypt. */
    securityMode: z.enum(['None', 'Sign', 'SignAndEncrypt']).default('None'),
    /** Default: None with securityMode None, else Basic256Sha256. Basic128Rsa15 is not offered (obsolete). */
    securityPolicy: SecurityPolicyName.optional(),
    /** The client's PKI (own certificate and key, trusted/ and rejected/ server certificates). Never $HOME. */
    pkiDir: z.string().min(1),
    /** Namespace of the reject-station nodes; its index is read from the server at each (re)connection. */
    namespaceUri: z.string().min(1).default(REJECT_STATION_NAMESPACE_URI),
    /** Longest a reject waits for the PLC's write response before failing. */
    requestTimeoutMs: z.number().int().positive().max(60_000).default(1_000),
    /** Longest `openOpcUaRejectStation` waits for the first session. */
    connectTimeoutMs: z.number().int().positive().max(300_000).default(10_000),
    /** Trust a server certificate not yet in `<pkiDir>/trusted/certs` (Sign modes). Off: copy the PLC's certificate
     *  there. Only for the local simulator. */
    acceptUnknownServerCertificate: z.boolean().default(false),
    /** node-opcua's reconnect loop, the only retry owner for the connection (see README). */
    reconnect: z
      .strictObject({
        initialDelayMs: z.number().int().positive().default(250),
        maxDelayMs: z.number().int().positive().max(60_000).default(2_000),
        /** -1: keep trying while the port is open (delay capped at maxDelayMs); n ≥ 1: give up after n attempts. */
        maxRetry: z.number().int().min(-1).default(-1),
      })
      .prefault({}),
    /** Server-side session lifetime without traffic; keep-alive reads every third of it keep the session open. */
    sessionTimeoutMs: z.number().int().min(10_000).default(60_000),
  })
  .superRefine((cfg, ctx) => {
    const policy = cfg.securityPolicy;
    if (cfg.securityMode === 'None' && policy !== undefined && policy !== 'None') {
      ctx.addIssue({ code: 'custom', path: ['securityPolicy'], message: 'securityMode None requires policy None' });
    }
    if (cfg.securityMode !== 'None' && policy === 'None') {
      ctx.addIssue({
        code: 'custom',
        path: ['securityPolicy'],
        message: `securityMode ${cfg.securityMode} needs a policy`,
      });
    }
  });
export type OpcUaRejectStationConfig = z.infer<typeof OpcUaRejectStationConfig>;

/** Status codes a later attempt may clear (OPC 10000-4 §7.38); others mean the write itself is refused. */
const TRANSIENT_STATUS = new Set([
  'BadTimeout',
  'BadTooManyOperations',
  'BadServerHalted',
  'BadCommunicationError',
  'BadConnectionClosed',
  'BadSecureChannelClosed',
  'BadSessionClosed',
  'BadSessionIdInvalid',
  'BadResourceUnavailable',
  'BadOutOfService',
]);

interface StationNodes {
  partId: NodeOpcua.NodeId;
  eventId: NodeOpcua.NodeId;
  command: NodeOpcua.NodeId;
}

/**
 * Opens one long-lived OPC UA session to the line PLC. Resolves once the session is active and the namespace index is
 * known; rejects (after closing everything it opened) when that takes longer than `connectTimeoutMs`.
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
  const opcua = loadNodeOpcua();
  const { AttributeIds, DataType, MessageSecurityMode, SecurityPolicy, resolveNodeId } = opcua;
  const label = `reject station ${config.endpointUrl}`;
  const fail = (reason: RejectFailureReason, kind: ExternalErrorKind, message: string, cause?: unknown) =>
    new RejectStationError(reason, kind, `${label}: ${message}`, cause ? { cause } : undefined);

  const pkiDir = resolve(config.pkiDir);
  mkdirSync(pkiDir, { recursive: true });
  // Without an explicit manager node-opcua uses ~/.config/node-opcua-default/PKI (getDefaultCertificateManager).
  const certificateManager = new opcua.OPCUACertificateManager({
    name: 'reject-station-client',
    rootFolder: pkiDir,
    automaticallyAcceptUnknownCertificate: config.acceptUnknownServerCertificate,
    disableFileWatchers: true,
  });

  const securityPolicy = config.securityPolicy ?? (config.securityMode === 'None' ? 'None' : 'Basic256Sha256');
  const client = opcua.OPCUAClient.create({
    applicationName: 'HoldfastRejectStation',
    clientName: 'holdfast-reject-station',
    clientCertificateManager: certificateManager,
    securityMode: MessageSecurityMode[config.securityMode],
    securityPolicy: SecurityPolicy[securityPolicy],
    // Connect to the URL we were given; a PLC often advertises a hostname the worker cannot resolve.
    endpointMustExist: false,
    connectionStrategy: {
      initialDelay: config.reconnect.initialDelayMs,
      maxDelay: config.reconnect.maxDelayMs,
      maxRetry: config.reconnect.maxRetry,
      randomisationFactor: 0.2,
    },
    requestedSessionTimeout: config.sessionTimeoutMs,
    // Rejects can be hours apart: keep-alive reads stop the server from expiring the idle session, and notice a dead
    // link before the next reject needs it. node-opcua warns when the interval is not well below the session timeout.
    keepSessionAlive: true,
    keepAliveInterval: Math.floor(config.sessionTimeoutMs / 3),
  });

  /** Why rejects fail fast right now; undefined while the session is usable. */
  let downSince: { at: number; reason: string } | undefined = { at: Date.now(), reason: 'not connected yet' };
  let closed = false;
  let session: NodeOpcua.ClientSession | undefined;
  let namespaceIndex = -1;
  const nodeCache = new Map<string, StationNodes>();
  const stationTails = new Map<string, Promise<unknown>>();
  // A value the PLC has not seen last: it acts on a change of Command. Seeded from the clock so a restarted worker does
  // not repeat its predecessor's last value; wraps within UInt32 and skips 0 (the PLC's power-on value).
  let sequence = Date.now() % 0xffff_ffff || 1;

  const markDown = (reason: string) => {
    if (!downSince) downSince = { at: Date.now(), reason };
  };

  const resolveNamespace = async (s: NodeOpcua.ClientSession): Promise<void> => {
    const namespaces = await s.readNamespaceArray();
    const index = namespaces.indexOf(config.namespaceUri);
    if (index < 0) {
      throw fail('connect', 'not-found', `namespace ${config.namespaceUri} is not in the server's NamespaceArray`);
    }
    if (index !== namespaceIndex) {
      namespaceIndex = index;
      nodeCache.clear();
    }
  };

  client.on('connection_lost', () => {
    markDown('connection lost; node-opcua is reconnecting');
    log.warn('reject station connection lost', { endpointUrl: config.endpointUrl });
  });
  client.on('backoff', (attempt, delay) => {
    // One line per attempt would flood the log during a long PLC outage.
    if (attempt === 1 || attempt % 30 === 0) {
      log.warn('reject station reconnecting', { endpointUrl: config.endpointUrl, attempt, nextDelayMs: delay });
    }
  });
  client.on('connection_reestablished', () => {
    // node-opcua has repaired (or recreated) the session by now; a restarted PLC may number namespaces differently.
    const current = session;
    if (!current || closed) return;
    resolveNamespace(current).then(
      () => {
        downSince = undefined;
        log.info('reject station reconnected', { endpointUrl: config.endpointUrl, namespaceIndex });
      },
      (err: unknown) => {
        downSince = { at: Date.now(), reason: `reconnected but ${(err as Error).message}` };
        log.error('reject station reconnected but cannot resolve its namespace', {
          endpointUrl: config.endpointUrl,
          error: (err as Error).message,
        });
      },
    );
  });
  client.on('close', (err) => {
    if (closed) return;
    // Only reached with an error when the reconnect loop gave up (reconnect.maxRetry ≥ 1).
    downSince = { at: Date.now(), reason: `connection closed: ${err?.message ?? 'by the server'}; not reconnecting` };
    log.error('reject station connection closed', { endpointUrl: config.endpointUrl, error: err?.message });
  });

  const shutdown = async () => {
    closed = true;
    markDown('closed');
    const s = session;
    session = undefined;
    // CloseSession needs a live channel; while reconnecting it would wait for one, so bound it.
    if (s) await withTimeout(s.close(), 1_000).catch(() => undefined);
    await client.disconnect().catch(() => undefined);
    await certificateManager.dispose().catch(() => undefined);
  };

  try {
    await withTimeout(
      (async () => {
        await client.connect(config.endpointUrl);
        const s = await client.createSession();
        if (closed) {
          // connectTimeoutMs fired while the session was being created; shutdown() has already run.
          await s.close().catch(() => undefined);
          return;
        }
        session = s;
        // Not a reason to refuse rejects: node-opcua recreates a session the server no longer knows on the next
        // request (BadSessionIdInvalid), and a write meanwhile fails with its Bad status. Marking the port down here
        // could leave it down with no event to bring it back.
        s.on('session_closed', (status) => {
          if (!closed) log.warn('reject station session closed by the server', { status: status.name });
        });
        await resolveNamespace(s);
      })(),
      config.connectTimeoutMs,
    );
  } catch (err) {
    await shutdown();
    if (err instanceof RejectStationError) throw err;
    const message =
      err instanceof TimeoutError
        ? `no session within ${config.connectTimeoutMs} ms (is the PLC at ${config.endpointUrl} up?)`
        : `cannot open a session: ${(err as Error).message}`;
    throw fail('connect', 'transient', message, err);
  }
  downSince = undefined;
  log.info('reject station connected', {
    endpointUrl: config.endpointUrl,
    securityMode: config.securityMode,
    securityPolicy,
    namespaceIndex,
  });

  const nodesFor = (address: StationAddress): StationNodes => {
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
    const down = downSince ?? { at: Date.now(), reason: 'reconnecting' };
    const forMs = Date.now() - down.at;
    return fail(
      'unavailable',
      'transient',
      `session down for ${forMs} ms (${down.reason}); reject of part ${signal.partId} not sent`,
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
    const s = session;
    // Checked again here, synchronously before the write: node-opcua would otherwise park a write issued during a
    // reconnection and replay it after the repair, seconds later, when the part is long past the reject gate.
    if (closed || downSince || !s || s.isReconnecting) {
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
      results = await withTimeout(s.write(nodesToWrite), config.requestTimeoutMs);
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
        const kind: ExternalErrorKind =
          status.name === 'BadNodeIdUnknown'
            ? 'not-found'
            : TRANSIENT_STATUS.has(status.name)
              ? 'transient'
              : 'rejected';
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
      if (closed || downSince) return Promise.reject(unavailable(signal));
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

    async healthCheck() {
      const s = session;
      if (closed || downSince || !s) {
        const down = downSince ?? { at: Date.now(), reason: 'closed' };
        throw fail('unavailable', 'transient', `session down for ${Date.now() - down.at} ms (${down.reason})`);
      }
      let value: NodeOpcua.DataValue;
      try {
        value = await withTimeout(
          s.read({ nodeId: opcua.VariableIds.Server_ServerStatus_State, attributeId: AttributeIds.Value }),
          config.requestTimeoutMs,
        );
      } catch (err) {
        throw fail('health', 'transient', `health read failed: ${(err as Error).message}`, err);
      }
      if (!value.statusCode.isGood())
        throw fail('health', 'transient', `server state read returned ${value.statusCode.name}`);
      const state = value.value.value as NodeOpcua.ServerState;
      if (state !== opcua.ServerState.Running) {
        throw fail('health', 'transient', `server state is ${opcua.ServerState[state] ?? state}, not Running`);
      }
    },

    async close() {
      if (closed) return;
      await shutdown();
      log.info('reject station closed', { endpointUrl: config.endpointUrl });
    },
  };
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** Races `promise` against a timer; the timer never outlives the race (no open handle after close). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
