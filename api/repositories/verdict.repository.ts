import type pg from 'pg';

export interface VerdictRecord {
  site: string;
  line: string;
  station: string;
  frameId: string;
  verdict: 'pass' | 'fail';
  defectClass?: string;
  source: 'ground-truth' | 'manual';
  decidedBy: string;
}

/** What a verdict says, before and after a save. */
export interface VerdictValue {
  verdict: 'pass' | 'fail';
  defectClass: string | null;
  decidedBy: string;
}

export interface SavedVerdict {
  verdict: VerdictRecord;
  /** The verdict this one replaced, or null for the first from its source for its frame. */
  old: VerdictValue | null;
  new: VerdictValue;
}

/**
 * A verdict may be corrected: the latest from the same source for the same frame wins. Returns each saved verdict
 * with the one it replaced, for the audit trail; the caller holds the audit chain's lock, so no other audited save
 * changes a verdict between the read of the old value and the write.
 */
export async function saveVerdicts(
  db: Pick<pg.PoolClient, 'query'>,
  verdicts: readonly VerdictRecord[],
): Promise<SavedVerdict[]> {
  const col = <K extends keyof VerdictRecord>(k: K) => verdicts.map((v) => v[k] ?? null);
  // Every part of one statement sees the table as it was before the statement, so `before` holds the old verdicts.
  const res = await db.query<{
    n: string;
    old_verdict: 'pass' | 'fail' | null;
    old_defect_class: string | null;
    old_decided_by: string | null;
  }>(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                            $8::text[]) WITH ORDINALITY
                AS v (site, line, station, frame_id, verdict, defect_class, source, decided_by, n)),
     before AS (
       SELECT v.site, v.line, v.station, v.frame_id, v.source, v.verdict, v.defect_class, v.decided_by
         FROM holdfast.inspection_verdict v JOIN input i USING (site, line, station, frame_id, source)),
     saved AS (
       INSERT INTO holdfast.inspection_verdict
              (site, line, station, frame_id, verdict, defect_class, source, decided_by)
       SELECT site, line, station, frame_id, verdict, defect_class, source, decided_by FROM input
       ON CONFLICT (site, line, station, frame_id, source)
       DO UPDATE SET verdict = EXCLUDED.verdict, defect_class = EXCLUDED.defect_class, decided_by = EXCLUDED.decided_by,
                     recorded_at = now()
       RETURNING site, line, station, frame_id, source)
     SELECT i.n::text, b.verdict AS old_verdict, b.defect_class AS old_defect_class, b.decided_by AS old_decided_by
       FROM saved s
       JOIN input i USING (site, line, station, frame_id, source)
       LEFT JOIN before b USING (site, line, station, frame_id, source)
      ORDER BY i.n`,
    [
      col('site'),
      col('line'),
      col('station'),
      col('frameId'),
      col('verdict'),
      col('defectClass'),
      col('source'),
      col('decidedBy'),
    ],
  );
  return res.rows.map((row) => {
    const verdict = verdicts[Number(row.n) - 1]!;
    return {
      verdict,
      old:
        row.old_verdict === null
          ? null
          : { verdict: row.old_verdict, defectClass: row.old_defect_class, decidedBy: row.old_decided_by ?? '' },
      new: { verdict: verdict.verdict, defectClass: verdict.defectClass ?? null, decidedBy: verdict.decidedBy },
    };
  });
}

export interface ShadowComparisonRow {
  result: 'pass' | 'fail';
  verdict: 'pass' | 'fail' | null;
  defect_class: string | null;
}

/** Shadow-mode results of one station in a window, each with the verdict chosen by `source` (or none). */
export async function shadowComparisons(
  db: Pick<pg.Pool, 'query'>,
  station: { site: string; line: string; station: string },
  window: { since?: string; until?: string; source: 'ground-truth' | 'manual' | 'any' },
): Promise<ShadowComparisonRow[]> {
  const res = await db.query<ShadowComparisonRow>(
    `SELECT i.result, v.verdict, v.defect_class
       FROM holdfast.inspection i
       LEFT JOIN LATERAL (
         SELECT verdict, defect_class FROM holdfast.inspection_verdict v
          WHERE v.site = i.site AND v.line = i.line AND v.station = i.station AND v.frame_id = i.frame_id
            AND ($6 = 'any' OR v.source = $6)
          ORDER BY (v.source = 'manual') DESC
          LIMIT 1) v ON true
      WHERE i.site = $1 AND i.line = $2 AND i.station = $3 AND i.mode = 'shadow'
        AND ($4::timestamptz IS NULL OR i.inspected_at >= $4::timestamptz)
        AND ($5::timestamptz IS NULL OR i.inspected_at < $5::timestamptz)`,
    [station.site, station.line, station.station, window.since ?? null, window.until ?? null, window.source],
  );
  return res.rows;
}
