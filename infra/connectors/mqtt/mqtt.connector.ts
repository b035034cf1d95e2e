/**
 * The vision stream's broker as a connector (kind `mqtt`, role `vision-broker`): one block for the broker, two clients
 * on it. Frames come in on a persistent-session subscriber (frame-subscriber.ts) and results go out on a clean-session
 * publisher (result-publisher.ts).
 *
 * One kind rather than a frame-source kind and a result-publisher kind: both clients must reach the same broker under
 * the same topic tree (a result goes next to the frame it answers), MQTT_URL overrides one URL, and what differs
 * between them (session kept or not, the publisher's `-results` client id) is what each needs to be correct, not a
 * setting. Two kinds would mean two blocks repeating the URL, free to disagree.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { resolveEnvRef } from '../../config/load';
import { ConfigError } from '../../../activities/errors';
import { redactUrl } from '../../local/redact-url';
import { defineConnector } from '../define';
import { ExternalSystemError } from '../../../activities/errors';
import { openFrameSubscriber, type FrameMessage, type FrameSubscriber } from './frame-subscriber';
import { createMqttClient, endClient, firstConnect, type MqttAuth } from './mqtt.client';
import { openResultPublisher, type ResultPublisher } from './result-publisher';

export const MQTT_KIND = 'mqtt';

const BrokerUrl = z.string().regex(/^mqtts?:\/\//, 'expected mqtt://host:port or mqtts://');

export const MqttConnectorConfig = z.strictObject({
  /** Accepted so the block under `connectors:` can be passed as written. */
  kind: z.literal(MQTT_KIND).optional(),
  /** The broker; MQTT_URL overrides it. Absent: `npm start` runs an embedded broker on `embeddedPort` and passes its
   *  URL as MQTT_URL. */
  url: BrokerUrl.optional(),
  /** The broker login: `${env:MQTT_USERNAME}` and `${env:MQTT_PASSWORD}` (npm start generates them for its broker). */
  username: z.string().min(1).optional(),
  password: z.string().min(1).optional(),
  /** TLS (with an mqtts:// URL): PEM files, relative to the data directory. A key file must be readable by its owner
   *  alone (mode 0600 or stricter). */
  tls: z
    .strictObject({
      ca: z.string().min(1).optional(),
      cert: z.string().min(1).optional(),
      key: z.string().min(1).optional(),
    })
    .optional(),
  embeddedPort: z.number().int().min(1).max(65535).default(1883),
  /** Where the embedded broker listens. Beyond loopback without `embeddedTls` it warns at start. */
  embeddedHost: z.string().min(1).default('127.0.0.1'),
  /** TLS on the embedded broker (mqtts:// only): its certificate and key, PEM files relative to the data directory,
   *  the key readable by its owner alone. Clients trust the CA that signed it through `tls.ca`. */
  embeddedTls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  /** The frame subscriber's persistent-session client id: the broker keeps unacknowledged frames for it. The result
   *  publisher connects as `<clientId>-results`. */
  clientId: z.string().min(1).default('holdfast-inference'),
  /** Frames started and not yet acknowledged, at most (MQTT 5: the Receive Maximum sent to the broker). */
  maxInFlight: z.number().int().min(1).max(65_535).default(64),
  /** 4 = MQTT 3.1.1 (aedes, the embedded broker, speaks only this), 5 = MQTT 5.0. */
  protocolVersion: z.union([z.literal(4), z.literal(5)]).default(4),
  /** Longest opening a client waits for its first connection (and the subscriber for its SUBACK). */
  connectTimeoutMs: z.number().int().positive().max(300_000).default(30_000),
});
export type MqttConnectorConfig = z.infer<typeof MqttConnectorConfig>;

/** The broker as the inference worker uses it; each client it opens is closed by the connector's close() too. */
export interface VisionBrokerPort {
  /** The broker's URL without its password, for log lines. */
  readonly url: string;
  /**
   * Subscribes to every station's frames under `prefix` (QoS 1, persistent session, PUBACK after `onFrame`: see
   * frame-subscriber.ts). `clientId` overrides the block's (tests and benchmarks run several workers).
   */
  subscribeFrames(opts: {
    prefix: string;
    onFrame: (msg: FrameMessage) => Promise<void>;
    clientId?: string;
  }): Promise<FrameSubscriber>;
  /**
   * Subscribes to `filter` with the frames' delivery guarantees (QoS 1, persistent session under `clientId`, PUBACK
   * after `onMessage` resolved): for other streams on this broker, such as the MES's production events.
   */
  subscribeTopic(opts: {
    filter: string;
    clientId: string;
    role: string;
    onMessage: (msg: FrameMessage) => Promise<void>;
    /** Messages started and not yet acknowledged, at most; default the block's `maxInFlight`. */
    maxInFlight?: number;
  }): Promise<FrameSubscriber>;
  /** Publishes results on `<prefix>/<site>/<line>/<station>/inspection` as `<clientId>-results`. */
  openResultPublisher(opts: { prefix: string; clientId?: string }): Promise<ResultPublisher>;
}

/** A health probe waits at most this long for the broker's CONNACK. */
const PROBE_TIMEOUT_MS = 5_000;

export default defineConnector({
  kind: MQTT_KIND,
  role: 'vision-broker',
  configSchema: MqttConnectorConfig,
  async connect(config, ctx) {
    const url = ctx.env.MQTT_URL || config.url;
    if (!url) {
      throw new ConfigError(`connectors.${ctx.name}.url: no MQTT broker: set MQTT_URL or the url (npm start runs one)`);
    }
    if (!BrokerUrl.safeParse(url).success) {
      throw new ConfigError(
        `${ctx.env.MQTT_URL ? 'MQTT_URL' : `connectors.${ctx.name}.url`}: expected mqtt:// or mqtts://`,
      );
    }
    const shown = redactUrl(url);
    const auth = brokerAuth(config, ctx);
    /** Each open subscriber with the role it is named by in health checks. */
    const subscribers = new Map<FrameSubscriber, string>();
    const publishers = new Set<ResultPublisher>();
    let closed = false;
    const refuseClosed = () => {
      if (closed) throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name}: connector is closed`);
    };

    const port: VisionBrokerPort = {
      url: shown,
      async subscribeFrames(opts) {
        refuseClosed();
        const subscriber = await openFrameSubscriber({
          url,
          auth,
          clientId: opts.clientId ?? config.clientId,
          prefix: opts.prefix,
          maxInFlight: config.maxInFlight,
          onFrame: opts.onFrame,
          protocolVersion: config.protocolVersion,
          connectTimeoutMs: config.connectTimeoutMs,
          log: ctx.log,
        });
        subscribers.set(subscriber, 'frame subscriber');
        return subscriber;
      },
      async subscribeTopic(opts) {
        refuseClosed();
        const subscriber = await openFrameSubscriber({
          url,
          auth,
          clientId: opts.clientId,
          filter: opts.filter,
          role: opts.role,
          maxInFlight: opts.maxInFlight ?? config.maxInFlight,
          onFrame: opts.onMessage,
          protocolVersion: config.protocolVersion,
          connectTimeoutMs: config.connectTimeoutMs,
          log: ctx.log,
        });
        subscribers.set(subscriber, opts.role);
        return subscriber;
      },
      async openResultPublisher(opts) {
        refuseClosed();
        const publisher = await openResultPublisher({
          url,
          auth,
          clientId: `${opts.clientId ?? config.clientId}-results`,
          prefix: opts.prefix,
          protocolVersion: config.protocolVersion,
          connectTimeoutMs: config.connectTimeoutMs,
          log: ctx.log,
        });
        publishers.add(publisher);
        return publisher;
      },
    };

    return {
      port,
      async healthCheck() {
        refuseClosed();
        const clients = [
          ...[...subscribers].map(([c, role]) => ({ role, c })),
          ...[...publishers].map((c) => ({ role: 'result publisher', c })),
        ];
        if (clients.length > 0) {
          const offline = clients.filter(({ c }) => !c.connected()).map(({ role }) => role);
          if (offline.length > 0) {
            throw new ExternalSystemError(
              ctx.name,
              'transient',
              `${offline.join(' and ')} not connected to ${shown} (MQTT.js is reconnecting)`,
            );
          }
          return `${clients.map(({ role }) => role).join(' and ')} connected to ${shown}`;
        }
        // Nothing open yet (start-up): one clean-session connection shows the broker is there and takes our login.
        const probe = createMqttClient({
          url,
          auth,
          // Unique per probe: two processes may share this block (the inference worker's frames, the worker's MES
          // events), and two probes under one id at once would take over each other's connection.
          clientId: `${config.clientId}-health-${randomBytes(4).toString('hex')}`,
          clean: true,
          protocolVersion: config.protocolVersion,
          role: 'health check',
          log: ctx.log,
        });
        try {
          await firstConnect(probe, Math.min(PROBE_TIMEOUT_MS, config.connectTimeoutMs), `MQTT broker ${shown}`);
        } catch (err) {
          throw new ExternalSystemError(ctx.name, 'transient', (err as Error).message, undefined, { cause: err });
        } finally {
          await endClient(probe, { force: false, timeoutMs: 1_000 });
        }
        return `broker ${shown} accepted a connection`;
      },
      async close() {
        closed = true;
        const all = [...subscribers.keys(), ...publishers];
        subscribers.clear();
        publishers.clear();
        await Promise.allSettled(all.map((c) => c.close()));
      },
    };
  },
});

/** The login from the environment (`${env:…}` refs) and the TLS files, refusing a key others may read. */
function brokerAuth(
  config: MqttConnectorConfig,
  ctx: { name: string; env: NodeJS.ProcessEnv; dataDir: string },
): MqttAuth {
  const key = (k: string) => `connectors.${ctx.name}.${k}`;
  if ((config.username === undefined) !== (config.password === undefined)) {
    throw new ConfigError(`${key(config.username === undefined ? 'username' : 'password')}: set both or neither`);
  }
  return {
    username: config.username === undefined ? undefined : resolveEnvRef(config.username, key('username'), ctx.env),
    password: config.password === undefined ? undefined : resolveEnvRef(config.password, key('password'), ctx.env),
    tls: brokerTls(config, ctx),
  };
}

/** The clients' TLS material from `tls` (the CA to trust, a client certificate and key); undefined without it. */
export function brokerTls(config: MqttConnectorConfig, ctx: { name: string; dataDir: string }): MqttAuth['tls'] {
  const file = (k: 'ca' | 'cert' | 'key', path: string | undefined, secret: boolean): Buffer | undefined =>
    path === undefined ? undefined : readPemFile(`connectors.${ctx.name}.tls.${k}`, path, ctx.dataDir, secret);
  return (
    config.tls && {
      ca: file('ca', config.tls.ca, false),
      cert: file('cert', config.tls.cert, false),
      key: file('key', config.tls.key, true),
    }
  );
}

/** The embedded broker's certificate and key from `embeddedTls` (npm start's broker); undefined without it. */
export function embeddedBrokerTls(
  config: MqttConnectorConfig,
  ctx: { name: string; dataDir: string },
): { cert: Buffer; key: Buffer } | undefined {
  if (!config.embeddedTls) return undefined;
  const key = (k: string) => `connectors.${ctx.name}.embeddedTls.${k}`;
  return {
    cert: readPemFile(key('cert'), config.embeddedTls.cert, ctx.dataDir, false),
    key: readPemFile(key('key'), config.embeddedTls.key, ctx.dataDir, true),
  };
}

/** A PEM file named in configuration (relative to the data directory); a `secret` one others may read is refused. */
function readPemFile(configKey: string, path: string, dataDir: string, secret: boolean): Buffer {
  const full = isAbsolute(path) ? path : join(dataDir, path);
  let mode: number;
  try {
    mode = statSync(full).mode;
  } catch (err) {
    throw new ConfigError(`${configKey}: cannot read ${full}: ${(err as Error).message}`);
  }
  if (secret && (mode & 0o077) !== 0) {
    throw new ConfigError(
      `${configKey}: ${full} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600`,
    );
  }
  return readFileSync(full);
}
