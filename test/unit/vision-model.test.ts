/**
 * The ONNX runtime side of the inference worker: the test model builder itself, loading a model by its manifest (and
 * refusing the wrong file, names or shapes), batching, and the catalog that serves dropped-in models side by side:
 * swapping in another model is a manifest, an .onnx file and a recipe, no code.
 */
// First: it makes onnxruntime's outputs readable under jest (see shareProcessTypedArrays).
import { attr, OnnxModelBuilder, writeTestModel, type TestManifestFields } from '../support/onnx-builder';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Recipe } from '../../infra/vision/contracts';
import { openModelCatalog } from '../../infra/vision/onnx/model-catalog';
import { loadModel, ModelLoadError, type InferenceItem, type VisionModel } from '../../infra/vision/onnx/model';
import { applyRecipe } from '../../infra/vision/recipe';

let workDir: string;
beforeEach(() => {
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-vision-model-'));
});
afterEach(() => {
  rmSync(workDir, { recursive: true, force: true });
});

const opened: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((m) => m.close()));
  jest.restoreAllMocks();
});
function owned<T extends { close(): Promise<void> }>(resource: T): T {
  opened.push(resource);
  return resource;
}

/** Where run() and release() live: the session class is typed as a factory, but it is a class at runtime. */
const sessionPrototype = (ort.InferenceSession as unknown as { prototype: ort.InferenceSession }).prototype;

async function expectLoadError(manifestPath: string): Promise<ModelLoadError> {
  try {
    owned(await loadModel(manifestPath));
  } catch (err) {
    expect(err).toBeInstanceOf(ModelLoadError);
    return err as ModelLoadError;
  }
  throw new Error('expected loadModel to refuse the model');
}

// ---------------------------------------------------------------------------------------------------------------
// Models and inputs. The anomaly model's map is the per-pixel channel mean of its input, so a bright square is an
// anomaly exactly there.

const SIZE = 32;

function anomalyBytes(batch: number | string = 'N', names = { input: 'input', map: 'anomaly_map' }): Uint8Array {
  return new OnnxModelBuilder('channel-mean-anomaly')
    .input(names.input, 'float32', [batch, 3, SIZE, SIZE])
    .output('pred_score', 'float32', [batch])
    .output(names.map, 'float32', [batch, 1, SIZE, SIZE])
    .node('ReduceMean', [names.input], [names.map], { axes: [1], keepdims: 1 })
    .node('ReduceMax', [names.map], ['pred_score'], { axes: [1, 2, 3], keepdims: 0 })
    .toBytes();
}

const rgbInput = (name: string, batch = -1): TestManifestFields['input'] => ({
  name,
  layout: 'NCHW',
  shape: [batch, 3, SIZE, SIZE],
  colorSpace: 'rgb',
  normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
});

const anomalyManifest = (batch = -1, mapOutput = 'anomaly_map'): TestManifestFields => ({
  input: rgbInput('input', batch),
  decoder: { kind: 'anomaly-map', scoreOutput: 'pred_score', mapOutput, pixelThreshold: 0.5, defectClass: 'spot' },
  classes: ['spot'],
  thresholds: { spot: 0.6 },
});

/** A YOLOv8-shaped model: two fixed detections whose class scores scale with the image's mean brightness. */
function yoloBytes(): Uint8Array {
  // Rows cx, cy, w, h, scratch, dent; anchors: a scratch at (8, 8) 6 x 6 and a dent at (24, 20) 10 x 4.
  const boxes = [8, 24, 8, 20, 6, 10, 6, 4, 0, 0, 0, 0];
  const scores = [0, 0, 0, 0, 0, 0, 0, 0, 1.8, 0, 0, 1.5];
  return new OnnxModelBuilder('brightness-yolo')
    .input('images', 'float32', ['N', 3, SIZE, SIZE])
    .output('output0', 'float32', ['N', 6, 2])
    .initializer('box_rows', 'float32', [1, 6, 2], boxes)
    .initializer('score_rows', 'float32', [1, 6, 2], scores)
    .initializer('per_item', 'int64', [3], [-1, 1, 1])
    .node('ReduceMean', ['images'], ['mean4d'], { axes: [1, 2, 3], keepdims: 1 })
    .node('Reshape', ['mean4d', 'per_item'], ['mean'])
    .node('Mul', ['mean', 'score_rows'], ['scaled'])
    .node('Add', ['scaled', 'box_rows'], ['output0'])
    .toBytes();
}

const yoloManifest: TestManifestFields = {
  input: rgbInput('images'),
  decoder: { kind: 'yolo-detection', output: 'output0', iouThreshold: 0.45, maxDetections: 10 },
  classes: ['scratch', 'dent'],
  thresholds: { scratch: 0.5, dent: 0.5 },
};

/** A CHW input in 0..1: dark, with a white square [x, x + side) x [y, y + side) in input pixels. */
function squareInput(x: number, y: number, side: number, background = 0): Float32Array {
  const plane = SIZE * SIZE;
  const t = new Float32Array(3 * plane).fill(background);
  for (let c = 0; c < 3; c++) {
    for (let yy = y; yy < y + side; yy++) t.fill(1, c * plane + yy * SIZE + x, c * plane + yy * SIZE + x + side);
  }
  return t;
}

/** The frame is 64 x 64 and stretched onto the 32 x 32 input: 2 frame pixels per input pixel. */
const item = (tensor: Float32Array): InferenceItem => ({ tensor, geometry: { sourceWidth: 64, sourceHeight: 64 } });

// ---------------------------------------------------------------------------------------------------------------

describe('ONNX test model builder', () => {
  it('writes a model onnxruntime-node loads and runs: symbolic batch, initializers, int, float and ints attributes', async () => {
    const bytes = new OnnxModelBuilder('builder-proof')
      .input('x', 'float32', ['N', 2, 3])
      .output('y', 'float32', ['N', 3, 2])
      .initializer('offset', 'float32', [3], [1, 2, 3])
      .node('Add', ['x', 'offset'], ['shifted'])
      .node('LeakyRelu', ['shifted'], ['leaky'], { alpha: attr.float(0.5) })
      .node('Transpose', ['leaky'], ['y'], { perm: [0, 2, 1] })
      .toBytes();
    const created = await ort.InferenceSession.create(bytes);
    const session = owned({ s: created, close: () => created.release() });

    expect(session.s.inputMetadata).toEqual([{ name: 'x', isTensor: true, type: 'float32', shape: ['N', 2, 3] }]);
    expect(session.s.outputNames).toEqual(['y']);
    const x = Float32Array.from([-5, 0, 1, 2, -4, 0, 0, 0, 0, 1, 1, 1]);
    const { y } = await session.s.run({ x: new ort.Tensor('float32', x, [2, 2, 3]) });
    expect(y!.dims).toEqual([2, 3, 2]);
    // item 0: x + offset = [[-4, 2, 4], [3, -2, 3]] -> leaky (negatives halved) -> transposed
    expect(Array.from(y!.data as Float32Array)).toEqual([-2, 3, 2, -1, 4, 3, 1, 2, 2, 3, 3, 4]);
  });

  it('writes a manifest with the real sha256 next to the model, as an integrator drops one in', () => {
    const bytes = anomalyBytes();
    const manifestPath = writeTestModel(workDir, 'bright-spot', '3', bytes, anomalyManifest());

    expect(readdirSync(join(workDir, 'bright-spot')).sort()).toEqual(['bright-spot-3.onnx', 'manifest.json']);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { sha256: string; file: string };
    expect(manifest.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(manifest.file).toBe('bright-spot-3.onnx');
  });
});

describe('loadModel', () => {
  it('serves a model described by its manifest: key, input size, dynamic batch, candidates in frame pixels', async () => {
    const model = owned(
      await loadModel(writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest())),
    );

    expect(model.key).toBe('bright-spot@3');
    expect(model.inputSize).toEqual({ width: SIZE, height: SIZE });
    expect(model.batch).toBe('dynamic');
    const results = await model.infer([item(squareInput(4, 6, 5)), item(squareInput(0, 0, 0))]);
    expect(results).toEqual([[{ class: 'spot', score: 1, box: { x: 8, y: 12, width: 10, height: 10 } }], []]);
  });

  it('maps boxes back through the roi as cropped: rounded and clipped to the frame', async () => {
    const model = owned(
      await loadModel(writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest())),
    );
    // The roi reaches 32 px past a 96 x 96 frame: the crop is (32, 32) 64 x 64, 2 frame pixels per input pixel.
    const geometry = { sourceWidth: 96, sourceHeight: 96, roi: { x: 31.6, y: 32, width: 96, height: 96 } };

    const [candidates] = await model.infer([{ tensor: squareInput(4, 6, 5), geometry }]);
    expect(candidates).toEqual([{ class: 'spot', score: 1, box: { x: 40, y: 44, width: 10, height: 10 } }]);
    await expect(
      model.infer([
        { tensor: squareInput(4, 6, 5), geometry: { ...geometry, roi: { x: 96, y: 0, width: 10, height: 10 } } },
      ]),
    ).rejects.toThrow('roi 10x10 at (96, 0) lies outside the 96x96 frame');
  });

  it('refuses a file whose sha256 is not the manifest one, naming both hashes', async () => {
    const manifestPath = writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest());
    const other = yoloBytes();
    writeFileSync(join(workDir, 'bright-spot', 'bright-spot-3.onnx'), other);

    const err = await expectLoadError(manifestPath);
    const actual = createHash('sha256').update(other).digest('hex');
    const expected = createHash('sha256').update(anomalyBytes()).digest('hex');
    expect(err.message).toContain(`has sha256 ${actual} but the manifest expects ${expected}`);
  });

  it('refuses a manifest whose decoder names an output the graph does not have, listing the graph outputs', async () => {
    const manifestPath = writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest(-1, 'heatmap'));

    const err = await expectLoadError(manifestPath);
    expect(err.message).toContain(
      'output "heatmap" named by the anomaly-map decoder is not in the graph, whose outputs are [pred_score, anomaly_map]',
    );
  });

  it('refuses an input name the graph does not have, and graph shapes that contradict the manifest', async () => {
    const misnamed: TestManifestFields = {
      ...yoloManifest,
      input: rgbInput('image'),
      classes: ['scratch', 'dent', 'crack'],
    };
    const err = await expectLoadError(writeTestModel(workDir, 'parts-yolo', '1', yoloBytes(), misnamed));
    expect(err.message).toContain('model parts-yolo@1');
    expect(err.message).toContain('input "image" is not in the graph, whose inputs are [images]');
    expect(err.message).toContain('output0 is [N, 6, 2]; expected [N, 7, A] (4 box rows + one per class)');

    const resized: TestManifestFields = { ...yoloManifest, input: { ...rgbInput('images'), shape: [-1, 3, 64, SIZE] } };
    const err2 = await expectLoadError(writeTestModel(workDir, 'parts-yolo', '2', yoloBytes(), resized));
    expect(err2.message).toContain('input "images" dimension 2 is 32 in the graph but 64 in the manifest');
  });

  it('lists every schema problem of an invalid manifest in one error', async () => {
    const dir = join(workDir, 'broken');
    mkdirSync(dir);
    const manifestPath = join(dir, 'manifest.json');
    writeFileSync(
      manifestPath,
      JSON.stringify({
        name: 'broken',
        version: '1',
        file: 'broken.onnx',
        sha256: 'not-a-hash',
        input: rgbInput('input'),
        decoder: { kind: 'segmentation', output: 'mask' },
        classes: [],
        thresholds: {},
      }),
    );

    const err = await expectLoadError(manifestPath);
    expect(err.message).toContain(`model manifest ${manifestPath} is invalid:`);
    expect(err.message).toMatch(/- sha256: /);
    expect(err.message).toMatch(/- decoder\.kind: /);
    expect(err.message).toMatch(/- classes: /);
  });

  it('runs a dynamic-batch graph once per call and a fixed-batch graph once per batch, with the same results', async () => {
    const dynamic = owned(
      await loadModel(writeTestModel(workDir, 'dynamic', '1', anomalyBytes('N'), anomalyManifest())),
    );
    const single = owned(await loadModel(writeTestModel(workDir, 'single', '1', anomalyBytes(1), anomalyManifest(1))));
    // A fixed batch of 2 with 3 items: two runs, the second padded with a blank image whose result is dropped.
    const pairs = owned(await loadModel(writeTestModel(workDir, 'pairs', '1', anomalyBytes(2), anomalyManifest(2))));
    expect([dynamic.batch, single.batch, pairs.batch]).toEqual(['dynamic', 1, 2]);

    const items = [item(squareInput(0, 0, 4)), item(squareInput(20, 10, 8)), item(squareInput(10, 24, 6))];
    const expected = [
      [{ class: 'spot', score: 1, box: { x: 0, y: 0, width: 8, height: 8 } }],
      [{ class: 'spot', score: 1, box: { x: 40, y: 20, width: 16, height: 16 } }],
      [{ class: 'spot', score: 1, box: { x: 20, y: 48, width: 12, height: 12 } }],
    ];
    const run = jest.spyOn(sessionPrototype, 'run');
    const runsFor = async (model: VisionModel): Promise<number> => {
      run.mockClear();
      expect(await model.infer(items)).toEqual(expected);
      return run.mock.calls.length;
    };

    expect(await runsFor(dynamic)).toBe(1);
    expect(await runsFor(single)).toBe(3);
    expect(await runsFor(pairs)).toBe(2);
  });

  it('takes a fixed batch from the graph even when the manifest says -1', async () => {
    const model = owned(await loadModel(writeTestModel(workDir, 'fixed', '1', anomalyBytes(1), anomalyManifest(-1))));
    expect(model.batch).toBe(1);
    expect(await model.infer([item(squareInput(0, 0, 2)), item(squareInput(0, 0, 0))])).toHaveLength(2);
  });

  it('refuses an item tensor of the wrong size and any call after close', async () => {
    const model = await loadModel(writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest()));

    await expect(model.infer([item(new Float32Array(10))])).rejects.toThrow(
      'model bright-spot@3: item 0 has 10 values; input "input" [3, 32, 32] (NCHW without the batch) needs 3072',
    );
    await model.close();
    await expect(model.infer([item(squareInput(0, 0, 2))])).rejects.toThrow('model bright-spot@3 is closed');
  });
});

// ---------------------------------------------------------------------------------------------------------------

const recipeFor = (model: { name: string; version: string }, thresholds: Record<string, number> = {}): Recipe => ({
  site: 'PLANT1',
  line: 'L1',
  station: 'ST1',
  sku: 'BRACKET-A',
  version: '7',
  model,
  thresholds,
  minDefectAreaPx: 16,
});

describe('model catalog: models are data, not code', () => {
  it('serves two different models side by side from a directory holding only manifests and .onnx files', async () => {
    writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest());
    writeTestModel(workDir, 'parts-yolo', '1', yoloBytes(), yoloManifest);
    mkdirSync(join(workDir, 'not-a-model'));
    for (const dir of readdirSync(workDir)) {
      for (const file of readdirSync(join(workDir, dir))) expect(file).toMatch(/^manifest\.json$|\.onnx$/);
    }
    const create = jest.spyOn(ort.InferenceSession, 'create');

    const catalog = owned(await openModelCatalog(workDir, { intraOpNumThreads: 1 }));
    expect(catalog.list().map((m) => m.key)).toEqual(['bright-spot@3', 'parts-yolo@1']);
    expect(catalog.rejected).toEqual([]);
    expect(create).not.toHaveBeenCalled(); // sessions are created on first use

    const spot = await catalog.get('bright-spot', '3');
    const yolo = await catalog.get('parts-yolo', '1');
    expect(await catalog.get('bright-spot', '3')).toBe(spot);
    expect(create).toHaveBeenCalledTimes(2);

    // One frame, a bright square on a mid-grey background, through both models.
    const frame = [item(squareInput(4, 6, 5, 0.4))];
    const [spotCandidates] = await spot.infer(frame);
    const [yoloCandidates] = await yolo.infer(frame);
    expect(spotCandidates).toEqual([{ class: 'spot', score: 1, box: { x: 8, y: 12, width: 10, height: 10 } }]);
    // mean brightness m = 0.4 + 25 * 0.6 / 1024 = 0.41465: scratch 1.8 m = 0.746, dent 1.5 m = 0.622
    expect(yoloCandidates).toEqual([
      { class: 'scratch', score: expect.closeTo(0.7464, 3) as number, box: { x: 10, y: 10, width: 12, height: 12 } },
      { class: 'dent', score: expect.closeTo(0.622, 3) as number, box: { x: 38, y: 36, width: 20, height: 8 } },
    ]);

    // Each verdict comes from the model's manifest and its recipe alone.
    expect(applyRecipe(spotCandidates!, recipeFor(spot.manifest), spot.manifest)).toEqual({
      result: 'fail',
      defects: [{ class: 'spot', score: 1, bbox: { x: 8, y: 12, width: 10, height: 10 } }],
    });
    expect(applyRecipe(yoloCandidates!, recipeFor(yolo.manifest, { scratch: 0.8 }), yolo.manifest)).toEqual({
      result: 'fail',
      defects: [
        { class: 'dent', score: expect.closeTo(0.622, 3) as number, bbox: { x: 38, y: 36, width: 20, height: 8 } },
      ],
    });
  });

  it('reports a refused manifest, names the models it has for an unknown one, and refuses a duplicate identity', async () => {
    writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest());
    mkdirSync(join(workDir, 'half-copied'));
    writeFileSync(join(workDir, 'half-copied', 'manifest.json'), '{"name": "half');

    const catalog = owned(await openModelCatalog(workDir));
    expect(catalog.rejected).toEqual([
      { manifestPath: join(workDir, 'half-copied', 'manifest.json'), reason: expect.stringContaining('is not JSON') },
    ]);
    await expect(catalog.get('bright-spot', '4')).rejects.toThrow(
      `no model bright-spot@4 in ${workDir} (models: bright-spot@3; refused manifests: ${join(workDir, 'half-copied', 'manifest.json')})`,
    );

    writeTestModel(workDir, 'bright-spot-copy', '1', anomalyBytes(), anomalyManifest());
    const copy = JSON.parse(readFileSync(join(workDir, 'bright-spot-copy', 'manifest.json'), 'utf8')) as object;
    writeFileSync(
      join(workDir, 'bright-spot-copy', 'manifest.json'),
      JSON.stringify({ ...copy, name: 'bright-spot', version: '3' }),
    );
    await expect(openModelCatalog(workDir)).rejects.toThrow('bright-spot@3 is declared twice');
  });

  it('does not cache a failed load, and closes every session it created', async () => {
    writeTestModel(workDir, 'bright-spot', '3', anomalyBytes(), anomalyManifest());
    const good = readFileSync(join(workDir, 'bright-spot', 'bright-spot-3.onnx'));
    writeFileSync(join(workDir, 'bright-spot', 'bright-spot-3.onnx'), yoloBytes());
    writeTestModel(workDir, 'parts-yolo', '1', yoloBytes(), yoloManifest);

    const catalog = await openModelCatalog(workDir);
    await expect(catalog.get('bright-spot', '3')).rejects.toThrow('but the manifest expects');
    writeFileSync(join(workDir, 'bright-spot', 'bright-spot-3.onnx'), good);
    const spot = await catalog.get('bright-spot', '3');
    const yolo = await catalog.get('parts-yolo', '1');

    const release = jest.spyOn(sessionPrototype, 'release');
    await catalog.close();
    expect(release).toHaveBeenCalledTimes(2);
    await expect(spot.infer([item(squareInput(0, 0, 2))])).rejects.toThrow('is closed');
    await expect(yolo.infer([item(squareInput(0, 0, 2))])).rejects.toThrow('is closed');
    await expect(catalog.get('parts-yolo', '1')).rejects.toThrow('model catalog is closed');
  });
});
