/**
 * One long-lived OPC UA client session, for any connector that talks to a PLC or vision system over OPC UA: the
 * certificate store, security, node-opcua's reconnect loop (the only retry owner for the connection), the namespace
 * index resolved from its URI at every (re)connection, the server-state health read and bounded timeouts. What the
 * connector does with the session (writes, reads, subscriptions) lives in its own module; it asks `usable()` for the
 * session right before each request and builds its errors through `opts.error`.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import type { ConnectorLogger } from '../define';
import type { ExternalErrorKind } from '../../../activities/errors';
import { loadNodeOpcua, type NodeOpcua, type NodeOpcuaModule } from './node-opcua.driver';

const SecurityPolicyName = z.enum(['None', 'Basic256Sha256', 'Aes128_Sha256_RsaOaep', 'Aes256_Sha256_RsaPss']);

/** The session settings every OPC UA connector's block shares; spread into its own strict object. */
export const opcUaSessionSettings = {
  endpointUrl: z.string().regex(/^opc\.tcp:\/\/[^/\s]+/, 'expected opc.tcp://host:port'),
  /** Signed and encrypted unless configured otherwise; None (nothing signed, nothing encrypted) is logged as a warning
   *  at every start. */
  securityMode: z.enum(['None', 'Sign', 'SignAndEncrypt']).default('SignAndEncrypt'),
  /** Default: None with securityMode None, else Basic256Sha256: the policy every current PLC offers (S7-1500, TwinCAT,
   *  CODESYS), where Aes128_Sha256_RsaOaep is missing from older firmware. Basic128Rsa15 is not offered (obsolete). */
  securityPolicy: SecurityPolicyName.optional(),
  /** The client's PKI (own certificate and key, trusted/ and rejected/ server certificates). Never $HOME. */
  pkiDir: z.string().min(1),
  /** Longest one request waits for the server's response before failing. */
  requestTimeoutMs: z.number().int().positive().max(60_000).default(1_000),
  /** Longest opening waits for the first session. */
  connectTimeoutMs: z.number().int().positive().max(300_000).default(10_000),
  /** Trust a server certificate not yet in `<pkiDir>/trusted/certs` (Sign modes). Off: an administrator copies the
   *  PLC's certificate there (a refused one waits in `<pkiDir>/rejected`). Never for a plant PLC. */
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
};

/** securityMode and securityPolicy must agree; for a connector schema's superRefine. */
export function refineOpcUaSecurity(
  cfg: { securityMode: 'None' | 'Sign' | 'SignAndEncrypt'; securityPolicy?: string | undefined },
  ctx: z.RefinementCtx,
): void {
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
}

export type OpcUaSessionConfig = z.output<z.ZodObject<typeof opcUaSessionSettings>> & { namespaceUri: string };

/** Why the session failed a caller: not open yet or gone (`unavailable`), could not open (`connect`), `health`. */
export type OpcUaSessionFailure = 'unavailable' | 'connect' | 'health';

export interface OpcUaSessionOptions {
  config: OpcUaSessionConfig;
  log: ConnectorLogger;
  /** What the session serves, in log lines and messages: "reject station". */
  label: string;
  /** node-opcua's application and client names, and the certificate manager's. */
  applicationName: string;
  clientName: string;
  certificateManagerName: string;
  /** Builds what the session throws, so each connector keeps its own error class; `message` names label and URL. */
  error(reason: OpcUaSessionFailure, kind: ExternalErrorKind, message: string, cause?: unknown): Error;
}

export interface OpcUaSession {
  readonly opcua: NodeOpcuaModule;
  /** Index of `config.namespaceUri` in the server's NamespaceArray, as of the last (re)connection. */
  namespaceIndex(): number;
  /**
   * The session if a request may go out now, else undefined. Check it synchronously right before the request:
   * while reconnecting, node-opcua would otherwise park the request and replay it after the repair, seconds later.
   */
  usable(): NodeOpcua.ClientSession | undefined;
  /** Why requests fail fast right now (closed, connection lost, reconnected without the namespace…); else undefined. */
  down(): { forMs: number; reason: string } | undefined;
  /** `promise`, or a TimeoutError after `config.requestTimeoutMs`. */
  withRequestTimeout<T>(promise: Promise<T>): Promise<T>;
  /** Reads the server's state: throws unless the session is up and the server says Running. */
  healthCheck(): Promise<void>;
  /** Ends the session and the reconnection loop. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the session. Resolves once it is active and the namespace index is known; rejects (after closing everything
 * it opened) when that takes longer than `connectTimeoutMs`.
 */
export async function openOpcUaSession(opts: OpcUaSessionOptions): Promise<OpcUaSession> {
  const { config, log, label } = opts;
  const opcua = loadNodeOpcua();
  const { AttributeIds, MessageSecurityMode, SecurityPolicy } = opcua;
  /** Errors this session made: opening passes them through instead of wrapping them again. */
  const ours = new WeakSet<Error>();
  const fail = (reason: OpcUaSessionFailure, kind: ExternalErrorKind, message: string, cause?: unknown) => {
    const err = opts.error(reason, kind, `${label} ${config.endpointUrl}: ${message}`, cause);
    ours.add(err);
    return err;
  };
  const meta = { endpointUrl: config.endpointUrl };

  const pkiDir = resolve(config.pkiDir);
  mkdirSync(pkiDir, { recursive: true });
  // Without an explicit manager node-opcua uses ~/.config/node-opcua-default/PKI (getDefaultCertificateManager).
  const certificateManager = new opcua.OPCUACertificateManager({
    name: opts.certificateManagerName,
    rootFolder: pkiDir,
    automaticallyAcceptUnknownCertificate: config.acceptUnknownServerCertificate,
    disableFileWatchers: true,
  });

  const securityPolicy = config.securityPolicy ?? (config.securityMode === 'None' ? 'None' : 'Basic256Sha256');
  if (config.securityMode === 'None') {
    log.warn(`${label}: OPC UA securityMode None: commands to the PLC are neither signed nor encrypted`, meta);
  }
  if (config.acceptUnknownServerCertificate) {
    log.warn(`${label}: acceptUnknownServerCertificate: any server certificate is trusted`, meta);
  }
  const client = opcua.OPCUAClient.create({
    applicationName: opts.applicationName,
    clientName: opts.clientName,
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
    // Requests can be hours apart: keep-alive reads stop the server from expiring the idle session, and notice a dead
    // link before the next request needs it. node-opcua warns when the interval is not well below the session timeout.
    keepSessionAlive: true,
    keepAliveInterval: Math.floor(config.sessionTimeoutMs / 3),
  });

  /** Why requests fail fast right now; undefined while the session is usable. */
  let downSince: { at: number; reason: string } | undefined = { at: Date.now(), reason: 'not connected yet' };
  let closed = false;
  let session: NodeOpcua.ClientSession | undefined;
  let namespaceIndex = -1;

  const markDown = (reason: string) => {
    if (!downSince) downSince = { at: Date.now(), reason };
  };

  const resolveNamespace = async (s: NodeOpcua.ClientSession): Promise<void> => {
    const namespaces = await s.readNamespaceArray();
    const index = namespaces.indexOf(config.namespaceUri);
    if (index < 0) {
      throw fail('connect', 'not-found', `namespace ${config.namespaceUri} is not in the server's NamespaceArray`);
    }
    namespaceIndex = index;
  };

  client.on('connection_lost', () => {
    markDown('connection lost; node-opcua is reconnecting');
    log.warn(`${label} connection lost`, meta);
  });
  client.on('backoff', (attempt, delay) => {
    // One line per attempt would flood the log during a long PLC outage.
    if (attempt === 1 || attempt % 30 === 0)
      log.warn(`${label} reconnecting`, { ...meta, attempt, nextDelayMs: delay });
  });
  client.on('connection_reestablished', () => {
    // node-opcua has repaired (or recreated) the session by now; a restarted PLC may number namespaces differently.
    const current = session;
    if (!current || closed) return;
    resolveNamespace(current).then(
      () => {
        downSince = undefined;
        log.info(`${label} reconnected`, { ...meta, namespaceIndex });
      },
      (err: unknown) => {
        downSince = { at: Date.now(), reason: `reconnected but ${(err as Error).message}` };
        log.error(`${label} reconnected but cannot resolve its namespace`, { ...meta, error: (err as Error).message });
      },
    );
  });
  client.on('close', (err) => {
    if (closed) return;
    // Only reached with an error when the reconnect loop gave up (reconnect.maxRetry ≥ 1).
    downSince = { at: Date.now(), reason: `connection closed: ${err?.message ?? 'by the server'}; not reconnecting` };
    log.error(`${label} connection closed`, { ...meta, error: err?.message });
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
        // Not a reason to refuse requests: node-opcua recreates a session the server no longer knows on the next
        // request (BadSessionIdInvalid), and a request meanwhile fails with its Bad status. Marking the session down
        // here could leave it down with no event to bring it back.
        s.on('session_closed', (status) => {
          if (!closed) log.warn(`${label} session closed by the server`, { status: status.name });
        });
        await resolveNamespace(s);
      })(),
      config.connectTimeoutMs,
    );
  } catch (err) {
    await shutdown();
    if (err instanceof Error && ours.has(err)) throw err;
    const text = (err as Error).message;
    if (!(err instanceof TimeoutError) && /BadCertificateUntrusted/.test(text)) {
      throw fail(
        'connect',
        'transient',
        `the server's certificate is not trusted (${text}): if this is the PLC, move its certificate from ` +
          `${join(pkiDir, 'rejected')} to ${join(pkiDir, 'trusted', 'certs')}`,
        err,
      );
    }
    const message =
      err instanceof TimeoutError
        ? `no session within ${config.connectTimeoutMs} ms (is the PLC at ${config.endpointUrl} up?)`
        : `cannot open a session: ${text}`;
    throw fail('connect', 'transient', message, err);
  }
  downSince = undefined;
  log.info(`${label} connected`, {
    ...meta,
    securityMode: config.securityMode,
    securityPolicy,
    namespaceIndex,
  });

  const down = () => {
    const since = downSince ?? (closed ? { at: Date.now(), reason: 'closed' } : undefined);
    return since ? { forMs: Date.now() - since.at, reason: since.reason } : undefined;
  };

  return {
    opcua,
    namespaceIndex: () => namespaceIndex,
    usable() {
      const s = session;
      return closed || downSince || !s || s.isReconnecting ? undefined : s;
    },
    down,
    withRequestTimeout: (promise) => withTimeout(promise, config.requestTimeoutMs),

    async healthCheck() {
      const s = session;
      if (closed || downSince || !s) {
        const why = down() ?? { forMs: 0, reason: 'closed' };
        throw fail('unavailable', 'transient', `session down for ${why.forMs} ms (${why.reason})`);
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
      if (!value.statusCode.isGood()) {
        throw fail('health', 'transient', `server state read returned ${value.statusCode.name}`);
      }
      const state = value.value.value as NodeOpcua.ServerState;
      if (state !== opcua.ServerState.Running) {
        throw fail('health', 'transient', `server state is ${opcua.ServerState[state] ?? state}, not Running`);
      }
    },

    async close() {
      if (closed) return;
      await shutdown();
      log.info(`${label} closed`, meta);
    },
  };
}

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** Races `promise` against a timer; the timer never outlives the race (no open handle after close). */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
