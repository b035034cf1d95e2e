/**
 * Each output decoder end to end: a small ONNX model built for the test runs in onnxruntime-node, and the decoder turns
 * its real outputs into candidates in frame pixels. Where the shape allows, the outputs are computed from the input
 * pixels, so a box in the result is where the test drew something in the frame.
 */
// First: it makes onnxruntime's outputs readable under jest (see shareProcessTypedArrays).
import { OnnxModelBuilder } from '../support/onnx-builder';
import * as ort from 'onnxruntime-node';
import type { OutputDecoderSpec, PixelBox } from '../../infra/vision/contracts';
import {
  createDecoder,
  decoders,
  inputBoxToFrame,
  letterboxFor,
  MIN_CANDIDATE_SCORE,
  type FrameGeometry,
} from '../../infra/vision/decoders';
import { largestRegion } from '../../infra/vision/decoders/anomaly-map.decoder';
import { softmax } from '../../infra/vision/decoders/classifier-box.decoder';

// ---------------------------------------------------------------------------------------------------------------
// Frames and the preprocessing the worker does, reduced to what the tests need: crop, nearest-neighbour resize
// (exact for the integer scale factors used here), optional letterbox, 0..255 -> 0..1, CHW.

interface Frame {
  width: number;
  height: number;
  rgb: Uint8Array;
}

function frame(width: number, height: number, fills: { box: PixelBox; rgb: [number, number, number] }[] = []): Frame {
  const rgb = new Uint8Array(width * height * 3);
  for (const { box, rgb: colour } of fills) {
    for (let y = box.y; y < box.y + box.height; y++) {
      for (let x = box.x; x < box.x + box.width; x++) rgb.set(colour, (y * width + x) * 3);
    }
  }
  return { width, height, rgb };
}

const WHITE: [number, number, number] = [255, 255, 255];

function toInput(f: Frame, g: FrameGeometry): Float32Array {
  const region = g.roi ?? { x: 0, y: 0, width: f.width, height: f.height };
  const lb = g.letterbox ?? { padX: 0, padY: 0, contentWidth: g.inputWidth, contentHeight: g.inputHeight };
  const plane = g.inputWidth * g.inputHeight;
  const out = new Float32Array(3 * plane);
  for (let iy = 0; iy < lb.contentHeight; iy++) {
    for (let ix = 0; ix < lb.contentWidth; ix++) {
      const fx = region.x + Math.floor(((ix + 0.5) * region.width) / lb.contentWidth);
      const fy = region.y + Math.floor(((iy + 0.5) * region.height) / lb.contentHeight);
      const o = (iy + lb.padY) * g.inputWidth + ix + lb.padX;
      for (let c = 0; c < 3; c++) out[c * plane + o] = f.rgb[(fy * f.width + fx) * 3 + c]! / 255;
    }
  }
  return out;
}

function stack(items: Float32Array[]): Float32Array {
  const out = new Float32Array(items.reduce((n, t) => n + t.length, 0));
  let at = 0;
  for (const t of items) {
    out.set(t, at);
    at += t.length;
  }
  return out;
}

const sessions: ort.InferenceSession[] = [];
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.release()));
});

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(bytes);
  sessions.push(s);
  return s;
}

async function runBatch(
  s: ort.InferenceSession,
  inputName: string,
  inputs: Float32Array[],
  chw: [number, number, number],
): Promise<Record<string, ort.Tensor>> {
  return s.run({ [inputName]: new ort.Tensor('float32', stack(inputs), [inputs.length, ...chw]) });
}

// ---------------------------------------------------------------------------------------------------------------

describe('decoder registry', () => {
  it('has one factory per manifest decoder kind and dispatches on the kind', () => {
    expect(Object.keys(decoders).sort()).toEqual(['anomaly-map', 'classifier-box', 'yolo-detection']);

    const context = { classes: ['scratch'], minScore: MIN_CANDIDATE_SCORE };
    const yolo = createDecoder(
      { kind: 'yolo-detection', output: 'output0', iouThreshold: 0.45, maxDetections: 5 },
      context,
    );
    const anomaly = createDecoder(
      {
        kind: 'anomaly-map',
        scoreOutput: 'pred_score',
        mapOutput: 'anomaly_map',
        pixelThreshold: 0.5,
        defectClass: 'scratch',
      },
      context,
    );
    expect(yolo.outputNames).toEqual(['output0']);
    expect(anomaly.outputNames).toEqual(['pred_score', 'anomaly_map']);
  });
});

describe('frame geometry', () => {
  it('computes the letterbox sharp `contain` produces and maps input boxes back through it and the roi', () => {
    const lb = letterboxFor(128, 64, 32, 32);
    expect(lb).toEqual({ padX: 0, padY: 8, contentWidth: 32, contentHeight: 16 });

    const g: FrameGeometry = {
      sourceWidth: 400,
      sourceHeight: 300,
      roi: { x: 100, y: 50, width: 128, height: 64 },
      inputWidth: 32,
      inputHeight: 32,
      letterbox: lb,
    };
    expect(inputBoxToFrame({ x0: 8, y0: 12, x1: 16, y1: 20 }, g)).toEqual({ x: 132, y: 66, width: 32, height: 32 });
    // Partly in the padding: clipped to the roi. Entirely in the padding: nothing.
    expect(inputBoxToFrame({ x0: 0, y0: 4, x1: 4, y1: 10 }, g)).toEqual({ x: 100, y: 50, width: 16, height: 8 });
    expect(inputBoxToFrame({ x0: 0, y0: 0, x1: 10, y1: 7 }, g)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// anomaly-map: anomaly_map = per-pixel channel mean of the input, pred_score = its maximum. A bright square in a dark
// frame is therefore an anomaly exactly where the square is.

function anomalyModel(h: number, w: number, pool?: number): Uint8Array {
  const mapSize = pool ? [h / pool, w / pool] : [h, w];
  const b = new OnnxModelBuilder('channel-mean-anomaly')
    .input('input', 'float32', ['N', 3, h, w])
    .output('pred_score', 'float32', ['N'])
    .output('anomaly_map', 'float32', ['N', 1, ...mapSize]);
  if (pool) {
    b.node('ReduceMean', ['input'], ['pixel_mean'], { axes: [1], keepdims: 1 });
    b.node('AveragePool', ['pixel_mean'], ['anomaly_map'], { kernel_shape: [pool, pool], strides: [pool, pool] });
  } else {
    b.node('ReduceMean', ['input'], ['anomaly_map'], { axes: [1], keepdims: 1 });
  }
  return b.node('ReduceMax', ['anomaly_map'], ['pred_score'], { axes: [1, 2, 3], keepdims: 0 }).toBytes();
}

const anomalySpec: OutputDecoderSpec = {
  kind: 'anomaly-map',
  scoreOutput: 'pred_score',
  mapOutput: 'anomaly_map',
  pixelThreshold: 0.5,
  defectClass: 'anomaly',
};

describe('anomaly-map decoder (Anomalib export shape)', () => {
  const decoder = createDecoder(anomalySpec, { classes: ['anomaly'], minScore: MIN_CANDIDATE_SCORE });
  // Frame 200 x 150; the roi 128 x 64 at (40, 30) is stretched onto a 64 x 32 input: exactly 2 frame pixels per input pixel.
  const geometry: FrameGeometry = {
    sourceWidth: 200,
    sourceHeight: 150,
    roi: { x: 40, y: 30, width: 128, height: 64 },
    inputWidth: 64,
    inputHeight: 32,
  };

  it('boxes a bright square in a dark frame, in frame pixels, with the image score', async () => {
    const s = await session(anomalyModel(32, 64));
    const square = { x: 80, y: 50, width: 20, height: 20 };
    const outputs = await runBatch(
      s,
      'input',
      [toInput(frame(200, 150, [{ box: square, rgb: WHITE }]), geometry)],
      [3, 32, 64],
    );

    expect(outputs.anomaly_map!.dims).toEqual([1, 1, 32, 64]);
    expect(decoder.decode(outputs, 0, geometry)).toEqual([{ class: 'anomaly', score: 1, box: square }]);
  });

  it('decodes each item of one batch by its index; a dark frame gives no candidate', async () => {
    const s = await session(anomalyModel(32, 64));
    const a = { x: 44, y: 34, width: 10, height: 6 };
    const b = { x: 140, y: 70, width: 24, height: 22 };
    const grey: [number, number, number] = [153, 153, 153]; // 0.6: above the 0.5 pixel threshold
    const outputs = await runBatch(
      s,
      'input',
      [frame(200, 150, [{ box: a, rgb: WHITE }]), frame(200, 150), frame(200, 150, [{ box: b, rgb: grey }])].map((f) =>
        toInput(f, geometry),
      ),
      [3, 32, 64],
    );

    expect(decoder.decode(outputs, 0, geometry)).toEqual([{ class: 'anomaly', score: 1, box: a }]);
    expect(decoder.decode(outputs, 1, geometry)).toEqual([]);
    const [third] = decoder.decode(outputs, 2, geometry);
    expect(third!.score).toBeCloseTo(0.6, 5);
    expect(third!.box).toEqual(b);
  });

  it('boxes the largest connected region, not the hull of every bright pixel, and ignores pixels below threshold', async () => {
    const s = await session(anomalyModel(32, 64));
    const small = { x: 42, y: 32, width: 6, height: 6 };
    const large = { x: 120, y: 60, width: 30, height: 20 };
    const faint = { x: 60, y: 70, width: 40, height: 20 };
    const f = frame(200, 150, [
      { box: small, rgb: WHITE },
      { box: large, rgb: WHITE },
      { box: faint, rgb: [100, 100, 100] }, // 0.39 < 0.5
    ]);
    const outputs = await runBatch(s, 'input', [toInput(f, geometry)], [3, 32, 64]);

    expect(decoder.decode(outputs, 0, geometry)).toEqual([{ class: 'anomaly', score: 1, box: large }]);
  });

  it('scales a map coarser than the input (2 x 2 cells per map value) back to frame pixels', async () => {
    const s = await session(anomalyModel(32, 64, 2));
    const square = { x: 80, y: 50, width: 24, height: 16 }; // input 20..32 x 10..18: whole 2 x 2 cells
    const outputs = await runBatch(
      s,
      'input',
      [toInput(frame(200, 150, [{ box: square, rgb: WHITE }]), geometry)],
      [3, 32, 64],
    );

    expect(outputs.anomaly_map!.dims).toEqual([1, 1, 16, 32]);
    expect(decoder.decode(outputs, 0, geometry)).toEqual([{ class: 'anomaly', score: 1, box: square }]);
  });

  it('undoes a letterbox: the padding is removed before scaling back to the frame', async () => {
    const s = await session(anomalyModel(32, 32));
    const g: FrameGeometry = {
      sourceWidth: 128,
      sourceHeight: 64,
      inputWidth: 32,
      inputHeight: 32,
      letterbox: letterboxFor(128, 64, 32, 32),
    };
    const square = { x: 32, y: 16, width: 32, height: 32 };
    const outputs = await runBatch(
      s,
      'input',
      [toInput(frame(128, 64, [{ box: square, rgb: WHITE }]), g)],
      [3, 32, 32],
    );

    expect(decoder.decode(outputs, 0, g)).toEqual([{ class: 'anomaly', score: 1, box: square }]);
  });

  it('accepts Anomalib score shapes [N] and [N, 1] and refuses a multi-channel map at load', () => {
    expect(decoder.checkShapes({ pred_score: ['N'], anomaly_map: ['N', 1, 64, 64] })).toEqual([]);
    expect(decoder.checkShapes({ pred_score: ['N', 1], anomaly_map: ['N', 1, 64, 64] })).toEqual([]);
    expect(decoder.checkShapes({ pred_score: ['N'], anomaly_map: ['N', 3, 64, 64] })).toEqual([
      'anomaly_map is [N, 3, 64, 64]; expected [N, 1, H, W]',
    ]);
  });

  it('finds connected regions through diagonal neighbours (8-connectivity)', () => {
    // A diagonal line of 4 cells (top left) and a separate 3-cell block (bottom right): the diagonal wins.
    // prettier-ignore
    const map = Float32Array.from([
      1, 0, 0, 0, 0,
      0, 1, 0, 0, 0,
      0, 0, 1, 0, 0,
      1, 0, 0, 1, 0,
      1, 1, 0, 0, 0,
    ]);
    expect(largestRegion(map, 5, 5, 0.5)).toEqual({ x0: 0, y0: 0, x1: 3, y1: 3, cells: 4 });
    expect(largestRegion(new Float32Array(25), 5, 5, 0.5)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// classifier-box: logits from the channel means (good = constant 2, scratch = 6 x red mean, dent = 6 x green mean);
// the box is a constant (cx, cy, w, h) = (0.5, 0.5, 0.25, 0.5) computed per item through the same MatMul path.

const CLASSES = ['good', 'scratch', 'dent'];

function classifierModel(withBox: boolean): Uint8Array {
  const b = new OnnxModelBuilder('channel-mean-classifier')
    .input('image', 'float32', ['N', 3, 8, 8])
    .output('logits', 'float32', ['N', 3])
    .initializer('w_logits', 'float32', [3, 3], [0, 6, 0, 0, 0, 6, 0, 0, 0])
    .initializer('b_logits', 'float32', [3], [2, 0, 0])
    .node('GlobalAveragePool', ['image'], ['pooled'])
    .node('Flatten', ['pooled'], ['means'], { axis: 1 })
    .node('MatMul', ['means', 'w_logits'], ['logits_raw'])
    .node('Add', ['logits_raw', 'b_logits'], ['logits']);
  if (withBox) {
    b.output('box', 'float32', ['N', 4])
      .initializer('w_box', 'float32', [3, 4], new Array<number>(12).fill(0))
      .initializer('b_box', 'float32', [4], [0.5, 0.5, 0.25, 0.5])
      .node('MatMul', ['means', 'w_box'], ['box_raw'])
      .node('Add', ['box_raw', 'b_box'], ['box']);
  }
  return b.toBytes();
}

function solid(r: number, g: number, b: number): Float32Array {
  const out = new Float32Array(3 * 64);
  out.fill(r, 0, 64);
  out.fill(g, 64, 128);
  out.fill(b, 128, 192);
  return out;
}

describe('classifier-box decoder (the shipped model shape)', () => {
  // Frame 100 x 60, roi 40 x 20 at (10, 20) stretched to 8 x 8: the constant box is (25, 25) 10 x 10 in the frame.
  const geometry: FrameGeometry = {
    sourceWidth: 100,
    sourceHeight: 60,
    roi: { x: 10, y: 20, width: 40, height: 20 },
    inputWidth: 8,
    inputHeight: 8,
  };
  const box = { x: 25, y: 25, width: 10, height: 10 };
  const spec: OutputDecoderSpec = {
    kind: 'classifier-box',
    logitsOutput: 'logits',
    boxOutput: 'box',
    goodClass: 'good',
  };
  const decoder = createDecoder(spec, { classes: CLASSES, minScore: MIN_CANDIDATE_SCORE });

  it('softmaxes the logits computed from the pixels and returns the top defect class with the box in frame pixels', async () => {
    const s = await session(classifierModel(true));
    // red image: logits [2, 6, 0]; mixed image: logits [2, 3, 2.7]
    const outputs = await runBatch(s, 'image', [solid(1, 0, 0), solid(0.5, 0.45, 0)], [3, 8, 8]);

    const red = softmax([2, 6, 0]);
    const [top, ...rest] = decoder.decode(outputs, 0, geometry);
    expect(top!.class).toBe('scratch');
    expect(top!.score).toBeCloseTo(red[1]!, 5);
    expect(top!.box).toEqual(box);
    expect(red[2]).toBeLessThan(MIN_CANDIDATE_SCORE);
    expect(rest).toEqual([]); // dent at 0.0003 is below the 0.05 floor

    const mixed = softmax([2, 3, 2.7]);
    const candidates = decoder.decode(outputs, 1, geometry);
    expect(candidates.map((c) => c.class)).toEqual(['scratch', 'dent']);
    expect(candidates[0]!.score).toBeCloseTo(mixed[1]!, 5);
    expect(candidates[1]!.score).toBeCloseTo(mixed[2]!, 5);
  });

  it('still reports non-good classes at or above the floor when good is the top class, so recipes can act per class', async () => {
    const s = await session(classifierModel(true));
    const outputs = await runBatch(s, 'image', [solid(0, 0, 0)], [3, 8, 8]);

    const dark = softmax([2, 0, 0]); // good 0.79, scratch and dent 0.11 each
    const candidates = decoder.decode(outputs, 0, geometry);
    expect(candidates.map((c) => c.class).sort()).toEqual(['dent', 'scratch']);
    for (const c of candidates) expect(c.score).toBeCloseTo(dark[1]!, 5);
    expect(candidates.some((c) => c.class === 'good')).toBe(false);

    const strict = createDecoder(spec, { classes: CLASSES, minScore: 0.2 });
    expect(strict.decode(outputs, 0, geometry)).toEqual([]);
  });

  it('works without a box output: candidates carry no box', async () => {
    const s = await session(classifierModel(false));
    const noBox = createDecoder(
      { kind: 'classifier-box', logitsOutput: 'logits', goodClass: 'good' },
      {
        classes: CLASSES,
        minScore: MIN_CANDIDATE_SCORE,
      },
    );
    const outputs = await runBatch(s, 'image', [solid(0, 1, 0)], [3, 8, 8]);

    const [top] = noBox.decode(outputs, 0, geometry);
    expect(top).toEqual({ class: 'dent', score: expect.closeTo(softmax([2, 0, 6])[2]!, 5) as number });
    expect(top).not.toHaveProperty('box');
  });

  it('refuses a good class that is not a class, and a logits width that differs from the class count', () => {
    expect(() =>
      createDecoder({ ...spec, goodClass: 'ok' }, { classes: CLASSES, minScore: MIN_CANDIDATE_SCORE }),
    ).toThrow('goodClass "ok" is not among the classes [good, scratch, dent]');
    expect(decoder.checkShapes({ logits: ['N', 4], box: ['N', 4] })).toEqual([
      'logits is [N, 4]; expected [N, 3] (one per class)',
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// yolo-detection: [N, 4 + C, A] from initializers; the class-score rows are multiplied by the image's mean brightness,
// so a white image gives the listed scores, a dark one none, and the boxes overlap to exercise class-wise NMS.

const YOLO_CLASSES = ['scratch', 'dent'];
// Anchors: [cx, cy, w, h, scratch, dent] in 64 x 64 input pixels.
const ANCHORS: [number, number, number, number, number, number][] = [
  [20, 20, 10, 10, 0.9, 0.0], // a0 kept
  [21, 20, 10, 10, 0.8, 0.0], // a1 IoU 0.82 with a0, same class: suppressed
  [21, 21, 10, 10, 0.0, 0.7], // a2 overlaps a0 but is a dent: kept
  [50, 50, 8, 8, 0.6, 0.1], // a3 far away: kept (as scratch, its best class)
  [40, 10, 6, 6, 0.03, 0.0], // a4 below the 0.05 floor
  [20, 20, 12, 12, 0.85, 0.1], // a5 IoU 0.69 with a0: suppressed
];

function yoloModel(): Uint8Array {
  const rows = 4 + YOLO_CLASSES.length;
  const a = ANCHORS.length;
  const base = new Array<number>(rows * a).fill(0);
  const scores = new Array<number>(rows * a).fill(0);
  ANCHORS.forEach((anchor, i) =>
    anchor.forEach((v, row) => {
      if (row < 4) base[row * a + i] = v;
      else scores[row * a + i] = v;
    }),
  );
  return new OnnxModelBuilder('constant-yolo')
    .input('images', 'float32', ['N', 3, 64, 64])
    .output('output0', 'float32', ['N', rows, a])
    .initializer('box_rows', 'float32', [1, rows, a], base)
    .initializer('score_rows', 'float32', [1, rows, a], scores)
    .initializer('per_item', 'int64', [3], [-1, 1, 1])
    .node('ReduceMean', ['images'], ['brightness4d'], { axes: [1, 2, 3], keepdims: 1 })
    .node('Reshape', ['brightness4d', 'per_item'], ['brightness'])
    .node('Mul', ['brightness', 'score_rows'], ['scaled_scores'])
    .node('Add', ['scaled_scores', 'box_rows'], ['output0'])
    .toBytes();
}

describe('yolo-detection decoder (Ultralytics YOLOv8 export shape)', () => {
  // Frame 128 x 128 stretched to 64 x 64: 2 frame pixels per input pixel.
  const geometry: FrameGeometry = { sourceWidth: 128, sourceHeight: 128, inputWidth: 64, inputHeight: 64 };
  const spec = (over: Partial<Extract<OutputDecoderSpec, { kind: 'yolo-detection' }>> = {}): OutputDecoderSpec => ({
    kind: 'yolo-detection',
    output: 'output0',
    iouThreshold: 0.45,
    maxDetections: 100,
    ...over,
  });
  const white = (): Float32Array => new Float32Array(3 * 64 * 64).fill(1);

  it('keeps the best class per anchor above the floor and suppresses same-class overlaps only', async () => {
    const s = await session(yoloModel());
    const outputs = await runBatch(s, 'images', [white(), new Float32Array(3 * 64 * 64)], [3, 64, 64]);
    expect(outputs.output0!.dims).toEqual([2, 6, 6]);

    const decoder = createDecoder(spec(), { classes: YOLO_CLASSES, minScore: MIN_CANDIDATE_SCORE });
    const found = decoder.decode(outputs, 0, geometry);
    expect(found.map((c) => c.class)).toEqual(['scratch', 'dent', 'scratch']);
    expect(found.map((c) => c.score)).toEqual([expect.closeTo(0.9, 5), expect.closeTo(0.7, 5), expect.closeTo(0.6, 5)]);
    expect(found.map((c) => c.box)).toEqual([
      { x: 30, y: 30, width: 20, height: 20 },
      { x: 32, y: 32, width: 20, height: 20 },
      { x: 92, y: 92, width: 16, height: 16 },
    ]);

    // The dark image of the same batch: every score is 0.
    expect(decoder.decode(outputs, 1, geometry)).toEqual([]);
  });

  it('honours iouThreshold, maxDetections and the minimum score', async () => {
    const s = await session(yoloModel());
    const outputs = await runBatch(s, 'images', [white()], [3, 64, 64]);
    const scoresPercentOf = (over: Parameters<typeof spec>[0], minScore = MIN_CANDIDATE_SCORE): number[] =>
      createDecoder(spec(over), { classes: YOLO_CLASSES, minScore })
        .decode(outputs, 0, geometry)
        .map((c) => Math.round(c.score * 100));

    // Loose IoU: a1 (0.82) and a5 (0.69) are no longer suppressed.
    expect(scoresPercentOf({ iouThreshold: 0.9 })).toEqual([90, 85, 80, 70, 60]);
    expect(scoresPercentOf({ maxDetections: 2 })).toEqual([90, 70]);
    expect(scoresPercentOf({}, 0.65)).toEqual([90, 70]);
    expect(scoresPercentOf({}, 0.01)).toEqual([90, 70, 60, 3]);
  });

  it('refuses a graph whose rows are not 4 + the class count', () => {
    const decoder = createDecoder(spec(), { classes: YOLO_CLASSES, minScore: MIN_CANDIDATE_SCORE });
    expect(decoder.checkShapes({ output0: [1, 84, 8400] })).toEqual([
      'output0 is [1, 84, 8400]; expected [N, 6, A] (4 box rows + one per class)',
    ]);
    expect(decoder.checkShapes({ output0: ['N', 6, 'anchors'] })).toEqual([]);
  });
});
