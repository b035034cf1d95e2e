import type pg from 'pg';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { PipelineMetrics } from '../inference/ports';
import { oncePerScrape } from './scrape';

/** Seconds from a frame's arrival to its committed result: batching waits milliseconds, a busy model tens of them. */
const FRAME_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Seconds for the PLC to acknowledge a reject write; the part moves on, so this is the one that must stay small. */
const REJECT_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * The inference worker's series. Frames are a counter (frames per second is `rate()` of it); the kept-frames gauge is
 * read from holdfast.frame_deferred on every scrape, as the table is shared by every worker.
 */
export function createInferenceMetrics(registry: Registry, pool: Pick<pg.Pool, 'query'>): PipelineMetrics {
  const frames = new Counter({
    name: 'holdfast_inference_frames_total',
    help: 'Frames received (MQTT, one-off images over HTTP and kept frames tried again), whatever became of them.',
    registers: [registry],
  });
  const inspected = new Counter({
    name: 'holdfast_inference_frames_inspected_total',
    help: 'Frames inspected with a committed result, by result (pass, fail).',
    labelNames: ['result'],
    registers: [registry],
  });
  const frameLatency = new Histogram({
    name: 'holdfast_inference_frame_latency_seconds',
    help: 'Time from a frame arriving to its result being committed in PostgreSQL.',
    buckets: FRAME_BUCKETS,
    registers: [registry],
  });
  const refused = new Counter({
    name: 'holdfast_inference_frames_refused_total',
    help: 'Frames refused without a result, by reason (bad-topic, unknown-station, bad-payload, no-recipe, bad-image, model, recipe-mismatch, image-unavailable, dropped).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const mismatches = new Counter({
    name: 'holdfast_inference_recipe_mismatch_total',
    help: 'Alarms: frames refused because their order or SKU is not the one their station runs since a changeover.',
    labelNames: ['site', 'line', 'station'],
    registers: [registry],
  });
  const deferred = new Counter({
    name: 'holdfast_inference_frames_deferred_total',
    help: 'Frames kept for later because their image source was unavailable.',
    registers: [registry],
  });
  const rejectLatency = new Histogram({
    name: 'holdfast_inference_reject_write_latency_seconds',
    help: 'Time for the line PLC to acknowledge a reject signal (OPC UA write).',
    buckets: REJECT_BUCKETS,
    registers: [registry],
  });
  const rejectFailures = new Counter({
    name: 'holdfast_inference_reject_write_failures_total',
    help: 'Reject signals not written (the result and defect workflow still stand; the line falls back on its own).',
    registers: [registry],
  });
  const kept = oncePerScrape(async () => {
    const res = await pool.query<{ frames: number }>(`SELECT count(*)::int AS frames FROM holdfast.frame_deferred`);
    return res.rows[0]!.frames;
  });
  new Gauge({
    name: 'holdfast_inference_deferred_frames',
    help: 'Frames kept now (holdfast.frame_deferred, all workers), waiting for their image source.',
    registers: [registry],
    async collect() {
      const count = await kept();
      if (count === undefined) this.reset();
      else this.set(count);
    },
  });
  for (const result of ['pass', 'fail']) inspected.inc({ result }, 0);

  return {
    frameReceived: () => frames.inc(),
    frameInspected(result, latencySeconds) {
      inspected.inc({ result });
      frameLatency.observe(latencySeconds);
    },
    frameRefused: (reason) => refused.inc({ reason }),
    recipeMismatch: (station) => mismatches.inc({ site: station.site, line: station.line, station: station.station }),
    frameDeferred: () => deferred.inc(),
    rejectWritten: (latencySeconds) => rejectLatency.observe(latencySeconds),
    rejectFailed: () => rejectFailures.inc(),
  };
}
