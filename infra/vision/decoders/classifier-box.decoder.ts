/**
 * The shipped model's shape: class logits [N, C] (one class is the good class) and, optionally, one box per image
 * [N, 4] as cx, cy, w, h in 0..1 of the model input.
 *
 * Returns every non-good class whose softmax probability reaches the decoder's minimum score, most probable first, so
 * recipe thresholds can act per class: a recipe that is strict on cracks sees a 0.3 crack even when "good" is the top
 * class. The single box is the model's localisation of the defect it sees, so every candidate carries it.
 */
import type { DefectCandidate, PixelBox } from '../contracts';
import { centreBox, inputBoxToFrame } from './geometry';
import { floatOutput, itemSlice } from './tensors';
import type { DecoderFactory } from './types';

export const classifierBoxDecoder: DecoderFactory<'classifier-box'> = (spec, { classes, minScore }) => {
  const goodIndex = classes.indexOf(spec.goodClass);
  if (goodIndex < 0) {
    throw new Error(`classifier-box: goodClass "${spec.goodClass}" is not among the classes [${classes.join(', ')}]`);
  }
  const outputNames = spec.boxOutput ? [spec.logitsOutput, spec.boxOutput] : [spec.logitsOutput];

  return {
    outputNames,

    checkShapes(shapes) {
      const problems: string[] = [];
      const logits = shapes[spec.logitsOutput];
      if (logits && (logits.length !== 2 || (typeof logits[1] === 'number' && logits[1] !== classes.length))) {
        problems.push(
          `${spec.logitsOutput} is [${logits.join(', ')}]; expected [N, ${classes.length}] (one per class)`,
        );
      }
      const box = spec.boxOutput ? shapes[spec.boxOutput] : undefined;
      if (box && (box.length !== 2 || (typeof box[1] === 'number' && box[1] !== 4))) {
        problems.push(`${spec.boxOutput} is [${box.join(', ')}]; expected [N, 4] (cx, cy, w, h)`);
      }
      return problems;
    },

    decode(outputs, index, geometry) {
      const logitsTensor = floatOutput(outputs, spec.logitsOutput);
      const logits = itemSlice(logitsTensor, index, spec.logitsOutput);
      if (logits.length !== classes.length) {
        throw new Error(
          `${spec.logitsOutput} has ${logits.length} logits per item; the manifest names ${classes.length}`,
        );
      }
      const probabilities = softmax(logits);
      let top = 0;
      for (let c = 1; c < probabilities.length; c++) if (probabilities[c]! > probabilities[top]!) top = c;

      let box: PixelBox | undefined;
      if (spec.boxOutput) {
        const b = itemSlice(floatOutput(outputs, spec.boxOutput), index, spec.boxOutput);
        const [cx = 0, cy = 0, w = 0, h = 0] = b;
        const { inputWidth: iw, inputHeight: ih } = geometry;
        box = inputBoxToFrame(centreBox(cx * iw, cy * ih, w * iw, h * ih), geometry);
      }

      const candidates: DefectCandidate[] = [];
      probabilities.forEach((p, c) => {
        if (c === goodIndex) return;
        if (c !== top && p < minScore) return;
        candidates.push(box ? { class: classes[c]!, score: p, box } : { class: classes[c]!, score: p });
      });
      return candidates.sort((a, b) => b.score - a.score);
    },
  };
};

/** Numerically stable softmax (subtracting the max keeps exp() finite for large logits). */
export function softmax(logits: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]!);
  const exps = Array.from({ length: logits.length }, (_, i) => Math.exp(logits[i]! - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
