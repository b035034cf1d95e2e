/**
 * Ultralytics YOLOv8 (and later anchor-free heads) exported to ONNX: one output [N, 4 + C, A] (e.g. [1, 84, 8400] for
 * 80 classes at 640 x 640), row k of anchor a holding cx, cy, w, h in input pixels for k < 4 and the score of class
 * k - 4 after that. There is no objectness row (YOLOv5's layout has one; this decoder does not read it).
 *
 * Per anchor the best class is taken, as Ultralytics' own post-processing does by default; anchors below the decoder's
 * minimum score are dropped; then class-wise greedy NMS at the manifest's iouThreshold keeps at most maxDetections.
 */
import type { DefectCandidate } from '../contracts';
import { centreBox, inputBoxToFrame, type InputBox } from './geometry';
import { floatOutput, itemDims, itemSlice } from './tensors';
import type { DecoderFactory } from './types';

interface Detection {
  classIndex: number;
  score: number;
  box: InputBox;
}

export const yoloDetectionDecoder: DecoderFactory<'yolo-detection'> = (spec, { classes, minScore }) => ({
  outputNames: [spec.output],

  checkShapes(shapes) {
    const shape = shapes[spec.output];
    if (shape && (shape.length !== 3 || (typeof shape[1] === 'number' && shape[1] !== 4 + classes.length))) {
      return [
        `${spec.output} is [${shape.join(', ')}]; expected [N, ${4 + classes.length}, A] (4 box rows + one per class)`,
      ];
    }
    return [];
  },

  decode(outputs, index, geometry) {
    const tensor = floatOutput(outputs, spec.output);
    const [rows, anchors] = itemDims(tensor);
    if (rows !== 4 + classes.length || !anchors) {
      throw new Error(`${spec.output} is [${tensor.dims.join(', ')}]; expected [N, ${4 + classes.length}, A]`);
    }
    const data = itemSlice(tensor, index, spec.output);

    // Best class per anchor, reading the tensor row by row so the scan walks memory in order. This loop is most of the
    // decoder's cost: [84, 8400] (80 classes at 640 x 640) decodes in about 8 ms on the 2-core development machine.
    const bestScore = data.slice(4 * anchors, 5 * anchors);
    const bestClass = new Int32Array(anchors);
    for (let c = 1; c < classes.length; c++) {
      const row = data.subarray((4 + c) * anchors, (5 + c) * anchors);
      for (let a = 0; a < anchors; a++) {
        if (row[a]! > bestScore[a]!) {
          bestScore[a] = row[a]!;
          bestClass[a] = c;
        }
      }
    }
    const found: Detection[] = [];
    for (let a = 0; a < anchors; a++) {
      const score = bestScore[a]!;
      if (!(score >= minScore)) continue;
      const box = centreBox(data[a]!, data[anchors + a]!, data[2 * anchors + a]!, data[3 * anchors + a]!);
      found.push({ classIndex: bestClass[a]!, score, box });
    }

    const candidates: DefectCandidate[] = [];
    for (const d of nonMaxSuppression(found, spec.iouThreshold, spec.maxDetections)) {
      const box = inputBoxToFrame(d.box, geometry);
      // A box with nothing left inside the region (all in the letterbox padding) locates nothing on the part.
      if (box) candidates.push({ class: classes[d.classIndex]!, score: d.score, box });
    }
    return candidates;
  },
});

/**
 * Greedy class-wise NMS: highest score first, a detection is dropped when it overlaps a kept one of the same class by
 * more than iouThreshold. Each detection is compared with the kept ones only, so the cost is found x maxDetections.
 */
export function nonMaxSuppression(found: Detection[], iouThreshold: number, maxDetections: number): Detection[] {
  const sorted = [...found].sort((a, b) => b.score - a.score);
  const kept: Detection[] = [];
  for (const d of sorted) {
    if (kept.length >= maxDetections) break;
    if (kept.some((k) => k.classIndex === d.classIndex && iou(k.box, d.box) > iouThreshold)) continue;
    kept.push(d);
  }
  return kept;
}

export function iou(a: InputBox, b: InputBox): number {
  const w = Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0);
  const h = Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0);
  if (w <= 0 || h <= 0) return 0;
  const inter = w * h;
  const union = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
  return union > 0 ? inter / union : 0;
}
