/**
 * Held-out evaluation of a classifier-box model (by default the shipped holdfast-surface) on synthetic frames whose
 * seeds were never used for training or validation (HELD_OUT_SEED_START upwards).
 *
 * Each frame takes the worker's path: render → encode as the camera does → preprocessImage → onnxruntime-node (batches
 * of 8) → softmax → the station verdict with the manifest's default thresholds (applyRecipe, the worker's own rule).
 * A frame is a defect when the verdict is fail; its class is the most confident defect. Writes metrics.json next to
 * the manifest and the headline figures into the manifest's `training.heldOut`.
 *
 * Usage: node --import tsx models/evaluate.ts [--model models/holdfast-surface/manifest.json] [--count 2000]
 *        [--formats png,jpeg] [--min-defect-area 16] [--wall-seconds N]
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { format as prettierFormat } from 'prettier';
import { ModelManifest, type DefectCandidate, type PixelBox, type Recipe } from '../infra/vision/contracts';
import { preprocessImage, stackBatch } from '../infra/vision/preprocess';
import { applyRecipe } from '../infra/vision/recipe';
import { encodeFrame, renderSyntheticFrame } from '../infra/vision/synthetic/part-generator';
import { HELD_OUT_SEED_START, isHeldOutSeed } from '../infra/vision/synthetic/seeds';

const BATCH = 8;
const INTRA_OP_THREADS = 2;

interface Counts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

interface FormatMetrics {
  format: 'png' | 'jpeg';
  images: number;
  defectVsGood: { precision: number; recall: number; accuracy: number } & Counts;
  perClass: Record<string, { precision: number; recall: number; support: number }>;
  /** Rows: true class; columns: predicted class (good when the verdict is pass). */
  confusion: Record<string, Record<string, number>>;
  /** Frames with a true defect that were failed: IoU of the model's box with the true box, in frame pixels. */
  box: { meanIou: number; iouAtLeast0_5: number; evaluated: number };
  seconds: number;
  /** session.run alone, batches of BATCH, INTRA_OP_THREADS intra-op threads, while this evaluation ran. */
  ortFramesPerSecond: number;
}

function ratio(a: number, b: number): number {
  return b === 0 ? 0 : Math.round((a / b) * 10_000) / 10_000;
}

function softmax(logits: Float32Array): number[] {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function iou(a: PixelBox, b: PixelBox): number {
  const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
  const inter = Math.max(0, w) * Math.max(0, h);
  return inter / (a.width * a.height + b.width * b.height - inter);
}

async function evaluateFormat(
  session: ort.InferenceSession,
  manifest: ModelManifest,
  count: number,
  format: 'png' | 'jpeg',
  minDefectAreaPx: number,
): Promise<FormatMetrics> {
  if (manifest.decoder.kind !== 'classifier-box') throw new Error('evaluate.ts reads classifier-box models only');
  const { logitsOutput, boxOutput, goodClass } = manifest.decoder;
  const classes = manifest.classes;
  const [, , inputHeight, inputWidth] = manifest.input.shape;
  // The recipe names no thresholds, so the manifest's defaults apply (what a new station starts with); the minimum
  // defect size is the seed recipe's in temporal.yaml (16 px²) unless --min-defect-area says otherwise.
  const recipe: Recipe = {
    site: 'eval',
    line: 'eval',
    station: 'eval',
    sku: 'eval',
    version: 'eval',
    model: { name: manifest.name, version: manifest.version },
    thresholds: {},
    minDefectAreaPx,
  };
  const confusion: Record<string, Record<string, number>> = {};
  for (const t of classes) confusion[t] = Object.fromEntries(classes.map((p) => [p, 0]));
  const counts: Counts = { tp: 0, fp: 0, fn: 0, tn: 0 };
  const ious: number[] = [];
  let ortMs = 0;
  const started = Date.now();

  for (let start = 0; start < count; start += BATCH) {
    const seeds = Array.from({ length: Math.min(BATCH, count - start) }, (_, i) => HELD_OUT_SEED_START + start + i);
    const frames = seeds.map((seed) => {
      if (!isHeldOutSeed(seed)) throw new Error(`seed ${seed} is not a held-out seed`);
      return renderSyntheticFrame({ seed });
    });
    const inputs = await Promise.all(
      frames.map(async (frame) => preprocessImage(await encodeFrame(frame, format), manifest.input)),
    );
    const feeds = {
      [manifest.input.name]: new ort.Tensor('float32', stackBatch(inputs.map((i) => i.tensor)), [
        inputs.length,
        ...manifest.input.shape.slice(1),
      ]),
    };
    const t0 = performance.now();
    const outputs = await session.run(feeds);
    ortMs += performance.now() - t0;
    const logits = outputs[logitsOutput]!.data as Float32Array;
    const boxes = boxOutput ? (outputs[boxOutput]!.data as Float32Array) : undefined;

    frames.forEach((frame, i) => {
      const probabilities = softmax(logits.subarray(i * classes.length, (i + 1) * classes.length));
      let box: PixelBox | undefined;
      if (boxes) {
        // cx, cy, w, h in 0..1 of the input; the input is the whole frame stretched ('fill', no region of interest).
        const [cx = 0, cy = 0, w = 0, h = 0] = boxes.subarray(i * 4, i * 4 + 4);
        const sx = inputs[i]!.sourceWidth / inputWidth;
        const sy = inputs[i]!.sourceHeight / inputHeight;
        box = {
          x: (cx - w / 2) * inputWidth * sx,
          y: (cy - h / 2) * inputHeight * sy,
          width: w * inputWidth * sx,
          height: h * inputHeight * sy,
        };
      }
      const candidates: DefectCandidate[] = classes
        .map((cls, c) => ({ class: cls, score: probabilities[c]!, ...(box ? { box } : {}) }))
        .filter((c) => c.class !== goodClass);
      const verdict = applyRecipe(candidates, recipe, manifest);
      const predicted = verdict.result === 'fail' ? verdict.defects[0]!.class : goodClass;
      const truth = frame.truth.class;
      confusion[truth]![predicted]!++;
      const isDefect = truth !== goodClass;
      const failed = verdict.result === 'fail';
      if (isDefect && failed) counts.tp++;
      else if (!isDefect && failed) counts.fp++;
      else if (isDefect && !failed) counts.fn++;
      else counts.tn++;
      if (isDefect && failed && box && frame.truth.box) ious.push(iou(box, frame.truth.box));
    });
    const done = start + seeds.length;
    if (done % 500 < BATCH || done === count) {
      console.log(`[evaluate] ${format}: ${done}/${count} frames, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  }

  const perClass: FormatMetrics['perClass'] = {};
  for (const c of classes) {
    const truePositives = confusion[c]![c]!;
    const predictedAs = classes.reduce((sum, t) => sum + confusion[t]![c]!, 0);
    const support = classes.reduce((sum, p) => sum + confusion[c]![p]!, 0);
    perClass[c] = { precision: ratio(truePositives, predictedAs), recall: ratio(truePositives, support), support };
  }
  return {
    format,
    images: count,
    defectVsGood: {
      precision: ratio(counts.tp, counts.tp + counts.fp),
      recall: ratio(counts.tp, counts.tp + counts.fn),
      accuracy: ratio(counts.tp + counts.tn, count),
      ...counts,
    },
    perClass,
    confusion,
    box: {
      meanIou: ratio(
        ious.reduce((a, b) => a + b, 0),
        ious.length,
      ),
      iouAtLeast0_5: ratio(ious.filter((v) => v >= 0.5).length, ious.length),
      evaluated: ious.length,
    },
    seconds: Math.round((Date.now() - started) / 100) / 10,
    ortFramesPerSecond: Math.round(count / (ortMs / 1000)),
  };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  // Formatted as the repository's prettier would (npm run format:check covers models/).
  await writeFile(path, await prettierFormat(JSON.stringify(value), { parser: 'json', printWidth: 120 }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string', default: 'models/holdfast-surface/manifest.json' },
      count: { type: 'string', default: '2000' },
      formats: { type: 'string', default: 'png,jpeg' },
      'min-defect-area': { type: 'string', default: '16' },
      'wall-seconds': { type: 'string' },
    },
  });
  const manifestPath = resolve(values.model);
  const raw = JSON.parse(await readFile(manifestPath, 'utf8')) as Record<string, unknown>;
  const manifest = ModelManifest.parse(raw);
  const onnxPath = join(dirname(manifestPath), manifest.file);
  const bytes = await readFile(onnxPath);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.sha256) throw new Error(`${onnxPath}: sha256 ${sha256}, manifest says ${manifest.sha256}`);
  const count = Number(values.count);
  const minDefectAreaPx = Number(values['min-defect-area']);
  if (!(count >= 1000)) throw new Error('the held-out set must have at least 1,000 images');

  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: INTRA_OP_THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const results: FormatMetrics[] = [];
  for (const format of values.formats.split(',') as ('png' | 'jpeg')[]) {
    results.push(await evaluateFormat(session, manifest, count, format, minDefectAreaPx));
  }
  await session.release();

  const headline = results[0]!;
  const metrics = {
    model: `${manifest.name}@${manifest.version}`,
    sha256,
    heldOutSeeds: [HELD_OUT_SEED_START, HELD_OUT_SEED_START + count - 1],
    thresholds: manifest.thresholds,
    minDefectAreaPx,
    rule: 'fail when any defect class reaches its manifest threshold (applyRecipe); class = most confident defect',
    host: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, shared with other work while measured`,
    evaluatedAt: new Date().toISOString(),
    results,
  };
  await writeJson(join(dirname(manifestPath), 'metrics.json'), metrics);

  const training = (raw.training ?? {}) as Record<string, unknown>;
  training.heldOut = {
    images: count,
    seeds: metrics.heldOutSeeds,
    ...Object.fromEntries(
      results.map((r) => [
        r.format,
        {
          precision: r.defectVsGood.precision,
          recall: r.defectVsGood.recall,
          accuracy: r.defectVsGood.accuracy,
          boxMeanIou: r.box.meanIou,
        },
      ]),
    ),
  };
  if (values['wall-seconds']) training.regenerateAndTrainSeconds = Number(values['wall-seconds']);
  raw.training = training;
  await writeJson(manifestPath, ModelManifest.parse(raw) && raw);

  for (const r of results) {
    const d = r.defectVsGood;
    console.log(
      `[evaluate] ${r.format}: defect vs good precision ${d.precision} recall ${d.recall} ` +
        `(tp ${d.tp}, fp ${d.fp}, fn ${d.fn}, tn ${d.tn}); box mean IoU ${r.box.meanIou}; ` +
        `session.run ${r.ortFramesPerSecond} frames/s`,
    );
  }
  console.log(`[evaluate] wrote ${join(dirname(manifestPath), 'metrics.json')}; held-out figures in the manifest`);
  if (headline.defectVsGood.precision < 0.95 || headline.defectVsGood.recall < 0.95) {
    console.error('[evaluate] below the acceptance line: defect vs good precision and recall must each be ≥ 0.95');
    process.exitCode = 1;
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
