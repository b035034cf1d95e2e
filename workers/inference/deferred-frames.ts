/**
 * Frames kept for later (holdfast.frame_deferred): their image, named by reference, could not be read when they
 * arrived. Keeping them lets the worker acknowledge them and go on with the stream; holding them unacknowledged would
 * stop the broker's window, inline frames included, for as long as the image server is down.
 *
 * The retry loop inspects due frames again with `divert: false`: by then the part is past the reject gate, and a
 * reject would divert whichever part is there. A fail still gets its durable result and defect workflow (the lot is
 * held), and its answer records that no reject was asked for. Rows are claimed with a lease (FOR UPDATE SKIP LOCKED),
 * so several workers share the table and a worker that dies mid-frame leaves the row to the next.
 */
import type pg from 'pg';
import { ImageUnavailableError } from '../../infra/vision/image-source';
import type { DeferredFrameStore, InferencePipeline, PipelineLog } from './inference-pipeline';

export interface DeferredFrameRetryOptions {
  pool: pg.Pool;
  pipeline: InferencePipeline;
  /** How often due frames are looked for, and the first wait before a frame is tried again. */
  intervalMs: number;
  /** The wait between attempts doubles from `intervalMs` up to this. */
  maxBackoffMs: number;
  log: PipelineLog;
}

export interface DeferredFrameRetry {
  /** Stops the loop and waits for a pass in progress. */
  close(): Promise<void>;
}

/** A claimed row belongs to its worker this long; a worker gone mid-frame gives it back when the lease runs out. */
const LEASE_S = 60;
const CLAIM_BATCH = 16;

export function createPgDeferredFrameStore(pool: pg.Pool, opts: { firstRetryMs: number }): DeferredFrameStore {
  return {
    async defer({ eventId, topic, payload, error }) {
      await pool.query(
        `INSERT INTO holdfast.frame_deferred (event_id, topic, payload, next_attempt_at, last_error)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
         ON CONFLICT (event_id) DO NOTHING`,
        [eventId, topic, payload, opts.firstRetryMs / 1000, error.slice(0, 2000)],
      );
    },
  };
}

export function startDeferredFrameRetry(opts: DeferredFrameRetryOptions): DeferredFrameRetry {
  const { pool, pipeline, log } = opts;
  let timer: NodeJS.Timeout | undefined;
  /** The pass in progress; passes never overlap (the next is scheduled when one ends). */
  let running: Promise<void> | undefined;
  let closed = false;

  async function pass(): Promise<void> {
    const claimed = await pool.query<{ event_id: string; topic: string; payload: Buffer; attempts: number }>(
      `UPDATE holdfast.frame_deferred SET next_attempt_at = now() + make_interval(secs => $2)
        WHERE event_id IN (SELECT event_id FROM holdfast.frame_deferred WHERE next_attempt_at <= now()
                            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING event_id, topic, payload, attempts`,
      [CLAIM_BATCH, LEASE_S],
    );
    for (const row of claimed.rows) {
      if (closed) break;
      try {
        const outcome = await pipeline.handleFrame({
          topic: row.topic,
          payload: row.payload,
          receivedAt: process.hrtime.bigint(),
          divert: false,
          deferUnavailable: false,
        });
        await pool.query(`DELETE FROM holdfast.frame_deferred WHERE event_id = $1`, [row.event_id]);
        log.info('deferred frame inspected', { eventId: row.event_id, attempts: row.attempts, outcome: outcome.kind });
      } catch (err) {
        if (!(err instanceof ImageUnavailableError)) {
          // The database or the model is the problem, not the frame: the lease gives it back later.
          log.warn('deferred frame not inspected', { eventId: row.event_id, error: String(err) });
          continue;
        }
        const waitMs = Math.min(opts.maxBackoffMs, opts.intervalMs * 2 ** row.attempts);
        await pool.query(
          `UPDATE holdfast.frame_deferred
              SET attempts = attempts + 1, last_error = $2, next_attempt_at = now() + make_interval(secs => $3)
            WHERE event_id = $1`,
          [row.event_id, err.message.slice(0, 2000), waitMs / 1000],
        );
      }
    }
  }

  const schedule = () => {
    if (closed) return;
    timer = setTimeout(() => {
      running = pass()
        .catch((err: unknown) => log.warn('deferred frames: pass failed', { error: String(err) }))
        .finally(() => {
          running = undefined;
          schedule();
        });
    }, opts.intervalMs);
  };
  schedule();

  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
