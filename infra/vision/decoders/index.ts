/**
 * The output decoders, one per manifest `decoder.kind`. Registration is explicit: adding a kind to OutputDecoderSpec
 * in ../contracts.ts without a factory here fails to compile.
 */
import type { OutputDecoderSpec } from '../contracts';
import { anomalyMapDecoder } from './anomaly-map.decoder';
import { classifierBoxDecoder } from './classifier-box.decoder';
import type { DecoderContext, DecoderFactory, DecoderKind, OutputDecoder } from './types';
import { yoloDetectionDecoder } from './yolo-detection.decoder';

export const decoders: { readonly [K in DecoderKind]: DecoderFactory<K> } = {
  'classifier-box': classifierBoxDecoder,
  'anomaly-map': anomalyMapDecoder,
  'yolo-detection': yoloDetectionDecoder,
};

/** The decoder the manifest asks for. */
export function createDecoder(spec: OutputDecoderSpec, context: DecoderContext): OutputDecoder {
  // The mapped type ties each kind to its own spec; TypeScript cannot follow that through an indexed union, so the
  // factory is widened here once, after the lookup by the spec's own kind.
  const factory = decoders[spec.kind] as DecoderFactory;
  return factory(spec, context);
}

export { MIN_CANDIDATE_SCORE } from './types';
export type { DecoderContext, DecoderFactory, DecoderKind, OutputDecoder, OutputShapes } from './types';
export { clipRoiToFrame, inputBoxToFrame, letterboxFor, regionOf } from './geometry';
export type { FrameGeometry, InputBox, Letterbox } from './geometry';
