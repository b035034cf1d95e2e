/**
 * A model recall against a deliberately weakened model: a synced plant history, whose parts a camera saw as frames
 * with or without a bright spot (the defect), stored as images by reference. The weakened model version (the same
 * network with its map's weight cut below the threshold) inspected them through the inference worker's own pipeline
 * and passed every one. Then some images are lost, and a model recall of "the weak model between t1 and t2" runs as a
 * real workflow: the corrected model re-inspects what is left, and the lots are marked for the contain stage; signed,
 * the same recall holds the marked lots in the MES and no other. Checked against the ground truth of which frames had
 * a spot and which images are gone, and against the MES simulator's holds.
 */
// First: it makes onnxruntime's typed arrays jest's (see shareProcessTypedArrays in test/support/onnx-builder.ts).
import { SPOT_MODEL, spotFrame, writeBrightSpotModel } from '../support/vision-fixtures';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Pool } from 'pg';
import { createPool } from '../../infra/db/pool';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import { resolveStart } from '../../infra/genealogy/trace-queries';
import { createInferencePipeline } from '../../infra/inference/inference-pipeline';
import { createPgInspectionStore } from '../../infra/inference/pg-inspection-store';
import { generatePlantHistory, type InspectionBody } from '../../infra/simulators/plant-history/plant-history';
import { encodeFramePayload, frameTopic } from '../../infra/vision/frame.schema';
import { createImageFetcher } from '../../infra/vision/image-source';
import { openModelCatalog, type ModelCatalog } from '../../infra/vision/onnx/model-catalog';
import { preprocessImage } from '../../infra/vision/preprocess';
import { applyRecipe } from '../../infra/vision/recipe';
import { createRecipeCache, saveRecipe } from '../../infra/vision/recipe.repository';
import type { RecallStatus } from '../../workflows/contracts';
import { startGenealogyStack, stopGenealogyStack, syncGenealogy } from '../support/genealogy-stack';
import { bearerFor, signerAccount } from '../support/identity';
import { getJson } from '../support/plant';
import { quietLog } from '../support/quiet-log';
import type { HoldfastStack } from '../support/stack';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
/** A plant and site of their own: this run's lot keys, recipes and workflow ids collide with no other test's. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
const site = `MRC-${erpPlant}`;
const history = generatePlantHistory({
  seed: 20261208,
  // Delivery numbers of its own: other tests' histories share this genealogy.
  firstDelivery: 86000001,
  parts: 300,
  lots: 48,
  supplierLots: 4,
  days: 8,
  site,
  erpPlant,
  defectRate: 0,
  splitRate: 0,
  mergeRate: 0,
  // Half the finished lots still in stock, so that a real model recall has lots to hold.
  unshippedShare: 0.5,
});
const truth = history.groundTruth();
const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
const keyOf = (id: string) => lotKey({ erp: { plant: erpPlant, material: byId.get(id)!.material, batch: id } });

const WEAK = { ...SPOT_MODEL, version: '0.9-weak' };
const weakKey = `${WEAK.name}@${WEAK.version}`;
const goodKey = `${SPOT_MODEL.name}@${SPOT_MODEL.version}`;

/**
 * What happens to each chosen lot's parts: which frames show a spot, which images are lost after the weak model saw
 * them, which frames carried their image inline (nothing kept to re-inspect), and which lot the weak model saw after
 * the recall's window.
 */
type Pattern = 'fails' | 'clear' | 'lost-good' | 'lost-spot' | 'fails-and-lost' | 'inline' | 'outside' | 'changed';
const PATTERNS: Pattern[] = [
  'fails',
  'clear',
  'lost-good',
  'lost-spot',
  'fails-and-lost',
  'inline',
  'outside',
  'clear',
  'fails',
  'clear',
  'lost-good',
  'changed',
];

interface PartCase {
  body: InspectionBody;
  pattern: Pattern;
  spot: boolean;
  lost: boolean;
  /** Its image was replaced after inspection (by one with a spot): not the image the model saw. */
  changed: boolean;
  inline: boolean;
  capturedAt: string;
}

let stack: HoldfastStack;
let workDir: string;
let imagesDir: string;
let cases: PartCase[] = [];
/** A component lot that other lots were made from: its failing part must hold them too. */
let componentLot: string;
let window: { from: string; to: string };

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-model-recall-'));
  imagesDir = join(workDir, 'images');
  mkdirSync(imagesDir);
  const modelsDir = join(workDir, 'models');
  writeBrightSpotModel(modelsDir);
  writeBrightSpotModel(modelsDir, WEAK, { gain: 0.4, folder: 'bright-spot-weak' });
  stack = await startGenealogyStack(pool, {
    site,
    erpPlant,
    history,
    configure: (config) => ({
      ...config,
      vision: { ...config.vision, modelsDir, imageSources: [pathToFileURL(`${imagesDir}/`).href] },
      // A real model recall notifies the customers of what it reached: into this run's directory.
      connectors: {
        ...config.connectors,
        'recall-notices': {
          ...config.connectors['recall-notices']!,
          directory: join(workDir, 'notices'),
        },
      },
    }),
  });
  await syncGenealogy(stack);

  // The parts: every part of a finished lot per pattern, and of one component lot that other lots were made from.
  const partsOf = new Map<string, InspectionBody[]>();
  for (const body of history.inspections()) partsOf.set(body.lotId, [...(partsOf.get(body.lotId) ?? []), body]);
  const withParts = (level: string) =>
    truth.lots.filter((l) => l.level === level && (partsOf.get(l.lotId)?.length ?? 0) >= 2).map((l) => l.lotId);
  // The component lot that reaches the fewest lots: the finished lots it does not reach get patterns of their own.
  componentLot = withParts('component')
    .filter((id) => descendants([id]).size > 0)
    .sort((a, b) => descendants([a]).size - descendants([b]).size)[0]!;
  const finished = withParts('finished').filter((id) => !descendants([componentLot]).has(id));
  const chosen: [string, Pattern][] = [
    [componentLot, 'fails'],
    ...finished.slice(0, PATTERNS.length).map((id, n): [string, Pattern] => [id, PATTERNS[n]!]),
  ];
  expect(chosen).toHaveLength(PATTERNS.length + 1);
  const late = (at: string) => new Date(Date.parse(at) + 30 * 86_400_000).toISOString();
  cases = chosen.flatMap(([lotId, pattern]) =>
    partsOf.get(lotId)!.map((body, n) => ({
      body,
      pattern,
      spot:
        (pattern === 'fails' || pattern === 'fails-and-lost' || pattern === 'lost-spot' || pattern === 'outside') &&
        n === 0,
      lost:
        (pattern === 'lost-good' && n === 0) ||
        (pattern === 'lost-spot' && n === 0) ||
        (pattern === 'fails-and-lost' && n === 1),
      changed: pattern === 'changed' && n === 0,
      inline: pattern === 'inline',
      capturedAt: pattern === 'outside' ? late(body.inspectedAt) : body.inspectedAt,
    })),
  );
  const inWindow = cases
    .filter((c) => c.pattern !== 'outside')
    .map((c) => c.capturedAt)
    .sort();
  window = { from: inWindow[0]!, to: inWindow[inWindow.length - 1]! };

  // The weak model is the stations' model while the parts go by.
  const stations = new Map(cases.map((c) => [`${c.body.line}/${c.body.station}/${c.body.sku}`, c.body]));
  for (const b of stations.values()) {
    await saveRecipe(
      pool,
      {
        site,
        line: b.line,
        station: b.station,
        sku: b.sku,
        version: 'weak',
        model: WEAK,
        thresholds: {},
        minDefectAreaPx: 0,
      },
      'test',
    );
  }
  const catalog: ModelCatalog = await openModelCatalog(modelsDir);
  try {
    const pipeline = createInferencePipeline({
      config: stack.config,
      recipes: createRecipeCache(pool),
      models: catalog,
      preprocess: preprocessImage,
      applyRecipe,
      store: createPgInspectionStore(pool, stack.config, quietLog()),
      fetchImage: createImageFetcher({ sources: stack.config.vision.imageSources, timeoutMs: 5000 }),
      log: quietLog(),
    });
    for (const c of cases) {
      const image = await spotFrame(c.spot);
      const file = join(imagesDir, `${c.body.partId}.png`);
      if (!c.inline) writeFileSync(file, image);
      const outcome = await pipeline.handleFrame({
        topic: frameTopic(stack.config.vision.topicPrefix, site, c.body.line, c.body.station),
        payload: encodeFramePayload({
          frameId: `${erpPlant}-${c.body.partId}`,
          partId: c.body.partId,
          lotId: c.body.lotId,
          workOrder: c.body.workOrder,
          sku: c.body.sku,
          capturedAt: c.capturedAt,
          ...(c.inline
            ? { image: { encoding: 'png' as const, data: image.toString('base64') } }
            : { imageRef: pathToFileURL(file).href }),
        }),
        receivedAt: process.hrtime.bigint(),
        divert: false,
      });
      // The weakness: every part passes, spot or not.
      expect(outcome).toMatchObject({ kind: 'inspected', result: { result: 'pass', modelVersion: weakKey } });
    }
    await pipeline.drain();
  } finally {
    await catalog.close();
  }
  // Images lost since (a retention policy, a disk replaced).
  for (const c of cases.filter((x) => x.lost)) rmSync(join(imagesDir, `${c.body.partId}.png`));
  for (const c of cases.filter((x) => x.changed))
    writeFileSync(join(imagesDir, `${c.body.partId}.png`), await spotFrame(true));
}, 300_000);

afterAll(async () => {
  await stopGenealogyStack(stack, site);
  await pool.end();
  rmSync(workDir, { recursive: true, force: true });
});

/** Every lot made from `lots`, through any number of steps, by the ground truth. */
function descendants(lots: string[]): Set<string> {
  const out = new Set<string>();
  const todo = [...lots];
  while (todo.length > 0) {
    for (const child of byId.get(todo.pop()!)!.children) {
      if (!out.has(child.lotId)) {
        out.add(child.lotId);
        todo.push(child.lotId);
      }
    }
  }
  return out;
}

/** What the re-inspection must decide for each lot of the window, from the truth alone. */
function expectedScopeReasons(): Map<string, string> {
  const own = new Map<string, string>();
  for (const c of cases.filter((x) => x.pattern !== 'outside')) {
    const lot = c.body.lotId;
    const part =
      c.inline || c.lost || c.changed ? 'manual-reinspection' : c.spot ? 'reinspection-failed' : 'reinspection-passed';
    const before = own.get(lot);
    const rank = ['reinspection-passed', 'manual-reinspection', 'reinspection-failed'];
    if (before === undefined || rank.indexOf(part) > rank.indexOf(before)) own.set(lot, part);
  }
  const held = [...own].filter(([, r]) => r !== 'reinspection-passed').map(([lot]) => lot);
  const downstream = descendants(held);
  for (const [lot, reason] of own)
    if (reason === 'reinspection-passed' && downstream.has(lot)) own.set(lot, 'made-from-held-lot');
  return own;
}

async function recall(body: object, key: string): Promise<{ recallId: string; status: RecallStatus }> {
  const qe = await bearerFor(
    { username: 'qe-model-recall', roles: ['quality-engineer'], sites: [site] },
    stack.signingKey,
  );
  const res = await stack.api.inject({
    method: 'POST',
    url: '/v1/recalls',
    headers: { ...qe, 'idempotency-key': `${key}-${erpPlant}` },
    payload: body,
  });
  expect(res.statusCode).toBe(202);
  const started = res.json<{ recallId: string; workflowId: string }>();
  const status = (await stack.client.workflow.getHandle(started.workflowId).result()) as RecallStatus;
  return { recallId: started.recallId, status };
}

test('a model recall re-inspects what the weakened model passed, marks and, signed, holds what the good model fails', async () => {
  const scope = { kind: 'model-version', modelVersion: weakKey, site, ...window };
  const { recallId, status } = await recall(
    { site, kind: 'mock', reason: 'model missed spots', scope, correctedModelVersion: goodKey },
    'model-recall',
  );
  expect(status.state).toBe('completed');
  expect(status.stages.map((s) => [s.name, s.state])).toEqual([
    ['trace', 'done'],
    ['classify', 'done'],
    ['reinspect', 'done'],
    ['contain', 'skipped'],
    ['notify', 'skipped'],
    ['reconcile', 'done'],
    ['report', 'done'],
  ]);

  // Per part, against the truth: a spot whose image is kept now fails, a lost or inline image is for a person.
  const inWindow = cases.filter((c) => c.pattern !== 'outside');
  // More than one of the workflow's batches (50 parts each).
  expect(inWindow.length).toBeGreaterThan(50);
  const rows = await pool.query<{
    part_id: string;
    outcome: string;
    defects: { class: string; score: number }[];
    model_version: string | null;
  }>('SELECT part_id, outcome, defects, model_version FROM holdfast.recall_reinspection WHERE recall_id = $1', [
    recallId,
  ]);
  const got = new Map(rows.rows.map((r) => [r.part_id, r]));
  expect([...got.keys()].sort()).toEqual(inWindow.map((c) => c.body.partId).sort());
  for (const c of inWindow) {
    const row = got.get(c.body.partId)!;
    const outcome = c.lost || c.inline || c.changed ? 'no-image' : c.spot ? 'now-fails' : 'still-passes';
    expect([c.body.partId, row.outcome]).toEqual([c.body.partId, outcome]);
    if (outcome === 'now-fails') {
      expect(row.defects).toEqual([
        expect.objectContaining({ class: SPOT_MODEL.defectClass, score: expect.any(Number) }),
      ]);
      expect(row.defects[0]!.score).toBeGreaterThanOrEqual(0.5);
    }
    expect(row.model_version).toBe(outcome === 'no-image' ? null : goodKey);
  }
  const reinspect = status.stages.find((s) => s.name === 'reinspect')!.counts!;
  const count = (o: string) => rows.rows.filter((r) => r.outcome === o).length;
  expect(reinspect).toMatchObject({
    'now-fails': count('now-fails'),
    'still-passes': count('still-passes'),
    'no-image': count('no-image'),
  });
  expect(count('now-fails')).toBeGreaterThan(0);

  // Per lot: the scope is the window's lots, each marked for the contain stage as the truth says.
  const lots = await pool.query<{
    lot_key: string;
    reached_by: string;
    needs_containment: boolean;
    contain_reason: string;
  }>('SELECT lot_key, reached_by, needs_containment, contain_reason FROM holdfast.recall_lot WHERE recall_id = $1', [
    recallId,
  ]);
  const expected = expectedScopeReasons();
  const scopeLots = lots.rows.filter((r) => r.reached_by === 'scope');
  expect(scopeLots.map((r) => r.lot_key).sort()).toEqual([...expected.keys()].map(keyOf).sort());
  for (const [lot, reason] of expected) {
    const row = scopeLots.find((r) => r.lot_key === keyOf(lot))!;
    expect([lot, row.contain_reason, row.needs_containment]).toEqual([lot, reason, reason !== 'reinspection-passed']);
  }
  expect(new Set(expected.values())).toEqual(
    new Set(['reinspection-failed', 'reinspection-passed', 'manual-reinspection']),
  );
  // The lot the weak model saw after the window is not in the scope, and none of its parts was re-inspected.
  const outside = cases.find((c) => c.pattern === 'outside')!.body.lotId;
  expect(scopeLots.map((r) => r.lot_key)).not.toContain(keyOf(outside));
  // What was made from a held lot is held with it; the material that went into the lots is not.
  const held = [...expected].filter(([, r]) => r !== 'reinspection-passed').map(([lot]) => lot);
  const madeFromHeld = new Set([...descendants(held)].map(keyOf));
  for (const r of lots.rows.filter((x) => x.reached_by === 'forward')) {
    expect([r.lot_key, r.contain_reason]).toEqual([
      r.lot_key,
      madeFromHeld.has(r.lot_key) ? 'made-from-held-lot' : 'not-made-from-held-lot',
    ]);
  }
  for (const r of lots.rows.filter((x) => x.reached_by === 'backward')) {
    expect([r.lot_key, r.needs_containment, r.contain_reason]).toEqual([r.lot_key, false, 'upstream-of-scope']);
  }
  expect(lots.rows.filter((r) => r.reached_by === 'forward' && r.needs_containment).length).toBeGreaterThan(0);

  // What the API shows: the counts, the lots a person must look at, the parts page by page.
  const qe = await bearerFor(
    { username: 'qe-model-recall', roles: ['quality-engineer'], sites: [site] },
    stack.signingKey,
  );
  const view = await stack.api.inject({
    method: 'GET',
    url: `/v1/recalls/${recallId}/reinspections?outcome=no-image&limit=2`,
    headers: qe,
  });
  expect(view.statusCode).toBe(200);
  const shown = view.json<{
    correctedModelVersion: string;
    parts: Record<string, number>;
    lots: { lotKey: string; needsContainment: boolean; reason: string }[];
    reinspected: { partId: string; outcome: string }[];
    next: string | null;
  }>();
  expect(shown.correctedModelVersion).toBe(goodKey);
  expect(shown.parts).toEqual({
    'now-fails': count('now-fails'),
    'still-passes': count('still-passes'),
    'no-image': count('no-image'),
  });
  expect(
    shown.lots
      .filter((l) => l.reason === 'manual-reinspection')
      .map((l) => l.lotKey)
      .sort(),
  ).toEqual(
    [...expected]
      .filter(([, r]) => r === 'manual-reinspection')
      .map(([lot]) => keyOf(lot))
      .sort(),
  );
  expect(shown.reinspected.every((p) => p.outcome === 'no-image')).toBe(true);
  expect(shown.reinspected.length).toBe(Math.min(2, count('no-image')));
  if (count('no-image') > 2) expect(shown.next).not.toBeNull();
  const elsewhere = await bearerFor(
    { username: 'qe-elsewhere', roles: ['quality-engineer'], sites: ['PLANT1'] },
    stack.signingKey,
  );
  const hidden = await stack.api.inject({
    method: 'GET',
    url: `/v1/recalls/${recallId}/reinspections`,
    headers: elsewhere,
  });
  expect(hidden.statusCode).toBe(403);

  // For real: the same recall signed by a quality manager holds exactly the marked lots the plant still has, and no
  // lot the corrected model cleared (the MES simulator's own holds).
  const qm = await signerAccount(
    pool,
    { username: `mrc-qm-${erpPlant.toLowerCase()}`, roles: ['quality-manager'], sites: [site] },
    stack.signingKey,
  );
  const posted = await stack.api.inject({
    method: 'POST',
    url: '/v1/recalls',
    headers: { ...qm.headers, 'idempotency-key': `model-real-${erpPlant}` },
    payload: {
      site,
      kind: 'real',
      reason: 'model missed spots',
      scope,
      correctedModelVersion: goodKey,
      signature: qm.signature(),
    },
  });
  expect(posted.statusCode).toBe(202);
  const real = posted.json<{ recallId: string; workflowId: string }>();
  const realStatus = (await stack.client.workflow.getHandle(real.workflowId).result()) as RecallStatus;
  expect(realStatus.state).toBe('completed');
  const stock = new Map(history.stock().map((x) => [x.batch, x.quantity]));
  const batchOf = (key: string) => key.slice(key.lastIndexOf('/') + 1);
  const marked = await pool.query<{ lot_key: string; needs_containment: boolean }>(
    `SELECT lot_key, needs_containment FROM holdfast.recall_lot WHERE recall_id = $1 AND reached_by <> 'backward'`,
    [real.recallId],
  );
  const toHold = marked.rows
    .filter((r) => r.needs_containment && (stock.get(batchOf(r.lot_key)) ?? 0) > 0)
    .map((r) => r.lot_key)
    .sort();
  expect(toHold.length).toBeGreaterThan(0);
  const contained = await pool.query<{ lot_key: string; state: string }>(
    'SELECT lot_key, state FROM holdfast.recall_containment WHERE recall_id = $1',
    [real.recallId],
  );
  expect(contained.rows.map((r) => r.lot_key).sort()).toEqual(toHold);
  const heldInMes = (
    await getJson<{ items: { lotId: string; externalReference: string }[] }>(`${stack.mesUrl}/api/v1/holds`)
  ).items
    .filter((h) => h.externalReference.startsWith(`recall:${real.recallId}:`))
    .map((h) => h.lotId)
    .sort();
  expect(heldInMes).toEqual(
    toHold
      .map(batchOf)
      .filter((id) => byId.get(id)!.level !== 'supplier')
      .sort(),
  );
  const cleared = marked.rows.filter((r) => !r.needs_containment).map((r) => batchOf(r.lot_key));
  expect(cleared.length).toBeGreaterThan(0);
  for (const id of cleared) expect(heldInMes).not.toContain(id);

  // Without a corrected model named, each station's active recipe's model re-inspects: the good one, now active.
  for (const c of cases) {
    await saveRecipe(
      pool,
      {
        site,
        line: c.body.line,
        station: c.body.station,
        sku: c.body.sku,
        version: 'good',
        model: SPOT_MODEL,
        thresholds: {},
        minDefectAreaPx: 0,
      },
      'test',
    );
  }
  const again = await recall({ site, kind: 'mock', reason: 'model missed spots, again', scope }, 'model-recall-active');
  expect(again.status.stages.find((s) => s.name === 'reinspect')!.counts).toMatchObject({
    'now-fails': count('now-fails'),
    'no-image': count('no-image'),
  });
  const marks = await pool.query<{ lot_key: string; contain_reason: string }>(
    `SELECT lot_key, contain_reason FROM holdfast.recall_lot WHERE recall_id = $1 AND reached_by = 'scope'`,
    [again.recallId],
  );
  expect(new Map(marks.rows.map((r) => [r.lot_key, r.contain_reason]))).toEqual(
    new Map(scopeLots.map((r) => [r.lot_key, r.contain_reason])),
  );
}, 240_000);

test('the model-version and SKU scopes take time windows; bad ones are refused naming the field', async () => {
  // The model-version window: the lots the weak model saw in it, not the one it saw later.
  const inWindow = new Set(cases.filter((c) => c.pattern !== 'outside').map((c) => keyOf(c.body.lotId)));
  const all = new Set(cases.map((c) => keyOf(c.body.lotId)));
  const nodes = async (scope: Parameters<typeof resolveStart>[1]) =>
    new Set((await resolveStart(pool, scope)).map((s) => s.node.slice('lot:'.length)));
  expect(await nodes({ kind: 'model-version', modelVersion: weakKey, site, ...window })).toEqual(inWindow);
  expect(await nodes({ kind: 'model-version', modelVersion: weakKey, site })).toEqual(all);
  expect(await nodes({ kind: 'model-version', modelVersion: weakKey, site, from: window.to, to: window.to })).toEqual(
    new Set(cases.filter((c) => c.capturedAt === window.to).map((c) => keyOf(c.body.lotId))),
  );

  // The SKU scope: a material's lots made in the range; the history's whole span has every one of them.
  const material = byId.get(componentLot)!.material;
  const ofMaterial = truth.lots
    .filter((l) => l.material === material && l.level !== 'supplier')
    .map((l) => keyOf(l.lotId));
  const span = { from: '2025-01-01T00:00:00Z', to: '2027-01-01T00:00:00Z' };
  expect([...(await nodes({ kind: 'sku', material, site, ...span }))].sort()).toEqual(ofMaterial.sort());
  expect(
    await nodes({ kind: 'sku', material, site, from: '2020-01-01T00:00:00Z', to: '2020-12-31T00:00:00Z' }),
  ).toEqual(new Set());
  const made = await pool.query<{ at: Date }>(
    'SELECT occurred_at AS at FROM holdfast.material_lot WHERE lot_key = $1',
    [keyOf(componentLot)],
  );
  const at = made.rows[0]!.at.toISOString();
  expect(await nodes({ kind: 'sku', material, site, from: at, to: at })).toContain(keyOf(componentLot));

  // Through the API: the trace route takes the same windows, and a recall's request is checked field by field.
  const qe = await bearerFor(
    { username: 'qe-model-recall', roles: ['quality-engineer'], sites: [site] },
    stack.signingKey,
  );
  const trace = await stack.api.inject({
    method: 'GET',
    url: `/v1/trace/forward?by=sku&material=${material}&site=${site}&from=${span.from}&to=${span.to}&limit=1`,
    headers: qe,
  });
  expect(trace.statusCode).toBe(200);
  expect(
    trace
      .json<{ start: { node: string }[] }>()
      .start.map((s) => s.node.slice(4))
      .sort(),
  ).toEqual(ofMaterial.sort());
  const badTrace = await stack.api.inject({
    method: 'GET',
    url: `/v1/trace/forward?by=model-version&modelVersion=${weakKey}&from=${window.to}&to=${window.from}`,
    headers: qe,
  });
  expect([badTrace.statusCode, badTrace.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)]).toEqual([
    400,
    ['querystring.to'],
  ]);
  const refused = async (body: object) => {
    const res = await stack.api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...qe, 'idempotency-key': `bad-${randomBytes(4).toString('hex')}` },
      payload: { site, kind: 'mock', reason: 'bad', ...body },
    });
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    return [res.statusCode, res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)];
  };
  const model = { kind: 'model-version', modelVersion: weakKey };
  expect(await refused({ scope: { ...model, from: window.to, to: window.from } })).toEqual([400, ['scope.to']]);
  expect(await refused({ scope: { ...model, from: 'yesterday' } })).toEqual([400, ['scope.from']]);
  expect(await refused({ scope: { kind: 'sku', material, from: span.from } })).toEqual([400, ['scope.to']]);
  expect(await refused({ scope: model, correctedModelVersion: 'bright-spot@7' })).toEqual([
    400,
    ['correctedModelVersion'],
  ]);
  expect(await refused({ scope: model, correctedModelVersion: weakKey })).toEqual([400, ['correctedModelVersion']]);
  expect(await refused({ scope: { kind: 'sku', material, ...span }, correctedModelVersion: goodKey })).toEqual([
    400,
    ['correctedModelVersion'],
  ]);
});
