/**
 * The one preprocessing step (infra/vision/preprocess.ts) on images whose pixels are known: flat colour quadrants, so
 * every value of the tensor can be predicted exactly whatever the resize kernel does inside a flat area.
 */
import sharp from 'sharp';
import type { ModelInputSpec } from '../../infra/vision/contracts';
import { letterboxFor } from '../../infra/vision/decoders';
import {
  clipRoi,
  encodedImageSize,
  inputGeometry,
  preprocessImage,
  SHARP_FRAME_SETTINGS,
  stackBatch,
} from '../../infra/vision/preprocess';
import { encodeFrame, renderSyntheticFrame } from '../../infra/vision/synthetic/part-generator';

type Rgb = [number, number, number];
const RED: Rgb = [200, 30, 10];
const GREEN: Rgb = [20, 180, 40];
const BLUE: Rgb = [10, 50, 220];
const WHITE: Rgb = [250, 250, 250];

/** A width×height image of four flat quadrants: red top-left, green top-right, blue bottom-left, white bottom-right. */
async function quadrants(width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<Buffer> {
  const rgb = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const colour = y < height / 2 ? (x < width / 2 ? RED : GREEN) : x < width / 2 ? BLUE : WHITE;
      rgb.set(colour, (y * width + x) * 3);
    }
  }
  const image = sharp(rgb, { raw: { width, height, channels: 3 } });
  return format === 'png' ? image.png().toBuffer() : image.jpeg({ quality: 95 }).toBuffer();
}

function spec(overrides: Partial<ModelInputSpec> = {}): ModelInputSpec {
  return {
    name: 'images',
    layout: 'NCHW',
    shape: [-1, 3, 32, 32],
    colorSpace: 'rgb',
    resize: 'fill',
    normalisation: { scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
    ...overrides,
  };
}

const norm = (v: number): number => (v / 255 - 0.5) / 0.25;

/** Channel values of pixel (x, y) of a CHW tensor. */
function chw(t: Float32Array, channels: number, width: number, height: number, x: number, y: number): number[] {
  return Array.from({ length: channels }, (_, c) => t[c * width * height + y * width + x]!);
}

function expectClose(actual: number[], expected: number[], within = 1e-5): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]!)).toBeLessThanOrEqual(within));
}

describe('preprocessImage', () => {
  it('resizes, normalises and lays out NCHW: each quadrant keeps its colour, x → (x·scale − mean) / std', async () => {
    const out = await preprocessImage(await quadrants(64, 48), spec());
    expect(out.sourceWidth).toBe(64);
    expect(out.sourceHeight).toBe(48);
    expect(out.tensor).toBeInstanceOf(Float32Array);
    expect(out.tensor.length).toBe(3 * 32 * 32);
    expectClose(chw(out.tensor, 3, 32, 32, 4, 4), RED.map(norm));
    expectClose(chw(out.tensor, 3, 32, 32, 27, 4), GREEN.map(norm));
    expectClose(chw(out.tensor, 3, 32, 32, 4, 27), BLUE.map(norm));
    expectClose(chw(out.tensor, 3, 32, 32, 27, 27), WHITE.map(norm));
  });

  it('lays out NHWC with the same values, and BGR swaps the channels', async () => {
    const png = await quadrants(64, 64);
    const nchw = (await preprocessImage(png, spec())).tensor;
    const nhwc = (await preprocessImage(png, spec({ layout: 'NHWC', shape: [-1, 32, 32, 3] }))).tensor;
    const bgr = (await preprocessImage(png, spec({ colorSpace: 'bgr' }))).tensor;
    for (let y = 0; y < 32; y += 5) {
      for (let x = 0; x < 32; x += 5) {
        const p = chw(nchw, 3, 32, 32, x, y);
        const i = (y * 32 + x) * 3;
        expect([nhwc[i], nhwc[i + 1], nhwc[i + 2]]).toEqual(p);
        expect(chw(bgr, 3, 32, 32, x, y)).toEqual([p[2], p[1], p[0]]);
      }
    }
  });

  it('converts to one grey channel with per-channel normalisation given once', async () => {
    const gray = spec({
      colorSpace: 'gray',
      shape: [1, 1, 16, 16],
      normalisation: { scale: 1, mean: [0], std: [1] },
    });
    const out = await preprocessImage(await quadrants(32, 32), gray);
    expect(out.tensor.length).toBe(16 * 16);
    const white = out.tensor[15 * 16 + 15]!;
    const blue = out.tensor[15 * 16]!;
    expect(white).toBeGreaterThan(240);
    // Blue is dark in luminance (Rec. 709 weights: 0.07 of blue), red and green in between.
    expect(blue).toBeLessThan(80);
  });

  it('crops to the region of interest before resizing', async () => {
    const png = await quadrants(64, 64);
    const green = await preprocessImage(png, spec(), { x: 32, y: 0, width: 32, height: 32 });
    for (let y = 0; y < 32; y += 3) {
      for (let x = 0; x < 32; x += 3) expectClose(chw(green.tensor, 3, 32, 32, x, y), GREEN.map(norm));
    }
    // The source size is the frame's, not the crop's: decoders map boxes back with it.
    expect([green.sourceWidth, green.sourceHeight]).toEqual([64, 64]);
    // Half red, half green: the left half of the input is red.
    const top = await preprocessImage(png, spec(), { x: 16, y: 0, width: 32, height: 16 });
    expectClose(chw(top.tensor, 3, 32, 32, 2, 16), RED.map(norm));
    expectClose(chw(top.tensor, 3, 32, 32, 29, 16), GREEN.map(norm));
  });

  it('clips a region reaching past the frame, and refuses one entirely outside it', async () => {
    expect(clipRoi({ x: -10, y: 50, width: 40, height: 100 }, 64, 64)).toEqual({ x: 0, y: 50, width: 30, height: 14 });
    const png = await quadrants(64, 64);
    const white = await preprocessImage(png, spec(), { x: 40, y: 40, width: 100, height: 100 });
    expectClose(chw(white.tensor, 3, 32, 32, 16, 16), WHITE.map(norm));
    await expect(preprocessImage(png, spec(), { x: 80, y: 0, width: 10, height: 10 })).rejects.toThrow(
      /region of interest .* outside the 64×64 frame/,
    );
  });

  it('letterboxes a wide image centred with black bars, where the decoders expect the content', async () => {
    const png = await quadrants(64, 32);
    const out = await preprocessImage(png, spec({ resize: 'letterbox' }));
    const lb = letterboxFor(64, 32, 32, 32);
    expect(lb).toEqual({ padX: 0, padY: 8, contentWidth: 32, contentHeight: 16 });
    const black = [0, 0, 0].map(norm);
    expectClose(chw(out.tensor, 3, 32, 32, 10, 3), black);
    expectClose(chw(out.tensor, 3, 32, 32, 10, 28), black);
    expectClose(chw(out.tensor, 3, 32, 32, 3, lb.padY + 2), RED.map(norm));
    expectClose(chw(out.tensor, 3, 32, 32, 28, lb.padY + lb.contentHeight - 3), WHITE.map(norm));
  });

  it('puts an odd letterbox remainder where letterboxFor says (the decoders rely on it)', async () => {
    // 40×25 into 32×32: content 32×20, 12 rows of padding; and 25×40: 20×32, 12 columns.
    for (const [w, h] of [
      [40, 25],
      [25, 40],
      [60, 31],
    ] as const) {
      const rgb = Buffer.alloc(w * h * 3, 255);
      const png = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
        .png()
        .toBuffer();
      const out = await preprocessImage(
        png,
        spec({ resize: 'letterbox', normalisation: { scale: 1, mean: [0], std: [1] } }),
      );
      const lb = letterboxFor(w, h, 32, 32);
      for (let y = 0; y < 32; y++) {
        for (let x = 0; x < 32; x++) {
          const inContent =
            x >= lb.padX && x < lb.padX + lb.contentWidth && y >= lb.padY && y < lb.padY + lb.contentHeight;
          const v = out.tensor[y * 32 + x]!;
          if (inContent) expect({ w, h, x, y, bright: v > 200 }).toEqual({ w, h, x, y, bright: true });
          else expect({ w, h, x, y, v }).toEqual({ w, h, x, y, v: 0 });
        }
      }
    }
  });

  it('reads JPEG as well as PNG', async () => {
    const out = await preprocessImage(await quadrants(64, 64, 'jpeg'), spec());
    expectClose(chw(out.tensor, 3, 32, 32, 4, 4), RED.map(norm), 0.1);
  });

  it('gives the synthetic camera frame the same tensor from PNG as from its raw pixels', async () => {
    const frame = renderSyntheticFrame({ seed: 5, class: 'dent' });
    const input = spec({ shape: [-1, 3, 128, 128] });
    const fromPng = await preprocessImage(await encodeFrame(frame, 'png'), input);
    const fromRaw = await preprocessImage(
      await sharp(frame.rgb, { raw: { width: 256, height: 256, channels: 3 } })
        .png({ compressionLevel: 9 })
        .toBuffer(),
      input,
    );
    expect(Buffer.from(fromPng.tensor.buffer).equals(Buffer.from(fromRaw.tensor.buffer))).toBe(true);
  });

  it('takes raw pixels as a camera sends them: RGB8 gives the PNG tensor bit for bit, Mono8 the grey on every channel', async () => {
    const frame = renderSyntheticFrame({ seed: 11, class: 'scratch' });
    const input = spec({ shape: [-1, 3, 128, 128] });
    const fromPng = await preprocessImage(await encodeFrame(frame, 'png'), input);
    const fromRaw = await preprocessImage({ pixels: frame.rgb, width: 256, height: 256, channels: 3 }, input);
    expect(fromRaw.sourceWidth).toBe(256);
    expect(Buffer.from(fromRaw.tensor.buffer).equals(Buffer.from(fromPng.tensor.buffer))).toBe(true);
    // The same crop either way.
    const roi = { x: 40, y: 30, width: 100, height: 120 };
    const croppedPng = await preprocessImage(await encodeFrame(frame, 'png'), input, roi);
    const croppedRaw = await preprocessImage({ pixels: frame.rgb, width: 256, height: 256, channels: 3 }, input, roi);
    expect(Buffer.from(croppedRaw.tensor.buffer).equals(Buffer.from(croppedPng.tensor.buffer))).toBe(true);

    const grey = Buffer.alloc(32 * 32, 100);
    const mono = await preprocessImage({ pixels: grey, width: 32, height: 32, channels: 1 }, spec());
    expectClose(chw(mono.tensor, 3, 32, 32, 10, 10), [100, 100, 100].map(norm));
  });

  it("gives the tensor bit for bit under its libvips settings and under sharp's defaults with several threads", async () => {
    // The model was trained on tensors made under sharp's defaults (an operation cache; one thread per core where
    // sharp is built with jemalloc): the frame settings must not change a value.
    expect(sharp.concurrency()).toBe(SHARP_FRAME_SETTINGS.concurrency);
    expect(sharp.cache().items.max).toBe(0);
    const frame = renderSyntheticFrame({ seed: 23, class: 'crack' });
    // Larger than libvips' tiles, so that several threads really split it.
    const large = renderSyntheticFrame({ seed: 29, class: 'dent', width: 1024, height: 768 });
    const input = spec({ shape: [-1, 3, 128, 128] });
    const images = [
      await encodeFrame(frame, 'png'),
      await encodeFrame(frame, 'jpeg'),
      await encodeFrame(large, 'png'),
      { pixels: frame.rgb, width: 256, height: 256, channels: 3 as const },
    ];
    const roi = { x: 10, y: 20, width: 200, height: 180 };
    const tensors = () =>
      Promise.all(
        images.flatMap((image) =>
          [undefined, roi].map(async (crop) => Buffer.from((await preprocessImage(image, input, crop)).tensor.buffer)),
        ),
      );
    const framed = await tensors();
    sharp.concurrency(4);
    sharp.cache(true);
    let threaded: Buffer[];
    try {
      threaded = await tensors();
    } finally {
      sharp.concurrency(SHARP_FRAME_SETTINGS.concurrency);
      sharp.cache(SHARP_FRAME_SETTINGS.cache);
    }
    expect(threaded).toHaveLength(framed.length);
    threaded.forEach((tensor, i) => expect(tensor.equals(framed[i]!)).toBe(true));
  });

  it('rejects bytes that are not an image, and a truncated image, saying so', async () => {
    await expect(preprocessImage(Buffer.from('definitely not an image'), spec())).rejects.toThrow(/^undecodable image/);
    await expect(preprocessImage(Buffer.alloc(0), spec())).rejects.toThrow(/^undecodable image/);
    const png = await encodeFrame(renderSyntheticFrame({ seed: 3 }), 'png');
    await expect(preprocessImage(png.subarray(0, png.length >> 1), spec())).rejects.toThrow(/^undecodable image/);
  });

  it('refuses an input spec whose channels do not match its colour space', () => {
    expect(() => inputGeometry(spec({ colorSpace: 'gray' }))).toThrow(/'gray' needs 1/);
    expect(() => inputGeometry(spec({ normalisation: { scale: 1, mean: [0, 0], std: [1] } }))).toThrow(/mean has 2/);
    expect(inputGeometry(spec({ layout: 'NHWC', shape: [-1, 24, 40, 3] }))).toEqual({
      width: 40,
      height: 24,
      channels: 3,
    });
  });
});

describe('encodedImageSize', () => {
  test('reads PNG and JPEG (baseline, progressive, with EXIF ahead of the frame header) sizes as sharp does', async () => {
    const rgb = { raw: { width: 37, height: 23, channels: 3 as const } };
    const pixels = Buffer.alloc(37 * 23 * 3, 128);
    const images = [
      await sharp(pixels, rgb).png().toBuffer(),
      await sharp(pixels, rgb).jpeg().toBuffer(),
      await sharp(pixels, rgb).jpeg({ progressive: true }).toBuffer(),
      await sharp(pixels, rgb).withMetadata({ orientation: 6 }).jpeg().toBuffer(),
    ];
    for (const image of images) {
      const meta = await sharp(image).metadata();
      expect(encodedImageSize(image)).toEqual({ width: meta.width, height: meta.height });
    }
  });

  test('anything else is left to sharp', async () => {
    const webp = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } })
      .webp()
      .toBuffer();
    expect(encodedImageSize(webp)).toBeUndefined();
    expect(encodedImageSize(Buffer.from([0xff, 0xd8, 0xff]))).toBeUndefined();
    expect(encodedImageSize(Buffer.alloc(0))).toBeUndefined();
  });
});

describe('stackBatch', () => {
  it('concatenates items batch-first', () => {
    const batch = stackBatch([Float32Array.of(1, 2, 3), Float32Array.of(4, 5, 6)]);
    expect(Array.from(batch)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses an empty batch and items of different sizes', () => {
    expect(() => stackBatch([])).toThrow(/empty batch/);
    expect(() => stackBatch([new Float32Array(3), new Float32Array(2)])).toThrow(/item 1 has 2 values/);
  });
});
