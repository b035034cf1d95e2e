/**
 * Vision contracts shared by the model tooling (models/), the inference worker (workers/inference.worker.ts), the
 * camera simulator and the benchmarks. A model is an `.onnx` file plus a manifest; swapping models is a manifest and
 * a recipe, never code: everything model-specific the worker needs is read from here.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------------------------
// Model manifest (models/<name>/manifest.json next to the .onnx file)

const PositiveInt = z.number().int().positive();

export const ModelInputSpec = z.strictObject({
  /** Name of the input tensor in the ONNX graph. */
  name: z.string().min(1),
  /** NCHW or NHWC; the batch dimension may be -1 (dynamic). */
  layout: z.enum(['NCHW', 'NHWC']),
  /** Shape in the declared layout, batch first; e.g. [-1, 3, 128, 128]. */
  shape: z.tuple([z.number().int(), PositiveInt, PositiveInt, PositiveInt]),
  colorSpace: z.enum(['rgb', 'bgr', 'gray']),
  /** How pixels are resized to the input size (sharp's `fit`). */
  resize: z.enum(['fill', 'letterbox']).default('fill'),
  /** x' = (x * scale - mean[c]) / std[c], per channel; x in 0..255. */
  normalisation: z.strictObject({
    scale: z.number().positive(),
    mean: z.array(z.number()).min(1).max(3),
    std: z.array(z.number().positive()).min(1).max(3),
  }),
});
export type ModelInputSpec = z.infer<typeof ModelInputSpec>;

/**
 * How raw outputs become defects. One decoder per kind in infra/vision/decoders; the manifest names the kind and the
 * output tensors it reads.
 */
export const OutputDecoderSpec = z.discriminatedUnion('kind', [
  /** The shipped model: softmax-able class logits [N, C] (one class is the good class) + a normalised box [N, 4]. */
  z.strictObject({
    kind: z.literal('classifier-box'),
    logitsOutput: z.string().min(1),
    /** Optional [N, 4] box output: cx, cy, w, h in 0..1 of the model input. */
    boxOutput: z.string().min(1).optional(),
    goodClass: z.string().min(1),
  }),
  /** Anomalib's export: an image score [N] or [N,1] and an anomaly map [N,1,H,W] (higher is more anomalous). */
  z.strictObject({
    kind: z.literal('anomaly-map'),
    scoreOutput: z.string().min(1),
    mapOutput: z.string().min(1),
    /** Map cells at or above this value form the defect region (box). */
    pixelThreshold: z.number(),
    /** The class name results carry. */
    defectClass: z.string().min(1).default('anomaly'),
  }),
  /** YOLO-style (v8 export): [N, 4 + C, A] with cx, cy, w, h in input pixels then C class scores; NMS in the decoder. */
  z.strictObject({
    kind: z.literal('yolo-detection'),
    output: z.string().min(1),
    iouThreshold: z.number().min(0).max(1).default(0.45),
    maxDetections: PositiveInt.default(100),
  }),
]);
export type OutputDecoderSpec = z.infer<typeof OutputDecoderSpec>;

export const ModelManifest = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/),
  version: z.string().regex(/^[A-Za-z0-9._-]+$/),
  /** The .onnx file, relative to the manifest. */
  file: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  input: ModelInputSpec,
  decoder: OutputDecoderSpec,
  /** Class names in output order (classifier and detection) or the single anomaly class. */
  classes: z.array(z.string().min(1)).min(1),
  /** Default per-class score thresholds; a recipe may override each. */
  thresholds: z.record(z.string(), z.number().min(0).max(1)),
  /** Free-form provenance: dataset seed, epochs, metrics. */
  training: z.record(z.string(), z.unknown()).optional(),
});
export type ModelManifest = z.infer<typeof ModelManifest>;

// ---------------------------------------------------------------------------------------------------------------
// Decoding and recipes

/**
 * Uncompressed pixels, as machine-vision cameras deliver them (GigE Vision, USB3 Vision: GenICam pixel formats Mono8
 * and RGB8): rows top to bottom, no padding between rows.
 */
export interface RawPixels {
  pixels: Buffer;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** Pixel rectangle in the coordinates of the frame as captured (before ROI crop and resize). */
export interface PixelBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A decoder's candidate defect, before the recipe's thresholds and minimum size are applied. */
export interface DefectCandidate {
  class: string;
  score: number;
  box?: PixelBox;
}

/** Per SKU at a station, versioned in PostgreSQL (holdfast.vision_recipe). */
export interface Recipe {
  site: string;
  line: string;
  station: string;
  sku: string;
  version: string;
  model: { name: string; version: string };
  /** Per-class score thresholds; classes not named use the manifest's default. */
  thresholds: Record<string, number>;
  /** Region of interest in frame pixels; the frame is cropped to it before inference. Absent: the whole frame. */
  roi?: PixelBox;
  /** Candidates with a box smaller than this (pixels²) are ignored; candidates without a box always count. */
  minDefectAreaPx: number;
  /** Parts of a new order that must pass under this recipe before release (a changeover's first article); absent: changeover.firstArticleParts. */
  firstArticleParts?: number;
}

// ---------------------------------------------------------------------------------------------------------------
// Synthetic parts (camera simulator and training data)

export const DEFECT_CLASSES = ['scratch', 'dent', 'crack', 'contamination'] as const;
export type DefectClassName = (typeof DEFECT_CLASSES)[number];

/** What a synthetic frame really shows: kept by the simulator for checking, never sent to the worker. */
export interface GroundTruth {
  /** 'good' or one of DEFECT_CLASSES. */
  class: 'good' | DefectClassName;
  box?: PixelBox;
}

export interface SyntheticFrame {
  width: number;
  height: number;
  /** Raw interleaved RGB, width * height * 3 bytes. */
  rgb: Buffer;
  truth: GroundTruth;
}
