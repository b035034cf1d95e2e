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

/** A row Temporal accepted, as the dispatcher saw it. */
export interface DispatchedRow {
  id: string;
  runId: string;
  /** The row needs no confirmation from a workflow (a shadow defect's start is the whole of its effect). */
  confirmed: boolean;
  /** Milliseconds between Temporal's answer and this write: the row was dispatched that long before the write. */
  answeredMsAgo: number;
}

/**
 * Marks a drain's dispatched rows in one statement; resolves to each row's seconds from stored to dispatched, both
 * instants on the database's clock (the dispatch instant is the write's clock less the time the row waited for it).
 */
export async function markDispatched(client: PoolClient, rows: DispatchedRow[]): Promise<Map<string, number>> {
  if (rows.length === 0) return new Map();
  const res = await client.query<{ id: string; latency_s: number }>(
    `UPDATE holdfast.outbox o
        SET dispatched_at = d.at, workflow_run_id = d.run_id, last_error = NULL,
            confirmed_at = CASE WHEN d.confirmed THEN d.at ELSE o.confirmed_at END
       FROM (SELECT id, run_id, confirmed, clock_timestamp() - ms_ago * interval '1 millisecond' AS at
               FROM unnest($1::bigint[], $2::text[], $3::boolean[], $4::float8[]) AS t(id, run_id, confirmed, ms_ago)) d
      WHERE o.id = d.id
      RETURNING o.id, extract(epoch FROM o.dispatched_at - o.created_at)::float8 AS latency_s`,
    [rows.map((r) => r.id), rows.map((r) => r.runId), rows.map((r) => r.confirmed), rows.map((r) => r.answeredMsAgo)],
  );
  return new Map(res.rows.map((r) => [String(r.id), r.latency_s]));
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

/** A row Temporal did not accept: it is due again after `backoffMs`. */
export interface FailedRow {
  id: string;
  backoffMs: number;
  error: string;
}

/** Records a drain's failed rows in one statement. */
export async function markFailed(client: PoolClient, rows: FailedRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `UPDATE holdfast.outbox o
        SET attempts = o.attempts + 1,
            next_attempt_at = clock_timestamp() + (f.backoff_ms * interval '1 millisecond'),
            last_error = f.error
       FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS f(id, backoff_ms, error)
      WHERE o.id = f.id`,
    [rows.map((r) => r.id), rows.map((r) => r.backoffMs), rows.map((r) => r.error)],
  );
}
