import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, connectAsync } from 'mqtt';
import { assertPortFree, findFreePort } from '../../infra/local/managed-process';
import {
  MOSQUITTO_NOT_FOUND,
  resolveMosquittoExecutable,
  spawnEmbeddedMqttBroker,
  startEmbeddedMqttBroker,
  startMosquitto,
} from '../../infra/local/mqtt-broker';

// The broker launchers against the real programs: Mosquitto from Debian, aedes in a child process.

jest.setTimeout(60_000);

const dirs: string[] = [];
const tempDir = async (what: string) => {
  const dir = await mkdtemp(join(tmpdir(), `holdfast-${what}-`));
  dirs.push(dir);
  return dir;
};
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const tcpAccepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

/** Resumes `clientId`'s session and resolves with the first message; the listener is there before CONNECT. */
async function firstMessageFor(url: string, clientId: string): Promise<string> {
  const client = connect(url, { clientId, clean: false, reconnectPeriod: 0 });
  try {
    return await new Promise<string>((resolve, reject) => {
      client.on('message', (_topic, payload) => resolve(payload.toString()));
      client.on('error', reject);
      setTimeout(() => reject(new Error(`no message for ${clientId} within 10 s`)), 10_000);
    });
  } finally {
    await client.endAsync();
  }
}

/** A publish and a subscribe through the broker: it speaks MQTT, not just TCP. */
async function roundTrip(url: string): Promise<string> {
  const topic = `check/${randomBytes(4).toString('hex')}`;
  const sub = await connectAsync(url, { clientId: `sub-${randomBytes(3).toString('hex')}`, clean: true });
  const pub = await connectAsync(url, { clientId: `pub-${randomBytes(3).toString('hex')}`, clean: true });
  try {
    const got = new Promise<string>((resolve) => sub.on('message', (_t, payload) => resolve(payload.toString())));
    await sub.subscribeAsync(topic, { qos: 1 });
    await pub.publishAsync(topic, 'hello', { qos: 1 });
    return await got;
  } finally {
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  }
}

describe('resolveMosquittoExecutable', () => {
  test('finds Debian`s Mosquitto (a missing one fails here with the install hint)', () => {
    const found = resolveMosquittoExecutable({ PATH: process.env.PATH });
    expect(statSync(found).isFile()).toBe(true);
  });

  test('MOSQUITTO_BIN first, then PATH', async () => {
    const dir = await tempDir('fake-bin');
    const fake = join(dir, 'mosquitto');
    await writeFile(fake, '#!/bin/sh\nexit 0\n');
    await chmod(fake, 0o755);
    expect(resolveMosquittoExecutable({ MOSQUITTO_BIN: fake, PATH: '/usr/sbin' })).toBe(fake);
    expect(resolveMosquittoExecutable({ PATH: `${dir}:/usr/sbin` })).toBe(fake);
  });

  test('a MOSQUITTO_BIN that is not an executable fails with the install hint', () => {
    expect(() => resolveMosquittoExecutable({ MOSQUITTO_BIN: '/nonexistent/mosquitto' })).toThrow(
      `MOSQUITTO_BIN=/nonexistent/mosquitto is not an executable file. ${MOSQUITTO_NOT_FOUND}`,
    );
    expect(MOSQUITTO_NOT_FOUND).toBe('Mosquitto not found: apt-get install mosquitto (Debian)');
  });
});

describe('startMosquitto', () => {
  test('runs on 127.0.0.1 with its config and persistence in the data dir, and stops', async () => {
    const dataDir = await tempDir('mosquitto');
    const port = await findFreePort();
    const broker = await startMosquitto({ port, dataDir, access: 'anonymous' });
    try {
      expect(broker.url).toBe(`mqtt://127.0.0.1:${port}`);
      // Readiness was a TCP connect, so it accepts connections the moment the promise resolves.
      expect(await tcpAccepts(port)).toBe(true);
      expect(await roundTrip(broker.url)).toBe('hello');
      const conf = await readFile(join(dataDir, 'mosquitto.conf'), 'utf8');
      expect(conf).toContain(`listener ${port} 127.0.0.1`);
      expect(conf).toContain('allow_anonymous true');
      expect(conf).toContain('persistence true');
      expect(conf).toContain(`persistence_location ${dataDir}/`);
      expect(conf).toMatch(/^autosave_interval \d+$/m);
      if (process.getuid?.() === 0) {
        // As root it runs as the mosquitto OS user, which owns the data dir.
        expect(statSync(dataDir).uid).not.toBe(0);
      }
    } finally {
      await broker.stop();
    }
    // A graceful stop writes the persistence file, and frees the port.
    expect(existsSync(join(dataDir, 'mosquitto.db'))).toBe(true);
    await expect(assertPortFree(port)).resolves.toBeUndefined();
  });

  test('restart() keeps the port and the data; a queued QoS 1 message survives it', async () => {
    const dataDir = await tempDir('mosquitto');
    const port = await findFreePort();
    const broker = await startMosquitto({ port, dataDir, access: 'anonymous' });
    try {
      const clientId = `offline-${randomBytes(3).toString('hex')}`;
      const subscriber = await connectAsync(broker.url, { clientId, clean: false });
      await subscriber.subscribeAsync('queued/topic', { qos: 1 });
      await subscriber.endAsync();
      const pub = await connectAsync(broker.url, { clientId: 'pub-restart', clean: true });
      await pub.publishAsync('queued/topic', 'kept', { qos: 1 });
      await pub.endAsync();

      const before = broker.pid();
      await broker.restart();
      expect(broker.pid()).not.toBe(before);

      expect(await firstMessageFor(broker.url, clientId)).toBe('kept');
    } finally {
      await broker.stop();
    }
  });

  test('a port already in use is refused, naming it', async () => {
    const dataDir = await tempDir('mosquitto');
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      await expect(startMosquitto({ port, dataDir, access: 'anonymous' })).rejects.toThrow(
        `Mosquitto port 127.0.0.1:${port} is already in use`,
      );
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });

  test('a Mosquitto that cannot start fails with its own output, not a timeout', async () => {
    const dataDir = await tempDir('mosquitto');
    const fake = join(dataDir, 'broken-mosquitto');
    await writeFile(fake, '#!/bin/sh\necho "Error: unable to open config" >&2\nexit 3\n');
    await chmod(fake, 0o755);
    await expect(
      startMosquitto({ port: await findFreePort(), dataDir, executable: fake, access: 'anonymous' }),
    ).rejects.toThrow(/Mosquitto exited with code 3:[\s\S]*unable to open config/);
  });
});

describe('embedded broker (aedes)', () => {
  test('serves MQTT on the given port and frees it on stop', async () => {
    const port = await findFreePort();
    const broker = await spawnEmbeddedMqttBroker({ port, access: 'anonymous' });
    try {
      expect(broker.url).toBe(`mqtt://127.0.0.1:${port}`);
      expect(await roundTrip(broker.url)).toBe('hello');
    } finally {
      await broker.stop();
    }
    await expect(assertPortFree(port)).resolves.toBeUndefined();
  });

  test('startEmbeddedMqttBroker works where ESM cannot load in-process (jest): port 0 picks a free port', async () => {
    const broker = await startEmbeddedMqttBroker({ port: 0, access: 'anonymous' });
    const port = Number(new URL(broker.url).port);
    try {
      expect(port).toBeGreaterThan(0);
      expect(await roundTrip(broker.url)).toBe('hello');
    } finally {
      await broker.stop();
    }
    await expect(assertPortFree(port)).resolves.toBeUndefined();
  });

  test('keeps a persistent session and its queued QoS 1 messages while it runs', async () => {
    const broker = await spawnEmbeddedMqttBroker({ port: await findFreePort(), access: 'anonymous' });
    try {
      const clientId = `offline-${randomBytes(3).toString('hex')}`;
      const subscriber = await connectAsync(broker.url, { clientId, clean: false });
      await subscriber.subscribeAsync('queued/topic', { qos: 1 });
      await subscriber.endAsync();
      const pub = await connectAsync(broker.url, { clientId: 'pub-aedes', clean: true });
      await pub.publishAsync('queued/topic', 'kept', { qos: 1 });
      await pub.endAsync();
      expect(await firstMessageFor(broker.url, clientId)).toBe('kept');
    } finally {
      await broker.stop();
    }
  });
});
