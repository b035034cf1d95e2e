/**
 * The one preprocessing step between an encoded frame and a model input tensor. The training-data export
 * (models/dataset.ts), the held-out evaluation (models/evaluate.ts) and the inference worker all call this function,
 * so the model sees exactly the pixels it was trained on: a second implementation would drift (a different resize
 * kernel or rounding is enough to cost accuracy without any error).
 *
 * Per frame: one sharp pipeline (decode → crop to the region of interest → resize → colour space → raw 8-bit) and one
 * typed-array loop (layout and normalisation). Everything the model needs is read from its manifest's input spec.
 */
import sharp from 'sharp';
import type { ModelInputSpec, PixelBox, RawPixels } from './contracts';
import { PNG_SIGNATURE } from './frame.schema';

/**
 * How libvips runs for camera frames, the same in every process that preprocesses (worker, training export,
 * evaluation, benchmarks); neither setting changes a pixel (test/unit/vision-preprocess.test.ts).
 * - One libvips thread per image: frames are small (256×256 here) and many are in flight at once, each pipeline on a
 *   libuv pool thread, so parallelism comes from frames side by side; splitting a small image across threads only adds
 *   hand-offs, and on a worker whose model already holds a core it oversubscribes the rest. This is sharp's default on
 *   glibc Linux without jemalloc; elsewhere (musl, macOS) its default is one thread per core.
 * - No operation cache: libvips caches operations by their inputs, and every frame is new, so it never hits and
 *   only holds on to up to 50 MB of finished frames.
 */
export const SHARP_FRAME_SETTINGS = { concurrency: 1, cache: false } as const;
sharp.concurrency(SHARP_FRAME_SETTINGS.concurrency);
sharp.cache(SHARP_FRAME_SETTINGS.cache);

export interface PreprocessedImage {
  /** One item in the manifest's layout (CHW for NCHW, HWC for NHWC), normalised; no batch dimension. */
  tensor: Float32Array;
  /** The frame as captured, before the crop. */
  sourceWidth: number;
  sourceHeight: number;
}

/** The input size and channel count a manifest's input spec asks for. */
export interface InputGeometry {
  width: number;
  height: number;
  channels: 1 | 3;
}

export function inputGeometry(input: ModelInputSpec): InputGeometry {
  const [, a, b, c] = input.shape;
  const [channels, height, width] = input.layout === 'NCHW' ? [a, b, c] : [c, a, b];
  const expected = input.colorSpace === 'gray' ? 1 : 3;
  if (channels !== expected) {
    throw new Error(
      `model input '${input.name}' has ${channels} channel(s) in its ${input.layout} shape, but colour space ` +
        `'${input.colorSpace}' needs ${expected}`,
    );
  }
  for (const [what, values] of [
    ['mean', input.normalisation.mean],
    ['std', input.normalisation.std],
  ] as const) {
    if (values.length !== 1 && values.length !== channels) {
      throw new Error(
        `model input '${input.name}': normalisation ${what} has ${values.length} values for ${channels} channel(s)`,
      );
    }
  }
  return { width, height, channels: expected };
}

/**
 * Decodes an encoded image (PNG or JPEG; whatever sharp reads), crops it to `roi` (frame pixels; clipped to the frame),
 * resizes it to the model input ('fill' stretches, 'letterbox' fits and pads with black, centred, as sharp's
 * `contain`), converts the colour space and normalises: x' = (x · scale − mean[c]) / std[c].
 *
 * Throws an Error whose message starts with "undecodable image" when the bytes are not a readable image, and one
 * naming the region when the region of interest lies outside the frame.
 */
export async function preprocessImage(
  image: Buffer | RawPixels,
  input: ModelInputSpec,
  roi?: PixelBox,
): Promise<PreprocessedImage> {
  const size = inputGeometry(input);
  const byteLength = Buffer.isBuffer(image) ? image.length : image.pixels.length;
  let pipeline: sharp.Sharp;
  let sourceWidth: number;
  let sourceHeight: number;
  if (!Buffer.isBuffer(image)) {
    // Raw pixels skip the decode; from here on they take the same steps (crop, resize kernel, colour) as a decoded
    // PNG of the same pixels, so the model gets the same tensor either way.
    const { pixels, width, height, channels } = image;
    pipeline = sharp(pixels, { raw: { width, height, channels } });
    sourceWidth = width;
    sourceHeight = height;
  } else {
    try {
      // failOn 'warning' (sharp's default, spelled out): a truncated frame fails here rather than arriving half grey.
      pipeline = sharp(image, { failOn: 'warning' });
      // PNG and JPEG carry their size in the header; asking sharp costs a trip to its thread pool.
      const dims = encodedImageSize(image) ?? (await pipeline.metadata());
      if (!dims.width || !dims.height) throw new Error('no image dimensions');
      sourceWidth = dims.width;
      sourceHeight = dims.height;
    } catch (err) {
      throw new Error(`undecodable image (${image.length} bytes): ${describe(err)}`, { cause: err });
    }
  }

  if (roi) {
    const crop = clipRoi(roi, sourceWidth, sourceHeight);
    pipeline = pipeline.extract({ left: crop.x, top: crop.y, width: crop.width, height: crop.height });
  }
  pipeline = pipeline
    .resize(size.width, size.height, {
      fit: input.resize === 'letterbox' ? 'contain' : 'fill',
      background: { r: 0, g: 0, b: 0, alpha: 1 },
    })
    .removeAlpha()
    .toColourspace(size.channels === 1 ? 'b-w' : 'srgb');

  let pixels: Buffer;
  let channels: number;
  try {
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.width !== size.width || info.height !== size.height) {
      throw new Error(`decoded to ${info.width}×${info.height}, expected ${size.width}×${size.height}`);
    }
    pixels = data;
    channels = info.channels;
  } catch (err) {
    throw new Error(`undecodable image (${byteLength} bytes): ${describe(err)}`, { cause: err });
  }
  return { tensor: normalise(pixels, channels, size, input), sourceWidth, sourceHeight };
}

/**
 * Width and height from a PNG's IHDR chunk or a JPEG's start-of-frame segment, read from the header alone; undefined
 * for anything else (sharp then reads it). Orientation is not applied: preprocessing does not auto-rotate either.
 */
export function encodedImageSize(image: Buffer): { width: number; height: number } | undefined {
  // PNG (ISO/IEC 15948 §5.2, §11.2.2): signature, then IHDR first: length, "IHDR", width, height (big-endian).
  if (image.length >= 24 && image.subarray(0, 8).equals(PNG_SIGNATURE) && image.toString('latin1', 12, 16) === 'IHDR') {
    return { width: image.readUInt32BE(16), height: image.readUInt32BE(20) };
  }
  // JPEG (ITU-T T.81 §B.2): SOI, then marker segments until a start-of-frame SOF0..SOF15 (not DHT C4, JPG C8, DAC CC).
  if (image.length < 4 || image[0] !== 0xff || image[1] !== 0xd8) return undefined;
  let at = 2;
  while (at + 9 <= image.length) {
    if (image[at] !== 0xff) return undefined;
    const marker = image[at + 1]!;
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    const length = image.readUInt16BE(at + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      const height = image.readUInt16BE(at + 5); // 0: the height comes later, in a DNL segment; sharp reads that
      const width = image.readUInt16BE(at + 7);
      return width > 0 && height > 0 ? { width, height } : undefined;
    }
    if (marker === 0xda || length < 2) return undefined; // scan data before any frame header: not a baseline file
    at += 2 + length;
  }
  return undefined;
}

/** The region of interest in whole pixels, clipped to the frame; throws when nothing of it is inside. */
export function clipRoi(roi: PixelBox, frameWidth: number, frameHeight: number): PixelBox {
  const x0 = Math.max(0, Math.round(roi.x));
  const y0 = Math.max(0, Math.round(roi.y));
  const x1 = Math.min(frameWidth, Math.round(roi.x + roi.width));
  const y1 = Math.min(frameHeight, Math.round(roi.y + roi.height));
  if (!(x1 > x0 && y1 > y0)) {
    throw new Error(
      `region of interest ${roi.width}×${roi.height} at (${roi.x}, ${roi.y}) lies outside the ${frameWidth}×${frameHeight} frame`,
    );
  }
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

function normalise(pixels: Buffer, channels: number, size: InputGeometry, input: ModelInputSpec): Float32Array {
  const plane = size.width * size.height;
  const c = size.channels;
  const { scale, mean, std } = input.normalisation;
  // Per output channel: which decoded channel feeds it, and x' = x · gain + offset.
  const source = new Int32Array(c);
  const gain = new Float32Array(c);
  const offset = new Float32Array(c);
  for (let k = 0; k < c; k++) {
    source[k] = input.colorSpace === 'bgr' ? 2 - k : k;
    const m = mean.length === 1 ? mean[0]! : mean[k]!;
    const s = std.length === 1 ? std[0]! : std[k]!;
    gain[k] = scale / s;
    offset[k] = -m / s;
  }
  const out = new Float32Array(plane * c);
  if (input.layout === 'NCHW') {
    for (let k = 0; k < c; k++) {
      const g = gain[k]!;
      const o = offset[k]!;
      const base = k * plane;
      for (let i = 0, j = source[k]!; i < plane; i++, j += channels) out[base + i] = pixels[j]! * g + o;
    }
  } else {
    for (let i = 0; i < plane; i++) {
      const from = i * channels;
      const to = i * c;
      for (let k = 0; k < c; k++) out[to + k] = pixels[from + source[k]!]! * gain[k]! + offset[k]!;
    }
  }
  return out;
}

/** Concatenates single-item tensors into one batch (batch first), checking they are all the same size. */
export function stackBatch(items: Float32Array[]): Float32Array {
  const first = items[0];
  if (!first) throw new Error('cannot stack an empty batch');
  const size = first.length;
  const batch = new Float32Array(size * items.length);
  items.forEach((item, i) => {
    if (item.length !== size) {
      throw new Error(`batch item ${i} has ${item.length} values, item 0 has ${size}`);
    }
    batch.set(item, i * size);
  });
  return batch;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
