/**
 * Exports the training and validation images of the shipped defect model (holdfast-surface).
 *
 * Every image takes the camera's path: render the synthetic frame for a seed → encode it as the camera does (PNG;
 * a share as JPEG, so the model also tolerates lossy frames) → decode and preprocess with the worker's own
 * preprocessImage. The model therefore trains on exactly the tensors the worker will feed it.
 *
 * Usage: node --import tsx models/dataset.ts --out DIR [--train 12000] [--val 1000] [--jpeg-share 0.15]
 *
 * Writes, per split (train, val): `<split>.u8`, the preprocessed images as 8-bit pixels in the model's layout (CHW, one
 * image after the other); `<split>.json`, seeds, classes, boxes and formats. Pixels rather than float tensors: a
 * quarter of the size (12,000 images are 590 MB as bytes), and exact: the manifest's normalisation is affine over
 * 8-bit pixels, so x' = (x · scale − mean) / std is recovered bit for bit by the trainer (checked here per image).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { ModelInputSpec } from '../infra/vision/contracts';
import { inputGeometry, preprocessImage } from '../infra/vision/preprocess';
import {
  DEFAULT_FRAME_SIZE,
  encodeFrame,
  renderSyntheticFrame,
  SYNTHETIC_CLASSES,
} from '../infra/vision/synthetic/part-generator';
import { Prng } from '../infra/vision/synthetic/prng';
import { TRAIN_SEED_START, TRAINING_SEED_LIMIT, VALIDATION_SEED_START } from '../infra/vision/synthetic/seeds';

/** The shipped model's input, written into its manifest by models/train.py. */
export const HOLDFAST_SURFACE_INPUT: ModelInputSpec = {
  name: 'images',
  layout: 'NCHW',
  shape: [-1, 3, 128, 128],
  colorSpace: 'rgb',
  resize: 'fill',
  // Pixels to about -2..2: x' = (x / 255 - 0.5) / 0.25.
  normalisation: { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
};

/** Output order of the model's class head: good first, then the defect classes. */
export const HOLDFAST_SURFACE_CLASSES = [...SYNTHETIC_CLASSES];

export interface SplitLabels {
  split: string;
  count: number;
  firstSeed: number;
  /** Frame size the generator drew (the box is in these pixels); the model input is `input.shape`. */
  frameWidth: number;
  frameHeight: number;
  input: ModelInputSpec;
  classes: string[];
  /** Per image, in file order. */
  seeds: number[];
  labels: number[];
  /** cx, cy, w, h in 0..1 of the frame (= of the model input, which is the whole frame stretched); zeros when good. */
  boxes: [number, number, number, number][];
  formats: ('png' | 'jpeg')[];
  /** Wall time of the export of this split. */
  exportSeconds: number;
}

/** One image through the camera's path; the 8-bit pixels of its preprocessed tensor and its labels. */
export async function exportImage(
  seed: number,
  format: 'png' | 'jpeg',
  input: ModelInputSpec,
): Promise<{ pixels: Uint8Array; label: number; box: [number, number, number, number] }> {
  const frame = renderSyntheticFrame({ seed });
  const encoded = await encodeFrame(frame, format);
  const { tensor } = await preprocessImage(encoded, input);
  const label = HOLDFAST_SURFACE_CLASSES.indexOf(frame.truth.class);
  const b = frame.truth.box;
  const box: [number, number, number, number] = b
    ? [
        (b.x + b.width / 2) / frame.width,
        (b.y + b.height / 2) / frame.height,
        b.width / frame.width,
        b.height / frame.height,
      ]
    : [0, 0, 0, 0];
  return { pixels: toPixels(tensor, input, seed), label, box };
}

/** Inverts the normalisation; throws if a value is not an 8-bit pixel through it (the bytes would not be exact). */
function toPixels(tensor: Float32Array, input: ModelInputSpec, seed: number): Uint8Array {
  const { channels, width, height } = inputGeometry(input);
  const plane = width * height;
  const { scale, mean, std } = input.normalisation;
  const pixels = new Uint8Array(tensor.length);
  for (let c = 0; c < channels; c++) {
    const m = mean.length === 1 ? mean[0]! : mean[c]!;
    const s = std.length === 1 ? std[0]! : std[c]!;
    const gain = Math.fround(scale / s);
    const offset = Math.fround(-m / s);
    for (let i = c * plane; i < (c + 1) * plane; i++) {
      const v = tensor[i]!;
      const p = Math.round((v - offset) / gain);
      if (p < 0 || p > 255 || Math.abs(Math.fround(p * gain + offset) - v) > 1e-5) {
        throw new Error(`seed ${seed}: tensor value ${v} at ${i} is not an 8-bit pixel through the normalisation`);
      }
      pixels[i] = p;
    }
  }
  return pixels;
}

async function exportSplit(
  dir: string,
  split: string,
  firstSeed: number,
  count: number,
  jpegShare: number,
): Promise<void> {
  if (firstSeed + count > TRAINING_SEED_LIMIT) {
    throw new Error(`${split}: seeds ${firstSeed}..${firstSeed + count - 1} reach the held-out range`);
  }
  const input = HOLDFAST_SURFACE_INPUT;
  const labels: SplitLabels = {
    split,
    count,
    firstSeed,
    frameWidth: DEFAULT_FRAME_SIZE,
    frameHeight: DEFAULT_FRAME_SIZE,
    input,
    classes: HOLDFAST_SURFACE_CLASSES,
    seeds: [],
    labels: [],
    boxes: [],
    formats: [],
    exportSeconds: 0,
  };
  // Which images go as JPEG: its own stream, so the share does not disturb the frames.
  const formatPick = new Prng(firstSeed ^ 0x6a09_e667);
  const out = createWriteStream(join(dir, `${split}.u8`));
  const started = Date.now();
  // Rendering is synchronous JavaScript; encoding and decoding run on sharp's threads. A few images in flight keep
  // both busy.
  const inFlight = 6;
  for (let start = 0; start < count; start += inFlight) {
    const seeds = Array.from({ length: Math.min(inFlight, count - start) }, (_, i) => firstSeed + start + i);
    const formats = seeds.map((): 'png' | 'jpeg' => (formatPick.next() < jpegShare ? 'jpeg' : 'png'));
    const images = await Promise.all(seeds.map((seed, i) => exportImage(seed, formats[i]!, input)));
    for (const [i, image] of images.entries()) {
      if (!out.write(image.pixels)) await new Promise<void>((done) => out.once('drain', () => done()));
      labels.seeds.push(seeds[i]!);
      labels.labels.push(image.label);
      labels.boxes.push(image.box);
      labels.formats.push(formats[i]!);
    }
    const done = start + seeds.length;
    if (done % 1000 < inFlight || done === count) {
      const seconds = (Date.now() - started) / 1000;
      console.log(`[dataset] ${split}: ${done}/${count} images, ${seconds.toFixed(0)} s`);
    }
  }
  await new Promise<void>((done, fail) => out.end((err?: Error | null) => (err ? fail(err) : done())));
  labels.exportSeconds = Math.round((Date.now() - started) / 100) / 10;
  await writeFile(join(dir, `${split}.json`), JSON.stringify(labels));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      train: { type: 'string', default: '12000' },
      val: { type: 'string', default: '1000' },
      'jpeg-share': { type: 'string', default: '0.15' },
    },
  });
  if (!values.out) throw new Error('usage: models/dataset.ts --out DIR [--train N] [--val N] [--jpeg-share F]');
  const dir = resolve(values.out);
  await mkdir(dir, { recursive: true });
  const jpegShare = Number(values['jpeg-share']);
  await exportSplit(dir, 'train', TRAIN_SEED_START, Number(values.train), jpegShare);
  await exportSplit(dir, 'val', VALIDATION_SEED_START, Number(values.val), jpegShare);
  console.log(`[dataset] written to ${dir}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
