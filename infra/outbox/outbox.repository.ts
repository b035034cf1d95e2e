/**
 * SQL for holdfast.outbox (transactional outbox, reliability.md §2.5): ingest writes rows in its own transaction,
 * the dispatcher claims and marks them. Every statement is parameterised.
 */
import type { PoolClient } from 'pg';
import type { DefectWorkflowInput } from '../../workflows/contracts';

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
  payload: DefectWorkflowInput;
  /** W3C trace context of the request that stored the row, so the dispatcher's start continues its trace. */
  traceparent?: string;
}

export interface ClaimedOutboxRow {
  id: string;
  eventId: string;
  workflowId: string;
  payload: DefectWorkflowInput;
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
 * backoff, so a failing start never lets later detections of that lot overtake it.
 */
export async function claimDueRows(client: PoolClient, limit: number): Promise<ClaimedOutboxRow[]> {
  const res = await client.query<{
    id: string;
    event_id: string;
    workflow_id: string;
    payload: DefectWorkflowInput;
    attempts: number;
    traceparent: string | null;
  }>(
    `SELECT o.id, o.event_id, o.workflow_id, o.payload, o.attempts, o.traceparent
       FROM holdfast.outbox o
      WHERE o.dispatched_at IS NULL
        AND o.next_attempt_at <= now()
        AND NOT EXISTS (
              SELECT 1 FROM holdfast.outbox e
               WHERE e.dispatched_at IS NULL
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
 * The events among these whose part a lot case has already contained (the `defect-item` trace link it writes):
 * dispatched again, such a part must not be handed to its lot case a second time, which would open a new hold cycle
 * if the first one has closed.
 */
export async function containedEvents(client: PoolClient, eventIds: string[]): Promise<Set<string>> {
  if (eventIds.length === 0) return new Set();
  const res = await client.query<{ from_id: string }>(
    `SELECT from_id FROM holdfast.trace_link
      WHERE from_kind = 'inspection' AND relation = 'defect-item' AND from_id = ANY($1::text[])`,
    [eventIds],
  );
  return new Set(res.rows.map((r) => r.from_id));
}

/** Marks the row dispatched; resolves to the seconds since it was stored (both instants from the database's clock). */
export async function markDispatched(client: PoolClient, id: string, runId: string): Promise<number> {
  const res = await client.query<{ latency_s: number }>(
    // clock_timestamp: now() is the start of the drain transaction, before the workflow was started.
    `UPDATE holdfast.outbox SET dispatched_at = clock_timestamp(), workflow_run_id = $2, last_error = NULL WHERE id = $1
     RETURNING extract(epoch FROM dispatched_at - created_at)::float8 AS latency_s`,
    [id, runId],
  );
  return res.rows[0]?.latency_s ?? 0;
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
