import type pg from 'pg';

export interface OutboxStatus {
  state: 'pending' | 'dispatched' | 'confirmed';
  workflowId: string;
  attempts: number;
  createdAt: string;
  nextAttemptAt?: string;
  dispatchedAt?: string;
  confirmedAt?: string;
  redispatches: number;
  runId?: string;
  lastError?: string;
}

/** Where the hand-over of a failed part to its workflow stands, for reads (the dispatcher owns the writes). */
export async function outboxStatus(db: Pick<pg.Pool, 'query'>, eventId: string): Promise<OutboxStatus | undefined> {
  const res = await db.query<{
    workflow_id: string;
    attempts: number;
    created_at: Date;
    next_attempt_at: Date;
    dispatched_at: Date | null;
    confirmed_at: Date | null;
    redispatches: number;
    workflow_run_id: string | null;
    last_error: string | null;
  }>(
    `SELECT workflow_id, attempts, created_at, next_attempt_at, dispatched_at, confirmed_at, redispatches,
            workflow_run_id, last_error
       FROM holdfast.outbox WHERE event_id = $1`,
    [eventId],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    state: r.confirmed_at ? 'confirmed' : r.dispatched_at ? 'dispatched' : 'pending',
    workflowId: r.workflow_id,
    attempts: r.attempts,
    createdAt: r.created_at.toISOString(),
    ...(r.dispatched_at
      ? { dispatchedAt: r.dispatched_at.toISOString() }
      : r.confirmed_at
        ? {}
        : { nextAttemptAt: r.next_attempt_at.toISOString() }),
    ...(r.confirmed_at ? { confirmedAt: r.confirmed_at.toISOString() } : {}),
    redispatches: r.redispatches,
    ...(r.workflow_run_id ? { runId: r.workflow_run_id } : {}),
    ...(r.last_error ? { lastError: r.last_error } : {}),
  };
}
