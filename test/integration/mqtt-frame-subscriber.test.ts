import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import type { ConnectorLogger } from '../../infra/connectors/define';
import {
  openFrameSubscriber,
  type FrameMessage,
  type FrameSubscriber,
} from '../../infra/connectors/mqtt/frame-subscriber';
import { openResultPublisher } from '../../infra/connectors/mqtt/result-publisher';
import { findFreePort, spawnManaged } from '../../infra/local/managed-process';
import {
  spawnEmbeddedMqttBroker,
  startMosquitto,
  type MosquittoBroker,
  type MqttBroker,
} from '../../infra/local/mqtt-broker';
import { encodeFramePayload, frameTopic, resultTopic } from '../../infra/vision/frame.schema';
import { eventually } from '../support/eventually';
import { captureLog, quietLog } from '../support/quiet-log';

// Real brokers only: Mosquitto from Debian (started by startMosquitto) and the embedded aedes broker (in a child
// process: aedes is ESM-only and jest cannot load it in-process). A missing Mosquitto fails with its install hint.

jest.setTimeout(60_000);

const REPO_ROOT = resolve(__dirname, '../..');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

interface TestBroker extends MqttBroker {
  name: string;
  restart?: () => Promise<void>;
}

const dataDirs: string[] = [];

async function startTestMosquitto(): Promise<TestBroker & MosquittoBroker> {
  const dataDir = await mkdtemp(join(tmpdir(), 'holdfast-mosquitto-'));
  dataDirs.push(dataDir);
  const broker = await startMosquitto({ port: await findFreePort(), dataDir, access: 'anonymous' });
  return Object.assign(broker, { name: 'mosquitto' });
}

async function startTestAedes(): Promise<TestBroker> {
  const broker = await spawnEmbeddedMqttBroker({ port: await findFreePort(), access: 'anonymous' });
  return { ...broker, name: 'aedes' };
}

afterAll(async () => {
  await Promise.all(dataDirs.map((d) => rm(d, { recursive: true, force: true })));
});

// ---------------------------------------------------------------------------------------------------------------
// Helpers

const unique = (what: string) => `${what}-${randomBytes(4).toString('hex')}`;

function framePayload(frameId: string): Buffer {
  return encodeFramePayload({
    frameId,
    partId: `P-${frameId}`,
    lotId: 'L-0001',
    workOrder: '1000100',
    sku: 'BRKT-200',
    capturedAt: new Date().toISOString(),
    image: { encoding: 'png', data: Buffer.concat([PNG_SIGNATURE, randomBytes(64)]).toString('base64') },
  });
}

const frameIdOf = (msg: { payload: Buffer }) =>
  (JSON.parse(msg.payload.toString('utf8')) as { frameId: string }).frameId;

/** A camera: publishes at QoS 1 and resolves once the broker has acknowledged (PUBACK). */
async function openCamera(url: string): Promise<MqttClient> {
  return connectAsync(url, { clientId: unique('camera'), clean: true, reconnectPeriod: 200 });
}

interface Recorder {
  frames: FrameMessage[];
  ids: () => string[];
  onFrame: (msg: FrameMessage) => Promise<void>;
}

/** Records every frame; `hold` makes onFrame wait until released (a worker still storing its result). */
function recorder(behaviour: { hold?: boolean; never?: boolean } = {}): Recorder & { release: () => void } {
  const frames: FrameMessage[] = [];
  const waiting: (() => void)[] = [];
  let released = false;
  return {
    frames,
    ids: () => frames.map(frameIdOf),
    onFrame: async (msg) => {
      frames.push(msg);
      if (behaviour.never) return new Promise<void>(() => undefined);
      if (behaviour.hold && !released) await new Promise<void>((r) => waiting.push(r));
    },
    release: () => {
      released = true;
      for (const r of waiting.splice(0)) r();
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------

// aedes 1.2 resends unacknowledged messages without the DUP flag that MQTT 3.1.1 §3.3.1.1 asks for; Mosquitto sets it.
describe.each([
  ['mosquitto', startTestMosquitto, { setsDupOnRedelivery: true }],
  ['aedes', startTestAedes, { setsDupOnRedelivery: false }],
] as const)('frame subscriber against %s', (_name, startBroker, quirks) => {
  let broker: TestBroker;
  let camera: MqttClient;
  const open: FrameSubscriber[] = [];

  beforeAll(async () => {
    broker = await startBroker();
    camera = await openCamera(broker.url);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close({ force: true })));
  });
  afterAll(async () => {
    await camera?.endAsync(true);
    await broker?.stop();
  });

  async function subscribe(
    clientId: string,
    prefix: string,
    onFrame: (msg: FrameMessage) => Promise<void>,
    extra: { maxInFlight?: number; log?: ConnectorLogger; retry?: { initialMs: number; maxMs: number } } = {},
  ): Promise<FrameSubscriber> {
    const sub = await openFrameSubscriber({
      url: broker.url,
      clientId,
      prefix,
      onFrame,
      log: extra.log ?? quietLog(),
      maxInFlight: extra.maxInFlight,
      retry: extra.retry,
      reconnectPeriodMs: 200,
    });
    open.push(sub);
    return sub;
  }

  const publish = (prefix: string, frameId: string, station = 'S1') =>
    camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', station), framePayload(frameId), { qos: 1 });

  test('a frame published at QoS 1 reaches onFrame with its topic, payload and receive time', async () => {
    const prefix = unique('p');
    const rec = recorder();
    const before = process.hrtime.bigint();
    const sub = await subscribe(unique('worker'), prefix, rec.onFrame);
    await publish(prefix, 'frame-1', 'S2');
    await eventually('the frame', () => rec.frames.length === 1);
    const [msg] = rec.frames as [FrameMessage];
    expect(msg.topic).toBe(`${prefix}/PLANT1/L1/S2/frames`);
    expect(frameIdOf(msg)).toBe('frame-1');
    expect(msg.receivedAt).toBeGreaterThan(before);
    expect(msg.redelivered).toBe(false);
    await eventually('its PUBACK', () => sub.stats().acknowledged === 1);
    // Topics outside the prefix or not ending in /frames are not subscribed.
    await camera.publishAsync(`${prefix}/PLANT1/L1/S1/inspection`, 'x', { qos: 1 });
    await camera.publishAsync(`${unique('other')}/PLANT1/L1/S1/frames`, framePayload('f-other'), { qos: 1 });
    await publish(prefix, 'frame-2');
    await eventually('the second frame', () => rec.frames.length === 2);
    await sleep(200);
    expect(rec.ids()).toEqual(['frame-1', 'frame-2']);
  });

  test('subscriber crash before onFrame resolves: the same clientId gets the frame again', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const first = recorder({ never: true });
    const crashed = await subscribe(clientId, prefix, first.onFrame);
    await publish(prefix, 'frame-crash');
    await eventually('the first delivery', () => first.frames.length === 1);
    await sleep(100);
    expect(crashed.stats()).toMatchObject({ acknowledged: 0, inFlight: 1 });
    // A crash: the socket goes away without DISCONNECT and without PUBACK.
    await crashed.close({ force: true });

    const second = recorder();
    const restarted = await subscribe(clientId, prefix, second.onFrame);
    await eventually('the redelivery', () => second.frames.length === 1);
    expect(second.ids()).toEqual(['frame-crash']);
    expect(second.frames[0]!.redelivered).toBe(quirks.setsDupOnRedelivery);
    await eventually('its PUBACK', () => restarted.stats().acknowledged === 1);
  });

  test('a frame acknowledged after onFrame resolved is not delivered again to the same clientId', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const first = recorder();
    const sub = await subscribe(clientId, prefix, first.onFrame);
    await publish(prefix, 'frame-done');
    await eventually('its PUBACK', () => sub.stats().acknowledged === 1);
    await sub.close({ force: true });

    const second = recorder();
    await subscribe(clientId, prefix, second.onFrame);
    await publish(prefix, 'frame-marker');
    await eventually('the marker', () => second.frames.length >= 1);
    await sleep(200);
    expect(second.ids()).toEqual(['frame-marker']);
  });

  test('frames published while no subscriber is connected arrive when it comes back (persistent session)', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const sub = await subscribe(clientId, prefix, recorder().onFrame);
    await sub.close();
    for (let i = 0; i < 5; i++) await publish(prefix, `offline-${i}`);

    const rec = recorder();
    const back = await subscribe(clientId, prefix, rec.onFrame);
    await eventually('the queued frames', () => rec.frames.length === 5);
    expect(rec.ids()).toEqual(['offline-0', 'offline-1', 'offline-2', 'offline-3', 'offline-4']);
    await eventually('their PUBACKs', () => back.stats().acknowledged === 5);
  });

  test('a rejecting onFrame is retried with the ack held, then acknowledged once it succeeds', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const log = captureLog();
    let calls = 0;
    const sub = await subscribe(
      clientId,
      prefix,
      async () => {
        calls += 1;
        if (calls <= 3) throw new Error('PostgreSQL is down');
      },
      { log, retry: { initialMs: 20, maxMs: 50 } },
    );
    await publish(prefix, 'frame-retry');
    await eventually('the fourth attempt', () => calls === 4);
    await eventually('its PUBACK', () => sub.stats().acknowledged === 1);
    expect(sub.stats()).toMatchObject({ retries: 3, started: 1, inFlight: 0 });
    expect(log.lines.filter((l) => l.msg.includes('retrying with the PUBACK held'))).toHaveLength(3);
    expect(JSON.stringify(log.lines)).toContain('PostgreSQL is down');
  });

  test('closing while onFrame keeps failing acknowledges nothing: the next subscriber gets the frame', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    let attempts = 0;
    const sub = await subscribe(
      clientId,
      prefix,
      async () => {
        attempts += 1;
        throw new Error('still down');
      },
      { retry: { initialMs: 10_000, maxMs: 10_000 } },
    );
    await publish(prefix, 'frame-unfinished');
    await eventually('a failed attempt', () => attempts === 1);
    await sub.close(); // graceful: the retry sleeping for 10 s is abandoned, not acknowledged
    expect(sub.stats().acknowledged).toBe(0);

    const rec = recorder();
    await subscribe(clientId, prefix, rec.onFrame);
    await eventually('the redelivery', () => rec.frames.length === 1);
    expect(rec.ids()).toEqual(['frame-unfinished']);
  });

  test('a graceful close lets running frames finish and acknowledges them', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const rec = recorder({ hold: true });
    const sub = await subscribe(clientId, prefix, rec.onFrame);
    await publish(prefix, 'frame-draining');
    await eventually('the frame', () => rec.frames.length === 1);
    const closing = sub.close({ graceMs: 5_000 });
    await sleep(50);
    rec.release();
    await closing;
    expect(sub.stats().acknowledged).toBe(1);

    const next = recorder();
    await subscribe(clientId, prefix, next.onFrame);
    await publish(prefix, 'frame-marker');
    await eventually('the marker', () => next.frames.length >= 1);
    await sleep(200);
    expect(next.ids()).toEqual(['frame-marker']);
  });

  test('at most maxInFlight frames run at once; PUBACKs follow arrival order', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    let running = 0;
    let peak = 0;
    const done: string[] = [];
    const gates = new Map<string, () => void>();
    const sub = await subscribe(
      clientId,
      prefix,
      async (msg) => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise<void>((r) => gates.set(frameIdOf(msg), r));
        running -= 1;
        done.push(frameIdOf(msg));
      },
      { maxInFlight: 3 },
    );
    for (let i = 0; i < 8; i++) await publish(prefix, `w-${i}`);
    await eventually('three running', () => gates.size === 3);
    await sleep(300);
    expect(gates.size).toBe(3);
    expect(sub.stats().inFlight).toBe(3);

    // w-1 finishes before w-0: its PUBACK waits for w-0's (MQTT 3.1.1 §4.6), so it still occupies a slot.
    gates.get('w-1')!();
    await eventually('w-1 done', () => done.includes('w-1'));
    await sleep(200);
    expect(sub.stats()).toMatchObject({ acknowledged: 0, inFlight: 3 });
    expect(gates.size).toBe(3);

    gates.get('w-0')!();
    await eventually('w-0 and w-1 acknowledged', () => sub.stats().acknowledged === 2);
    // Release everything as it arrives.
    await eventually('all eight started', () => {
      for (const [id, openGate] of gates) if (!done.includes(id)) openGate();
      return gates.size === 8;
    });
    for (const openGate of gates.values()) openGate();
    await eventually('all eight acknowledged', () => sub.stats().acknowledged === 8);
    expect(peak).toBe(3);
  });

  test('a window full for longer than the keepalive: the reconnect neither loses nor repeats a frame', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const rec = recorder({ hold: true });
    const log = captureLog();
    // One frame in flight: the second one waits in MQTT.js, and with it the PINGRESP, so MQTT.js times the
    // connection out after 1.5 × keepalive and reconnects; the broker then resends the unacknowledged frames.
    const sub = await openFrameSubscriber({
      url: broker.url,
      clientId,
      prefix,
      onFrame: rec.onFrame,
      log,
      maxInFlight: 1,
      keepaliveSeconds: 1,
      reconnectPeriodMs: 100,
    });
    open.push(sub);
    await publish(prefix, 'full-0');
    await publish(prefix, 'full-1');
    await eventually(
      'a reconnect',
      () => log.lines.filter((l) => l.level === 'info' && l.msg.startsWith('mqtt connected')).length >= 2,
    );
    await eventually('the first frame rejoined after the reconnect', () => sub.stats().rejoined >= 1);
    expect(rec.ids()).toEqual(['full-0']);
    rec.release();
    await eventually('both acknowledged', () => sub.stats().acknowledged === 2);
    expect(rec.ids()).toEqual(['full-0', 'full-1']);
  });

  test('the result publisher delivers results at QoS 1 on the station inspection topic', async () => {
    const prefix = unique('p');
    const listener = await connectAsync(broker.url, { clientId: unique('dashboard'), clean: true });
    const received: { topic: string; body: unknown }[] = [];
    listener.on('message', (topic, payload) => received.push({ topic, body: JSON.parse(payload.toString('utf8')) }));
    await listener.subscribeAsync(`${prefix}/#`, { qos: 1 });
    const publisher = await openResultPublisher({
      url: broker.url,
      clientId: unique('results'),
      prefix,
      log: quietLog(),
    });
    try {
      await publisher.publish('PLANT1', 'L2', 'S1', { frameId: 'f-9', result: 'fail' });
      await eventually('the result', () => received.length === 1);
      expect(received[0]).toEqual({
        topic: resultTopic(prefix, 'PLANT1', 'L2', 'S1'),
        body: { frameId: 'f-9', result: 'fail' },
      });
    } finally {
      await publisher.close();
      await listener.endAsync();
    }
    await expect(publisher.publish('PLANT1', 'L2', 'S1', {})).rejects.toThrow('closed');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Mosquitto only: a restarted broker, a killed worker process

describe('frame subscriber on Mosquitto only: restarts, a killed process, MQTT 5', () => {
  let broker: TestBroker & MosquittoBroker;
  const open: FrameSubscriber[] = [];

  beforeAll(async () => {
    broker = await startTestMosquitto();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((s) => s.close({ force: true })));
  });
  afterAll(async () => {
    await broker?.stop();
  });

  async function subscribe(
    clientId: string,
    prefix: string,
    onFrame: (msg: FrameMessage) => Promise<void>,
    extra: { protocolVersion?: 4 | 5; maxInFlight?: number } = {},
  ) {
    const sub = await openFrameSubscriber({
      url: broker.url,
      clientId,
      prefix,
      onFrame,
      log: quietLog(),
      reconnectPeriodMs: 200,
      ...extra,
    });
    open.push(sub);
    return sub;
  }

  test('frames the broker acknowledged while the subscriber was offline are delivered after restart()', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    await (await subscribe(clientId, prefix, recorder().onFrame)).close();

    const camera = await openCamera(broker.url);
    const sent: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = `queued-${i}`;
      // publishAsync resolves on the broker's PUBACK: from here the broker owns the frame.
      await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L3', 'S1'), framePayload(id), { qos: 1 });
      sent.push(id);
    }
    await camera.endAsync();
    const pidBefore = broker.pid();
    await broker.restart();
    expect(broker.pid()).not.toBe(pidBefore);

    const rec = recorder();
    const sub = await subscribe(clientId, prefix, rec.onFrame);
    await eventually('the queued frames', () => rec.frames.length === 20);
    expect(rec.ids()).toEqual(sent);
    await eventually('their PUBACKs', () => sub.stats().acknowledged === 20);
  });

  test('a broker restart mid-stream loses no frame: the subscriber reconnects and gets the unacknowledged ones', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const handled = new Set<string>();
    let calls = 0;
    const sub = await subscribe(clientId, prefix, async (msg) => {
      calls += 1;
      await sleep(5); // a worker storing its result
      handled.add(frameIdOf(msg));
    });
    const camera = await openCamera(broker.url);
    const sent: string[] = [];
    const publishing = (async () => {
      for (let i = 0; i < 60; i++) {
        const id = `stream-${i}`;
        // Resolves once the broker acknowledged it; across the restart MQTT.js resends it from its outgoing store.
        await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', 'S1'), framePayload(id), { qos: 1 });
        sent.push(id);
        await sleep(10);
      }
    })();
    // Polled often: the restart must come while frames are still being published.
    await eventually('some frames handled', () => handled.size >= 15, { intervalMs: 20 });
    await broker.restart();
    await publishing;
    await eventually('every acknowledged frame handled', () => sent.every((id) => handled.has(id)), {
      timeoutMs: 30_000,
    });
    expect(sent).toHaveLength(60);
    // Redelivery may run onFrame again for a frame handled but not yet acknowledged at the restart (at least once);
    // never more than the frames in flight at that moment.
    expect(calls - handled.size).toBeLessThanOrEqual(64);
    await eventually('all acknowledged', () => sub.stats().inFlight === 0);
    await camera.endAsync(true);
  });

  test('a reconnect while onFrame runs: the redelivered frame joins that attempt instead of running twice', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const rec = recorder({ hold: true });
    const sub = await subscribe(clientId, prefix, rec.onFrame);
    const camera = await openCamera(broker.url);
    await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', 'S2'), framePayload('frame-across'), { qos: 1 });
    await camera.endAsync();
    await eventually('the frame', () => rec.frames.length === 1);
    await broker.restart();
    // The resumed session resends the unacknowledged frame with DUP set (MQTT 3.1.1 §4.4).
    await eventually('the redelivery', () => sub.stats().redelivered === 1, { timeoutMs: 20_000 });
    expect(sub.stats()).toMatchObject({ rejoined: 1, started: 1, acknowledged: 0, inFlight: 1 });
    rec.release();
    await eventually('its PUBACK on the new connection', () => sub.stats().acknowledged === 1);
    expect(rec.frames).toHaveLength(1);
    await sub.close();

    const next = recorder();
    await subscribe(clientId, prefix, next.onFrame);
    const marker = await openCamera(broker.url);
    await marker.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', 'S2'), framePayload('frame-marker'), { qos: 1 });
    await marker.endAsync();
    await eventually('the marker', () => next.frames.length >= 1);
    await sleep(200);
    expect(next.ids()).toEqual(['frame-marker']);
  });

  test('MQTT 5: Receive Maximum bounds the frames in flight, and the session outlives a crash', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    const first = recorder({ never: true });
    const v5 = { protocolVersion: 5 as const, maxInFlight: 2 };
    const crashed = await subscribe(clientId, prefix, first.onFrame, v5);
    const camera = await openCamera(broker.url);
    for (let i = 0; i < 5; i++) {
      await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', 'S1'), framePayload(`v5-${i}`), { qos: 1 });
    }
    await eventually('two frames', () => first.frames.length === 2);
    await sleep(300);
    expect(first.ids()).toEqual(['v5-0', 'v5-1']);
    await crashed.close({ force: true });

    // Without a Session Expiry Interval an MQTT 5 session ends with the connection (v5 §3.1.2.11.2): all five
    // frames coming back shows the subscriber asked for one.
    const rec = recorder();
    const sub = await subscribe(clientId, prefix, rec.onFrame, v5);
    await eventually('all five', () => rec.frames.length === 5);
    expect(rec.ids()).toEqual(['v5-0', 'v5-1', 'v5-2', 'v5-3', 'v5-4']);
    await eventually('their PUBACKs', () => sub.stats().acknowledged === 5);
    await sub.close();

    // The v5 PUBACKs were taken: nothing comes back to the next subscriber.
    const next = recorder();
    await subscribe(clientId, prefix, next.onFrame, v5);
    await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L1', 'S1'), framePayload('v5-marker'), { qos: 1 });
    await eventually('the marker', () => next.frames.length >= 1);
    await sleep(200);
    expect(next.ids()).toEqual(['v5-marker']);
    await camera.endAsync();
  });

  test('a worker process killed (SIGKILL) mid-frame: its frame is redelivered to the restarted worker', async () => {
    const prefix = unique('p');
    const clientId = unique('worker');
    // A real worker process that never finishes its frame.
    const script = `
      const { openFrameSubscriber } = require('./infra/connectors/mqtt/frame-subscriber.ts');
      const { quietLog } = require('./test/support/quiet-log.ts');
      openFrameSubscriber({ url: ${JSON.stringify(broker.url)}, clientId: ${JSON.stringify(clientId)},
        prefix: ${JSON.stringify(prefix)}, log: quietLog(),
        onFrame: (msg) => { console.log('frame ' + msg.payload.length); return new Promise(() => {}); } })
        .then(() => console.log('subscribed'), (err) => { console.error(err); process.exit(1); });`;
    const lines: string[] = [];
    const worker = spawnManaged({
      name: 'worker',
      command: process.execPath,
      args: ['--import', 'tsx', '-e', script],
      cwd: REPO_ROOT,
      onLine: (line) => lines.push(line),
    });
    try {
      await eventually('the worker to subscribe', () => lines.includes('subscribed'), { timeoutMs: 30_000 });
      const camera = await openCamera(broker.url);
      await camera.publishAsync(frameTopic(prefix, 'PLANT1', 'L2', 'S1'), framePayload('frame-killed'), { qos: 1 });
      await camera.endAsync();
      await eventually('the worker to receive it', () => lines.some((l) => l.startsWith('frame ')));
    } finally {
      await worker.stop({ signal: 'SIGKILL' });
    }
    const rec = recorder();
    await subscribe(clientId, prefix, rec.onFrame);
    await eventually('the redelivery', () => rec.frames.length === 1);
    expect(rec.ids()).toEqual(['frame-killed']);
  });
});
