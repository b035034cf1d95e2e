/**
 * A model and frames whose right answers are known by construction, for tests of the inference worker: the model's
 * anomaly map is the input's per-pixel channel mean and its score the map's maximum, so a white square on a dark
 * frame is a defect exactly where the square is, and a dark frame is good.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { OnnxModelBuilder, writeTestModel } from './onnx-builder';

export const SPOT_MODEL = { name: 'bright-spot', version: '1', defectClass: 'spot' } as const;
const SIZE = 64;

/**
 * Writes `<modelsDir>/<name>/{manifest.json, .onnx}`: a dropped-in model is a manifest and a file, no code. The
 * identity and the class it reports come from the manifest, so two of them are two models to the worker.
 */
export function writeBrightSpotModel(
  modelsDir: string,
  model: { name: string; version: string; defectClass: string } = SPOT_MODEL,
  /**
   * `gain`: the map's weight, 1 by default; below the threshold (0.5) the model is deliberately weakened and passes
   * every spot. `folder`: the model's folder in modelsDir, default its name (two versions of one model need two).
   */
  opts: { gain?: number; folder?: string } = {},
): string {
  const builder = new OnnxModelBuilder('bright-spot')
    .input('image', 'float32', ['N', 3, SIZE, SIZE])
    .output('anomaly_map', 'float32', ['N', 1, SIZE, SIZE])
    .output('pred_score', 'float32', ['N']);
  if (opts.gain === undefined) {
    builder.node('ReduceMean', ['image'], ['anomaly_map'], { axes: [1], keepdims: 1 });
  } else {
    builder
      .initializer('gain', 'float32', [1], [opts.gain])
      .node('ReduceMean', ['image'], ['channel_mean'], { axes: [1], keepdims: 1 })
      .node('Mul', ['channel_mean', 'gain'], ['anomaly_map']);
  }
  const bytes = builder.node('ReduceMax', ['anomaly_map'], ['pred_score'], { axes: [1, 2, 3], keepdims: 0 }).toBytes();
  if (opts.folder !== undefined && opts.folder !== model.name) {
    mkdirSync(modelsDir, { recursive: true });
    const staging = mkdtempSync(join(tmpdir(), 'holdfast-model-'));
    writeModel(staging);
    renameSync(join(staging, model.name), join(modelsDir, opts.folder));
    rmSync(staging, { recursive: true, force: true });
    return join(modelsDir, opts.folder, 'manifest.json');
  }
  return writeModel(modelsDir);

  function writeModel(dir: string): string {
    return writeTestModel(dir, model.name, model.version, bytes, {
      input: {
        name: 'image',
        layout: 'NCHW',
        shape: [-1, 3, SIZE, SIZE],
        colorSpace: 'rgb',
        resize: 'fill',
        normalisation: { scale: 1 / 255, mean: [0, 0, 0], std: [1, 1, 1] },
      },
      decoder: {
        kind: 'anomaly-map',
        scoreOutput: 'pred_score',
        mapOutput: 'anomaly_map',
        pixelThreshold: 0.5,
        defectClass: model.defectClass,
      },
      classes: [model.defectClass],
      thresholds: { [model.defectClass]: 0.5 },
    });
  }
}

/** A 128×128 dark frame, with a white square at (40, 40) of side 24 when `spot` is set; PNG like a camera sends. */
export async function spotFrame(spot: boolean): Promise<Buffer> {
  const width = 128;
  const height = 128;
  const rgb = Buffer.alloc(width * height * 3, 30);
  if (spot) {
    for (let y = 40; y < 64; y++)
      for (let x = 40; x < 64; x++) rgb.fill(255, (y * width + x) * 3, (y * width + x) * 3 + 3);
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}
