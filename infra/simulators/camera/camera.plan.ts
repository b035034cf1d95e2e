/**
 * What the simulated cameras shoot, as a pure function of (simulation seed, station, frame number): the part, its
 * lot and work order from the demo plant (so they exist in the MES simulator), the image seed and the class drawn
 * with the configured defect rate. Rendering and encoding then go through the synthetic part generator. The camera
 * simulator publishes these frames; `renderCameraFrames` gives the benchmark the same frames without publishing.
 */
import { DEFECT_CLASSES, type GroundTruth, type SyntheticFrame } from '../../vision/contracts';
import { FRAME_ID_PATTERN, frameTopic, type FramePayload, type StationAddress } from '../../vision/frame.schema';
import { encodeFrame, renderSyntheticFrame } from '../../vision/synthetic/part-generator';
import { HELD_OUT_SEED_START, MAX_SEED } from '../../vision/synthetic/seeds';
import { DEMO_LOTS, DEMO_WORK_ORDERS, type DemoLot, type DemoWorkOrder } from '../demo-plant';

/** A station the simulator shoots for, with the work order its line runs and that order's lots, in run order. */
export interface CameraStation extends StationAddress {
  workOrder: DemoWorkOrder;
  lots: DemoLot[];
}

export interface FramePlan {
  frameId: string;
  station: StationAddress;
  /** 0, 1, 2, … per station and simulation seed. */
  sequence: number;
  /** The synthetic generator's seed: in the held-out range, never used for training (seeds.ts). */
  imageSeed: number;
  class: GroundTruth['class'];
  partId: string;
  lotId: string;
  workOrder: string;
  sku: string;
}

/** A frame ready to publish, with what it really shows. */
export interface RenderedFrame {
  plan: FramePlan;
  topic: string;
  frame: FramePayload;
  /** The MQTT payload: `frame` as JSON. */
  payload: Buffer;
  truth: GroundTruth;
}

export interface PlanOptions {
  /** The simulation's seed: the same seed gives the same frames (ids, parts, images, truth). */
  seed: number;
  /** Share of frames drawn with a defect, 0..1. */
  defectRate: number;
  /** Parts per lot before the line moves to the next lot of its work order. Default 500 (a demo lot's quantity). */
  framesPerLot?: number;
}

/** The order a line runs, set at runtime (a changeover): its parts are shot from `fromSequence` on. */
export interface LineOrder {
  workOrder: string;
  sku: string;
  lotId: string;
}

export interface LineOrderRun extends LineOrder {
  /** The first frame number of the line's stations that shows this order's parts. */
  fromSequence: number;
}

const HELD_OUT_RANGE = MAX_SEED - HELD_OUT_SEED_START + 1;

/**
 * The stations of `sites` (temporal.yaml's shape) whose line runs a demo work order, each with that order's lots.
 * Lines without one are returned in `skipped`: the simulator has no parts to show for them.
 */
export function cameraStationsFor(
  sites: { id: string; lines: { id: string; stations: { id: string; vision?: unknown }[] }[] }[],
): {
  stations: CameraStation[];
  skipped: StationAddress[];
} {
  const stations: CameraStation[] = [];
  const skipped: StationAddress[] = [];
  for (const site of sites) {
    for (const line of site.lines) {
      const workOrder = DEMO_WORK_ORDERS.find((wo) => wo.line === line.id);
      const lots = workOrder ? DEMO_LOTS.filter((lot) => lot.workOrder === workOrder.workOrder) : [];
      for (const station of line.stations) {
        // An external vision system (Station.vision) inspects with its own camera; Holdfast gets no frames from it.
        if (station.vision !== undefined) continue;
        const address = { site: site.id, line: line.id, station: station.id };
        if (workOrder && lots.length > 0) stations.push({ ...address, workOrder, lots });
        else skipped.push(address);
      }
    }
  }
  return { stations, skipped };
}

/**
 * Frame `sequence` of `station` under `opts.seed`. `runs`: the orders its line was switched to, by `fromSequence`
 * ascending; a frame at or after a run's `fromSequence` shows that order's part number `sequence - fromSequence + 1`,
 * before the first run the demo order's lots as below.
 */
export function planFrame(
  station: CameraStation,
  sequence: number,
  opts: PlanOptions,
  runs: readonly LineOrderRun[] = [],
): FramePlan {
  if (!Number.isInteger(sequence) || sequence < 0) throw new Error(`frame sequence must be >= 0, got ${sequence}`);
  if (!(opts.defectRate >= 0 && opts.defectRate <= 1)) {
    throw new Error(`defect rate must be between 0 and 1, got ${opts.defectRate}`);
  }
  const framesPerLot = opts.framesPerLot ?? 500;
  const key = `${opts.seed}|${station.site}/${station.line}/${station.station}|${sequence}`;
  const imageSeed = HELD_OUT_SEED_START + (hash32(`${key}|image`) % HELD_OUT_RANGE);
  const classDraw = hash32(`${key}|class`) / 2 ** 32;
  const cls: GroundTruth['class'] =
    classDraw < opts.defectRate
      ? DEFECT_CLASSES[
          Math.min(DEFECT_CLASSES.length - 1, Math.floor((classDraw / opts.defectRate) * DEFECT_CLASSES.length))
        ]!
      : 'good';

  // The line runs one lot for `framesPerLot` parts, then the next lot of its work order; after the last, the first
  // again (a demo that runs for hours). Every station of a line is on the same part at the same frame number, as
  // parts pass S1 then S2. The run number keeps part ids unique when lots come round again.
  let run: LineOrderRun | undefined;
  let runIndex = -1;
  for (let i = runs.length - 1; i >= 0; i--) {
    if (runs[i]!.fromSequence <= sequence) {
      run = runs[i];
      runIndex = i;
      break;
    }
  }
  let lot: { lotId: string; workOrder: string; sku: string };
  let partId: string;
  if (run) {
    lot = run;
    // A lot the line ran before (switched back to an earlier order) gets part ids of its own for this run.
    const again = runs.slice(0, runIndex).some((r) => r.lotId === run.lotId);
    const partNo = String(sequence - run.fromSequence + 1).padStart(4, '0');
    partId = `${run.lotId}-${partNo}${again ? `-s${run.fromSequence}` : ''}`;
  } else {
    const lotRun = Math.floor(sequence / framesPerLot);
    const demoLot = station.lots[lotRun % station.lots.length]!;
    lot = demoLot;
    const round = Math.floor(lotRun / station.lots.length);
    const partNo = String((sequence % framesPerLot) + 1).padStart(4, '0');
    partId = `${demoLot.lotId}-${partNo}${round > 0 ? `-r${round}` : ''}`;
  }

  const frameId = `${idPart(station.site)}.${idPart(station.line)}.${idPart(station.station)}:${opts.seed}:${sequence}`;
  if (!FRAME_ID_PATTERN.test(frameId)) throw new Error(`frame id ${frameId} is longer than a frame id may be`);
  return {
    frameId,
    station: { site: station.site, line: station.line, station: station.station },
    sequence,
    imageSeed,
    class: cls,
    partId,
    lotId: lot.lotId,
    workOrder: lot.workOrder,
    sku: lot.sku,
  };
}

/** How a camera sends its images: PNG or JPEG, or its raw RGB8 pixels as a GigE Vision camera delivers them. */
export type CameraFrameFormat = 'png' | 'jpeg' | 'raw';

/** A rendered frame's image as a camera sends it in the frame payload. */
export async function frameImage(
  synthetic: SyntheticFrame,
  format: CameraFrameFormat,
): Promise<NonNullable<FramePayload['image']>> {
  const { width, height, rgb } = synthetic;
  return format === 'raw'
    ? { encoding: 'raw', pixelFormat: 'RGB8', width, height, data: rgb.toString('base64') }
    : { encoding: format, data: (await encodeFrame(synthetic, format)).toString('base64') };
}

/** Renders and encodes a planned frame; `capturedAt` is the only input that is not from the plan. */
export async function renderPlannedFrame(
  plan: FramePlan,
  opts: { prefix: string; format?: CameraFrameFormat; capturedAt?: Date; width?: number; height?: number },
): Promise<RenderedFrame> {
  const format = opts.format ?? 'png';
  const synthetic = renderSyntheticFrame({
    seed: plan.imageSeed,
    class: plan.class,
    ...(opts.width ? { width: opts.width } : {}),
    ...(opts.height ? { height: opts.height } : {}),
  });
  const image = await frameImage(synthetic, format);
  const frame: FramePayload = {
    frameId: plan.frameId,
    partId: plan.partId,
    lotId: plan.lotId,
    workOrder: plan.workOrder,
    sku: plan.sku,
    capturedAt: (opts.capturedAt ?? new Date()).toISOString(),
    image,
  };
  return {
    plan,
    topic: frameTopic(opts.prefix, plan.station.site, plan.station.line, plan.station.station),
    frame,
    payload: Buffer.from(JSON.stringify(frame), 'utf8'),
    truth: synthetic.truth,
  };
}

/**
 * For benchmarks: `count` frames with their ground truth, rendered and encoded up front and not published, so
 * rendering cost stays out of a measurement. Frames go round the stations (frame i is station i mod n's frame
 * floor(i / n)), exactly the frames the simulator would publish with the same seed. Renders sequentially: one
 * core, leaving the other to whatever else runs.
 */
export async function renderCameraFrames(opts: {
  stations: CameraStation[];
  count: number;
  seed: number;
  defectRate: number;
  prefix: string;
  format?: CameraFrameFormat;
  framesPerLot?: number;
  /** Sequence number of each station's first frame. Default 0. */
  firstSequence?: number;
  onProgress?: (done: number, total: number) => void;
}): Promise<RenderedFrame[]> {
  if (opts.stations.length === 0) throw new Error('renderCameraFrames needs at least one station');
  const frames: RenderedFrame[] = [];
  const capturedAt = new Date();
  for (let i = 0; i < opts.count; i++) {
    const station = opts.stations[i % opts.stations.length]!;
    const sequence = (opts.firstSequence ?? 0) + Math.floor(i / opts.stations.length);
    const plan = planFrame(station, sequence, opts);
    frames.push(await renderPlannedFrame(plan, { prefix: opts.prefix, format: opts.format, capturedAt }));
    if (opts.onProgress && ((i + 1) % 100 === 0 || i + 1 === opts.count)) opts.onProgress(i + 1, opts.count);
  }
  return frames;
}

/** Characters a frame id may not carry become "_" (site, line and station ids are free text in temporal.yaml). */
function idPart(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** FNV-1a over the UTF-16 code units, then murmur3's finaliser: a well-mixed, portable 32-bit hash. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
