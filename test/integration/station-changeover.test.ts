/**
 * A Holdfast station through two changeovers against real parts: PostgreSQL, Mosquitto (Debian) and the real inference
 * worker with onnxruntime on two dropped-in models. The changeover's side is the PG-backed StationControlPort and
 * FirstArticleReader; the station's side is what the worker does with the frames a camera publishes.
 *
 * arm → the worker loads the model and reports it with the model file's sha256 → the old order's frames are inspected
 * under the old recipe until the new order's first frame (the boundary) → then the new recipe, the old order refused
 * `recipe-mismatch` (recorded, counted, alarmed) → the first article reads the new order's first parts → revert puts
 * the old assignment back.
 */
// First: it makes onnxruntime's typed arrays jest's (see shareProcessTypedArrays in test/support/onnx-builder.ts).
import { SPOT_MODEL, spotFrame, writeBrightSpotModel } from '../support/vision-fixtures';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Pool } from 'pg';
import type { StationRecipeTarget, StationRef } from '../../activities/ports';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { freePort } from '../../infra/local/free-port';
import { startMosquitto, visionStreamAccounts, type MosquittoBroker } from '../../infra/local/mqtt-broker';
import { createFirstArticleReader } from '../../infra/vision/first-article.reader';
import { frameTopic } from '../../infra/vision/frame.schema';
import { recipeByVersion, saveRecipe } from '../../infra/vision/recipe.repository';
import { createStationAssignmentStore } from '../../infra/vision/station-assignment.store';
import { startInferenceWorker, type InferenceWorker } from '../../workers/inference/inference-worker';
import { eventually } from '../support/eventually';
import { asAdmin, testSigningKey } from '../support/identity';
import { quietLog } from '../support/quiet-log';
import { testPool } from '../support/test-env';

const BLOB_MODEL = { name: 'blob-finder', version: '2.0', defectClass: 'blob' };
const run = randomUUID().slice(0, 8);
const prefix = `co${run}`;
/** A line of its own: assignments are per station, and other tests use PLANT1/L1's stations. */
const LINE = { site: 'PLANT1', line: `C${run}` };
const S1: StationRef = { ...LINE, station: 'S1' };
const ORDER_A = { workOrder: `WA-${run}`, sku: `SKU-A-${run}`, version: `a-${run}`, model: SPOT_MODEL };
const ORDER_B = { workOrder: `WB-${run}`, sku: `SKU-B-${run}`, version: `b-${run}`, model: BLOB_MODEL };
const login = (username: string) => ({ username, password: randomUUID() });
const LOGINS = { inference: login('inference'), camera: login('camera') };

let pool: Pool;
let workDir: string;
let broker: MosquittoBroker;
let publisher: MqttClient;
let worker: InferenceWorker;
let config: HoldfastConfig;
const sha = { spot: '', blob: '' };
const store = () => createStationAssignmentStore(pool);

beforeAll(async () => {
  pool = testPool();
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-changeover-'));
  // As root, Mosquitto drops to its own OS user, which must be able to pass through to its data directory.
  chmodSync(workDir, 0o711);
  broker = await startMosquitto({
    port: await freePort(),
    dataDir: join(workDir, 'mosquitto'),
    access: {
      accounts: visionStreamAccounts({
        prefix,
        inference: LOGINS.inference,
        cameras: [{ ...LOGINS.camera, stations: [S1] }],
      }),
    },
  });
  const modelsDir = join(workDir, 'models');
  const manifestSha = (path: string) => (JSON.parse(readFileSync(path, 'utf8')) as { sha256: string }).sha256;
  sha.spot = manifestSha(writeBrightSpotModel(modelsDir));
  sha.blob = manifestSha(writeBrightSpotModel(modelsDir, BLOB_MODEL));

  config = structuredClone(loadConfig());
  config.vision.topicPrefix = prefix;
  config.vision.recipes = [];
  // No reject station: what this test checks is which recipe each frame met, not the diversion.
  delete config.vision.rejectStation;
  const brokerName = config.vision.broker!;
  config.connectors[brokerName] = { ...config.connectors[brokerName]!, ...LOGINS.inference };
  config.vision.inference.maxBatchWait = '2ms';
  config.vision.http.port = 0;
  const site = config.sites.find((s) => s.id === LINE.site)!;
  site.lines.push({ ...structuredClone(site.lines[0]!), id: LINE.line, stations: [{ id: 'S1', mode: 'production' }] });

  for (const order of [ORDER_A, ORDER_B]) {
    await saveRecipe(
      pool,
      {
        ...S1,
        sku: order.sku,
        version: order.version,
        model: { name: order.model.name, version: order.model.version },
        thresholds: {},
        minDefectAreaPx: 100,
        firstArticleParts: 3,
      },
      'test',
    );
  }
  worker = await startInferenceWorker({
    signingKey: await testSigningKey(),
    config,
    pool,
    mqttUrl: broker.url,
    dataDir: workDir,
    modelsDir,
    clientId: `inference-${run}`,
    seedRecipes: false,
    log: quietLog(),
  });
  publisher = await new Promise<MqttClient>((resolve, reject) => {
    const client = mqtt.connect(broker.url, { clientId: `camera-${run}`, clean: true, ...LOGINS.camera });
    client.once('connect', () => resolve(client));
    client.once('error', reject);
  });
}, 60_000);

afterAll(async () => {
  publisher?.end(true);
  await worker?.close({ force: true });
  await broker?.stop();
  await pool?.end();
  rmSync(workDir, { recursive: true, force: true });
});

let seq = 0;
type Seen = { kind: 'inspected'; recipe: string; model: string; result: string } | { kind: 'refused'; reason: string };

/** Publishes one frame of `order` as the camera does and waits for what the worker made of it. */
async function frame(order: { workOrder: string; sku: string }, spot = false): Promise<{ frameId: string } & Seen> {
  seq += 1;
  const frameId = `f-${run}-${seq}`;
  const payload = {
    frameId,
    partId: `P-${run}-${seq}`,
    lotId: `LOT-${order.workOrder}`,
    workOrder: order.workOrder,
    sku: order.sku,
    capturedAt: new Date().toISOString(),
    image: { encoding: 'png', data: (await spotFrame(spot)).toString('base64') },
  };
  await publisher.publishAsync(frameTopic(prefix, S1.site, S1.line, S1.station), JSON.stringify(payload), { qos: 1 });
  const seen = await eventually(`frame ${frameId} inspected or refused`, async (): Promise<Seen | undefined> => {
    const inspected = await pool.query<{ recipe_version: string; model_version: string; result: string }>(
      `SELECT recipe_version, model_version, result FROM holdfast.inspection WHERE frame_id = $1`,
      [frameId],
    );
    const row = inspected.rows[0];
    if (row) return { kind: 'inspected', recipe: row.recipe_version, model: row.model_version, result: row.result };
    const refused = await pool.query<{ reason: string }>(
      `SELECT reason FROM holdfast.frame_rejection WHERE frame_id = $1`,
      [frameId],
    );
    return refused.rows[0] ? { kind: 'refused', reason: refused.rows[0].reason } : undefined;
  });
  return { frameId, ...seen };
}

const underA = { kind: 'inspected', recipe: ORDER_A.version, model: 'bright-spot@1' };
const underB = { kind: 'inspected', recipe: ORDER_B.version, model: 'blob-finder@2.0' };
const mismatch = { kind: 'refused', reason: expect.stringMatching(/^recipe-mismatch: /) as unknown };

function target(changeoverId: string, order: typeof ORDER_A | typeof ORDER_B): StationRecipeTarget {
  return {
    changeoverId,
    workOrder: order.workOrder,
    sku: order.sku,
    recipeVersion: order.version,
    model: { name: order.model.name, version: order.model.version },
  };
}

async function metric(name: string): Promise<string[]> {
  const text = await (await fetch(`${worker.http.url}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

describe('a Holdfast station through changeovers', () => {
  const coA = `changeover-${run}-A`;
  const coB = `changeover-${run}-B`;

  it('keeps SKU recipes before its first changeover, then applies the armed order from its first frame', async () => {
    expect(await store().readBack(S1)).toEqual({});
    expect(await frame(ORDER_A)).toMatchObject(underA);

    await store().arm(S1, target(coA, ORDER_A));
    const armed = await eventually(
      'the worker reports station armed',
      () => store().readBack(S1),
      (r) => !!r.armed,
    );
    expect(armed.armed).toMatchObject({
      changeoverId: coA,
      workOrder: ORDER_A.workOrder,
      recipeVersion: ORDER_A.version,
      modelKey: 'bright-spot@1',
      modelSha256: sha.spot,
    });
    const boundary = await frame(ORDER_A);
    expect(boundary).toMatchObject(underA);
    expect(await store().readBack(S1)).toEqual({
      active: expect.objectContaining({ workOrder: ORDER_A.workOrder, firstFrameId: boundary.frameId }) as unknown,
    });
  });

  it('runs the old order under the old recipe until the new order arrives, then the new recipe only', async () => {
    // A retried arm (Temporal retries activities) changes nothing.
    await store().arm(S1, target(coB, ORDER_B));
    await store().arm(S1, target(coB, ORDER_B));
    const armed = await eventually(
      'the worker reports B loaded',
      () => store().readBack(S1),
      (r) => !!r.armed,
    );
    expect(armed.armed).toMatchObject({ changeoverId: coB, modelKey: 'blob-finder@2.0', modelSha256: sha.blob });
    expect(armed.active).toMatchObject({ workOrder: ORDER_A.workOrder, modelSha256: sha.spot });

    expect(await frame(ORDER_A)).toMatchObject(underA);
    expect(await frame(ORDER_A, true)).toMatchObject({ ...underA, result: 'fail' });

    const first = await frame(ORDER_B);
    expect(first).toMatchObject({ ...underB, result: 'pass' });
    const after = await store().readBack(S1);
    expect(after.armed).toBeUndefined();
    expect(after.active).toMatchObject({
      workOrder: ORDER_B.workOrder,
      sku: ORDER_B.sku,
      recipeVersion: ORDER_B.version,
      modelKey: 'blob-finder@2.0',
      modelSha256: sha.blob,
      firstFrameId: first.frameId,
    });

    // The old product after the switch: refused, never inspected under the new recipe.
    expect(await frame(ORDER_A)).toMatchObject(mismatch);
    expect(await frame({ workOrder: ORDER_B.workOrder, sku: ORDER_A.sku })).toMatchObject(mismatch);
    expect(await metric('holdfast_inference_recipe_mismatch_total')).toEqual([
      `holdfast_inference_recipe_mismatch_total{site="PLANT1",line="${LINE.line}",station="S1"} 2`,
    ]);
    expect(await metric('holdfast_inference_frames_refused_total{reason="recipe-mismatch"}')).toEqual([
      'holdfast_inference_frames_refused_total{reason="recipe-mismatch"} 2',
    ]);

    // A one-off image over HTTP meets the same rule: 409, a problem naming the reason.
    const overHttp = await fetch(`${worker.http.url}/v1/stations/${S1.site}/${S1.line}/${S1.station}/frames`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await asAdmin()) },
      body: JSON.stringify({
        frameId: `http-${run}`,
        partId: `P-http-${run}`,
        lotId: 'LOT-HTTP',
        workOrder: ORDER_A.workOrder,
        sku: ORDER_A.sku,
        capturedAt: new Date().toISOString(),
        image: { encoding: 'png', data: (await spotFrame(false)).toString('base64') },
      }),
    });
    expect(overHttp.status).toBe(409);
    expect(((await overHttp.json()) as { type: string }).type).toMatch(/recipe-mismatch$/);

    expect(await frame(ORDER_B, true)).toMatchObject({ ...underB, result: 'fail' });
    expect(await frame(ORDER_B)).toMatchObject({ ...underB, result: 'pass' });
    const parts = await createFirstArticleReader(pool, config).firstParts(LINE, ORDER_B.workOrder, 3);
    expect(parts.map((p) => p.result)).toEqual(['pass', 'fail', 'pass']);
    expect(parts[0]).toMatchObject({ partId: `P-${run}-${seq - 4}`, lotId: `LOT-${ORDER_B.workOrder}` });
    expect(parts.every((p) => p.eventIds.length === 1)).toBe(true);
    // The recipe says how many parts the first article needs.
    expect(
      (await recipeByVersion(pool, { ...S1, sku: ORDER_B.sku, version: ORDER_B.version }))?.firstArticleParts,
    ).toBe(3);

    const history = await store().history(S1);
    expect(history.map((h) => [h.changeoverId, h.state, h.previousChangeoverId])).toEqual([
      [coB, 'active', coA],
      [coA, 'superseded', undefined],
    ]);
  });

  it('reverts to what the station ran before the changeover', async () => {
    await store().revert(S1, coB);
    await store().revert(S1, coB); // compensation retried: nothing more
    expect((await store().readBack(S1)).active).toMatchObject({ workOrder: ORDER_A.workOrder, modelSha256: sha.spot });
    // The worker hears it by NOTIFY; until then it may still refuse A.
    await eventually(
      'frames of A inspected under A again',
      () => frame(ORDER_A),
      (f) => f.kind === 'inspected',
    );
    expect(await frame(ORDER_A)).toMatchObject(underA);
    expect(await frame(ORDER_B)).toMatchObject(mismatch);

    // Reverting the first changeover too: the station is back to each frame's SKU recipe.
    await store().revert(S1, coA);
    await eventually(
      'frames of B by their SKU recipe',
      () => frame(ORDER_B),
      (f) => f.kind === 'inspected',
    );
    expect(await frame(ORDER_A)).toMatchObject(underA);
    expect(await store().readBack(S1)).toEqual({});
  });

  it('does not report a station armed whose recipe or model it cannot load', async () => {
    const missing = { ...ORDER_B, version: `b-missing-${run}` };
    await store().arm(S1, target(`changeover-${run}-C`, missing));
    const failed = await eventually(
      'the prepare failure',
      async () => (await store().history(S1)).find((h) => h.changeoverId === `changeover-${run}-C`),
      (h) => h?.prepareError !== undefined,
    );
    expect(failed?.prepareError).toContain(`no recipe ${missing.version}`);
    expect((await store().readBack(S1)).armed).toBeUndefined();
    await store().revert(S1, `changeover-${run}-C`);
  });
});

describe('first article', () => {
  it("waits for every production station's verdict on a part, takes a fail at once, and leaves shadow stations out", async () => {
    const line = { site: 'PLANT1', line: `F${run}` };
    const faConfig = structuredClone(config);
    faConfig.sites
      .find((s) => s.id === line.site)!
      .lines.push({
        ...structuredClone(faConfig.sites[0]!.lines[0]!),
        id: line.line,
        stations: [
          { id: 'S1', mode: 'production' },
          { id: 'S2', mode: 'production' },
          { id: 'S3', mode: 'shadow' },
        ],
      });
    const workOrder = `WF-${run}`;
    let at = Date.parse('2026-12-07T08:00:00Z');
    const inspect = async (partId: string, station: string, result: 'pass' | 'fail', mode = 'production') => {
      at += 1000;
      await pool.query(
        `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                          model_version, recipe_version, inspected_at, payload_sha256, mode)
         VALUES ($1, $2, $3, $4, $5, 'SKU-F', 'LOT-F', $6, $7, 'm@1', 'r@1', $8, $9, $10)`,
        [
          `fa-${run}-${partId}-${station}`,
          line.site,
          line.line,
          station,
          `${run}-${partId}`,
          workOrder,
          result,
          new Date(at).toISOString(),
          'f'.repeat(64),
          mode,
        ],
      );
    };
    await inspect('P1', 'S1', 'pass');
    await inspect('P1', 'S2', 'pass');
    await inspect('P2', 'S1', 'pass'); // not yet at S2
    await inspect('P3', 'S1', 'fail'); // a fail decides the part at once
    await inspect('P2', 'S3', 'fail', 'shadow'); // a shadow station's verdict does not count
    const reader = createFirstArticleReader(pool, faConfig);

    const three = await reader.firstParts(line, workOrder, 3);
    expect(three.map((p) => [p.partId, p.result])).toEqual([
      [`${run}-P1`, 'pass'],
      [`${run}-P3`, 'fail'],
    ]);
    expect(three[0]!.eventIds).toEqual([`fa-${run}-P1-S1`, `fa-${run}-P1-S2`]);
    // Of the first two parts only P1 is decided: P3 is not among the first two.
    expect((await reader.firstParts(line, workOrder, 2)).map((p) => p.partId)).toEqual([`${run}-P1`]);

    await inspect('P2', 'S2', 'pass');
    expect((await reader.firstParts(line, workOrder, 3)).map((p) => [p.partId, p.result])).toEqual([
      [`${run}-P1`, 'pass'],
      [`${run}-P2`, 'pass'],
      [`${run}-P3`, 'fail'],
    ]);

    // A changeover started again after that failed first article counts only the parts received since it started.
    const { rows } = await pool.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const restartedAt = rows[0]!.now.toISOString();
    expect(await reader.firstParts(line, workOrder, 3, restartedAt)).toEqual([]);
    await inspect('P4', 'S1', 'pass');
    await inspect('P4', 'S2', 'pass');
    expect((await reader.firstParts(line, workOrder, 3, restartedAt)).map((p) => [p.partId, p.result])).toEqual([
      [`${run}-P4`, 'pass'],
    ]);
  });
});
