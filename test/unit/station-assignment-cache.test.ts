/**
 * The inference worker's copy of the stations' assignments (infra/inference/station-assignment-cache.ts), with a fake
 * store and a fake recipe table: an armed assignment is prepared (model loaded warm, the loaded file's sha256
 * reported), one that cannot be prepared is reported failed, the boundary's answer wins over a load that was issued
 * before it committed, and frames of other orders are refused while the activation commits.
 */
import type { StationRef } from '../../activities/ports';
import type pg from 'pg';
import type { InferenceModel } from '../../infra/inference/ports';
import { createStationAssignmentCache } from '../../infra/inference/station-assignment-cache';
import { decideFrame } from '../../infra/inference/station-decision';
import { ModelManifest } from '../../infra/vision/contracts';
import type {
  StationAssignment,
  StationAssignments,
  StationAssignmentStore,
} from '../../infra/vision/station-assignment.store';
import { captureLog } from '../support/quiet-log';

const S1: StationRef = { site: 'PLANT1', line: 'L1', station: 'S1' };
const SHA = 'c'.repeat(64);

const manifest = ModelManifest.parse({
  name: 'model-b',
  version: '2',
  file: 'm.onnx',
  sha256: SHA,
  input: {
    name: 'image',
    layout: 'NCHW',
    shape: [-1, 3, 2, 2],
    colorSpace: 'rgb',
    normalisation: { scale: 1, mean: [0, 0, 0], std: [1, 1, 1] },
  },
  decoder: { kind: 'anomaly-map', scoreOutput: 's', mapOutput: 'm', pixelThreshold: 0.5 },
  classes: ['anomaly'],
  thresholds: {},
});
const model: InferenceModel = { key: 'model-b@2', manifest, infer: async () => [] };

function assignment(over: Partial<StationAssignment>): StationAssignment {
  return {
    changeoverId: 'co-B',
    workOrder: 'WO-B',
    sku: 'SKU-B',
    recipeVersion: 'B@1',
    model: { name: 'model-b', version: '2' },
    state: 'armed',
    armedAt: '2026-12-07T00:00:00.000Z',
    ...over,
  };
}

/** holdfast.vision_recipe as recipeByVersion reads it: every version asked for exists except `missing`. */
const recipePool = {
  options: {},
  async query(_sql: string, params: unknown[]) {
    const [site, line, station, sku, version] = params as string[];
    if (version === 'missing') return { rows: [] };
    return {
      rows: [
        {
          site,
          line,
          station,
          sku,
          version,
          model_name: 'model-b',
          model_version: '2',
          thresholds: {},
          roi: null,
          min_defect_area_px: 0,
          first_article_parts: null,
        },
      ],
    };
  },
} as unknown as pg.Pool;

function fakeStore(initial: StationAssignments) {
  let state = initial;
  const prepared: { changeoverId: string; modelKey: string; modelSha256: string }[] = [];
  const failures: { changeoverId: string; error: string }[] = [];
  let releaseActivation: (() => void) | undefined;
  /** While set, a load reads the state when asked but answers only once the gate opens. */
  let gate: Promise<void> | undefined;
  const store = {
    async load() {
      const snapshot = structuredClone(state);
      await gate;
      return [snapshot];
    },
    async reportPrepared(_s: StationRef, changeoverId: string, loaded: { modelKey: string; modelSha256: string }) {
      prepared.push({ changeoverId, ...loaded });
    },
    async reportPrepareFailed(_s: StationRef, changeoverId: string, error: string) {
      failures.push({ changeoverId, error });
    },
    async activate(_s: StationRef, changeoverId: string) {
      await new Promise<void>((resolve) => (releaseActivation = resolve));
      state = { station: S1, active: { ...state.armed!, changeoverId, state: 'active', activatedAt: 'now' } };
      return { activated: true, assignments: structuredClone(state) };
    },
  } as unknown as StationAssignmentStore;
  return {
    store,
    prepared,
    failures,
    set: (next: StationAssignments) => (state = next),
    release: () => releaseActivation?.(),
    holdLoads() {
      let open!: () => void;
      gate = new Promise((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

const flush = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('station assignment cache', () => {
  it('loads an armed assignment warm and reports the model it loaded with its sha256', async () => {
    const fake = fakeStore({ station: S1, armed: assignment({}) });
    const loads: string[] = [];
    const cache = createStationAssignmentCache({
      pool: recipePool,
      store: fake.store,
      models: { get: async (name, version) => (loads.push(`${name}@${version}`), model) },
      log: captureLog(),
    });
    await cache.refresh();
    await flush();
    expect(loads).toEqual(['model-b@2']);
    expect(fake.prepared).toEqual([{ changeoverId: 'co-B', modelKey: 'model-b@2', modelSha256: SHA }]);
    // Loaded again (a periodic refresh): prepared once per arm.
    await cache.refresh();
    await flush();
    expect(fake.prepared).toHaveLength(1);
    expect(cache.current(S1)?.armed).toMatchObject({ workOrder: 'WO-B', recipe: { version: 'B@1' } });
    await cache.close();
  });

  it("loads the active order's model at start, so its next frame does not wait for it", async () => {
    const active = assignment({ state: 'active', activatedAt: '2026-12-07T01:00:00.000Z' });
    const fake = fakeStore({ station: S1, active });
    const loads: string[] = [];
    const cache = createStationAssignmentCache({
      pool: recipePool,
      store: fake.store,
      models: { get: async (name, version) => (loads.push(`${name}@${version}`), model) },
      log: captureLog(),
    });
    await cache.refresh();
    await cache.refresh();
    expect(loads).toEqual(['model-b@2']);
    // Nothing is armed: nothing is reported.
    expect(fake.prepared).toEqual([]);
    await cache.close();
  });

  it('reports why it could not prepare: a recipe version the station does not have, a model that does not load', async () => {
    const noRecipe = fakeStore({ station: S1, armed: assignment({ recipeVersion: 'missing' }) });
    const log = captureLog();
    const a = createStationAssignmentCache({
      pool: recipePool,
      store: noRecipe.store,
      models: { get: async () => model },
      log,
    });
    await a.refresh();
    await flush();
    expect(noRecipe.prepared).toEqual([]);
    expect(noRecipe.failures).toEqual([
      { changeoverId: 'co-B', error: 'no recipe missing for SKU SKU-B at this station' },
    ]);
    expect(log.lines).toContainEqual(
      expect.objectContaining({ level: 'warn', msg: 'station not armed: preparing failed' }),
    );

    const noModel = fakeStore({ station: S1, armed: assignment({}) });
    const b = createStationAssignmentCache({
      pool: recipePool,
      store: noModel.store,
      models: {
        get: async () => {
          throw new Error('no model model-b@2 in models');
        },
      },
      log: captureLog(),
    });
    await b.refresh();
    await flush();
    expect(noModel.failures).toEqual([{ changeoverId: 'co-B', error: 'no model model-b@2 in models' }]);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses other orders while the boundary commits, and keeps the boundary over an older load', async () => {
    const old = assignment({ changeoverId: 'co-A', workOrder: 'WO-A', sku: 'SKU-A', state: 'active' });
    const fake = fakeStore({ station: S1, active: old, armed: assignment({}) });
    const cache = createStationAssignmentCache({
      pool: recipePool,
      store: fake.store,
      models: { get: async () => model },
      log: captureLog(),
    });
    await cache.refresh();
    const armed = cache.current(S1)!.armed!;
    const activation = cache.activate(S1, armed, { frameId: 'f-1', model });
    // Before the commit: the old order is refused, the new one waits for the same activation.
    expect(decideFrame(cache.current(S1), { workOrder: 'WO-A', sku: 'SKU-A' }).kind).toBe('mismatch');
    expect(cache.activate(S1, armed, { frameId: 'f-2', model })).toBe(activation);
    // A load issued before the commit answers with the old state after it; it must not undo the switch.
    const openLoads = fake.holdLoads();
    const stale = cache.refresh();
    fake.release();
    const after = await activation;
    openLoads();
    await stale;
    expect(after.active?.changeoverId).toBe('co-B');
    expect(cache.current(S1)).toMatchObject({ active: { changeoverId: 'co-B' } });
    expect(cache.current(S1)?.armed).toBeUndefined();
    expect(decideFrame(cache.current(S1), { workOrder: 'WO-A', sku: 'SKU-A' }).kind).toBe('mismatch');
    expect(decideFrame(cache.current(S1), { workOrder: 'WO-B', sku: 'SKU-B' }).kind).toBe('active');
    await cache.close();
  });
});
