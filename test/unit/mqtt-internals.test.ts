import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MqttClient } from 'mqtt';

/**
 * infra/connectors/mqtt/frame-subscriber.ts acknowledges a frame only once its result is committed, through MQTT.js's
 * internal packet writer (`_sendPacket(packet, cb, cbStorePut, noStore)`), as MQTT.js's own handlers do. An internal
 * can change in any release, so the package is pinned exactly, and this test fails on an upgrade whose writer no
 * longer has that shape; the subscriber's integration tests then show whether acknowledgements still behave.
 */
const root = join(__dirname, '../..');
const read = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;

test('mqtt is pinned to one exact version, the one installed', () => {
  const pinned = (read(join(root, 'package.json')).dependencies as Record<string, string>).mqtt;

  expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
  expect(read(require.resolve('mqtt/package.json')).version).toBe(pinned);
});

test("MQTT.js's internal packet writer still takes (packet, cb, cbStorePut, noStore)", () => {
  const writer = (MqttClient.prototype as unknown as Record<string, unknown>)._sendPacket;

  expect(typeof writer).toBe('function');
  expect((writer as (...args: unknown[]) => void).length).toBe(4);
  // noStore keeps a PUBACK out of the outgoing store, so it is never resent on another connection.
  expect(String(writer)).toMatch(/noStore/);
});
