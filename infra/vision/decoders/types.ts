/**
 * What an output decoder is: the one piece of code per output *shape* (not per model) that turns a model's raw output
 * tensors into defect candidates in frame pixels. A manifest names the kind and its output tensors; the registry in
 * ./index.ts maps the kind to its factory.
 */
import type { Tensor } from 'onnxruntime-node';
import type { DefectCandidate, OutputDecoderSpec } from '../contracts';
import type { FrameGeometry } from './geometry';

/**
 * The lowest score a decoder keeps. Recipe thresholds act on candidates after decoding, so a decoder must not drop
 * anything a recipe could still accept; below 0.05 a "defect" is noise for every model kind Holdfast ships, and keeping
 * less bounds the work NMS and the recipe do per frame.
 */
export const MIN_CANDIDATE_SCORE = 0.05;

export interface DecoderContext {
  /** The manifest's class names, in output order. */
  classes: readonly string[];
  /** Candidates scoring below this are dropped by the decoder (see MIN_CANDIDATE_SCORE). */
  minScore: number;
}

/** Shapes of the session's outputs, as onnxruntime reports them: numbers, or names for symbolic dimensions. */
export type OutputShapes = Readonly<Record<string, readonly (number | string)[]>>;

export interface OutputDecoder {
  /** The output tensors this decoder reads; the model loader refuses a graph that lacks any of them. */
  readonly outputNames: readonly string[];
  /** Problems with the graph's declared output shapes (e.g. a class count that differs from the manifest); [] if none. */
  checkShapes(shapes: OutputShapes): string[];
  /**
   * Candidates for batch item `index` of one session run, with boxes in frame pixels (see FrameGeometry). Outputs hold
   * the whole batch; the decoder reads only its item.
   */
  decode(outputs: Readonly<Record<string, Tensor>>, index: number, geometry: FrameGeometry): DefectCandidate[];
}

export type DecoderKind = OutputDecoderSpec['kind'];
export type DecoderSpecOf<K extends DecoderKind> = Extract<OutputDecoderSpec, { kind: K }>;
export type DecoderFactory<K extends DecoderKind = DecoderKind> = (
  spec: DecoderSpecOf<K>,
  context: DecoderContext,
) => OutputDecoder;
