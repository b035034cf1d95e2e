/**
 * Frames kept for later (holdfast.frame_deferred): their image, named by reference, could not be read when they
 * arrived. Keeping them lets the worker acknowledge them and go on with the stream; holding them unacknowledged would
 * stop the broker's window, inline frames included, for as long as the image server is down.
 *
 * The retry loop inspects due frames again with `divert: false`: by then the part is past the reject gate, and a
 * reject would divert whichever part is there. A fail still gets its durable result and goes to its lot case (the lot is
 * held), and its answer records that no reject was asked for. Rows are claimed with a lease (FOR UPDATE SKIP LOCKED),
 * so several workers share the table and a worker that dies mid-frame leaves the row to the next.
 *
 * Nothing waits for ever: a frame whose image still cannot be read once it has been kept `maxAgeMs` is given up and
 * recorded as refused (holdfast.frame_rejection, reason `image-unavailable`), as is one an operator drops through the
 * worker's HTTP edge (`dropped`, with who and why). Either way the row moves in one statement, so it is never both
 * kept and refused, nor neither.
 *
 * An operator's retry and drop, and the give-up, change a kept frame: each is recorded in the audit trail in the
 * same transaction (docs/audit-trail.md). The loop's own attempts and a frame finally inspected are not: they are the
 * pipeline doing its work, not a change of a record by a person or a policy.
 */
import type pg from 'pg';
import type { AuditActor } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';
import { ImageUnavailableError } from '../vision/image-source';
import type { InferencePipeline } from './inference-pipeline';
import type { DeferredFrameStore, PipelineLog } from './ports';

export interface DeferredFrameRetryOptions {
  pool: pg.Pool;
  pipeline: Pick<InferencePipeline, 'handleFrame' | 'countRefused'>;
  /** Where a frame given up is recorded. */
  audit: AuditTrail;
  /** How often due frames are looked for, and the first wait before a frame is tried again. */
  intervalMs: number;
  /** The wait between attempts doubles from `intervalMs` up to this. */
  maxBackoffMs: number;
  /** A frame kept this long whose image still cannot be read is given up and recorded as refused. */
  maxAgeMs: number;
  log: PipelineLog;
}

export interface DeferredFrameRetry {
  /** Stops the loop and waits for a pass in progress. */
  close(): Promise<void>;
}

/** A claimed row belongs to its worker this long; a worker gone mid-frame gives it back when the lease runs out. */
const LEASE_S = 60;
const CLAIM_BATCH = 16;

/** A kept frame as an operator sees it. */
export interface DeferredFrameView {
  eventId: string;
  topic: string;
  deferredAt: string;
  attempts: number;
  nextAttemptAt: string;
  lastError: string;
}

/** What the worker's HTTP edge offers an operator over the kept frames. */
export interface DeferredFrameAdmin {
  /** Oldest first. */
  list(opts: { limit: number }): Promise<{ total: number; frames: DeferredFrameView[] }>;
  /** Makes the frame due now (its image server is back); undefined when no such frame is kept. */
  retryNow(eventId: string, actor: AuditActor): Promise<DeferredFrameView | undefined>;
  /** Gives the frame up, recorded as refused with who dropped it and why; undefined when no such frame is kept. */
  drop(
    eventId: string,
    by: { droppedBy: string; reason: string },
    actor: AuditActor,
  ): Promise<{ rejectionId: string } | undefined>;
}

const VIEW_COLUMNS = `event_id, topic, deferred_at, attempts, next_attempt_at, last_error`;

interface DeferredFrameRow {
  event_id: string;
  topic: string;
  deferred_at: Date;
  attempts: number;
  next_attempt_at: Date;
  last_error: string;
}

const toView = (r: DeferredFrameRow): DeferredFrameView => ({
  eventId: r.event_id,
  topic: r.topic,
  deferredAt: r.deferred_at.toISOString(),
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at.toISOString(),
  lastError: r.last_error,
});

/** The actor of a give-up: the retry loop, applying `vision.imageRetryMaxAge`. */
const RETRY_LOOP_ACTOR: AuditActor = { kind: 'system', id: 'deferred-frame-retry' };

/**
 * Moves a kept frame to holdfast.frame_rejection in one statement, in the audit trail's transaction, and records it
 * there. The frame id comes from the payload, which passed the frame checks before it was kept; the payload's hash
 * is the one refused frames always carry.
 */
async function giveUp(
  audit: AuditTrail,
  eventId: string,
  change: { action: string; actor: AuditActor; rejection: string; why: string },
): Promise<string | undefined> {
  return audit.inTransaction(async (client) => {
    const res = await client.query<DeferredFrameRow & { rejection_id: string }>(
      `WITH gone AS (DELETE FROM holdfast.frame_deferred WHERE event_id = $1 RETURNING *),
            refused AS (
              INSERT INTO holdfast.frame_rejection (topic, frame_id, reason, payload_sha256)
              SELECT topic, convert_from(payload, 'UTF8')::jsonb ->> 'frameId', $2, encode(sha256(payload), 'hex')
                FROM gone
              RETURNING id)
       SELECT ${VIEW_COLUMNS}, (SELECT id FROM refused) AS rejection_id FROM gone`,
      [eventId, change.rejection.slice(0, 2000)],
    );
    const row = res.rows[0];
    if (!row) return { result: undefined, audit: [] };
    return {
      result: row.rejection_id,
      audit: [
        {
          actor: change.actor,
          action: change.action,
          recordType: 'deferred-frame',
          recordId: eventId,
          old: toView(row),
          new: { rejectionId: row.rejection_id, rejectionReason: change.rejection.slice(0, 2000) },
          reason: change.why,
          outcome: 'done',
          detail: null,
        },
      ],
    };
  });
}

/** `pipeline` counts the frames dropped here with its other refusals (its stats). */
export function createPgDeferredFrameAdmin(
  pool: pg.Pool,
  pipeline: Pick<InferencePipeline, 'countRefused'>,
  audit: AuditTrail,
): DeferredFrameAdmin {
  return {
    async list({ limit }) {
      const [rows, count] = await Promise.all([
        pool.query<DeferredFrameRow>(
          `SELECT ${VIEW_COLUMNS} FROM holdfast.frame_deferred ORDER BY deferred_at, event_id LIMIT $1`,
          [limit],
        ),
        pool.query<{ total: number }>(`SELECT count(*)::int AS total FROM holdfast.frame_deferred`),
      ]);
      return { total: count.rows[0]!.total, frames: rows.rows.map(toView) };
    },
    async retryNow(eventId, actor) {
      return audit.inTransaction(async (client) => {
        const before = await client.query<{ next_attempt_at: Date }>(
          `SELECT next_attempt_at FROM holdfast.frame_deferred WHERE event_id = $1 FOR UPDATE`,
          [eventId],
        );
        const previous = before.rows[0]?.next_attempt_at;
        if (!previous) return { result: undefined, audit: [] };
        const res = await client.query<DeferredFrameRow>(
          `UPDATE holdfast.frame_deferred SET next_attempt_at = now() WHERE event_id = $1 RETURNING ${VIEW_COLUMNS}`,
          [eventId],
        );
        const row = res.rows[0]!;
        const view = toView(row);
        return {
          result: view,
          audit: [
            {
              actor,
              action: 'deferred-frame.retry',
              recordType: 'deferred-frame',
              recordId: eventId,
              old: { nextAttemptAt: previous.toISOString() },
              new: { nextAttemptAt: view.nextAttemptAt },
              reason: null,
              outcome: 'done',
              detail: null,
            },
          ],
        };
      });
    },
    async drop(eventId, { droppedBy, reason }, actor) {
      const rejectionId = await giveUp(audit, eventId, {
        action: 'deferred-frame.drop',
        actor,
        rejection: `dropped: by ${droppedBy}: ${reason}`,
        why: reason,
      });
      if (rejectionId === undefined) return undefined;
      pipeline.countRefused('dropped');
      return { rejectionId };
    },
  };
}

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
    const claimed = await pool.query<{
      event_id: string;
      topic: string;
      payload: Buffer;
      attempts: number;
      deferred_at: Date;
    }>(
      `UPDATE holdfast.frame_deferred SET next_attempt_at = now() + make_interval(secs => $2)
        WHERE event_id IN (SELECT event_id FROM holdfast.frame_deferred WHERE next_attempt_at <= now()
                            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
        RETURNING event_id, topic, payload, attempts, deferred_at`,
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
        if (Date.now() - row.deferred_at.getTime() >= opts.maxAgeMs) {
          const reason = `image-unavailable: kept since ${row.deferred_at.toISOString()}, ${row.attempts + 1} attempts; ${err.message}`;
          await giveUp(opts.audit, row.event_id, {
            action: 'deferred-frame.give-up',
            actor: RETRY_LOOP_ACTOR,
            rejection: reason,
            why: `kept longer than vision.imageRetryMaxAge (${opts.maxAgeMs / 1000} s) without a readable image`,
          });
          pipeline.countRefused('image-unavailable');
          log.warn('deferred frame given up', { eventId: row.event_id, reason });
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
