/**
 * SQL for holdfast.outbox (transactional outbox, docs/reliability.md#outbox): ingest writes rows in its own
 * transaction, the dispatcher claims and marks them, the lot case confirms them once it has recorded the part
 * (activities/traceability), and the reconciler sends again what was never confirmed. Every statement is
 * parameterised.
 */
import type { Pool, PoolClient } from 'pg';
import type { DetectionDispatch } from '../../workflows/contracts';

/** NOTIFY channel: ingest signals it inside its transaction, so PostgreSQL delivers it only on commit. */
export const OUTBOX_CHANNEL = 'holdfast_outbox';

export const DEFECT_DETECTED_KIND = 'defect.detected';

/**
 * Key of the transaction-level advisory lock held while a dispatcher drains. One drainer at a time across all
 * processes is what keeps rows of one lot in id order: SKIP LOCKED alone would let a second dispatcher take a
 * later row of a lot while the first is still starting an earlier one. (Arbitrary constant: "HFOUTBOX" as a big-endian int64.)
 */
const DRAIN_LOCK_KEY = '5207937247005003608';

export interface NewOutboxRow {
  eventId: string;
  workflowId: string;
  payload: DetectionDispatch;
  /** W3C trace context of the request that stored the row, so the dispatcher's start continues its trace. */
  traceparent?: string;
}

export interface ClaimedOutboxRow {
  id: string;
  eventId: string;
  workflowId: string;
  payload: DetectionDispatch;
  attempts: number;
  traceparent: string | null;
}

/** Inserts in array order, so outbox ids follow the order the producer sent the results in. */
export async function insertOutboxRows(client: PoolClient, rows: readonly NewOutboxRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `INSERT INTO holdfast.outbox (event_id, kind, workflow_id, payload, traceparent)
     SELECT t.event_id, $4, t.workflow_id, t.payload::jsonb, t.traceparent
       FROM unnest($1::text[], $2::text[], $3::text[], $5::text[])
            WITH ORDINALITY AS t(event_id, workflow_id, payload, traceparent, ord)
      ORDER BY t.ord`,
    [
      rows.map((r) => r.eventId),
      rows.map((r) => r.workflowId),
      rows.map((r) => JSON.stringify(r.payload)),
      DEFECT_DETECTED_KIND,
      rows.map((r) => r.traceparent ?? null),
    ],
  );
  await client.query(`SELECT pg_notify($1, '')`, [OUTBOX_CHANNEL]);
}

/** Takes the drain lock for the current transaction; false when another dispatcher is draining. */
export async function tryLockDrain(client: PoolClient): Promise<boolean> {
  const res = await client.query<{ locked: boolean }>(`SELECT pg_try_advisory_xact_lock($1::bigint) AS locked`, [
    DRAIN_LOCK_KEY,
  ]);
  return res.rows[0]?.locked === true;
}

/**
 * Due rows in id order. A row is held back while an earlier undispatched row of the same lot is waiting out its
 * backoff, so a failing dispatch never lets later detections of that lot overtake it. A row its workflow has
 * confirmed meanwhile (recorded after a reconciler reset) is done.
 */
export async function claimDueRows(client: PoolClient, limit: number): Promise<ClaimedOutboxRow[]> {
  const res = await client.query<{
    id: string;
    event_id: string;
    workflow_id: string;
    payload: DetectionDispatch;
    attempts: number;
    traceparent: string | null;
  }>(
    `SELECT o.id, o.event_id, o.workflow_id, o.payload, o.attempts, o.traceparent
       FROM holdfast.outbox o
      WHERE o.dispatched_at IS NULL
        AND o.confirmed_at IS NULL
        AND o.next_attempt_at <= now()
        AND NOT EXISTS (
              SELECT 1 FROM holdfast.outbox e
               WHERE e.dispatched_at IS NULL
                 AND e.confirmed_at IS NULL
                 AND e.id < o.id
                 AND e.next_attempt_at > now()
                 AND e.payload->'detection'->>'site' = o.payload->'detection'->>'site'
                 AND e.payload->'detection'->>'lotId' = o.payload->'detection'->>'lotId')
      ORDER BY o.id
      LIMIT $1
      FOR UPDATE SKIP LOCKED`,
    [limit],
  );
  return res.rows.map((r) => ({
    id: r.id,
    eventId: r.event_id,
    workflowId: r.workflow_id,
    payload: r.payload,
    attempts: r.attempts,
    traceparent: r.traceparent,
  }));
}

/**
 * `confirmed`: the row needs no confirmation from a workflow (a shadow defect's start is the whole of its effect).
 */
/** Marks the row dispatched; resolves to the seconds since it was stored (both instants from the database's clock). */
export async function markDispatched(
  client: PoolClient,
  id: string,
  runId: string,
  confirmed = false,
): Promise<number> {
  const res = await client.query<{ latency_s: number }>(
    // clock_timestamp: now() is the start of the drain transaction, before the workflow was reached.
    `UPDATE holdfast.outbox
        SET dispatched_at = clock_timestamp(), workflow_run_id = $2, last_error = NULL,
            confirmed_at = CASE WHEN $3::boolean THEN clock_timestamp() ELSE confirmed_at END
      WHERE id = $1
      RETURNING extract(epoch FROM dispatched_at - created_at)::float8 AS latency_s`,
    [id, runId, confirmed],
  );
  return res.rows[0]?.latency_s ?? 0;
}

export interface UnconfirmedRow {
  id: string;
  eventId: string;
  workflowId: string;
}

/**
 * Rows dispatched more than `graceMs` ago that no workflow has confirmed: the engine may have lost the dispatch (or
 * is still far behind). They go back to pending, due now, so the next drain sends them again in id order; the lot
 * case drops a part it already has.
 */
export async function resetUnconfirmed(pool: Pick<Pool, 'query'>, graceMs: number): Promise<UnconfirmedRow[]> {
  const res = await pool.query<{ id: string; event_id: string; workflow_id: string }>(
    `UPDATE holdfast.outbox
        SET dispatched_at = NULL, next_attempt_at = now(), redispatches = redispatches + 1,
            last_error = 'not recorded by its workflow within ' || $2::text || ' ms of dispatch; sent again'
      WHERE dispatched_at IS NOT NULL AND confirmed_at IS NULL
        AND dispatched_at < clock_timestamp() - ($1::double precision * interval '1 millisecond')
      RETURNING id, event_id, workflow_id`,
    [graceMs, String(graceMs)],
  );
  return res.rows.map((r) => ({ id: r.id, eventId: r.event_id, workflowId: r.workflow_id }));
}

export async function markFailed(client: PoolClient, id: string, backoffMs: number, error: string): Promise<void> {
  await client.query(
    `UPDATE holdfast.outbox
        SET attempts = attempts + 1,
            next_attempt_at = clock_timestamp() + ($2::double precision * interval '1 millisecond'),
            last_error = $3
      WHERE id = $1`,
    [id, backoffMs, error],
  );
}
