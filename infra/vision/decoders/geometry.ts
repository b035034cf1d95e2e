/**
 * Where the model input came from in the frame, so decoders can put boxes back into frame pixels.
 *
 * The worker crops the frame to the recipe's region of interest, then resizes the crop to the model input, either by
 * stretching it (manifest `resize: 'fill'`) or by scaling it to fit and padding the rest (`'letterbox'`, sharp's
 * `fit: 'contain'` with the default centre position). A box in input pixels is mapped back by undoing those steps in
 * reverse: remove the padding, undo the scale, add the crop's offset.
 */
import type { PixelBox } from '../contracts';

/** Where the resized crop sits inside a letterboxed input, in input pixels. */
export interface Letterbox {
  padX: number;
  padY: number;
  contentWidth: number;
  contentHeight: number;
}

export interface FrameGeometry {
  /** The frame as captured. */
  sourceWidth: number;
  sourceHeight: number;
  /** The crop fed to the model, in frame pixels; absent: the whole frame. */
  roi?: PixelBox;
  /** The model input size. */
  inputWidth: number;
  inputHeight: number;
  /** Present when the crop was letterboxed; absent when it was stretched to the whole input. */
  letterbox?: Letterbox;
}

/** Corners of a box in model-input pixels (x0 < x1, y0 < y1). */
export interface InputBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * The letterbox sharp produces for `fit: 'contain'`: the scale that fits the region inside the input, the scaled size
 * rounded to whole pixels, and the remainder split evenly with the odd pixel on the right/bottom (sharp's centre
 * gravity). The preprocessing may pass its own figures instead; these are the default.
 */
export function letterboxFor(
  regionWidth: number,
  regionHeight: number,
  inputWidth: number,
  inputHeight: number,
): Letterbox {
  const scale = Math.min(inputWidth / regionWidth, inputHeight / regionHeight);
  const contentWidth = Math.max(1, Math.min(inputWidth, Math.round(regionWidth * scale)));
  const contentHeight = Math.max(1, Math.min(inputHeight, Math.round(regionHeight * scale)));
  return {
    padX: Math.floor((inputWidth - contentWidth) / 2),
    padY: Math.floor((inputHeight - contentHeight) / 2),
    contentWidth,
    contentHeight,
  };
}

/**
 * The crop the preprocessing actually takes for a recipe's roi: rounded to whole pixels and clipped to the frame
 * (infra/vision/preprocess.ts clips the same way). Undefined when nothing of the roi is inside the frame.
 */
export function clipRoiToFrame(roi: PixelBox, sourceWidth: number, sourceHeight: number): PixelBox | undefined {
  const x0 = Math.max(0, Math.round(roi.x));
  const y0 = Math.max(0, Math.round(roi.y));
  const x1 = Math.min(sourceWidth, Math.round(roi.x + roi.width));
  const y1 = Math.min(sourceHeight, Math.round(roi.y + roi.height));
  return x1 > x0 && y1 > y0 ? { x: x0, y: y0, width: x1 - x0, height: y1 - y0 } : undefined;
}

/** The region of the frame the model saw. */
export function regionOf(g: FrameGeometry): PixelBox {
  return g.roi ?? { x: 0, y: 0, width: g.sourceWidth, height: g.sourceHeight };
}

/**
 * Maps a box in model-input pixels to frame pixels, clipped to the region the model saw. Undefined when nothing of the
 * box is left inside it (a box drawn entirely in the letterbox padding).
 */
export function inputBoxToFrame(box: InputBox, g: FrameGeometry): PixelBox | undefined {
  const region = regionOf(g);
  const content = g.letterbox ?? { padX: 0, padY: 0, contentWidth: g.inputWidth, contentHeight: g.inputHeight };
  const sx = region.width / content.contentWidth;
  const sy = region.height / content.contentHeight;
  const x0 = clamp((box.x0 - content.padX) * sx, 0, region.width);
  const x1 = clamp((box.x1 - content.padX) * sx, 0, region.width);
  const y0 = clamp((box.y0 - content.padY) * sy, 0, region.height);
  const y1 = clamp((box.y1 - content.padY) * sy, 0, region.height);
  if (!(x1 > x0 && y1 > y0)) return undefined;
  return { x: region.x + x0, y: region.y + y0, width: x1 - x0, height: y1 - y0 };
}

/** Centre-size form (cx, cy, w, h), as YOLO and the shipped model emit, to corners. */
export function centreBox(cx: number, cy: number, w: number, h: number): InputBox {
  return { x0: cx - w / 2, y0: cy - h / 2, x1: cx + w / 2, y1: cy + h / 2 };
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
