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

/** A verdict may be corrected: the latest from the same source for the same frame wins. */
export async function saveVerdicts(db: Pick<pg.Pool, 'query'>, verdicts: readonly VerdictRecord[]): Promise<number> {
  const col = <K extends keyof VerdictRecord>(k: K) => verdicts.map((v) => v[k] ?? null);
  const res = await db.query(
    `INSERT INTO holdfast.inspection_verdict (site, line, station, frame_id, verdict, defect_class, source, decided_by)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
     ON CONFLICT (site, line, station, frame_id, source)
     DO UPDATE SET verdict = EXCLUDED.verdict, defect_class = EXCLUDED.defect_class, decided_by = EXCLUDED.decided_by,
                   recorded_at = now()`,
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
  return res.rowCount ?? 0;
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
