import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { connectAsync, type MqttClient } from 'mqtt';
import sharp from 'sharp';
import type { Pool } from 'pg';
import { findFreePort, spawnManaged } from '../../infra/local/managed-process';
import { spawnEmbeddedMqttBroker, type MqttBroker } from '../../infra/local/mqtt-broker';
import {
  cameraStationsFor,
  planFrame,
  renderCameraFrames,
  type CameraStation,
} from '../../infra/simulators/camera/camera.plan';
import { buildCameraAdminApp, startCameraSimulator } from '../../infra/simulators/camera/camera.simulator';
import type { FrameTruth } from '../../infra/simulators/camera/camera.store';
import { parseLogLine } from '../../infra/observability/log-line';
import { DEMO_LOTS } from '../../infra/simulators/demo-plant';
import { DEFECT_CLASSES } from '../../infra/vision/contracts';
import { parseFrame, parseFrameTopic, type FramePayload } from '../../infra/vision/frame.schema';
import { isHeldOutSeed } from '../../infra/vision/synthetic/seeds';
import { eventually } from '../support/eventually';
import { quietLog } from '../support/quiet-log';
import { sampleValue, scrape } from '../support/prometheus';
import { readTestEnv, testPool } from '../support/test-env';

// The camera simulator against the embedded broker (aedes, the `npm start` default) and the run's PostgreSQL.

jest.setTimeout(90_000);

const REPO_ROOT = resolve(__dirname, '../..');
const unique = (what: string) => `${what}_${randomBytes(4).toString('hex')}`;

const PLANT = [
  {
    id: 'PLANT1',
    lines: [
      { id: 'L1', stations: [{ id: 'S1' }, { id: 'S2' }] },
      { id: 'L2', stations: [{ id: 'S1' }] },
      { id: 'L9', stations: [{ id: 'S1' }] },
    ],
  },
];

let pool: Pool;
let broker: MqttBroker;
let listener: MqttClient;
const received = new Map<string, { topic: string; frame: FramePayload; image: Buffer }>();
const refused: string[] = [];
const schemas: string[] = [];

beforeAll(async () => {
  pool = testPool();
  broker = await spawnEmbeddedMqttBroker({ port: await findFreePort(), access: 'anonymous' });
  listener = await connectAsync(broker.url, { clientId: unique('checker'), clean: true });
  listener.on('message', (topic, payload) => {
    const parsed = parseFrame(payload);
    if (!parsed.ok) refused.push(`${topic}: ${parsed.reason}`);
    else received.set(parsed.frame.frameId, { topic, frame: parsed.frame, image: parsed.imageBytes! });
  });
});

afterEach(() => {
  // Every frame the camera published parses as a frame.
  expect(refused).toEqual([]);
});

afterAll(async () => {
  await listener?.endAsync(true);
  await broker?.stop();
  for (const schema of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

async function listenOn(prefix: string): Promise<void> {
  await listener.subscribeAsync(`${prefix}/#`, { qos: 1 });
}

/** What a frame is apart from the moment it was captured. */
const withoutCaptureTime = ({ capturedAt: _t, ...rest }: FramePayload) => rest;

function stations(): CameraStation[] {
  return cameraStationsFor(PLANT).stations;
}

test('stations come from the topology; a line without a demo work order is skipped', () => {
  const { stations: found, skipped } = cameraStationsFor(PLANT);
  expect(found.map((s) => `${s.site}/${s.line}/${s.station}:${s.workOrder.workOrder}`)).toEqual([
    'PLANT1/L1/S1:1000100',
    'PLANT1/L1/S2:1000100',
    'PLANT1/L2/S1:1000101',
  ]);
  expect(found[0]!.lots.map((l) => l.lotId)).toEqual(['L-0001', 'L-0002', 'L-0003', 'L-0004']);
  expect(skipped).toEqual([{ site: 'PLANT1', line: 'L9', station: 'S1' }]);
});

test('a line runs one lot for framesPerLot parts, then the next; stations of a line see the same part', () => {
  const [s1, s2] = stations() as [CameraStation, CameraStation];
  const opts = { seed: 7, defectRate: 0.1, framesPerLot: 2 };
  const lots = Array.from({ length: 10 }, (_, n) => planFrame(s1, n, opts));
  expect(lots.map((p) => p.lotId)).toEqual([
    'L-0001',
    'L-0001',
    'L-0002',
    'L-0002',
    'L-0003',
    'L-0003',
    'L-0004',
    'L-0004',
    'L-0001',
    'L-0001',
  ]);
  // Part ids stay unique when the lots come round again.
  expect(new Set(lots.map((p) => p.partId)).size).toBe(10);
  expect(lots[8]!.partId).toBe('L-0001-0001-r1');
  expect(planFrame(s2, 3, opts).partId).toBe(planFrame(s1, 3, opts).partId);
  for (const p of lots) {
    const lot = DEMO_LOTS.find((l) => l.lotId === p.lotId)!;
    expect([p.workOrder, p.sku]).toEqual([lot.workOrder, lot.sku]);
    expect(isHeldOutSeed(p.imageSeed)).toBe(true);
  }
});

test('the defect rate is honoured and every defect class occurs', () => {
  const [s1] = stations() as [CameraStation];
  const count = (defectRate: number) => {
    const plans = Array.from({ length: 4000 }, (_, n) => planFrame(s1, n, { seed: 3, defectRate }));
    return { defects: plans.filter((p) => p.class !== 'good'), total: plans.length };
  };
  const tenth = count(0.1);
  expect(tenth.defects.length / tenth.total).toBeGreaterThan(0.085);
  expect(tenth.defects.length / tenth.total).toBeLessThan(0.115);
  expect(new Set(tenth.defects.map((p) => p.class))).toEqual(new Set(DEFECT_CLASSES));
  expect(count(0).defects).toHaveLength(0);
  expect(count(1).defects).toHaveLength(4000);
  expect(() => planFrame(s1, 0, { seed: 3, defectRate: 1.5 })).toThrow('defect rate');
});

test('publishes N frames at QoS 1 with N truth rows, readable over HTTP', async () => {
  const prefix = unique('cam');
  const schema = unique('camera_sim_t');
  schemas.push(schema);
  await listenOn(prefix);
  const sim = await startCameraSimulator({
    pool,
    mqttUrl: broker.url,
    stations: stations(),
    ratePerStation: 20,
    defectRate: 0.5,
    seed: 11,
    schema,
    prefix,
    framesPerStation: 4,
    log: quietLog(),
  });
  const app = buildCameraAdminApp(sim.store);
  try {
    await sim.finished;
    expect(sim.published()).toBe(12);
    const ours = () => [...received.values()].filter((r) => r.topic.startsWith(`${prefix}/`));
    await eventually(
      '12 frames at the listener',
      () => ours().length,
      (n) => n === 12,
    );
    const frames = ours();

    const counts = await app.inject({ method: 'GET', url: '/counts' });
    expect(counts.json<{ published: number; unpublished: number }>()).toMatchObject({ published: 12, unpublished: 0 });

    for (const { topic, frame, image } of frames) {
      const station = parseFrameTopic(prefix, topic)!;
      expect(station).toBeDefined();
      const res = await app.inject({ method: 'GET', url: `/truth/${encodeURIComponent(frame.frameId)}` });
      expect(res.statusCode).toBe(200);
      const truth = res.json<FrameTruth>();
      expect(truth).toMatchObject({
        frameId: frame.frameId,
        ...station,
        partId: frame.partId,
        lotId: frame.lotId,
        workOrder: frame.workOrder,
        sku: frame.sku,
        capturedAt: new Date(frame.capturedAt).toISOString(),
      });
      expect(truth.publishedAt).toBeDefined();
      // A defect has a box inside the 256×256 frame; a good part has none.
      if (truth.class === 'good') expect(truth.box).toBeUndefined();
      else expect(truth.box!.x + truth.box!.width).toBeLessThanOrEqual(256);
      expect(image.subarray(1, 4).toString('latin1')).toBe('PNG');
      // The frame carries no hint of its truth.
      expect(Object.keys(frame).sort()).toEqual(
        ['capturedAt', 'frameId', 'image', 'lotId', 'partId', 'sku', 'workOrder'].sort(),
      );
    }

    // Paging by publish time, five at a time, with the `next` cursor: every frame once.
    type Page = { items: FrameTruth[]; next?: { since: string; after: string } };
    const paged: FrameTruth[] = [];
    let url = '/truth?limit=5';
    for (let pages = 0; pages < 10; pages++) {
      const page = (await app.inject({ method: 'GET', url })).json<Page>();
      paged.push(...page.items);
      if (!page.next) break;
      url = `/truth?limit=5&since=${encodeURIComponent(page.next.since)}&after=${encodeURIComponent(page.next.after)}`;
    }
    expect(paged.map((t) => t.frameId).sort()).toEqual(frames.map((f) => f.frame.frameId).sort());
    const since = (
      await app.inject({ method: 'GET', url: `/truth?since=${encodeURIComponent(paged[5]!.publishedAt!)}` })
    )
      .json<Page>()
      .items.map((t) => t.frameId);
    expect(since).toEqual(paged.filter((t) => t.publishedAt! > paged[5]!.publishedAt!).map((t) => t.frameId));
    expect((await app.inject({ method: 'GET', url: '/truth/no-such-frame' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/truth?since=yesterday' })).statusCode).toBe(400);
  } finally {
    await sim.stop();
    await app.close();
  }
});

test('the same seed gives the same frames; a restart continues after the last frame', async () => {
  const prefix = unique('cam');
  await listenOn(prefix);
  const runOnce = async (schema: string, seed: number) => {
    const sim = await startCameraSimulator({
      pool,
      mqttUrl: broker.url,
      stations: stations().slice(0, 2),
      ratePerStation: 50,
      defectRate: 0.5,
      seed,
      schema,
      prefix,
      framesPerStation: 3,
      log: quietLog(),
    });
    await sim.finished;
    await sim.stop();
    const { rows } = await pool.query<{ frame_id: string; class: string; box: unknown; image_seed: string }>(
      `SELECT frame_id, class, box, image_seed FROM "${schema}".frame_truth ORDER BY site, line, station, sequence`,
    );
    return rows;
  };
  const [a, b] = [unique('camera_sim_a'), unique('camera_sim_b')];
  schemas.push(a, b);
  const first = await runOnce(a, 42);
  const second = await runOnce(b, 42);
  expect(second).toEqual(first);
  expect(first).toHaveLength(6);
  await eventually('both runs at the listener', () => first.every((r) => received.has(r.frame_id)));
  // Identical frames from the pre-render helper the benchmark uses: ids, parts, pixels and truth.
  const asPublished = { stations: stations().slice(0, 2), seed: 42, defectRate: 0.5, prefix };
  const prerendered = await renderCameraFrames({ ...asPublished, count: 6 });
  for (const frame of prerendered) {
    const published = received.get(frame.frame.frameId)!;
    expect(withoutCaptureTime(published.frame)).toEqual(withoutCaptureTime(frame.frame));
    expect(published.topic).toBe(frame.topic);
    const row = first.find((r) => r.frame_id === frame.frame.frameId)!;
    expect(row.class).toBe(frame.truth.class);
    expect(row.box ?? undefined).toEqual(frame.truth.box);
  }

  // The same frames as raw RGB8 pixels (CAMERA_SIM_FORMAT=raw): what the PNG decodes to, with its geometry.
  const raw = await renderCameraFrames({ ...asPublished, count: 2, format: 'raw' });
  for (const [i, frame] of raw.entries()) {
    const parsed = parseFrame(Buffer.from(JSON.stringify(frame.frame)));
    if (!parsed.ok) throw new Error(parsed.reason);
    expect(parsed.rawPixels).toMatchObject({ width: 256, height: 256, channels: 3 });
    const png = received.get(prerendered[i]!.frame.frameId)!.image;
    expect(parsed.rawPixels!.pixels.equals(await sharp(png).raw().toBuffer())).toBe(true);
  }

  // Another seed: other frames.
  const c = unique('camera_sim_c');
  schemas.push(c);
  const other = await runOnce(c, 43);
  expect(other.map((r) => r.image_seed)).not.toEqual(first.map((r) => r.image_seed));

  // Same seed and schema again: frames 3..5 of each station, not a repeat of 0..2.
  const resumed = await runOnce(a, 42);
  expect(resumed).toHaveLength(12);
  expect(resumed.map((r) => r.frame_id).filter((id) => !first.some((f) => f.frame_id === id))).toEqual([
    'PLANT1.L1.S1:42:3',
    'PLANT1.L1.S1:42:4',
    'PLANT1.L1.S1:42:5',
    'PLANT1.L1.S2:42:3',
    'PLANT1.L1.S2:42:4',
    'PLANT1.L1.S2:42:5',
  ]);
});

test('a line switched to another order shoots its parts from the next frame on, one part per frame on every station', () => {
  const [s1, s2] = stations() as [CameraStation, CameraStation];
  const opts = { seed: 5, defectRate: 0.1 };
  const runs = [
    { fromSequence: 3, workOrder: 'WO-B', sku: 'SKU-B', lotId: 'LOT-B' },
    { fromSequence: 5, workOrder: 'WO-C', sku: 'SKU-C', lotId: 'LOT-C' },
    { fromSequence: 7, workOrder: 'WO-B', sku: 'SKU-B', lotId: 'LOT-B' },
  ];
  const plans = Array.from({ length: 9 }, (_, n) => planFrame(s1, n, opts, runs));
  expect(plans.map((p) => `${p.workOrder}/${p.sku}/${p.partId}`)).toEqual([
    '1000100/BRKT-200/L-0001-0001',
    '1000100/BRKT-200/L-0001-0002',
    '1000100/BRKT-200/L-0001-0003',
    'WO-B/SKU-B/LOT-B-0001',
    'WO-B/SKU-B/LOT-B-0002',
    'WO-C/SKU-C/LOT-C-0001',
    'WO-C/SKU-C/LOT-C-0002',
    // Back to a lot it ran before: part ids of their own.
    'WO-B/SKU-B/LOT-B-0001-s7',
    'WO-B/SKU-B/LOT-B-0002-s7',
  ]);
  expect(planFrame(s2, 4, opts, runs).partId).toBe(plans[4]!.partId);
  // The image and class do not depend on the order: the same frame number draws the same part picture.
  expect(planFrame(s1, 4, opts, runs).imageSeed).toBe(planFrame(s1, 4, opts).imageSeed);
});

test('the line order is switched at runtime, in code and over HTTP; truth records the order of each frame', async () => {
  const prefix = unique('cam');
  const schema = unique('camera_sim_o');
  schemas.push(schema);
  await listenOn(prefix);
  const line = { site: 'PLANT1', line: 'L1' };
  const start = () =>
    startCameraSimulator({
      pool,
      mqttUrl: broker.url,
      stations: stations().slice(0, 2),
      ratePerStation: 25,
      defectRate: 0.2,
      seed: 9,
      schema,
      prefix,
      framesPerStation: 12,
      log: quietLog(),
    });
  const sim = await start();
  const app = buildCameraAdminApp(sim.store, undefined, sim);
  let switched: { fromSequence: number };
  try {
    expect((await app.inject({ method: 'GET', url: '/lines/PLANT1/L1/order' })).json()).toMatchObject({
      workOrder: '1000100',
      sku: 'BRKT-200',
    });
    await eventually('a few frames', async () => sim.published() >= 4);
    const res = await app.inject({
      method: 'PUT',
      url: '/lines/PLANT1/L1/order',
      payload: { workOrder: 'WO-NEXT', sku: 'SKU-NEXT', lotId: 'LOT-NEXT' },
    });
    expect(res.statusCode).toBe(200);
    switched = res.json<{ fromSequence: number }>();
    expect(switched).toMatchObject({ site: 'PLANT1', line: 'L1', workOrder: 'WO-NEXT', sku: 'SKU-NEXT' });
    expect(switched.fromSequence).toBeGreaterThanOrEqual(2);
    expect(sim.lineOrder(line)).toMatchObject({ workOrder: 'WO-NEXT', fromSequence: switched.fromSequence });

    const bad = await app.inject({ method: 'PUT', url: '/lines/PLANT1/L1/order', payload: { workOrder: 'X' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ error: string }>().error).toContain('sku');
    const elsewhere = await app.inject({
      method: 'PUT',
      url: '/lines/PLANT1/L7/order',
      payload: { workOrder: 'X', sku: 'Y', lotId: 'Z' },
    });
    expect(elsewhere.statusCode).toBe(404);
    await sim.finished;
  } finally {
    await sim.stop();
    await app.close();
  }
  const { rows } = await pool.query<{ station: string; sequence: string; work_order: string; sku: string }>(
    `SELECT station, sequence, work_order, sku FROM "${schema}".frame_truth ORDER BY station, sequence`,
  );
  expect(rows).toHaveLength(24);
  for (const r of rows) {
    const next = Number(r.sequence) >= switched.fromSequence;
    expect([r.station, r.sequence, r.work_order, r.sku]).toEqual([
      r.station,
      r.sequence,
      next ? 'WO-NEXT' : '1000100',
      next ? 'SKU-NEXT' : 'BRKT-200',
    ]);
  }
  // A restart goes on with the order the line runs.
  const again = await start();
  try {
    expect(again.lineOrder(line)).toMatchObject({ workOrder: 'WO-NEXT', fromSequence: switched.fromSequence });
    await again.finished;
  } finally {
    await again.stop();
  }
  const { rows: resumed } = await pool.query<{ work_order: string }>(
    `SELECT DISTINCT work_order FROM "${schema}".frame_truth WHERE sequence >= 12`,
  );
  expect(resumed).toEqual([{ work_order: 'WO-NEXT' }]);
});

test('main.ts prints "camera-sim ready", publishes at its rate and stops cleanly on SIGTERM', async () => {
  const schema = unique('camera_sim_main');
  schemas.push(schema);
  const port = await findFreePort();
  const lines: string[] = [];
  const proc = spawnManaged({
    name: 'camera-sim',
    command: process.execPath,
    args: ['--import', 'tsx', 'infra/simulators/camera/main.ts'],
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      DATABASE_URL: readTestEnv().databaseUrl,
      MQTT_URL: broker.url,
      CAMERA_SIM_PORT: String(port),
      CAMERA_SIM_RATE: '5',
      CAMERA_SIM_DEFECT_RATE: '0.2',
      CAMERA_SIM_SEED: String(Date.now()),
      CAMERA_SIM_SCHEMA: schema,
      // The repository's topology: four stations on lines with demo work orders.
      HOLDFAST_CONFIG: resolve(REPO_ROOT, 'temporal.yaml'),
    },
    onLine: (line) => lines.push(line),
  });
  try {
    // Its stdout is a pipe, so it logs JSON lines (infra/observability/logger.ts).
    await eventually(
      'camera-sim ready',
      () => lines.some((l) => parseLogLine(l)?.msg?.startsWith('camera-sim ready')),
      {
        timeoutMs: 60_000,
      },
    );
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    await new Promise((r) => setTimeout(r, 2_000));
    const counts = (await (await fetch(`http://127.0.0.1:${port}/counts`)).json()) as { published: number };
    // Four stations in temporal.yaml at 5/s for about 2 s.
    expect(counts.published).toBeGreaterThanOrEqual(20);
    expect(counts.published).toBeLessThanOrEqual(80);
    // Prometheus on the admin port: process series, requests answered, frames published so far.
    const metrics = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(sampleValue(metrics, 'holdfast_camera_frames_published_total')).toBeGreaterThanOrEqual(counts.published);
    expect(sampleValue(metrics, 'holdfast_http_requests_total', { route: '/health' })).toBe(1);
    expect(sampleValue(metrics, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  } finally {
    const exit = await proc.stop({ signal: 'SIGTERM', graceMs: 10_000 });
    expect(exit).toEqual({ code: 0, signal: null });
  }
  expect(lines.join('\n')).toContain('camera simulator stopping');
});
