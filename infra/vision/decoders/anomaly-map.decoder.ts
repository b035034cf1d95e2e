/**
 * Anomalib's ONNX export: an image score `pred_score` ([N] or [N, 1]) and a per-pixel `anomaly_map` [N, 1, H, W],
 * higher meaning more anomalous (anomalib names the outputs after the non-empty fields of its InferenceBatch:
 * pred_score, pred_label, anomaly_map, pred_mask; this decoder reads the first and the third).
 *
 * One candidate per image: the image score, with the box of the largest 8-connected region of map cells at or above
 * the manifest's pixelThreshold. No cell above the threshold means no localised defect and no candidate. The map may
 * be coarser than the model input; each cell then covers inputSize / mapSize input pixels.
 */
import type { DefectCandidate } from '../contracts';
import { inputBoxToFrame } from './geometry';
import { floatOutput, itemDims, itemSlice } from './tensors';
import type { DecoderFactory } from './types';

export const anomalyMapDecoder: DecoderFactory<'anomaly-map'> = (spec) => ({
  outputNames: [spec.scoreOutput, spec.mapOutput],

  checkShapes(shapes) {
    const problems: string[] = [];
    const score = shapes[spec.scoreOutput];
    if (score && !(score.length === 1 || (score.length === 2 && (score[1] === 1 || typeof score[1] === 'string')))) {
      problems.push(`${spec.scoreOutput} is [${score.join(', ')}]; expected [N] or [N, 1]`);
    }
    const map = shapes[spec.mapOutput];
    if (map && !(map.length === 4 && (map[1] === 1 || typeof map[1] === 'string'))) {
      problems.push(`${spec.mapOutput} is [${map.join(', ')}]; expected [N, 1, H, W]`);
    }
    return problems;
  },

  decode(outputs, index, geometry) {
    const scoreTensor = floatOutput(outputs, spec.scoreOutput);
    const scores = itemSlice(scoreTensor, index, spec.scoreOutput);
    if (scores.length !== 1) throw new Error(`${spec.scoreOutput} has ${scores.length} values per item; expected 1`);

    const mapTensor = floatOutput(outputs, spec.mapOutput);
    const [channels, height, width] = itemDims(mapTensor);
    if (channels !== 1 || !height || !width) {
      throw new Error(`${spec.mapOutput} is [${mapTensor.dims.join(', ')}]; expected [N, 1, H, W]`);
    }
    const region = largestRegion(itemSlice(mapTensor, index, spec.mapOutput), width, height, spec.pixelThreshold);
    if (!region) return [];

    const cellW = geometry.inputWidth / width;
    const cellH = geometry.inputHeight / height;
    const box = inputBoxToFrame(
      { x0: region.x0 * cellW, y0: region.y0 * cellH, x1: (region.x1 + 1) * cellW, y1: (region.y1 + 1) * cellH },
      geometry,
    );
    // A region entirely inside the letterbox padding is an artefact of the padding, not of the part.
    if (!box) return [];
    const candidate: DefectCandidate = { class: spec.defectClass, score: scores[0]!, box };
    return [candidate];
  },
});

/** Inclusive cell bounds of a connected region. */
interface CellRegion {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  cells: number;
}

/**
 * The largest 8-connected region of cells >= threshold, by cell count (the first found on a tie), or undefined when
 * no cell passes. One pass over the map plus one visit per passing cell: a 256 x 256 map costs well under a
 * millisecond.
 */
export function largestRegion(
  map: Float32Array,
  width: number,
  height: number,
  threshold: number,
): CellRegion | undefined {
  const seen = new Uint8Array(width * height);
  const stack = new Int32Array(width * height);
  let best: CellRegion | undefined;
  for (let start = 0; start < map.length; start++) {
    if (seen[start] || !(map[start]! >= threshold)) continue;
    const region: CellRegion = { x0: width, y0: height, x1: -1, y1: -1, cells: 0 };
    let top = 0;
    stack[top++] = start;
    seen[start] = 1;
    while (top > 0) {
      const cell = stack[--top]!;
      const x = cell % width;
      const y = (cell - x) / width;
      region.cells++;
      if (x < region.x0) region.x0 = x;
      if (x > region.x1) region.x1 = x;
      if (y < region.y0) region.y0 = y;
      if (y > region.y1) region.y1 = y;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx;
          if (nx < 0 || nx >= width) continue;
          const next = ny * width + nx;
          if (seen[next] || !(map[next]! >= threshold)) continue;
          seen[next] = 1;
          stack[top++] = next;
        }
      }
    }
    if (!best || region.cells > best.cells) best = region;
  }
  return best;
}
