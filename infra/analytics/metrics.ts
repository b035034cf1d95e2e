/**
 * Reads of the quality aggregates (migration 0020, docs/analytics.md#first-pass-yield): first-pass yield, the defect
 * Pareto and figures by material lot, summed over the grain the aggregates keep. Never reads holdfast.inspection.
 */
import type pg from 'pg';

type Queryable = Pick<pg.PoolClient, 'query'>;

export const METRIC_DIMENSIONS = ['site', 'line', 'station', 'sku', 'workOrder', 'shift', 'shiftDate'] as const;
export type MetricDimension = (typeof METRIC_DIMENSIONS)[number];

export const METRIC_BUCKETS = ['hour', 'shift', 'day', 'week', 'none'] as const;
export type MetricBucket = (typeof METRIC_BUCKETS)[number];

export const INSPECTION_KINDS = ['first', 're-inspection', 'after-rework'] as const;
export type InspectionKindName = (typeof INSPECTION_KINDS)[number];

export interface MetricFilter {
  site: string;
  line?: string | undefined;
  station?: string | undefined;
  sku?: string | undefined;
  workOrder?: string | undefined;
  /** Hours starting at or after this instant. */
  from?: string | undefined;
  /** Hours starting before this instant. */
  to?: string | undefined;
}

export interface MetricQuery extends MetricFilter {
  groupBy: readonly MetricDimension[];
  bucket: MetricBucket;
}

const COLUMN: Record<MetricDimension, string> = {
  site: 'site',
  line: 'line',
  station: 'station',
  sku: 'sku',
  workOrder: 'work_order',
  shift: 'shift',
  shiftDate: `to_char(shift_date, 'YYYY-MM-DD')`,
};

/**
 * The bucket as text: an hour by its UTC start (ISO 8601), a shift as `<shift date>/<shift>`, a day by its shift
 * date (the production day), a week by the Monday of its shift dates' ISO week.
 */
const BUCKET: Record<MetricBucket, string> = {
  hour: `to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00:00"Z"')`,
  shift: `to_char(shift_date, 'YYYY-MM-DD') || '/' || shift`,
  day: `to_char(shift_date, 'YYYY-MM-DD')`,
  week: `to_char(date_trunc('week', shift_date), 'YYYY-MM-DD')`,
  none: 'NULL::text',
};

/** WHERE over the hourly aggregates, with its parameters starting at $1. */
function where(f: MetricFilter): { sql: string; params: unknown[] } {
  return {
    sql: `site = $1 AND ($2::text IS NULL OR line = $2) AND ($3::text IS NULL OR station = $3)
          AND ($4::text IS NULL OR sku = $4) AND ($5::text IS NULL OR work_order = $5)
          AND ($6::timestamptz IS NULL OR hour >= $6) AND ($7::timestamptz IS NULL OR hour < $7)`,
    params: [
      f.site,
      f.line ?? null,
      f.station ?? null,
      f.sku ?? null,
      f.workOrder ?? null,
      f.from ?? null,
      f.to ?? null,
    ],
  };
}

/** `dim0, dim1, …, bucket` select list and the group key names, in the order asked. */
function grouping(groupBy: readonly MetricDimension[], bucket: MetricBucket) {
  const dims = [...new Set(groupBy)];
  const select = [...dims.map((d, i) => `${COLUMN[d]} AS g${i}`), `${BUCKET[bucket]} AS bucket`].join(', ');
  const keys = [...dims.map((_, i) => `g${i}`), 'bucket'];
  return { dims, select, keys };
}

type Row = Record<string, string | null>;

const groupOf = (dims: readonly MetricDimension[], row: Row) =>
  Object.fromEntries(dims.map((d, i) => [d, row[`g${i}`] ?? null])) as Partial<Record<MetricDimension, string>>;

export interface FpyFigures {
  /** Parts first inspected (production mode). */
  units: number;
  /** Of those, parts whose first inspection passed. */
  firstPassGood: number;
  /** firstPassGood ÷ units; null when no part was first inspected. */
  fpy: number | null;
  /** Inspections of parts already inspected at the station: not in the figures above. */
  reInspections: { inspections: number; passed: number };
  /** Inspections the producer declared after rework: not in the figures above. */
  afterRework: { inspections: number; passed: number };
  /** Shadow-mode results: never counted in any figure above. */
  shadow: { inspections: number; failed: number };
}

export interface FpyRow extends FpyFigures {
  group: Partial<Record<MetricDimension, string>>;
  bucket: string | null;
}

const FPY_SUMS = `sum(units) AS units, sum(first_pass_good) AS first_pass_good, sum(reinspections) AS reinspections,
  sum(reinspections_passed) AS reinspections_passed, sum(reworked) AS reworked, sum(reworked_passed) AS reworked_passed,
  sum(shadow_inspections) AS shadow_inspections, sum(shadow_failed) AS shadow_failed`;

function fpyFigures(r: Row): FpyFigures {
  const n = (k: string) => Number(r[k] ?? 0);
  const units = n('units');
  const firstPassGood = n('first_pass_good');
  return {
    units,
    firstPassGood,
    fpy: units === 0 ? null : firstPassGood / units,
    reInspections: { inspections: n('reinspections'), passed: n('reinspections_passed') },
    afterRework: { inspections: n('reworked'), passed: n('reworked_passed') },
    shadow: { inspections: n('shadow_inspections'), failed: n('shadow_failed') },
  };
}

export async function firstPassYield(db: Queryable, q: MetricQuery): Promise<{ rows: FpyRow[]; total: FpyFigures }> {
  const w = where(q);
  const g = grouping(q.groupBy, q.bucket);
  const res = await db.query<Row>(
    `SELECT ${g.select}, ${FPY_SUMS}
       FROM holdfast.quality_hourly
      WHERE ${w.sql}
      GROUP BY ${g.keys.join(', ')}
      ORDER BY ${g.keys.join(', ')}`,
    w.params,
  );
  const rows = res.rows.map((r) => ({ group: groupOf(g.dims, r), bucket: r.bucket ?? null, ...fpyFigures(r) }));
  const total = await db.query<Row>(`SELECT ${FPY_SUMS} FROM holdfast.quality_hourly WHERE ${w.sql}`, w.params);
  return { rows, total: fpyFigures(total.rows[0] ?? {}) };
}

export interface ParetoClass {
  defectClass: string;
  /** Defects of the class found. */
  defects: number;
  /** Inspections that found at least one defect of the class. */
  parts: number;
  /** defects ÷ the group's defects. */
  share: number;
  /** The share of this class and every class before it (classes by defects, most first, then by name). */
  cumulativeShare: number;
}

export interface ParetoGroup {
  group: Partial<Record<MetricDimension, string>>;
  bucket: string | null;
  defects: number;
  classes: ParetoClass[];
}

export interface ParetoQuery extends MetricQuery {
  /** Only inspections of these kinds; absent: every kind (production mode only, always). */
  inspectionKinds?: readonly InspectionKindName[] | undefined;
}

export async function defectPareto(db: Queryable, q: ParetoQuery): Promise<{ groups: ParetoGroup[] }> {
  const w = where(q);
  const g = grouping(q.groupBy, q.bucket);
  const res = await db.query<Row>(
    `SELECT ${g.select}, defect_class, sum(defects) AS defects, sum(parts) AS parts
       FROM holdfast.defect_hourly
      WHERE ${w.sql} AND ($8::text[] IS NULL OR inspection_kind = ANY ($8))
      GROUP BY ${g.keys.join(', ')}, defect_class
     HAVING sum(defects) > 0
      ORDER BY ${g.keys.join(', ')}, sum(defects) DESC, defect_class`,
    [...w.params, q.inspectionKinds ? [...q.inspectionKinds] : null],
  );
  const groups: ParetoGroup[] = [];
  let current: (ParetoGroup & { key: string }) | undefined;
  for (const r of res.rows) {
    const key = JSON.stringify(g.keys.map((k) => r[k] ?? null));
    if (!current || current.key !== key) {
      current = { key, group: groupOf(g.dims, r), bucket: r.bucket ?? null, defects: 0, classes: [] };
      groups.push(current);
    }
    current.classes.push({
      defectClass: r.defect_class ?? '',
      defects: Number(r.defects),
      parts: Number(r.parts),
      share: 0,
      cumulativeShare: 0,
    });
    current.defects += Number(r.defects);
  }
  for (const group of groups) {
    let running = 0;
    for (const c of group.classes) {
      running += c.defects;
      c.share = c.defects / group.defects;
      c.cumulativeShare = running / group.defects;
    }
  }
  return { groups: groups.map(({ group, bucket, defects, classes }) => ({ group, bucket, defects, classes })) };
}

export type LotQualityBy = 'component-lot' | 'supplier-lot' | 'supplier';
export const LOT_DIMENSIONS = ['line', 'station', 'shift', 'shiftDate'] as const;
export type LotDimension = (typeof LOT_DIMENSIONS)[number];

const LOT_COLUMN: Record<LotDimension, string> = {
  line: 'q.line',
  station: 'q.station',
  shift: 'q.shift',
  shiftDate: `to_char(q.shift_date, 'YYYY-MM-DD')`,
};

export interface LotQualityQuery {
  site: string;
  by: LotQualityBy;
  line?: string | undefined;
  station?: string | undefined;
  /** First and last shift dates included (YYYY-MM-DD). */
  fromShiftDate?: string | undefined;
  toShiftDate?: string | undefined;
  groupBy: readonly LotDimension[];
}

export interface LotQualityRow {
  /** The lot key, or the supplier for `by=supplier` (`(unknown)` for lots whose supplier is not recorded). */
  key: string;
  material: string | null;
  supplier: string | null;
  supplierBatch: string | null;
  group: Partial<Record<LotDimension, string>>;
  units: number;
  firstPassGood: number;
  fpy: number | null;
  /** Defects found on the lot's parts, at every inspection of them (production mode). */
  defects: number;
}

export async function lotQuality(db: Queryable, q: LotQualityQuery): Promise<{ rows: LotQualityRow[] }> {
  const dims = [...new Set(q.groupBy)];
  const dimSelect = dims.map((d, i) => `${LOT_COLUMN[d]} AS g${i}`);
  const dimKeys = dims.map((_, i) => `g${i}`);
  const supplier = q.by === 'supplier';
  const keyExpr = supplier ? `COALESCE(m.supplier, '(unknown)')` : 'q.lot_key';
  const select = [
    `${keyExpr} AS key`,
    supplier ? 'NULL::text AS material' : 'm.material',
    supplier ? `COALESCE(m.supplier, '(unknown)') AS supplier` : 'm.supplier',
    supplier ? 'NULL::text AS supplier_batch' : 'm.supplier_batch',
    ...dimSelect,
  ];
  const keys = ['1', '2', '3', '4', ...dimKeys];
  const res = await db.query<Row>(
    `SELECT ${select.join(', ')},
            sum(q.units) AS units, sum(q.first_pass_good) AS first_pass_good, sum(q.defects) AS defects
       FROM holdfast.lot_quality_daily q
       LEFT JOIN holdfast.material_lot m ON m.lot_key = q.lot_key
      WHERE q.site = $1 AND q.lot_kind = $2 AND ($3::text IS NULL OR q.line = $3)
        AND ($4::text IS NULL OR q.station = $4)
        AND ($5::date IS NULL OR q.shift_date >= $5) AND ($6::date IS NULL OR q.shift_date <= $6)
      GROUP BY ${keys.join(', ')}
     HAVING sum(q.units) <> 0 OR sum(q.defects) <> 0
      ORDER BY ${[...dimKeys, '1'].join(', ')}`,
    [
      q.site,
      q.by === 'component-lot' ? 'component' : 'supplier',
      q.line ?? null,
      q.station ?? null,
      q.fromShiftDate ?? null,
      q.toShiftDate ?? null,
    ],
  );
  return {
    rows: res.rows.map((r) => {
      const units = Number(r.units);
      const firstPassGood = Number(r.first_pass_good);
      return {
        key: r.key ?? '',
        material: r.material ?? null,
        supplier: r.supplier ?? null,
        supplierBatch: r.supplier_batch ?? null,
        group: Object.fromEntries(dims.map((d, i) => [d, r[`g${i}`] ?? null])),
        units,
        firstPassGood,
        fpy: units === 0 ? null : firstPassGood / units,
        defects: Number(r.defects),
      };
    }),
  };
}
