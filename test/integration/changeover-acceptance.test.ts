/**
 * Issue 17's acceptance, against real parts only: the Temporal dev server and PostgreSQL of the run, Mosquitto, the
 * real inference worker (onnxruntime) on two Holdfast stations, the node-opcua line-PLC simulator with an OPC 40100
 * vision system on the third station and the line's release interlock, the real MES simulator (its job-order events
 * taken by the worker's intake over MQTT and the REST poll), and the camera simulator publishing throughout.
 *
 * 1. Three changeovers, each started by the MES's `started` event: once the changeover reads every station back (its
 *    stage is first-article) the camera's line switches to the new order, as the operator runs the first article.
 *    Joined with the camera's ground truth by frame id, every frame was inspected under its own order's recipe; the
 *    MES released each order only after its first article passed; the interlock was lifted with the order's work
 *    order; the vision system read back each order's external recipe.
 * 2. A vision system that reports the wrong active recipe fails the next changeover: every station reverted, the line
 *    left interlocked, no release in the MES.
 */
// First: it makes onnxruntime's typed arrays jest's (see shareProcessTypedArrays in test/support/onnx-builder.ts).
import { writeBrightSpotModel } from '../support/vision-fixtures';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { freePort } from '../../infra/local/free-port';
import {
  mesEventsReaderAccount,
  mesProductionAccount,
  startMosquitto,
  visionStreamAccounts,
  type MosquittoBroker,
} from '../../infra/local/mqtt-broker';
import type { CameraStation } from '../../infra/simulators/camera/camera.plan';
import { startCameraSimulator, type CameraSimulator } from '../../infra/simulators/camera/camera.simulator';
import { startLinePlcSimulator, type LinePlcSimulator } from '../../infra/simulators/line-plc/line-plc.simulator';
import { saveRecipe } from '../../infra/vision/recipe.repository';
import { createStationAssignmentStore } from '../../infra/vision/station-assignment.store';
import type { ChangeoverView } from '../../infra/temporal/changeover-starter';
import type { ChangeoverStatus } from '../../workflows/contracts';
import { startInferenceWorker, type InferenceWorker } from '../../workers/inference/inference-worker';
import { startJobOrderIntake, type JobOrderIntakeService } from '../../workers/job-orders';
import { eventually } from '../support/eventually';
import { testSigningKey } from '../support/identity';
import { quietLog } from '../support/quiet-log';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

jest.setTimeout(120_000);

const run = randomUUID().slice(0, 6).toUpperCase();
/** A site and line of its own: station assignments, job orders and frame ids are per site, line and station. */
const SITE = `ACC${run}`;
const LINE = 'L1';
const HOLDFAST_STATIONS = ['S1', 'S2'] as const;
const VISION_STATION = 'V1';
const VISION_SYSTEM = `V-${run}`;
const MES = `mes-acc-${run.toLowerCase()}`;
/** The simulators' schemas: the stack's MES and SAP (mes_<suffix>, sap_<suffix>) and the camera's ground truth. */
const SUFFIX = `acc_${run.toLowerCase()}`;
const CAMERA_SCHEMA = `camera_${SUFFIX}`;
const login = (username: string) => ({ username, password: randomUUID() });
const LOGINS = {
  inference: login('inference'),
  camera: login('camera'),
  mes: login('mes'),
  jobOrders: login('holdfast-job-orders'),
};
/** Order 2's events are made with `publish: false`: only the intake's REST poll can read them. */
const UNPUBLISHED = 2;
const FIRST_ARTICLE_PARTS = 2;

/** Order 0 is what the line runs when the test starts; 1–3 are changed over to; 4 fails on the vision system. */
const ORDERS = [0, 1, 2, 3, 4].map((i) => ({
  i,
  workOrder: `WO${i}-${run}`,
  sku: `SKU${i}-${run}`,
  lotId: `LOT${i}-${run}`,
  external: `EXT${i}-${run}`,
  model: { name: `acc-m${i}`, version: '1', defectClass: 'spot' },
  recipe: (station: string) => `r${i}-${station}-${run}`,
}));
type Order = (typeof ORDERS)[number];
const recipeOwner = new Map(ORDERS.flatMap((o) => HOLDFAST_STATIONS.map((s) => [o.recipe(s), o.i] as const)));

let pool: Pool;
let workDir: string;
let broker: MosquittoBroker;
let plc: LinePlcSimulator;
let stack: HoldfastStack;
let inference: InferenceWorker;
let intake: JobOrderIntakeService;
let camera: CameraSimulator;
const sha = new Map<string, string>();

function lineConfig(base: HoldfastConfig, pkiDir: string, mqttUrl: string): HoldfastConfig {
  const config = structuredClone(base);
  const plant = config.sites[0]!;
  config.sites = [
    {
      ...plant,
      id: SITE,
      mes: MES,
      lineControl: 'line-control',
      lines: [
        {
          id: LINE,
          stations: [
            ...HOLDFAST_STATIONS.map((id) => ({ id, mode: 'production' as const })),
            {
              id: VISION_STATION,
              mode: 'production' as const,
              vision: {
                connector: 'line-vision',
                system: VISION_SYSTEM,
                recipes: Object.fromEntries(ORDERS.map((o) => [o.sku, o.external])),
              },
            },
          ],
        },
      ],
    },
  ];
  // A MES connector of its own: the intake's REST cursor and job orders are kept per MES name.
  config.connectors[MES] = { ...config.connectors[plant.mes]! };
  config.connectors['line-vision'] = {
    kind: 'opcua-machine-vision',
    required: true,
    endpointUrl: plc.endpointUrl,
    pkiDir,
  };
  config.connectors['line-control'] = {
    kind: 'opcua-line-control',
    required: true,
    endpointUrl: plc.endpointUrl,
    pkiDir,
  };
  config.vision.topicPrefix = `acc${run.toLowerCase()}`;
  config.vision.recipes = [];
  config.vision.modelsDir = join(workDir, 'models');
  // No reject station: what this test checks is which recipe each frame met and what the changeover did.
  delete config.vision.rejectStation;
  const brokerName = config.vision.broker!;
  config.connectors[brokerName] = { ...config.connectors[brokerName]!, ...LOGINS.inference };
  config.vision.inference.maxBatchWait = '2ms';
  config.vision.http.port = 0;
  // The MES's job-order events both ways: pushed over MQTT (read-only login) and polled over REST.
  config.connectors['uns-mqtt'] = { kind: 'mqtt', required: true, url: mqttUrl, ...LOGINS.jobOrders };
  config.changeover = {
    ...config.changeover,
    events: {
      broker: 'uns-mqtt',
      clientId: `holdfast-jo-${run}`,
      topicFilter: `plant/${SITE}/+/+/production/job-orders`,
    },
    pollInterval: '250ms',
    verifyAttempts: 2,
    firstArticleParts: FIRST_ARTICLE_PARTS,
  };
  return config;
}

beforeAll(async () => {
  installQuietRuntime();
  pool = testPool();
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-acceptance-'));
  // As root, Mosquitto drops to its own OS user, which must be able to pass through to its data directory.
  chmodSync(workDir, 0o711);
  const pkiDir = join(workDir, 'opcua-pki');
  const holdfastStations = HOLDFAST_STATIONS.map((station) => ({ site: SITE, line: LINE, station }));

  for (const order of ORDERS) {
    // A weakened model (gain below the threshold): every part passes, so each first article passes.
    const manifest = writeBrightSpotModel(join(workDir, 'models'), order.model, { gain: 0.1 });
    sha.set(order.model.name, (JSON.parse(readFileSync(manifest, 'utf8')) as { sha256: string }).sha256);
    for (const station of HOLDFAST_STATIONS) {
      await saveRecipe(
        pool,
        {
          site: SITE,
          line: LINE,
          station,
          sku: order.sku,
          version: order.recipe(station),
          model: { name: order.model.name, version: order.model.version },
          thresholds: {},
          minDefectAreaPx: 100,
          firstArticleParts: FIRST_ARTICLE_PARTS,
        },
        'acceptance-test',
      );
    }
  }

  const [mqttPort, plcPort] = [await freePort(), await freePort()];
  [broker, plc] = await Promise.all([
    startMosquitto({
      port: mqttPort,
      dataDir: join(workDir, 'mosquitto'),
      access: {
        accounts: [
          ...visionStreamAccounts({
            prefix: `acc${run.toLowerCase()}`,
            inference: LOGINS.inference,
            cameras: [{ ...LOGINS.camera, stations: holdfastStations }],
          }),
          mesProductionAccount(LOGINS.mes),
          mesEventsReaderAccount(LOGINS.jobOrders),
        ],
      },
    }),
    startLinePlcSimulator({
      port: plcPort,
      stations: [],
      visionSystems: [
        {
          system: VISION_SYSTEM,
          site: SITE,
          line: LINE,
          station: VISION_STATION,
          recipes: ORDERS.map((o) => ({ externalId: o.external, internalId: `job-${o.i}-${run}` })),
        },
      ],
      lineControls: [{ site: SITE, line: LINE }],
      dataDir: join(workDir, 'line-plc'),
      trustedClientPkiDirs: [pkiDir],
    }),
  ]);

  const env = readTestEnv();
  const config = lineConfig(loadConfig(), pkiDir, broker.url);
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config,
    schemaSuffix: SUFFIX,
    mesEventBroker: { url: broker.url, ...LOGINS.mes, clientId: `mes-${run}` },
    seedDemo: false,
  });
  inference = await startInferenceWorker({
    signingKey: await testSigningKey(),
    config: stack.config,
    pool,
    mqttUrl: broker.url,
    dataDir: workDir,
    clientId: `inference-${run}`,
    seedRecipes: false,
    log: quietLog(),
  });
  intake = await startJobOrderIntake({
    config: stack.config,
    pool,
    mesFor: stack.connectors.mesFor,
    trigger: stack.changeovers,
    registry: new Registry(),
    log: quietLog(),
  });
  const start = ORDERS[0]!;
  camera = await startCameraSimulator({
    pool,
    mqttUrl: broker.url,
    mqttAuth: LOGINS.camera,
    stations: holdfastStations.map((s): CameraStation => ({
      ...s,
      workOrder: { workOrder: start.workOrder, sku: start.sku, line: LINE, plannedQuantity: 100_000 },
      lots: [
        {
          lotId: start.lotId,
          workOrder: start.workOrder,
          sku: start.sku,
          quantity: 100_000,
          unit: 'PC',
          erpPlant: '1010',
          storageLocation: '0001',
          batch: start.lotId,
        },
      ],
    })),
    ratePerStation: 4,
    defectRate: 0,
    seed: 17,
    schema: CAMERA_SCHEMA,
    prefix: `acc${run.toLowerCase()}`,
    clientId: `camera-${run}`,
    log: quietLog(),
  });
}, 120_000);

afterAll(async () => {
  await camera?.stop();
  await intake?.close();
  await inference?.close({ force: true });
  await stack?.stop();
  await plc?.stop();
  await broker?.stop();
  for (const schema of [CAMERA_SCHEMA, `mes_${SUFFIX}`, `sap_${SUFFIX}`]) {
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
  await pool?.end();
  rmSync(workDir, { recursive: true, force: true });
});

async function mes(path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${stack.mesUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** The MES releases the order to the line and starts it: its `started` job-order event is what starts the changeover. */
async function startInMes(order: Order): Promise<void> {
  const publish = order.i !== UNPUBLISHED;
  const released = await mes('/__sim/job-orders', {
    workOrder: order.workOrder,
    sku: order.sku,
    site: SITE,
    line: LINE,
    plannedQuantity: 1000,
    publish,
  });
  expect(released.status).toBe(201);
  const started = await mes(`/__sim/job-orders/${order.workOrder}/start`, { publish });
  expect(started.status).toBe(201);
}

/** How the intake recorded the order's `started` event, and whether its trigger answered. */
async function startedEvent(order: Order) {
  const { rows } = await pool.query<{ source: string; outcome: string; trigger_state: string | null }>(
    `SELECT source, outcome, trigger_state FROM holdfast.job_order_event
      WHERE mes_system = $1 AND work_order = $2 AND event_type = 'started'`,
    [MES, order.workOrder],
  );
  return rows;
}

const view = (order: Order) => stack.changeovers.view(SITE, LINE, order.workOrder);

async function changeoverReaching(order: Order, stages: ChangeoverStatus['stage'][]): Promise<ChangeoverView> {
  return eventually(
    `the changeover to ${order.workOrder} at ${stages.join(' or ')}`,
    () => view(order),
    (v) => v?.status !== undefined && stages.includes(v.status.stage),
    { timeoutMs: 60_000, intervalMs: 100 },
  ) as Promise<ChangeoverView>;
}

/** Published frames of the line joined with what the inference worker made of them. */
async function framesOfLine() {
  const { rows } = await pool.query<{
    frame_id: string;
    station: string;
    sequence: number;
    work_order: string;
    sku: string;
    recipe_version: string | null;
    inspected_order: string | null;
    refused: string | null;
  }>(
    `SELECT t.frame_id, t.station, t.sequence, t.work_order, t.sku, i.recipe_version, i.work_order AS inspected_order,
            r.reason AS refused
       FROM "${CAMERA_SCHEMA}".frame_truth t
       LEFT JOIN holdfast.inspection i ON i.frame_id = t.frame_id
       LEFT JOIN holdfast.frame_rejection r ON r.frame_id = t.frame_id
      WHERE t.site = $1 AND t.line = $2 AND t.published_at IS NOT NULL
      ORDER BY t.station, t.sequence`,
    [SITE, LINE],
  );
  return rows;
}

const orderOfWorkOrder = (workOrder: string) => ORDERS.find((o) => o.workOrder === workOrder)!;

interface ChangedOver {
  order: Order;
  status: ChangeoverStatus;
  releasedAt: string;
  switchedFrom: number;
}
const changedOver: ChangedOver[] = [];

describe('a line through three changeovers, each started by the MES', () => {
  it('runs the first order under its SKU recipe before any changeover', async () => {
    await eventually(
      'frames of order 0 inspected at every Holdfast station',
      async () => {
        const frames = await framesOfLine();
        return HOLDFAST_STATIONS.every((s) => frames.some((f) => f.station === s && f.recipe_version !== null));
      },
      { timeoutMs: 30_000 },
    );
    for (const f of (await framesOfLine()).filter((r) => r.recipe_version !== null)) {
      expect(f.recipe_version).toBe(ORDERS[0]!.recipe(f.station));
    }
  });

  it.each([1, 2, 3])(
    'changes over to order %i: stations armed, first article, MES release, interlock lifted',
    async (i) => {
      const order = ORDERS[i]!;
      await startInMes(order);

      const atFirstArticle = await changeoverReaching(order, ['first-article', 'failed', 'released']);
      const status = atFirstArticle.status!;
      expect(status).toMatchObject({ stage: 'first-article', trigger: 'order-event', interlock: 'held' });
      // Every station read back as asked: the Holdfast stations armed with the order's recipe and model file, the vision
      // system Ready with the order's external recipe.
      for (const station of HOLDFAST_STATIONS) {
        expect(status.stations.find((s) => s.station === station)).toMatchObject({
          kind: 'holdfast',
          verified: true,
          after: {
            assignment: 'armed',
            workOrder: order.workOrder,
            sku: order.sku,
            recipeVersion: order.recipe(station),
            modelKey: `${order.model.name}@1`,
            modelSha256: sha.get(order.model.name),
          },
        });
      }
      expect(status.stations.find((s) => s.station === VISION_STATION)).toMatchObject({
        kind: 'opc40100',
        verified: true,
        after: { state: 'Operational/Ready', externalRecipeId: order.external, internalRecipeId: `job-${i}-${run}` },
      });
      // Before its first article: interlocked for this order, not released in the MES.
      expect(plc.lineRelease({ site: SITE, line: LINE })).toEqual({ released: false, workOrder: order.workOrder });
      expect((await mes(`/api/v1/work-orders/${order.workOrder}/production-release`)).status).toBe(404);

      // The operator runs the first article: the line's cameras show the new order from their next frame.
      const switched = await camera.setLineOrder(
        { site: SITE, line: LINE },
        { workOrder: order.workOrder, sku: order.sku, lotId: order.lotId },
      );

      const done = await changeoverReaching(order, ['released', 'failed']);
      expect(done.status?.error).toBeUndefined();
      expect(done.status?.stage).toBe('released');
      await eventually(
        'the workflow completed',
        () => view(order),
        (v) => v?.execution === 'COMPLETED',
      );
      const final = done.status!;
      expect(final.firstArticle).toMatchObject({ required: FIRST_ARTICLE_PARTS, outcome: 'passed' });
      expect(final.firstArticle!.parts).toHaveLength(FIRST_ARTICLE_PARTS);
      for (const part of final.firstArticle!.parts) expect(part).toMatchObject({ result: 'pass', lotId: order.lotId });

      const release = await mes(`/api/v1/work-orders/${order.workOrder}/production-release`);
      expect(release.status).toBe(200);
      expect(release.json).toMatchObject({ workOrder: order.workOrder, line: LINE, releasedBy: final.workflowId });
      const decided = final.timings.find((t) => t.step === 'first-article')?.finishedAt;
      expect(decided).toBeDefined();
      const releasedAt = release.json.releasedAt as string;
      expect(Date.parse(releasedAt)).toBeGreaterThanOrEqual(Date.parse(decided!));
      for (const part of final.firstArticle!.parts) {
        expect(Date.parse(releasedAt)).toBeGreaterThanOrEqual(Date.parse(part.inspectedAt));
      }

      // The interlock: set for this order at the start, lifted with it once released, and never lifted before.
      expect(plc.lineRelease({ site: SITE, line: LINE })).toEqual({ released: true, workOrder: order.workOrder });
      const calls = plc.releases().filter((r) => r.workOrder === order.workOrder);
      expect(calls.map((r) => r.released)).toEqual([false, true]);
      expect(calls[1]!.at.getTime()).toBeGreaterThanOrEqual(Date.parse(decided!));
      // The vision system runs the order's recipe (the simulator's truth, not only its report).
      expect(plc.visionSystem(VISION_SYSTEM).prepared).toMatchObject({ externalId: order.external });

      changedOver.push({ order, status: final, releasedAt, switchedFrom: switched.fromSequence });
    },
  );

  it('inspected every frame of each order under that order recipe, checked against the camera ground truth', async () => {
    expect(changedOver.map((c) => c.order.i)).toEqual([1, 2, 3]);
    // Let the frames in flight land, then compare every published frame.
    const lastSequence = Math.max(...(await framesOfLine()).map((f) => f.sequence));
    const frames = await eventually(
      'every published frame up to now inspected or refused',
      async () => (await framesOfLine()).filter((f) => f.sequence <= lastSequence),
      (rows) => rows.every((f) => f.recipe_version !== null || f.refused !== null),
    );

    const perOrder = new Map<number, number>();
    for (const f of frames) {
      const truth = orderOfWorkOrder(f.work_order);
      // Inspected, never refused, and under the recipe of the order the frame really shows.
      expect({ frame: f.frame_id, refused: f.refused }).toEqual({ frame: f.frame_id, refused: null });
      expect({ frame: f.frame_id, recipe: f.recipe_version, order: f.inspected_order }).toEqual({
        frame: f.frame_id,
        recipe: truth.recipe(f.station),
        order: truth.workOrder,
      });
      // No frame of an older order met a newer order's recipe.
      expect(recipeOwner.get(f.recipe_version!)).toBeLessThanOrEqual(truth.i);
      perOrder.set(truth.i, (perOrder.get(truth.i) ?? 0) + 1);
    }
    // Each order's frames begin exactly where the camera switched the line.
    for (const { order, switchedFrom } of changedOver) {
      const ofOrder = frames.filter((f) => f.work_order === order.workOrder);
      expect(Math.min(...ofOrder.map((f) => f.sequence))).toBe(switchedFrom);
      expect(ofOrder.length).toBeGreaterThanOrEqual(FIRST_ARTICLE_PARTS * HOLDFAST_STATIONS.length);
    }
    expect([...perOrder.keys()].sort()).toEqual([0, 1, 2, 3]);
  });

  it('took each started event once: over MQTT as published, the unpublished one from the REST poll', async () => {
    for (const { order } of changedOver) {
      expect(await startedEvent(order)).toEqual([
        {
          source: order.i === UNPUBLISHED ? 'rest' : expect.stringMatching(/^(mqtt|rest)$/),
          outcome: 'applied',
          trigger_state: 'started',
        },
      ]);
    }
    // Orders 1 and 3 were published (released, started): four messages, each acknowledged once recorded.
    await eventually(
      'the published job-order events acknowledged by the subscriber',
      () => intake.subscriber!.stats().acknowledged,
      (n) => n === 4,
    );
  });

  it('released each order in the MES only after its own first article, in order', () => {
    for (let k = 1; k < changedOver.length; k++) {
      expect(Date.parse(changedOver[k]!.releasedAt)).toBeGreaterThan(Date.parse(changedOver[k - 1]!.releasedAt));
    }
  });
});

describe('a vision system that reports the wrong active recipe', () => {
  it('fails the changeover: every station reverted, the line left interlocked, no release in the MES', async () => {
    const previous = ORDERS[3]!;
    const order = ORDERS[4]!;
    plc.setVisionFaults(VISION_SYSTEM, { reportWrongRecipe: true });
    try {
      await startInMes(order);
      const failed = await changeoverReaching(order, ['failed', 'released', 'cancelled']);
      await eventually(
        'the workflow failed',
        () => view(order),
        (v) => v?.execution === 'FAILED',
      );
      const status = failed.status!;
      expect(status.stage).toBe('failed');
      expect(status.error).toMatch(new RegExp(`station ${VISION_STATION}: external recipe .*asked ${order.external}`));
      // Every station was prepared and is reverted.
      expect(status.stations.map((s) => [s.station, s.prepared, s.reverted])).toEqual([
        ['S1', true, true],
        ['S2', true, true],
        [VISION_STATION, true, true],
      ]);
      const vision = status.stations.find((s) => s.station === VISION_STATION)!;
      expect(vision.verified).toBe(false);
      expect(vision.after?.externalRecipeId).not.toBe(order.external);

      // Holdfast stations: the previous order's assignment is the active one again, nothing armed.
      const store = createStationAssignmentStore(pool);
      for (const station of HOLDFAST_STATIONS) {
        const readBack = await store.readBack({ site: SITE, line: LINE, station });
        expect(readBack.armed).toBeUndefined();
        expect(readBack.active).toMatchObject({
          workOrder: previous.workOrder,
          recipeVersion: previous.recipe(station),
          modelSha256: sha.get(previous.model.name),
        });
        const history = await store.history({ site: SITE, line: LINE, station });
        expect(history.find((h) => h.changeoverId === status.workflowId)?.state).toBe('reverted');
      }
      // The vision system: the order's recipe given up, the previous order's prepared again (the device's truth).
      expect(plc.visionSystem(VISION_SYSTEM).prepared).toEqual({
        externalId: previous.external,
        internalId: `job-3-${run}`,
      });
      expect(plc.visionSystem(VISION_SYSTEM).substate).toBe('Ready');
      // The line stays interlocked, and the MES has no release for the order.
      expect(plc.lineRelease({ site: SITE, line: LINE })).toEqual({ released: false, workOrder: order.workOrder });
      expect(plc.releases().filter((r) => r.workOrder === order.workOrder && r.released)).toEqual([]);
      expect((await mes(`/api/v1/work-orders/${order.workOrder}/production-release`)).status).toBe(404);
      expect(status.release).toBeUndefined();
    } finally {
      plc.setVisionFaults(VISION_SYSTEM, {});
    }
  });

  it("keeps inspecting the running order's frames under its recipe after the failed changeover", async () => {
    const previous = ORDERS[3]!;
    const from = Math.max(...(await framesOfLine()).map((f) => f.sequence)) + 1;
    const later = await eventually(
      'new frames of the running order inspected at both stations',
      async () => (await framesOfLine()).filter((f) => f.sequence >= from && f.recipe_version !== null),
      (rows) => HOLDFAST_STATIONS.every((s) => rows.some((f) => f.station === s)),
    );
    for (const f of later) {
      expect([f.work_order, f.recipe_version, f.refused]).toEqual([
        previous.workOrder,
        previous.recipe(f.station),
        null,
      ]);
    }
  });
});
