/**
 * The dashboard's defect heat map (docs/dashboard.md#heat-map): defect rate per key (product, line, shift, component
 * lot or supplier) and shift date, read from the aggregates kept at ingest (migration 0020) like the other metrics.
 * Never reads holdfast.inspection.
 *
 * Defect rate = defective units ÷ units, where units are parts first inspected at a station (production mode) and
 * defective units those whose first inspection failed (units − first-pass good): 1 − FPY, per cell.
 */
import type pg from 'pg';

type Queryable = Pick<pg.PoolClient, 'query'>;

export const HEATMAP_BY = ['product', 'line', 'shift', 'component-lot', 'supplier'] as const;
export type HeatmapBy = (typeof HEATMAP_BY)[number];

/** The keys shown: the ones with the most units over the range (a heat map of hundreds of rows reads as noise). */
export const HEATMAP_KEY_LIMIT = 30;

export interface HeatmapQuery {
  site: string;
  by: HeatmapBy;
  line?: string | undefined;
  /** Hours starting at or after this instant. */
  from: string;
  /** Hours starting before this instant. */
  to: string;
}

export interface HeatmapCell {
  key: string;
  /** The shift date (the production day), YYYY-MM-DD. */
  day: string;
  units: number;
  defective: number;
  /** defective ÷ units; null without units. */
  rate: number | null;
}

export interface Heatmap {
  /** Shift dates with any cell, ascending. */
  days: string[];
  /** The keys shown, most units first (at most HEATMAP_KEY_LIMIT). */
  keys: string[];
  /** How many keys had units in the range (more than `keys` when capped). */
  totalKeys: number;
  cells: HeatmapCell[];
}

/** The key column and the joins it needs, over quality_hourly `q`. */
const KEY: Record<HeatmapBy, { key: string; from: string }> = {
  product: { key: 'q.sku', from: 'holdfast.quality_hourly q' },
  line: { key: 'q.line', from: 'holdfast.quality_hourly q' },
  shift: { key: 'q.shift', from: 'holdfast.quality_hourly q' },
  // The work order's lots (holdfast.work_order_lot), as holdfast.lot_quality_daily joins them, but on the hourly rows
  // so that the range is the same hours as every other key's.
  'component-lot': {
    key: 'w.lot_key',
    from: `holdfast.quality_hourly q
           JOIN holdfast.work_order_lot w ON w.site = q.site AND w.work_order = q.work_order AND w.lot_kind = 'component'`,
  },
  supplier: {
    key: `COALESCE(m.supplier, '(unknown)')`,
    from: `holdfast.quality_hourly q
           JOIN holdfast.work_order_lot w ON w.site = q.site AND w.work_order = q.work_order AND w.lot_kind = 'supplier'
           LEFT JOIN holdfast.material_lot m ON m.lot_key = w.lot_key`,
  },
};

export async function defectHeatmap(db: Queryable, q: HeatmapQuery, keyLimit = HEATMAP_KEY_LIMIT): Promise<Heatmap> {
  const k = KEY[q.by];
  const res = await db.query<{ key: string; day: string; units: string; defective: string; total_keys: string }>(
    `WITH cells AS (
       SELECT ${k.key} AS key, q.shift_date AS day, sum(q.units) AS units, sum(q.units - q.first_pass_good) AS defective
         FROM ${k.from}
        WHERE q.site = $1 AND ($2::text IS NULL OR q.line = $2) AND q.hour >= $3 AND q.hour < $4
        GROUP BY 1, 2
       HAVING sum(q.units) > 0
     ), top AS (
       SELECT key, count(*) OVER () AS total_keys
         FROM cells
        GROUP BY key
        ORDER BY sum(units) DESC, key
        LIMIT $5
     )
     SELECT c.key, to_char(c.day, 'YYYY-MM-DD') AS day, c.units, c.defective, t.total_keys
       FROM cells c JOIN top t USING (key)
      ORDER BY c.key, c.day`,
    [q.site, q.line ?? null, q.from, q.to, keyLimit],
  );
  const units = new Map<string, number>();
  const cells = res.rows.map((r): HeatmapCell => {
    const n = Number(r.units);
    const defective = Number(r.defective);
    units.set(r.key, (units.get(r.key) ?? 0) + n);
    return { key: r.key, day: r.day, units: n, defective, rate: n === 0 ? null : defective / n };
  });
  const keys = [...units.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([key]) => key);
  return {
    days: [...new Set(cells.map((c) => c.day))].sort(),
    keys,
    totalKeys: Number(res.rows[0]?.total_keys ?? 0),
    cells,
  };
}
