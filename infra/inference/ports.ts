/**
 * The inference module's ports: what the pipeline needs from the outside (model, reject station, Holdfast's store,
 * result publisher), implemented by adapters in infra/ and wired by the composition root workers/inference.worker.ts.
 */
import type { DefectCandidate, ModelManifest, PixelBox, Recipe } from '../vision/contracts';
import type { StationAddress } from '../vision/frame.schema';
import type { InspectionResult } from '../ingest/inspection.schema';

export interface PreprocessedFrame {
  tensor: Float32Array;
  sourceWidth: number;
  sourceHeight: number;
}

export interface InferenceModel {
  manifest: ModelManifest;
  key: string;
  infer(
    items: { tensor: Float32Array; geometry: { sourceWidth: number; sourceHeight: number; roi?: PixelBox } }[],
  ): Promise<DefectCandidate[][]>;
}

export interface ModelSource {
  get(name: string, version: string): Promise<InferenceModel>;
}

export interface Verdict {
  result: 'pass' | 'fail';
  defects: { class: string; score: number; bbox?: { x: number; y: number; width: number; height: number } }[];
}

export interface RejectSignalPort {
  signalReject(signal: StationAddress & { partId: string; eventId: string }): Promise<{ latencyMs: number }>;
}

/** 'duplicate': a result for the same event was stored before, and the first one stands. */
export type IngestStatus = 'accepted' | 'duplicate';

/** Holdfast's own store: the durable ingest and the record of refused frames. */
export interface InspectionStore {
  /**
   * Commits every result (new or duplicate) before resolving, and says which each was, in order; throws only when the
   * store is unavailable.
   */
  ingest(results: InspectionResult[]): Promise<IngestStatus[]>;
  recordRejectedFrame(rejection: {
    topic: string;
    frameId?: string;
    reason: string;
    payloadSha256: string;
  }): Promise<void>;
}

/** Frames whose image (by reference) cannot be read now, kept to be inspected later (deferred-frames.ts). */
export interface DeferredFrameStore {
  /** Keeps the frame (a frame already kept stays as it is) and resolves once that is committed. */
  defer(frame: { eventId: string; topic: string; payload: Buffer; error: string }): Promise<void>;
}

export interface ResultSink {
  publish(address: StationAddress, result: InspectionResult): Promise<void>;
}

export interface PipelineLog {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
}

/** What the pipeline reports as it goes, for Prometheus (infra/observability/inference-metrics.ts). */
export interface PipelineMetrics {
  /** A frame arrived (every frame, whatever becomes of it). */
  frameReceived(): void;
  /** A frame's result is committed: `latencySeconds` from its arrival. */
  frameInspected(result: 'pass' | 'fail', latencySeconds: number): void;
  frameRefused(reason: string): void;
  /** A frame of another order or SKU than its station runs was refused (`recipe-mismatch`): an alarm per station. */
  recipeMismatch(station: StationAddress): void;
  /** A frame was kept for later: its image source was unavailable. */
  frameDeferred(): void;
  /** The PLC acknowledged a reject signal after `latencySeconds`. */
  rejectWritten(latencySeconds: number): void;
  rejectFailed(): void;
}

/** An assignment a changeover made at a station, as the worker holds it in memory (station-assignment-cache.ts). */
export interface AssignedRecipe {
  changeoverId: string;
  workOrder: string;
  sku: string;
  recipeVersion: string;
  model: { name: string; version: string };
  /** Absent: the version named is not in holdfast.vision_recipe (its frames are refused `no-recipe`). */
  recipe?: Recipe;
}

/** What a station applies now. Both absent (or no view at all): never changed over; frames use their SKU's recipe. */
export interface StationAssignmentView {
  /** Loaded and waiting for its order's first frame. */
  armed?: AssignedRecipe;
  active?: AssignedRecipe;
  /** The armed assignment is being made active: frames of any other order are refused meanwhile, as after it. */
  switching?: boolean;
}

/** The stations' assignments, read from memory on the hot path; changed only by the boundary (and by the changeover). */
export interface StationAssignmentSource {
  /** No I/O. */
  current(station: StationAddress): StationAssignmentView | undefined;
  /**
   * The first frame of the armed order arrived: makes `armed` active (persisted with the frame id, once however many
   * frames race) and resolves with the station's assignments after.
   */
  activate(
    station: StationAddress,
    armed: AssignedRecipe,
    boundary: { frameId: string; model: InferenceModel },
  ): Promise<StationAssignmentView>;
}
