/**
 * Publishes inspection results to `<prefix>/<site>/<line>/<station>/inspection` for other consumers (dashboards,
 * line controllers). The durable record of a result is PostgreSQL, written before this; MQTT is the notification.
 */
import { resultTopic } from '../../vision/frame.schema';
import type { ConnectorLogger } from '../define';
import { createMqttClient, endClient, firstConnect, type MqttAuth, type MqttProtocolVersion } from './mqtt.client';

export interface ResultPublisherOptions {
  url: string;
  /** The broker login (and TLS material) to connect with. */
  auth?: MqttAuth;
  clientId: string;
  prefix: string;
  log: ConnectorLogger;
  protocolVersion?: MqttProtocolVersion;
  /** How long `openResultPublisher` waits for the first connection. Default 30 s. */
  connectTimeoutMs?: number;
}

export interface ResultPublisher {
  /**
   * QoS 1 (§4.3.2 of MQTT 3.1.1): resolves when the broker has acknowledged the message (PUBACK). While the
   * broker is unreachable MQTT.js keeps the message in memory and sends it after reconnecting, so the promise
   * stays pending; callers on a hot path should not await it in series with their work.
   */
  publish(site: string, line: string, station: string, result: object): Promise<void>;
  /** Connected to the broker now (MQTT.js reconnects by itself; false while it does). */
  connected(): boolean;
  close(): Promise<void>;
}

export async function openResultPublisher(opts: ResultPublisherOptions): Promise<ResultPublisher> {
  // Clean session: a publisher has no subscriptions to keep, and its own unacknowledged QoS 1 messages are resent
  // by MQTT.js from its outgoing store after a reconnect.
  const client = createMqttClient({
    url: opts.url,
    auth: opts.auth,
    clientId: opts.clientId,
    clean: true,
    protocolVersion: opts.protocolVersion,
    role: 'result publisher',
    log: opts.log,
  });
  try {
    await firstConnect(client, opts.connectTimeoutMs ?? 30_000, `result publisher ${opts.clientId}`);
  } catch (err) {
    await endClient(client, { force: true });
    throw err;
  }

  let closed: Promise<void> | undefined;
  return {
    async publish(site, line, station, result) {
      if (closed) throw new Error(`result publisher ${opts.clientId} is closed`);
      const topic = resultTopic(opts.prefix, site, line, station);
      await client.publishAsync(topic, JSON.stringify(result), { qos: 1 });
    },
    connected: () => client.connected,
    close() {
      // A clean end waits (bounded) for unacknowledged publishes, so results published just before are delivered.
      closed ??= endClient(client, { force: false });
      return closed;
    },
  };
}
