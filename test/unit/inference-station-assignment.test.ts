/**
 * Which recipe a frame is inspected under once changeovers assign a station (docs/changeover.md#holdfast-stations):
 * a station never changed over keeps each frame's SKU recipe, a frame of the active order gets the active recipe, the
 * first frame of the armed order is the boundary (activated once, however many frames race), and any other frame is
 * refused `recipe-mismatch`, recorded, counted and alarmed. The pipeline runs with fakes for everything but the
 * decision and the recipe's verdict.
 */
import { loadConfig } from '../../infra/config/load';
import { createInferencePipeline, type FrameOutcome } from '../../infra/inference/inference-pipeline';
import type {
  AssignedRecipe,
  InferenceModel,
  InspectionStore,
  PipelineMetrics,
  StationAssignmentSource,
  StationAssignmentView,
} from '../../infra/inference/ports';
import { decideFrame } from '../../infra/inference/station-decision';
import type { InspectionResult } from '../../infra/ingest/inspection.schema';
import { ModelManifest, type Recipe } from '../../infra/vision/contracts';
import { encodeFramePayload, frameTopic, type StationAddress } from '../../infra/vision/frame.schema';
import { applyRecipe } from '../../infra/vision/recipe';
import { captureLog } from '../support/quiet-log';

const S1: StationAddress = { site: 'PLANT1', line: 'L1', station: 'S1' };
const config = loadConfig();
const OLD = { workOrder: 'WO-OLD', sku: 'SKU-A' };
const NEW = { workOrder: 'WO-NEW', sku: 'SKU-B' };

function manifestOf(name: string, version: string) {
  return ModelManifest.parse({
    name,
    version,
    file: 'm.onnx',
    sha256: (name.length.toString(16) + version)
      .padEnd(64, 'a')
      .slice(0, 64)
      .replace(/[^0-9a-f]/g, 'b'),
    input: {
      name: 'image',
      layout: 'NCHW',
      shape: [-1, 3, 2, 2],
      colorSpace: 'rgb',
      normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
    },
    decoder: { kind: 'anomaly-map', scoreOutput: 's', mapOutput: 'm', pixelThreshold: 0.5 },
    classes: ['anomaly'],
    thresholds: { anomaly: 0.5 },
  });
}

function recipe(sku: string, version: string, model = { name: 'model-a', version: '1' }): Recipe {
  return { ...S1, sku, version, model, thresholds: {}, minDefectAreaPx: 0 };
}

function assigned(
  order: { workOrder: string; sku: string },
  changeoverId: string,
  version: string,
  model = { name: 'model-b', version: '2' },
): AssignedRecipe {
  const r = recipe(order.sku, version, model);
  return { changeoverId, ...order, recipeVersion: version, model: r.model, recipe: r };
}

/** Stations' assignments in memory; activation is slow enough for frames to race it, and counted. */
class FakeStations implements StationAssignmentSource {
  view: StationAssignmentView | undefined;
  activations: { changeoverId: string; frameId: string; modelKey: string }[] = [];
  /** What the activation finds in the database (default: the armed one becomes active). */
  onActivate?: (armed: AssignedRecipe) => StationAssignmentView;
  private running?: Promise<StationAssignmentView>;

  current() {
    return this.view;
  }

  activate(_station: StationAddress, armed: AssignedRecipe, boundary: { frameId: string; model: InferenceModel }) {
    this.running ??= (async () => {
      this.view = { ...this.view, switching: true };
      await new Promise((r) => setTimeout(r, 20));
      this.activations.push({
        changeoverId: armed.changeoverId,
        frameId: boundary.frameId,
        modelKey: boundary.model.key,
      });
      this.view = this.onActivate ? this.onActivate(armed) : { active: armed };
      return this.view;
    })().finally(() => (this.running = undefined));
    return this.running;
  }
}

function rig(opts: { failModel?: string } = {}) {
  const stations = new FakeStations();
  const stored: InspectionResult[] = [];
  const refusals: { frameId?: string; reason: string }[] = [];
  const refusedCounts: string[] = [];
  const mismatchAlarms: StationAddress[] = [];
  const log = captureLog();
  const store: InspectionStore = {
    async ingest(results) {
      stored.push(...results);
      return results.map(() => 'accepted' as const);
    },
    async recordRejectedFrame(r) {
      refusals.push({ ...(r.frameId ? { frameId: r.frameId } : {}), reason: r.reason });
    },
  };
  const metrics: PipelineMetrics = {
    frameReceived: () => undefined,
    frameInspected: () => undefined,
    frameRefused: (reason) => refusedCounts.push(reason),
    recipeMismatch: (station) => mismatchAlarms.push(station),
    frameDeferred: () => undefined,
    rejectWritten: () => undefined,
    rejectFailed: () => undefined,
  };
  const skuRecipes = new Map([[OLD.sku, recipe(OLD.sku, 'A@1')]]);
  const pipeline = createInferencePipeline({
    config,
    recipes: { active: async (key) => skuRecipes.get(key.sku) },
    stations,
    models: {
      async get(name, version) {
        if (name === opts.failModel) throw new Error(`no model ${name}@${version}`);
        const model: InferenceModel = {
          key: `${name}@${version}`,
          manifest: manifestOf(name, version),
          infer: async (items) => items.map(() => []),
        };
        return model;
      },
    },
    preprocess: async () => ({ tensor: new Float32Array(12), sourceWidth: 2, sourceHeight: 2 }),
    applyRecipe,
    store,
    log,
    metrics,
  });
  let n = 0;
  const frame = (order: { workOrder: string; sku: string }): Promise<FrameOutcome> => {
    n += 1;
    return pipeline.handleFrame({
      topic: frameTopic(config.vision.topicPrefix, S1.site, S1.line, S1.station),
      payload: encodeFramePayload({
        frameId: `f-${n}`,
        partId: `P-${n}`,
        lotId: 'LOT-1',
        ...order,
        capturedAt: new Date().toISOString(),
        image: { encoding: 'raw', pixelFormat: 'RGB8', width: 2, height: 2, data: Buffer.alloc(12).toString('base64') },
      }),
      receivedAt: process.hrtime.bigint(),
      divert: false,
    });
  };
  return { pipeline, stations, stored, refusals, refusedCounts, mismatchAlarms, log, frame };
}

const recipeOf = (o: FrameOutcome) =>
  o.kind === 'inspected' ? o.result.recipeVersion : `refused:${o.kind === 'refused' ? o.reason : o.kind}`;

describe('decideFrame', () => {
  const active = assigned(OLD, 'co-1', 'A@2');
  const armed = assigned(NEW, 'co-2', 'B@1');

  it('leaves a station without assignments to the frame SKU recipe', () => {
    expect(decideFrame(undefined, OLD)).toEqual({ kind: 'unassigned' });
    expect(decideFrame({}, NEW)).toEqual({ kind: 'unassigned' });
  });

  it('keeps a station armed before its first changeover on SKU recipes until the boundary', () => {
    expect(decideFrame({ armed }, OLD)).toEqual({ kind: 'unassigned' });
    expect(decideFrame({ armed }, NEW)).toEqual({ kind: 'boundary', assignment: armed });
  });

  it('gives the active order its recipe and makes the armed order the boundary', () => {
    expect(decideFrame({ active, armed }, OLD)).toEqual({ kind: 'active', assignment: active });
    expect(decideFrame({ active, armed }, NEW)).toEqual({ kind: 'boundary', assignment: armed });
  });

  it('refuses another order, and the right order with another SKU', () => {
    const other = decideFrame({ active }, { workOrder: 'WO-X', sku: OLD.sku });
    expect(other.kind).toBe('mismatch');
    expect(other.kind === 'mismatch' && other.detail).toContain('the station runs WO-OLD (SKU SKU-A, recipe A@2)');
    expect(decideFrame({ active }, { workOrder: OLD.workOrder, sku: 'SKU-Z' }).kind).toBe('mismatch');
  });

  it('refuses the old order while the station is switching', () => {
    expect(decideFrame({ active, armed, switching: true }, OLD).kind).toBe('mismatch');
    expect(decideFrame({ active, armed, switching: true }, NEW).kind).toBe('boundary');
  });
});

describe('the pipeline at a changed-over station', () => {
  it('inspects every frame under its SKU recipe while the station has no assignment', async () => {
    const r = rig();
    expect(recipeOf(await r.frame(OLD))).toBe('A@1');
    expect(recipeOf(await r.frame(NEW))).toBe('refused:no-recipe');
  });

  it('switches at the first frame of the armed order, once, even when frames race', async () => {
    const r = rig();
    r.stations.view = { active: assigned(OLD, 'co-1', 'A@2'), armed: assigned(NEW, 'co-2', 'B@1') };

    expect(recipeOf(await r.frame(OLD))).toBe('A@2');
    // Two frames of the new order at once: the first is the boundary, the second waits for the same activation.
    const [first, second] = await Promise.all([r.frame(NEW), r.frame(NEW)]);
    expect([recipeOf(first), recipeOf(second)]).toEqual(['B@1', 'B@1']);
    expect(r.stations.activations).toEqual([{ changeoverId: 'co-2', frameId: 'f-2', modelKey: 'model-b@2' }]);
    expect(first.kind === 'inspected' && first.result.modelVersion).toBe('model-b@2');

    // After the switch the old order is refused, recorded, counted and alarmed; never inspected.
    const late = await r.frame(OLD);
    expect(late).toMatchObject({ kind: 'refused', reason: 'recipe-mismatch' });
    expect(r.refusals).toEqual([
      { frameId: 'f-4', reason: expect.stringMatching(/^recipe-mismatch: frame of work order WO-OLD/) },
    ]);
    expect(r.refusedCounts).toEqual(['recipe-mismatch']);
    expect(r.mismatchAlarms).toEqual([S1]);
    expect(r.log.lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        meta: expect.objectContaining({ alarm: 'recipe-mismatch', station: 'S1' }),
      }),
    );
    expect(r.stored.map((s) => [s.workOrder, s.recipeVersion])).toEqual([
      ['WO-OLD', 'A@2'],
      ['WO-NEW', 'B@1'],
      ['WO-NEW', 'B@1'],
    ]);
    expect(r.pipeline.stats().rejectedFrames).toEqual({ 'recipe-mismatch': 1 });
  });

  it('refuses frames of another order than the one active', async () => {
    const r = rig();
    r.stations.view = { active: assigned(NEW, 'co-2', 'B@1') };
    expect(recipeOf(await r.frame({ workOrder: 'WO-OTHER', sku: NEW.sku }))).toBe('refused:recipe-mismatch');
    expect(recipeOf(await r.frame({ workOrder: NEW.workOrder, sku: 'SKU-Z' }))).toBe('refused:recipe-mismatch');
    expect(recipeOf(await r.frame(NEW))).toBe('B@1');
  });

  it('does not switch a station whose armed model does not load', async () => {
    const r = rig({ failModel: 'model-b' });
    r.stations.view = {
      active: assigned(OLD, 'co-1', 'A@2', { name: 'model-a', version: '1' }),
      armed: assigned(NEW, 'co-2', 'B@1'),
    };
    expect(recipeOf(await r.frame(NEW))).toBe('refused:model');
    expect(r.stations.activations).toEqual([]);
    expect(recipeOf(await r.frame(OLD))).toBe('A@2');
  });

  it('decides again when the changeover was reverted while the boundary frame waited', async () => {
    const r = rig();
    const old = assigned(OLD, 'co-1', 'A@2');
    r.stations.view = { active: old, armed: assigned(NEW, 'co-2', 'B@1') };
    r.stations.onActivate = () => ({ active: old });
    expect(recipeOf(await r.frame(NEW))).toBe('refused:recipe-mismatch');
    expect(recipeOf(await r.frame(OLD))).toBe('A@2');
  });
});
