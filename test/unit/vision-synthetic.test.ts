/**
 * The synthetic part generator: frames are a pure function of their seed, the seed's class mix is what the camera
 * simulator and the training export expect, and the ground-truth box covers exactly the pixels the defect changed.
 */
import sharp from 'sharp';
import { DEFECT_CLASSES } from '../../infra/vision/contracts';
import {
  classForSeed,
  encodeFrame,
  renderSyntheticFrame,
  SYNTHETIC_CLASSES,
  type SyntheticClass,
  VISIBLE_CHANGE,
} from '../../infra/vision/synthetic/part-generator';

// Local handles: a global lookup per pixel (`Math` inside jest's vm context) would make these loops take seconds.
const { abs, max } = Math;

/** Whether any pixel of the 256-wide strip (x, y, width, height) differs visibly between the two frames. */
function changedAt(a: Buffer, b: Buffer, x0: number, y0: number, width: number, height: number): boolean {
  for (let y = y0; y < y0 + height; y++) {
    for (let x = x0; x < x0 + width; x++) {
      for (let c = 0; c < 3; c++) {
        const o = (y * 256 + x) * 3 + c;
        if (abs(a[o]! - b[o]!) >= VISIBLE_CHANGE) return true;
      }
    }
  }
  return false;
}

describe('renderSyntheticFrame', () => {
  it('gives the same bytes for the same seed and different bytes for another seed', () => {
    const a = renderSyntheticFrame({ seed: 424242 });
    const b = renderSyntheticFrame({ seed: 424242 });
    const c = renderSyntheticFrame({ seed: 424243 });
    expect(a.rgb.equals(b.rgb)).toBe(true);
    expect(a.truth).toEqual(b.truth);
    expect(a.rgb.equals(c.rgb)).toBe(false);
  });

  it('draws raw RGB at the default 256×256 and at a requested size', () => {
    const square = renderSyntheticFrame({ seed: 1 });
    expect([square.width, square.height, square.rgb.length]).toEqual([256, 256, 256 * 256 * 3]);
    const wide = renderSyntheticFrame({ seed: 1, width: 320, height: 240, class: 'scratch' });
    expect([wide.width, wide.height, wide.rgb.length]).toEqual([320, 240, 320 * 240 * 3]);
    expect(wide.truth.box!.x + wide.truth.box!.width).toBeLessThanOrEqual(320);
    expect(wide.truth.box!.y + wide.truth.box!.height).toBeLessThanOrEqual(240);
  });

  it('rejects a size it cannot draw', () => {
    expect(() => renderSyntheticFrame({ seed: 1, width: 8, height: 8 })).toThrow(/at least 32×32/);
    expect(() => renderSyntheticFrame({ seed: 1, width: 100.5 })).toThrow(/whole pixels/);
  });

  it('lets the seed pick the class: about half good, every defect class present, as classForSeed says', () => {
    const counts = new Map<SyntheticClass, number>();
    for (let seed = 0; seed < 400; seed++) {
      const frame = renderSyntheticFrame({ seed, width: 64, height: 64 });
      expect(frame.truth.class).toBe(classForSeed(seed));
      counts.set(frame.truth.class, (counts.get(frame.truth.class) ?? 0) + 1);
    }
    expect(counts.get('good')! / 400).toBeGreaterThan(0.42);
    expect(counts.get('good')! / 400).toBeLessThan(0.58);
    for (const cls of DEFECT_CLASSES) expect(counts.get(cls) ?? 0).toBeGreaterThan(25);
    expect([...counts.keys()].sort()).toEqual([...SYNTHETIC_CLASSES].sort());
  });

  it('draws the class it is asked for; good parts have no box, defects a box inside the frame', () => {
    for (const cls of SYNTHETIC_CLASSES) {
      for (let seed = 100; seed < 110; seed++) {
        const { truth } = renderSyntheticFrame({ seed, class: cls });
        expect(truth.class).toBe(cls);
        if (cls === 'good') {
          expect(truth.box).toBeUndefined();
          continue;
        }
        const box = truth.box!;
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.y).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(256);
        expect(box.y + box.height).toBeLessThanOrEqual(256);
        // Visible at the model's 128×128 input (at least 2 input pixels across), and a local defect, not the part.
        expect(Math.max(box.width, box.height)).toBeGreaterThanOrEqual(4);
        expect(box.width * box.height).toBeLessThan(256 * 256 * 0.25);
      }
    }
  });

  it('puts the box around the pixels the defect changed (the same seed drawn good is the same scene)', () => {
    for (const cls of DEFECT_CLASSES) {
      for (let seed = 7; seed < 17; seed++) {
        const good = renderSyntheticFrame({ seed, class: 'good' });
        const bad = renderSyntheticFrame({ seed, class: cls });
        const box = bad.truth.box!;
        let changedInside = 0;
        let visibleOutside = 0;
        for (let y = 0; y < 256; y++) {
          for (let x = 0; x < 256; x++) {
            const o = (y * 256 + x) * 3;
            const diff = max(
              abs(good.rgb[o]! - bad.rgb[o]!),
              abs(good.rgb[o + 1]! - bad.rgb[o + 1]!),
              abs(good.rgb[o + 2]! - bad.rgb[o + 2]!),
            );
            const inside = x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height;
            if (diff >= VISIBLE_CHANGE) {
              if (inside) changedInside++;
              else visibleOutside++;
            }
          }
        }
        // Tight: no visible change outside the box, and the box's edges are visible changes (not padding).
        expect({ cls, seed, visibleOutside }).toEqual({ cls, seed, visibleOutside: 0 });
        expect(changedInside).toBeGreaterThanOrEqual(8);
        expect(changedAt(good.rgb, bad.rgb, box.x, box.y, box.width, 1)).toBe(true);
        expect(changedAt(good.rgb, bad.rgb, box.x, box.y + box.height - 1, box.width, 1)).toBe(true);
        expect(changedAt(good.rgb, bad.rgb, box.x, box.y, 1, box.height)).toBe(true);
        expect(changedAt(good.rgb, bad.rgb, box.x + box.width - 1, box.y, 1, box.height)).toBe(true);
      }
    }
  });

  it('renders fast enough for a camera simulator (a few ms per frame)', () => {
    renderSyntheticFrame({ seed: 0 });
    const started = performance.now();
    for (let seed = 0; seed < 40; seed++) renderSyntheticFrame({ seed });
    const perFrameMs = (performance.now() - started) / 40;
    // Generous: the 2-core test machine is shared; idle, a frame takes a few ms.
    expect(perFrameMs).toBeLessThan(40);
  });
});

describe('encodeFrame', () => {
  it('encodes PNG losslessly: decoding gives back the rendered pixels', async () => {
    const frame = renderSyntheticFrame({ seed: 99, class: 'crack' });
    const png = await encodeFrame(frame, 'png');
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([256, 256, 3]);
    expect(Buffer.compare(data, frame.rgb)).toBe(0);
  });

  it('encodes JPEG close to the rendered pixels', async () => {
    const frame = renderSyntheticFrame({ seed: 99 });
    const jpeg = await encodeFrame(frame, 'jpeg');
    expect([jpeg[0], jpeg[1]]).toEqual([0xff, 0xd8]);
    const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
    let total = 0;
    for (let i = 0; i < data.length; i++) total += Math.abs(data[i]! - frame.rgb[i]!);
    expect(total / data.length).toBeLessThan(4);
  });
});
