import type pg from 'pg';

export interface OutboxStatus {
  state: 'pending' | 'dispatched';
  attempts: number;
  createdAt: string;
  nextAttemptAt?: string;
  dispatchedAt?: string;
  runId?: string;
  lastError?: string;
}

/** Where the start of a defect workflow stands, for reads (the dispatcher owns the writes). */
export async function outboxStatus(db: Pick<pg.Pool, 'query'>, eventId: string): Promise<OutboxStatus | undefined> {
  const res = await db.query<{
    attempts: number;
    created_at: Date;
    next_attempt_at: Date;
    dispatched_at: Date | null;
    workflow_run_id: string | null;
    last_error: string | null;
  }>(
    `SELECT attempts, created_at, next_attempt_at, dispatched_at, workflow_run_id, last_error
       FROM holdfast.outbox WHERE event_id = $1`,
    [eventId],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    state: r.dispatched_at ? 'dispatched' : 'pending',
    attempts: r.attempts,
    createdAt: r.created_at.toISOString(),
    ...(r.dispatched_at
      ? { dispatchedAt: r.dispatched_at.toISOString() }
      : { nextAttemptAt: r.next_attempt_at.toISOString() }),
    ...(r.workflow_run_id ? { runId: r.workflow_run_id } : {}),
    ...(r.last_error ? { lastError: r.last_error } : {}),
  };
}
