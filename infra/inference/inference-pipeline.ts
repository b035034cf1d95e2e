/**
 * The inference worker's per-frame path: frame → station and recipe → preprocess → batched model run → output
 * decoder → recipe verdict → reject signal (fails, production stations only) → durable ingest → result on MQTT.
 *
 * `handleFrame` resolves once the result is committed in PostgreSQL (or the frame's rejection is recorded); only then
 * does the MQTT subscriber acknowledge the frame, so a worker that dies mid-frame gets it again from the broker and
 * the deterministic eventId makes the second pass a duplicate. It rejects only for infrastructure failures (database
 * down; the image source of a frame by reference unavailable when no deferred-frame store is given), which the
 * subscriber retries while holding the acknowledgement. With that store, such a frame is kept and acknowledged, and
 * inspected later by the retry loop (deferred-frames.ts). A bad frame never rejects and never stops the stream: it is
 * recorded with its reason and counted.
 */
import { createHash } from 'node:crypto';
import { parseDurationMs } from '../config/duration';
import { findStation } from '../config/load';
import type { HoldfastConfig } from '../config/schema';
import type { DefectCandidate, ModelManifest, PixelBox, RawPixels, Recipe } from '../vision/contracts';
import {
  type FrameIssue,
  type FramePayload,
  type StationAddress,
  parseFrame,
  parseFrameTopic,
} from '../vision/frame.schema';
import { ImageUnavailableError } from '../vision/image-source';
import type { RecipeCache } from '../vision/recipe.repository';
import type { InspectionResult } from '../ingest/inspection.schema';
import { createMicroBatcher, type MicroBatcher } from './micro-batcher';
import type {
  PreprocessedFrame,
  InferenceModel,
  ModelSource,
  Verdict,
  RejectSignalPort,
  IngestStatus,
  InspectionStore,
  DeferredFrameStore,
  ResultSink,
  PipelineLog,
  PipelineMetrics,
  StationAssignmentSource,
  StationAssignmentView,
} from './ports';
import { decideFrame } from './station-decision';

export interface InferencePipelineDeps {
  config: HoldfastConfig;
  recipes: RecipeCache;
  /**
   * What changeovers assigned each station (docs/changeover.md#holdfast-stations). Absent: every frame is inspected
   * under its SKU's active recipe.
   */
  stations?: StationAssignmentSource;
  models: ModelSource;
  preprocess(image: Buffer | RawPixels, input: ModelManifest['input'], roi?: PixelBox): Promise<PreprocessedFrame>;
  applyRecipe(candidates: DefectCandidate[], recipe: Recipe, manifest: ModelManifest): Verdict;
  store: InspectionStore;
  /** Absent: no reject station configured (logged once at start). */
  reject?: RejectSignalPort;
  results?: ResultSink;
  /** Fetches an image given by reference (frames that carry `imageRef` instead of the bytes). */
  fetchImage?: (url: string) => Promise<Buffer>;
  /** Absent: a frame whose image source is unavailable is not answered (handleFrame rejects) until it is. */
  deferred?: DeferredFrameStore;
  log: PipelineLog;
  metrics?: PipelineMetrics;
}

export interface PipelineStats {
  frames: number;
  /** Results committed to PostgreSQL (new or duplicate). */
  stored: number;
  passed: number;
  failed: number;
  rejectedFrames: Record<string, number>;
  /** Frames kept for later because their image source was unavailable. */
  deferredFrames: number;
  rejectSignals: number;
  rejectSignalFailures: number;
  shadowFails: number;
  /** Frame received → result committed, ms (most recent samples). */
  frameLatencyMs: number[];
  /** Fail decided → reject write acknowledged by the PLC, ms (most recent samples). */
  rejectLatencyMs: number[];
}

/** What the reject station was told about an inspected part. */
export type RejectSignalOutcome =
  /** A fail at a production station: the PLC acknowledged the write. */
  | 'written'
  /** A fail at a production station, but the write failed (logged and counted; the durable result stands). */
  | 'failed'
  /** A fail at a production station of a worker without a reject station (logged at start). */
  | 'not-configured'
  /** A fail at a production station, from a caller that asked for no diversion (a one-off image over HTTP). */
  | 'not-requested'
  /** A fail at a station in parallel monitoring: nothing is diverted. */
  | 'shadow'
  /** A pass. */
  | 'none';

/** What became of one frame; either way it is counted, and a refusal is recorded with its reason. */
export type FrameOutcome =
  | { kind: 'inspected'; result: InspectionResult; ingest: IngestStatus; rejectSignal: RejectSignalOutcome }
  /** The image source was unavailable: the frame is kept (committed) and inspected once its image can be read. */
  | { kind: 'deferred'; eventId: string; detail: string }
  | {
      kind: 'refused';
      reason: FrameRejectionReason;
      detail: string;
      /** The fields at fault (`bad-payload`, `bad-image`). */
      issues?: FrameIssue[];
    };

export interface InferencePipeline {
  /**
   * Resolves once the result is committed (or the refusal recorded); rejects only for infrastructure failures
   * (database down, an image source unavailable: ImageUnavailableError), which the caller retries or reports.
   */
  handleFrame(msg: {
    topic: string;
    payload: Buffer;
    receivedAt: bigint;
    /** Default true (a camera frame: the part is at the gate). False: a fail writes no reject signal. */
    divert?: boolean;
    /**
     * Default true: with a deferred store, a frame whose image source is unavailable is kept for later instead of
     * rejecting. False: reject with the ImageUnavailableError (a caller that can retry itself, or the retry loop).
     */
    deferUnavailable?: boolean;
  }): Promise<FrameOutcome>;
  stats(): PipelineStats;
  /**
   * Counts a frame refused outside handleFrame, with the rest: a kept frame the retry loop gave up
   * (`image-unavailable`) or an operator dropped (`dropped`). Its durable record is the caller's.
   */
  countRefused(reason: KeptFrameRefusal): void;
  /** Runs queued batches and waits for them. */
  drain(): Promise<void>;
}

/**
 * Why a frame was not inspected; each is counted under this name. `recipe-mismatch`: the frame's order or SKU is not
 * the one its station runs since a changeover (docs/changeover.md#holdfast-stations); also an alarm.
 */
export type FrameRejectionReason =
  'bad-topic' | 'unknown-station' | 'bad-payload' | 'no-recipe' | 'bad-image' | 'model' | 'recipe-mismatch';

/**
 * Why a kept frame (its image source was down) was given up without a result: the retry loop's
 * `vision.imageRetryMaxAge` ran out, or an operator dropped it.
 */
export type KeptFrameRefusal = 'image-unavailable' | 'dropped';

const LATENCY_SAMPLES = 100_000;

/** One result per frame, whatever the transport did: the same frame twice is the same event. */
export function inspectionEventId(address: StationAddress, frameId: string): string {
  return `vis:${address.site}:${address.line}:${address.station}:${frameId}`;
}

export function createInferencePipeline(deps: InferencePipelineDeps): InferencePipeline {
  const { config, log, metrics } = deps;
  const prefix = config.vision.topicPrefix;
  const inference = config.vision.inference;
  const maxWaitMs = parseDurationMs(inference.maxBatchWait);
  const stats: PipelineStats = {
    frames: 0,
    stored: 0,
    passed: 0,
    failed: 0,
    rejectedFrames: {},
    deferredFrames: 0,
    rejectSignals: 0,
    rejectSignalFailures: 0,
    shadowFails: 0,
    frameLatencyMs: [],
    rejectLatencyMs: [],
  };

  // One batcher per model: frames of every station using that model share its batches.
  const modelBatchers = new Map<string, MicroBatcher<ModelItem, DefectCandidate[]>>();
  const batcherFor = (model: InferenceModel) => {
    let batcher = modelBatchers.get(model.key);
    if (!batcher) {
      batcher = createMicroBatcher<ModelItem, DefectCandidate[]>({
        maxSize: inference.batchSize,
        maxWaitMs,
        // Two: the next batch already waits in the model thread when one finishes, so the model does not idle while
        // this thread is busy with other frames; the model thread still runs them one at a time.
        maxConcurrent: 2,
        run: (items) => model.infer(items),
      });
      modelBatchers.set(model.key, batcher);
    }
    return batcher;
  };

  // Results reach PostgreSQL in batches too: one transaction for many frames.
  const ingest = createMicroBatcher<InspectionResult, IngestStatus>({
    maxSize: inference.ingestBatchSize,
    maxWaitMs,
    maxConcurrent: 2,
    run: (results) => deps.store.ingest(results),
  });

  const sample = (list: number[], value: number) => {
    if (list.length >= LATENCY_SAMPLES) list.shift();
    list.push(value);
  };

  function countRefused(reason: FrameRejectionReason | KeptFrameRefusal): void {
    stats.rejectedFrames[reason] = (stats.rejectedFrames[reason] ?? 0) + 1;
    metrics?.frameRefused(reason);
  }

  async function refuse(
    topic: string,
    payload: Buffer,
    reason: FrameRejectionReason,
    detail: string,
    extra: { frameId?: string; issues?: FrameIssue[]; station?: StationAddress } = {},
  ): Promise<FrameOutcome> {
    const { frameId, issues } = extra;
    countRefused(reason);
    if (reason === 'recipe-mismatch' && extra.station) {
      // An alarm, not noise: product the station is not set up for is on the line (or a changeover did not reach it).
      metrics?.recipeMismatch(extra.station);
      log.warn('alarm: frame refused, not the order the station runs', {
        alarm: reason,
        ...extra.station,
        topic,
        frameId,
        detail,
      });
    } else {
      log.warn('frame refused', { topic, frameId, reason, detail });
    }
    await deps.store.recordRejectedFrame({
      topic,
      ...(frameId ? { frameId } : {}),
      reason: `${reason}: ${detail}`.slice(0, 2000),
      payloadSha256: sha256(payload),
    });
    return { kind: 'refused', reason, detail, ...(issues ? { issues } : {}) };
  }

  async function signalReject(
    address: StationAddress,
    frame: FramePayload,
    eventId: string,
  ): Promise<RejectSignalOutcome> {
    if (!deps.reject) return 'not-configured';
    try {
      const ack = await deps.reject.signalReject({ ...address, partId: frame.partId, eventId });
      stats.rejectSignals += 1;
      sample(stats.rejectLatencyMs, ack.latencyMs);
      metrics?.rejectWritten(ack.latencyMs / 1000);
      return 'written';
    } catch (err) {
      // The part still gets its durable result and its lot case; the reject station's own fallback (a missed
      // reject diverts at the end of the line) applies. Counted and logged so operators see it.
      stats.rejectSignalFailures += 1;
      metrics?.rejectFailed();
      log.warn('reject signal not written', { eventId, error: errorMessage(err) });
      return 'failed';
    }
  }

  type Chosen =
    | { kind: 'chosen'; recipe: Recipe; model: InferenceModel }
    | { kind: 'refused'; reason: FrameRejectionReason; detail: string };

  async function modelFor(recipe: Recipe): Promise<Chosen> {
    try {
      return { kind: 'chosen', recipe, model: await deps.models.get(recipe.model.name, recipe.model.version) };
    } catch (err) {
      return { kind: 'refused', reason: 'model', detail: errorMessage(err) };
    }
  }

  /**
   * The recipe (and its model) the frame is inspected under: its station's assignment, else its SKU's active recipe.
   * `settled`: the station's state after a boundary this frame waited on (decided once more, never activated twice).
   */
  async function recipeFor(
    address: StationAddress,
    frame: FramePayload,
    settled?: StationAssignmentView,
  ): Promise<Chosen> {
    const decision = decideFrame(settled ?? deps.stations?.current(address), frame);
    switch (decision.kind) {
      case 'unassigned': {
        const recipe = await deps.recipes.active({ ...address, sku: frame.sku });
        if (!recipe) return { kind: 'refused', reason: 'no-recipe', detail: `no active recipe for SKU ${frame.sku}` };
        return modelFor(recipe);
      }
      case 'mismatch':
        return { kind: 'refused', reason: 'recipe-mismatch', detail: decision.detail };
      case 'active':
      case 'boundary': {
        const { assignment } = decision;
        if (!assignment.recipe) {
          const detail = `no recipe ${assignment.recipeVersion} for SKU ${frame.sku} (changeover ${assignment.changeoverId})`;
          return { kind: 'refused', reason: 'no-recipe', detail };
        }
        const chosen = await modelFor(assignment.recipe);
        if (decision.kind === 'active' || chosen.kind === 'refused') return chosen;
        if (settled) throw new Error(`changeover ${assignment.changeoverId} is still armed after its boundary`);
        // The station switches only once the model is there: a model that does not load never becomes active.
        const after = await deps.stations!.activate(address, assignment, {
          frameId: frame.frameId,
          model: chosen.model,
        });
        if (after.active?.changeoverId === assignment.changeoverId && !after.switching) return chosen;
        // Reverted (or armed anew) while this frame waited: decided again on what the station applies now.
        return recipeFor(address, frame, after);
      }
    }
  }

  return {
    stats: () => stats,
    countRefused,
    async drain() {
      await Promise.all([...modelBatchers.values()].map((b) => b.drain()));
      await ingest.drain();
    },

    async handleFrame({ topic, payload, receivedAt, divert = true, deferUnavailable = true }) {
      stats.frames += 1;
      metrics?.frameReceived();
      const address = parseFrameTopic(prefix, topic);
      if (!address) return refuse(topic, payload, 'bad-topic', `not ${prefix}/<site>/<line>/<station>/frames`);
      const mode = findStation(config, address)?.mode;
      if (!mode) {
        return refuse(topic, payload, 'unknown-station', `${address.site}/${address.line}/${address.station}`);
      }
      const parsed = parseFrame(payload);
      if (!parsed.ok) return refuse(topic, payload, 'bad-payload', parsed.reason, { issues: parsed.issues });
      const frame = parsed.frame;

      const chosen = await recipeFor(address, frame);
      if (chosen.kind === 'refused') {
        return refuse(topic, payload, chosen.reason, chosen.detail, { frameId: frame.frameId, station: address });
      }
      const { recipe, model } = chosen;

      const eventId = inspectionEventId(address, frame.frameId);
      let image: Buffer;
      let pre: PreprocessedFrame;
      try {
        image = parsed.imageBytes ?? (await fetchRef(deps, frame.imageRef as string));
        pre = await deps.preprocess(parsed.rawPixels ?? image, model.manifest.input, recipe.roi);
      } catch (err) {
        // The image server is down: not the frame's fault. Kept for later, so that the stream goes on; without a store
        // for that, it stays unacknowledged and comes again.
        if (err instanceof ImageUnavailableError) {
          if (!deps.deferred || !deferUnavailable) throw err;
          await deps.deferred.defer({ eventId, topic, payload, error: err.message });
          stats.deferredFrames += 1;
          metrics?.frameDeferred();
          log.warn('frame deferred: image source unavailable', { eventId, error: err.message });
          return { kind: 'deferred', eventId, detail: err.message };
        }
        const issues = [{ field: frame.imageRef ? 'imageRef' : 'image', message: errorMessage(err) }];
        return refuse(topic, payload, 'bad-image', errorMessage(err), { frameId: frame.frameId, issues });
      }

      const candidates = await batcherFor(model).submit({
        tensor: pre.tensor,
        geometry: {
          sourceWidth: pre.sourceWidth,
          sourceHeight: pre.sourceHeight,
          ...(recipe.roi ? { roi: recipe.roi } : {}),
        },
      });
      const verdict = deps.applyRecipe(candidates, recipe, model.manifest);

      // The reject goes out first, before anything durable: the part is on the conveyor now.
      let rejectSignal: RejectSignalOutcome = 'none';
      if (verdict.result === 'fail') {
        stats.failed += 1;
        if (mode === 'production') {
          rejectSignal = divert ? await signalReject(address, frame, eventId) : 'not-requested';
        } else {
          stats.shadowFails += 1;
          rejectSignal = 'shadow';
        }
      } else {
        stats.passed += 1;
      }

      const result: InspectionResult = {
        eventId,
        ...address,
        partId: frame.partId,
        sku: frame.sku,
        lotId: frame.lotId,
        workOrder: frame.workOrder,
        result: verdict.result,
        defects: verdict.result === 'fail' ? verdict.defects : [],
        modelVersion: model.key,
        recipeVersion: recipe.version,
        // The capture instant: deterministic for a redelivered frame, and where the latency budget starts.
        inspectedAt: frame.capturedAt,
        ...(frame.imageRef ? { imageRef: frame.imageRef } : {}),
        frame: { id: frame.frameId, sha256: sha256(image) },
      };
      const ingestStatus = await ingest.submit(result);
      stats.stored += 1;
      const latencyMs = Number(process.hrtime.bigint() - receivedAt) / 1e6;
      sample(stats.frameLatencyMs, latencyMs);
      metrics?.frameInspected(verdict.result, latencyMs / 1000);

      if (deps.results) {
        // For other consumers (dashboards, line HMI); the durable record is already written.
        await deps.results.publish(address, result).catch((err: unknown) => {
          log.warn('inspection result not published', { eventId, error: errorMessage(err) });
        });
      }
      return { kind: 'inspected', result, ingest: ingestStatus, rejectSignal };
    },
  };
}

interface ModelItem {
  tensor: Float32Array;
  geometry: { sourceWidth: number; sourceHeight: number; roi?: PixelBox };
}

async function fetchRef(deps: InferencePipelineDeps, url: string): Promise<Buffer> {
  if (!deps.fetchImage) throw new Error('frames by image reference need vision.imageSources on this worker');
  return deps.fetchImage(url);
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
