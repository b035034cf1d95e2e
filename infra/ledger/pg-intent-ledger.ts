import type { Pool } from 'pg';
import { IntentConflictError } from '../../activities/errors';
import type { CreateIntent, IntentLedger, IntentRecord } from '../../activities/ports';
import { canonicalJson, sha256Hex } from '../ingest/canonical-json';

type Queryable = Pick<Pool, 'query'>;

/**
 * One statement records the intent or, when its key is taken, reads the row that holds it. The outer SELECT sees the
 * table as it was when the statement began, so it never sees the row this very INSERT adds, and it finds nothing in
 * one case only: another attempt inserted the key after this statement began (see `begin`).
 */
const BEGIN_SQL = `WITH inserted AS (
    INSERT INTO holdfast.intent (idempotency_key, step, system, request_sha256)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING step, request_sha256, outcome
  )
  SELECT true AS fresh, step, request_sha256, outcome FROM inserted
  UNION ALL
  SELECT false, step, request_sha256, outcome FROM holdfast.intent
   WHERE idempotency_key = $1 AND NOT EXISTS (SELECT 1 FROM inserted)`;

interface BeginRow {
  fresh: boolean;
  step: string;
  request_sha256: string;
  outcome: unknown;
}

/** The intent ledger (activities/ports.ts `IntentLedger`) in holdfast.intent. */
export function createPgIntentLedger(db: Queryable): IntentLedger {
  return {
    async begin({ key, step, system, request }: CreateIntent): Promise<IntentRecord> {
      const requestSha256 = sha256Hex(canonicalJson(request));
      // The second run happens only when two attempts of one create race; its new snapshot sees the other's row.
      for (let run = 0; run < 2; run += 1) {
        const { rows } = await db.query<BeginRow>(BEGIN_SQL, [key, step, system, requestSha256]);
        const row = rows[0];
        if (!row) continue;
        if (row.request_sha256 !== requestSha256) throw new IntentConflictError(key, row.step);
        return row.outcome === null ? { fresh: row.fresh } : { fresh: row.fresh, outcome: row.outcome };
      }
      throw new Error(`intent ledger: the row of idempotency key ${key} is neither new nor readable`);
    },

    async complete(key: string, outcome: unknown): Promise<void> {
      await db.query(
        `UPDATE holdfast.intent SET outcome = $2::jsonb, completed_at = now() WHERE idempotency_key = $1`,
        [key, JSON.stringify(outcome)],
      );
    },
  };
}
