import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqttConnector, { MqttConnectorConfig } from '../../infra/connectors/mqtt/mqtt.connector';
import { topicFilterCovers, visionStreamAccounts } from '../../infra/local/mqtt-broker';
import { quietLog } from '../support/quiet-log';

describe('topicFilterCovers', () => {
  test.each<[string, string, boolean]>([
    ['hf/PLANT1/L1/S1/frames', 'hf/PLANT1/L1/S1/frames', true],
    ['hf/PLANT1/L1/S1/frames', 'hf/PLANT1/L1/S2/frames', false],
    ['hf/+/+/+/frames', 'hf/PLANT1/L1/S1/frames', true],
    ['hf/+/+/+/frames', 'hf/+/+/+/frames', true],
    ['hf/+/+/+/frames', 'hf/#', false],
    ['hf/+/+/+/frames', 'hf/PLANT1/L1/S1/inspection', false],
    ['hf/+/+/+/frames', 'hf/PLANT1/L1/frames', false],
    ['hf/#', 'hf/PLANT1/L1/S1/inspection', true],
    ['hf/PLANT1/L1/S1/frames', 'hf/PLANT1/L1/S1/frames/extra', false],
  ])('%s covers %s: %s', (allowed, filter, expected) => {
    expect(topicFilterCovers(allowed, filter)).toBe(expected);
  });
});

test('visionStreamAccounts: cameras publish their frames only; only the inference worker publishes results', () => {
  const accounts = visionStreamAccounts({
    prefix: 'hf',
    inference: { username: 'inference', password: 'p1' },
    cameras: [{ username: 'cam', password: 'p2', stations: [{ site: 'P', line: 'L1', station: 'S1' }] }],
  });
  expect(accounts).toEqual([
    { username: 'inference', password: 'p1', publish: ['hf/+/+/+/inspection'], subscribe: ['hf/+/+/+/frames'] },
    { username: 'cam', password: 'p2', publish: ['hf/P/L1/S1/frames'], subscribe: [] },
  ]);
});

describe('the mqtt connector reads its login from the environment and refuses a readable TLS key', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-mqtt-unit-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const connect = (block: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
    mqttConnector.connect(MqttConnectorConfig.parse({ url: 'mqtt://127.0.0.1:1', ...block }), {
      name: 'line-mqtt',
      env,
      log: quietLog(),
      dataDir: dir,
    });

  test('a missing MQTT_PASSWORD names the key and the variable', async () => {
    await expect(
      connect({ username: '${env:MQTT_USERNAME}', password: '${env:MQTT_PASSWORD}' }, { MQTT_USERNAME: 'u' }),
    ).rejects.toThrow('connectors.line-mqtt.password: environment variable MQTT_PASSWORD is not set');
  });

  test('a user name without a password is refused', async () => {
    await expect(connect({ username: 'u' })).rejects.toThrow('connectors.line-mqtt.password: set both or neither');
  });

  test('a TLS key file others may read is refused, naming the file and the fix', async () => {
    writeFileSync(join(dir, 'client.key'), 'not really a key', { mode: 0o644 });
    await expect(connect({ url: 'mqtts://127.0.0.1:1', tls: { key: 'client.key' } })).rejects.toThrow(
      /connectors\.line-mqtt\.tls\.key: .*client\.key is readable by others \(mode 644\): chmod 600/,
    );
  });
});
