import type { Pool } from 'pg';
import type { AuditRecord } from '../../infra/audit/audit-record';

/** The audit records of one record (holdfast.audit_record.record_id), oldest first, as GET /v1/audit exports them. */
export async function auditRecordsOf(pool: Pool, recordId: string): Promise<AuditRecord[]> {
  const res = await pool.query<{ content: string; prev_hash: string; hash: string }>(
    `SELECT content, prev_hash, hash FROM holdfast.audit_record WHERE record_id = $1 ORDER BY seq`,
    [recordId],
  );
  return res.rows.map((r) => ({ ...(JSON.parse(r.content) as AuditRecord), prevHash: r.prev_hash, hash: r.hash }));
}
