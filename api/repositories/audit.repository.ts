import type pg from 'pg';
import type { AuditRecord } from '../../infra/audit/audit-record';

export interface AuditFilter {
  recordType?: string;
  recordId?: string;
  actor?: string;
  from?: string;
  to?: string;
  /** Records after this sequence number (keyset pagination). */
  after: number;
  limit: number;
}

/** One page of holdfast.audit_record in sequence order; `next` is the last seq when more records match. */
export async function listAuditRecords(
  db: Pick<pg.Pool, 'query'>,
  filter: AuditFilter,
): Promise<{ records: AuditRecord[]; next: string | null }> {
  const res = await db.query<{ seq: string; content: string; prev_hash: string; hash: string }>(
    `SELECT seq, content, prev_hash, hash FROM holdfast.audit_record
      WHERE seq > $1
        AND ($2::text IS NULL OR record_type = $2)
        AND ($3::text IS NULL OR record_id = $3)
        AND ($4::text IS NULL OR actor_id = $4)
        AND ($5::timestamptz IS NULL OR recorded_at >= $5)
        AND ($6::timestamptz IS NULL OR recorded_at < $6)
      ORDER BY seq
      LIMIT $7`,
    [
      filter.after,
      filter.recordType ?? null,
      filter.recordId ?? null,
      filter.actor ?? null,
      filter.from ?? null,
      filter.to ?? null,
      filter.limit + 1,
    ],
  );
  const rows = res.rows.slice(0, filter.limit);
  return {
    // The stored content as it was hashed, with its hashes: the copy can be checked without the database.
    records: rows.map((r) => ({ ...(JSON.parse(r.content) as AuditRecord), prevHash: r.prev_hash, hash: r.hash })),
    next: res.rows.length > filter.limit ? rows[rows.length - 1]!.seq : null,
  };
}
