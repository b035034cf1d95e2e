/**
 * Writing the audit trail (holdfast.audit_record, docs/audit-trail.md). Every audited change runs in a transaction
 * that first locks the chain head: writers queue there, so each gets the next sequence number and the previous hash
 * in commit order and the chain never forks. Taking the lock first, before the change reads anything, also makes the
 * old values a record states the ones the change replaced.
 */
import type pg from 'pg';
import { withTransaction } from '../db/pool';
import { type AuditContent, type AuditEntry, type AuditRecord, chainHash, contentText } from './audit-record';

/** What the trail reports once records are committed (infra/observability/audit-metrics.ts counts them). */
export interface AuditObserver {
  written(entries: readonly AuditEntry[]): void;
}

export interface AuditTrail {
  /**
   * Runs `change` in one transaction with the chain head locked, appends the records it returns and commits both:
   * a change and its audit records are stored together or not at all.
   */
  inTransaction<T>(change: (client: pg.PoolClient) => Promise<{ result: T; audit: readonly AuditEntry[] }>): Promise<T>;
  /** Records what happened outside Holdfast's tables (a Temporal update and its answer), in a transaction of its own. */
  append(entries: readonly AuditEntry[]): Promise<AuditRecord[]>;
}

interface ChainHead {
  seq: number;
  hash: string;
  /** PostgreSQL's clock once the lock was granted, so record times rise with their sequence numbers. */
  at: string;
}

/**
 * Locks the head for the rest of the transaction. The CTE locks first and the outer SELECT reads the clock after, so
 * a writer that waited for the lock gets a time later than the record it waited behind.
 */
async function lockChainHead(client: pg.PoolClient): Promise<ChainHead> {
  const res = await client.query<{ seq: string; hash: string; at: string }>(
    `WITH head AS (SELECT seq, hash FROM holdfast.audit_chain_head FOR UPDATE)
     SELECT seq, hash,
            to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') AS at
       FROM head`,
  );
  const row = res.rows[0];
  if (!row) throw new Error('holdfast.audit_chain_head has no row: is migration 0007_audit applied?');
  return { seq: Number(row.seq), hash: row.hash, at: row.at };
}

/** Appends `entries` after `head`, in one statement; the insert trigger checks each link and advances the head. */
async function appendAfter(
  client: pg.PoolClient,
  head: ChainHead,
  entries: readonly AuditEntry[],
): Promise<AuditRecord[]> {
  let prevHash = head.hash;
  const records = entries.map((entry, i): AuditRecord & { text: string } => {
    // null, not undefined: canonical JSON drops an undefined member, and every record keeps the same fields.
    const content: AuditContent = {
      ...entry,
      old: entry.old ?? null,
      new: entry.new ?? null,
      detail: entry.detail ?? null,
      seq: head.seq + i + 1,
      at: head.at,
    };
    const text = contentText(content);
    const hash = chainHash(prevHash, text);
    const record = { ...content, prevHash, hash, text };
    prevHash = hash;
    return record;
  });
  if (records.length === 0) return [];
  const col = <T>(pick: (r: (typeof records)[number]) => T) => records.map(pick);
  await client.query(
    `INSERT INTO holdfast.audit_record
            (seq, content, prev_hash, hash, recorded_at, actor_id, record_type, record_id)
     SELECT seq, content, prev_hash, hash, recorded_at, actor_id, record_type, record_id
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[],
                   $8::text[])
            WITH ORDINALITY AS r (seq, content, prev_hash, hash, recorded_at, actor_id, record_type, record_id, n)
      ORDER BY n`,
    [
      col((r) => r.seq),
      col((r) => r.text),
      col((r) => r.prevHash),
      col((r) => r.hash),
      col((r) => r.at),
      col((r) => r.actor.id),
      col((r) => r.recordType),
      col((r) => r.recordId),
    ],
  );
  return records.map(({ text: _text, ...record }) => record);
}

export function createAuditTrail(pool: pg.Pool, observer?: AuditObserver): AuditTrail {
  return {
    async inTransaction(change) {
      const { result, audit } = await withTransaction(pool, async (client) => {
        const head = await lockChainHead(client);
        const done = await change(client);
        await appendAfter(client, head, done.audit);
        return done;
      });
      if (audit.length > 0) observer?.written(audit);
      return result;
    },
    async append(entries) {
      const records = await withTransaction(pool, async (client) =>
        appendAfter(client, await lockChainHead(client), entries),
      );
      if (entries.length > 0) observer?.written(entries);
      return records;
    },
  };
}
