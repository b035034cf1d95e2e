import type pg from 'pg';

/**
 * holdfast.api_idempotency, per draft-ietf-httpapi-idempotency-key-header: one row per (scope, key) holding the
 * request fingerprint and, once final, the stored answer.
 */
export type IdempotencyClaim =
  | { kind: 'claimed' }
  | { kind: 'fingerprint-mismatch' }
  | { kind: 'in-flight' }
  | { kind: 'done'; status: number; body: unknown };

type Queryable = Pick<pg.Pool, 'query'>;

/**
 * Claims the key for this request. An in-flight row older than `staleAfterMs` belonged to a process that died
 * mid-request; it is taken over so the key does not answer 409 forever.
 */
export async function claimIdempotencyKey(
  db: Queryable,
  scope: string,
  key: string,
  fingerprint: string,
  staleAfterMs: number,
): Promise<IdempotencyClaim> {
  // A concurrent request may delete its in-flight row (transient failure) between our insert and select.
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const inserted = await db.query(
      `INSERT INTO holdfast.api_idempotency (scope, key, request_sha256, state)
       VALUES ($1, $2, $3, 'in-flight')
       ON CONFLICT (scope, key) DO NOTHING`,
      [scope, key, fingerprint],
    );
    if (inserted.rowCount === 1) return { kind: 'claimed' };
    const res = await db.query<{
      request_sha256: string;
      state: 'in-flight' | 'done';
      response_status: number | null;
      response_body: unknown;
    }>(
      `SELECT request_sha256, state, response_status, response_body
         FROM holdfast.api_idempotency WHERE scope = $1 AND key = $2`,
      [scope, key],
    );
    const row = res.rows[0];
    if (!row) continue;
    if (row.request_sha256 !== fingerprint) return { kind: 'fingerprint-mismatch' };
    if (row.state === 'done') return { kind: 'done', status: row.response_status ?? 500, body: row.response_body };
    const takenOver = await db.query(
      `UPDATE holdfast.api_idempotency SET created_at = now()
        WHERE scope = $1 AND key = $2 AND state = 'in-flight'
          AND created_at < now() - ($3::double precision * interval '1 millisecond')`,
      [scope, key, staleAfterMs],
    );
    return takenOver.rowCount === 1 ? { kind: 'claimed' } : { kind: 'in-flight' };
  }
  return { kind: 'in-flight' };
}

export async function completeIdempotencyKey(
  db: Queryable,
  scope: string,
  key: string,
  status: number,
  body: unknown,
): Promise<void> {
  await db.query(
    `UPDATE holdfast.api_idempotency
        SET state = 'done', response_status = $3, response_body = $4::jsonb, completed_at = now()
      WHERE scope = $1 AND key = $2`,
    [scope, key, status, JSON.stringify(body)],
  );
}

/** Forgets an in-flight claim after a transient failure, so a retry with the same key runs again. */
export async function releaseIdempotencyKey(db: Queryable, scope: string, key: string): Promise<void> {
  await db.query(`DELETE FROM holdfast.api_idempotency WHERE scope = $1 AND key = $2 AND state = 'in-flight'`, [
    scope,
    key,
  ]);
}
