/**
 * The one module that builds MQTT.js clients for Holdfast (the frame subscriber and the result publisher), so both
 * get the same reconnect policy, timeouts and connection logging. MQTT.js owns reconnects (`reconnectPeriod`);
 * nothing above it runs a second reconnect loop.
 */
import { redactUrl } from '../../local/redact-url';
import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { ConnectorLogger } from '../define';
import { errorLike } from '../errors';

/** 4 = MQTT 3.1.1 (aedes, the embedded broker, speaks only this), 5 = MQTT 5.0 (Mosquitto 2 speaks both). */
export type MqttProtocolVersion = 4 | 5;

/** The broker login and TLS material; `tls` needs an mqtts:// URL. */
export interface MqttAuth {
  username?: string;
  password?: string;
  /** PEM contents: the CA that signed the broker's certificate, and the client's own certificate and key (mutual TLS). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export interface MqttClientOptions {
  url: string;
  auth?: MqttAuth;
  clientId: string;
  /** Clean Session (3.1.1) / Clean Start (5.0). false resumes the broker's session for `clientId`. */
  clean: boolean;
  protocolVersion?: MqttProtocolVersion;
  /** CONNECT properties (MQTT 5 only). */
  properties?: IClientOptions['properties'];
  /** Seconds; the broker closes the connection after 1.5 × this without a packet (MQTT 3.1.1 §3.1.2.10). */
  keepaliveSeconds?: number;
  /** Delay between reconnect attempts, ms. */
  reconnectPeriodMs?: number;
  /** Role in log lines: "frame subscriber", "result publisher". */
  role: string;
  log: ConnectorLogger;
}

export const DEFAULT_KEEPALIVE_SECONDS = 30;
export const DEFAULT_RECONNECT_PERIOD_MS = 1_000;

/** Connects (in the background; MQTT.js retries every `reconnectPeriodMs`) and logs the connection's life. */
export function createMqttClient(opts: MqttClientOptions): MqttClient {
  const client = connect(opts.url, {
    clientId: opts.clientId,
    username: opts.auth?.username,
    password: opts.auth?.password,
    ...opts.auth?.tls,
    clean: opts.clean,
    protocolVersion: opts.protocolVersion ?? 4,
    properties: opts.protocolVersion === 5 ? opts.properties : undefined,
    keepalive: opts.keepaliveSeconds ?? DEFAULT_KEEPALIVE_SECONDS,
    reconnectPeriod: opts.reconnectPeriodMs ?? DEFAULT_RECONNECT_PERIOD_MS,
    connectTimeout: 10_000,
    // Subscriptions are the owner's to renew on each CONNACK, from one place (see frame-subscriber.ts).
    resubscribe: false,
  });
  const meta = { role: opts.role, clientId: opts.clientId, url: redactUrl(opts.url) };
  let offlineSince: number | undefined;
  client.on('connect', (connack) => {
    const downMs = offlineSince === undefined ? undefined : Date.now() - offlineSince;
    offlineSince = undefined;
    opts.log.info('mqtt connected', { ...meta, sessionPresent: connack.sessionPresent, downMs });
  });
  client.on('reconnect', () => opts.log.info('mqtt reconnecting', meta));
  client.on('offline', () => {
    offlineSince ??= Date.now();
    opts.log.warn('mqtt offline', meta);
  });
  // MQTT.js emits 'error' for refused connections and protocol errors; without a listener Node would throw.
  client.on('error', (err) => opts.log.warn('mqtt error', { ...meta, error: describeMqttError(err) }));
  client.on('disconnect', (packet) =>
    opts.log.warn('mqtt disconnected by the broker', { ...meta, reasonCode: packet.reasonCode }),
  );
  return client;
}

/** Resolves on the first CONNACK; rejects after `timeoutMs` or when the client ends first. */
export function firstConnect(client: MqttClient, timeoutMs: number, what: string): Promise<void> {
  if (client.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let lastError: string | undefined;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no MQTT connection within ${timeoutMs} ms${lastError ? ` (${lastError})` : ''}`));
    }, timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve();
    };
    const onError = (err: Error) => {
      lastError = describeMqttError(err);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`${what}: closed before it connected`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('end', onEnd);
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('end', onEnd);
  });
}

/**
 * Ends the client: DISCONNECT and a clean close (MQTT 3.1.1 §3.14), or with `force` only the socket, as a crash
 * would. A clean end that has not finished after `timeoutMs` (a broker that stopped answering) is forced.
 */
export async function endClient(client: MqttClient, opts: { force: boolean; timeoutMs?: number }): Promise<void> {
  if (opts.force) {
    await client.endAsync(true);
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const graceful = client.endAsync(false).then(() => 'ended' as const);
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), opts.timeoutMs ?? 5_000);
  });
  const outcome = await Promise.race([graceful, late]);
  clearTimeout(timer);
  if (outcome === 'late') await client.endAsync(true);
}

/** A driver error as one readable line: ECONNREFUSED and friends name the broker that refused. */
export function describeMqttError(err: unknown): string {
  // Duck-typed: socket errors come from Node's realm, not jest's (see errorLike).
  const e = errorLike(err);
  if (!e) return String(err);
  const { code } = e;
  if (code === 'ECONNREFUSED') return `broker refused the connection (${e.message}): is it running?`;
  if (code === 'ENOTFOUND') return `broker host not found (${e.message})`;
  if (code === 'ETIMEDOUT') return `broker did not answer (${e.message})`;
  // CONNACK 4/5 (3.1.1), 134/135 (5.0): the broker refused the login; worth naming, as MQTT.js retries it forever.
  if (code === 4 || code === 5 || code === 134 || code === 135) {
    return `broker refused the login (${e.message}): check the MQTT user name and password`;
  }
  return typeof code === 'string' ? `${e.message} (${code})` : e.message;
}
