/**
 * Who may use the broker, on both brokers Holdfast runs: Mosquitto (password and ACL files) and the embedded aedes
 * broker (its authenticate/authorize hooks). The accounts are the vision stream's (visionStreamAccounts), as npm start
 * gives them: a camera publishes its own station's frames only, the inference worker reads frames and alone writes
 * results.
 */
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { openFrameSubscriber } from '../../infra/connectors/mqtt/frame-subscriber';
import mqttConnector, { embeddedBrokerTls, MqttConnectorConfig } from '../../infra/connectors/mqtt/mqtt.connector';
import { openResultPublisher } from '../../infra/connectors/mqtt/result-publisher';
import { findFreePort } from '../../infra/local/managed-process';
import {
  spawnEmbeddedMqttBroker,
  startMosquitto,
  visionStreamAccounts,
  type MqttAccount,
  type MqttBroker,
} from '../../infra/local/mqtt-broker';
import { frameTopic, resultTopic } from '../../infra/vision/frame.schema';
import { eventually } from '../support/eventually';
import { quietLog } from '../support/quiet-log';

const prefix = `acl${randomUUID().slice(0, 6)}`;
const S1 = { site: 'PLANT1', line: 'L1', station: 'S1' };
const S2 = { site: 'PLANT1', line: 'L1', station: 'S2' };
const login = (username: string) => ({ username, password: randomUUID() });
const inference = login('inference');
const cameraS1 = login('camera-l1-s1');
const observer = login('observer');
const accounts: MqttAccount[] = [
  ...visionStreamAccounts({ prefix, inference, cameras: [{ ...cameraS1, stations: [S1] }] }),
  // Reads everything under the prefix, writes nothing: what the tests watch the broker with.
  { ...observer, publish: [], subscribe: [`${prefix}/#`] },
];

let workDir: string;
beforeAll(() => {
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-mqtt-access-'));
  // As root, Mosquitto drops to its own OS user, which must be able to pass through to its data directory.
  chmodSync(workDir, 0o711);
});
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Connects and resolves on CONNACK; rejects with the broker's refusal (MQTT.js would otherwise retry forever). */
function connect(url: string, opts: { username?: string; password?: string }): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { clientId: `t-${randomUUID().slice(0, 8)}`, reconnectPeriod: 0, ...opts });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

describe.each<[string, () => Promise<MqttBroker>]>([
  [
    'mosquitto',
    async () =>
      startMosquitto({ port: await findFreePort(), dataDir: join(workDir, 'mosquitto'), access: { accounts } }),
  ],
  ['aedes (embedded)', async () => spawnEmbeddedMqttBroker({ port: await findFreePort(), access: { accounts } })],
])('%s with the vision stream accounts', (_name, startBroker) => {
  let broker: MqttBroker;
  let watcher: MqttClient;
  const seen: { topic: string; payload: string }[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    broker = await startBroker();
    watcher = await connect(broker.url, observer);
    watcher.on('message', (topic, payload) => seen.push({ topic, payload: String(payload) }));
    await watcher.subscribeAsync(`${prefix}/#`, { qos: 1 });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...clients, watcher].map((c) => c?.endAsync(true)));
    await broker?.stop();
  });

  /** Publishes `marker` as a fresh camera S1 client and waits until the watcher has it: everything earlier is in. */
  async function flush(marker: string): Promise<void> {
    const camera = await connect(broker.url, cameraS1);
    clients.push(camera);
    await camera.publishAsync(frameTopic(prefix, S1.site, S1.line, S1.station), marker, { qos: 1 });
    await eventually(`marker ${marker} seen`, () => seen.some((m) => m.payload === marker));
  }

  test('a client without credentials, or with a wrong password, is refused at CONNECT', async () => {
    await expect(connect(broker.url, {})).rejects.toThrow(/Not authorized|Bad username or password|closed/i);
    await expect(connect(broker.url, { username: cameraS1.username, password: 'wrong' })).rejects.toThrow(
      /Not authorized|Bad username or password|closed/i,
    );
  });

  test("a camera publishes its own station's frames, never another station's frames or results", async () => {
    const camera = await connect(broker.url, cameraS1);
    clients.push(camera);
    const own = `own-${randomUUID()}`;
    const foreign = `foreign-${randomUUID()}`;
    const forged = `forged-${randomUUID()}`;
    await camera.publishAsync(frameTopic(prefix, S1.site, S1.line, S1.station), own, { qos: 1 });
    await eventually('own frame seen', () => seen.some((m) => m.payload === own));
    // Mosquitto drops a denied publish silently; aedes disconnects the client: either way the message goes nowhere.
    camera.publish(frameTopic(prefix, S2.site, S2.line, S2.station), foreign, { qos: 0 });
    camera.publish(resultTopic(prefix, S1.site, S1.line, S1.station), forged, { qos: 0 });
    await flush(`after-${randomUUID()}`);
    expect(seen.map((m) => m.payload)).not.toContain(foreign);
    expect(seen.map((m) => m.payload)).not.toContain(forged);
  });

  test('a camera cannot read frames (aedes refuses the subscription; Mosquitto grants it and delivers nothing)', async () => {
    const camera = await connect(broker.url, cameraS1);
    clients.push(camera);
    const got: string[] = [];
    camera.on('message', (_topic, payload) => got.push(String(payload)));
    await camera.subscribeAsync(`${prefix}/+/+/+/frames`, { qos: 1 }).catch((err: Error) => {
      expect(err.message).toMatch(/Subscribe error/);
    });
    await flush(`read-${randomUUID()}`);
    await flush(`read-${randomUUID()}`);
    expect(got).toEqual([]);
  });

  test('the inference worker receives the frames and publishes results with its own login', async () => {
    const frames: string[] = [];
    const subscriber = await openFrameSubscriber({
      url: broker.url,
      auth: inference,
      clientId: `inference-${randomUUID().slice(0, 8)}`,
      prefix,
      onFrame: async (msg) => {
        frames.push(String(msg.payload));
      },
      log: quietLog(),
      connectTimeoutMs: 15_000,
    });
    const publisher = await openResultPublisher({
      url: broker.url,
      auth: inference,
      clientId: `inference-results-${randomUUID().slice(0, 8)}`,
      prefix,
      log: quietLog(),
      connectTimeoutMs: 15_000,
    });
    try {
      const frame = `frame-${randomUUID()}`;
      const camera = await connect(broker.url, cameraS1);
      clients.push(camera);
      await camera.publishAsync(frameTopic(prefix, S1.site, S1.line, S1.station), frame, { qos: 1 });
      await eventually('the worker has the frame', () => frames.includes(frame));

      await publisher.publish(S1.site, S1.line, S1.station, { frameId: frame, verdict: 'pass' });
      await eventually('the result reached the watcher', () =>
        seen.some((m) => m.topic === resultTopic(prefix, S1.site, S1.line, S1.station) && m.payload.includes(frame)),
      );
    } finally {
      await subscriber.close();
      await publisher.close();
    }
  });
});

/** A throwaway CA and a server certificate for 127.0.0.1 signed by it (openssl, as an administrator would). */
function makeTestPki(dir: string): { ca: Buffer; cert: Buffer; key: Buffer } {
  mkdirSync(dir, { recursive: true });
  // node-opcua-pki sets OPENSSL_CONF for the whole process (to "undefined" when it has no file), and OPC UA tests run in
  // this process before this one: openssl must not read it.
  const { OPENSSL_CONF: _fromOpcua, ...env } = process.env;
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', env });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=holdfast-test-ca',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'san.ext',
  );
  return {
    ca: readFileSync(join(dir, 'ca.pem')),
    cert: readFileSync(join(dir, 'server.pem')),
    key: readFileSync(join(dir, 'server.key')),
  };
}

/** The connector's health check as the inference login, with `block` over a plain URL-and-login block. */
async function probeConnector(url: string, dataDir: string, block: Record<string, unknown>): Promise<string | void> {
  const connector = await mqttConnector.connect(
    MqttConnectorConfig.parse({
      url,
      username: '${env:MQTT_USERNAME}',
      password: '${env:MQTT_PASSWORD}',
      connectTimeoutMs: 4_000,
      ...block,
    }),
    {
      name: 'line-mqtt',
      env: { MQTT_USERNAME: inference.username, MQTT_PASSWORD: inference.password },
      log: quietLog(),
      dataDir,
    },
  );
  try {
    return await connector.healthCheck();
  } finally {
    await connector.close();
  }
}

describe('the embedded broker (aedes) with TLS (embeddedTls, as npm start configures it)', () => {
  let broker: MqttBroker;
  const warnings: string[] = [];
  const dataDir = () => join(workDir, 'aedes-tls-data');

  beforeAll(async () => {
    const pki = makeTestPki(join(workDir, 'aedes-tls-pki'));
    mkdirSync(join(dataDir(), 'mqtt'), { recursive: true });
    writeFileSync(join(dataDir(), 'mqtt', 'ca.pem'), pki.ca);
    writeFileSync(join(dataDir(), 'mqtt', 'broker.pem'), pki.cert);
    writeFileSync(join(dataDir(), 'mqtt', 'broker.key'), pki.key, { mode: 0o600 });
    const tls = embeddedBrokerTls(
      MqttConnectorConfig.parse({ embeddedTls: { cert: 'mqtt/broker.pem', key: 'mqtt/broker.key' } }),
      { name: 'line-mqtt', dataDir: dataDir() },
    );
    // Every interface: with TLS that is no reason to warn.
    broker = await spawnEmbeddedMqttBroker({
      host: '0.0.0.0',
      port: await findFreePort(),
      access: { accounts },
      tls,
      warn: (m) => warnings.push(m),
    });
  }, 60_000);
  afterAll(() => broker?.stop());

  test('the inference login connects over mqtts:// when the connector trusts the CA', async () => {
    expect(broker.url).toMatch(/^mqtts:\/\/127\.0\.0\.1:/);
    await expect(probeConnector(broker.url, dataDir(), { tls: { ca: 'mqtt/ca.pem' } })).resolves.toMatch(
      /accepted a connection/,
    );
    expect(warnings).toEqual([]);
  });

  test('a plain connection to the TLS port is refused, and so is a client that does not trust the CA', async () => {
    const plainUrl = broker.url.replace(/^mqtts:/, 'mqtt:');
    await expect(connect(plainUrl, inference)).rejects.toThrow();
    await expect(probeConnector(broker.url, dataDir(), {})).rejects.toThrow(
      /self-signed certificate|unable to verify|certificate/i,
    );
  });

  test('a key file others may read is refused, naming the setting', () => {
    copyFileSync(join(dataDir(), 'mqtt', 'broker.key'), join(dataDir(), 'mqtt', 'open.key'));
    chmodSync(join(dataDir(), 'mqtt', 'open.key'), 0o644);
    expect(() =>
      embeddedBrokerTls(MqttConnectorConfig.parse({ embeddedTls: { cert: 'mqtt/broker.pem', key: 'mqtt/open.key' } }), {
        name: 'line-mqtt',
        dataDir: dataDir(),
      }),
    ).toThrow(/connectors\.line-mqtt\.embeddedTls\.key: .* is readable by others \(mode 644\)/);
  });

  test('without TLS beyond loopback it warns at start; on loopback it does not', async () => {
    const open: string[] = [];
    const wide = await spawnEmbeddedMqttBroker({
      host: '0.0.0.0',
      port: await findFreePort(),
      access: { accounts },
      warn: (m) => open.push(m),
    });
    await wide.stop();
    expect(open).toEqual([expect.stringMatching(/listens on 0\.0\.0\.0 without TLS/)]);
    const local: string[] = [];
    const loopback = await spawnEmbeddedMqttBroker({
      port: await findFreePort(),
      access: { accounts },
      warn: (m) => local.push(m),
    });
    await loopback.stop();
    expect(local).toEqual([]);
  });
});

describe('Mosquitto with TLS (tls: { ca } on the connector, a CA made for the test)', () => {
  let broker: MqttBroker;
  const dataDir = () => join(workDir, 'tls-client');

  beforeAll(async () => {
    const pki = makeTestPki(join(workDir, 'tls-pki'));
    mkdirSync(dataDir(), { recursive: true });
    writeFileSync(join(dataDir(), 'broker-ca.pem'), pki.ca);
    broker = await startMosquitto({
      port: await findFreePort(),
      dataDir: join(workDir, 'mosquitto-tls'),
      access: { accounts },
      tls: pki,
    });
  }, 60_000);
  afterAll(() => broker?.stop());

  const probe = (block: Record<string, unknown>) => probeConnector(broker.url, dataDir(), block);

  test('the inference login connects over mqtts:// when the connector trusts the CA', async () => {
    expect(broker.url).toMatch(/^mqtts:\/\//);
    await expect(probe({ tls: { ca: 'broker-ca.pem' } })).resolves.toMatch(/accepted a connection/);
  });

  test('without the CA the broker certificate is refused', async () => {
    await expect(probe({})).rejects.toThrow(/self-signed certificate|unable to verify|certificate/i);
  });
});
