/**
 * Supplier scorecards (docs/analytics.md#supplier-quality): incoming inspection from holdfast.incoming_receipt, and
 * what production found later on parts made from the supplier's lots from holdfast.lot_quality_daily (supplier lots,
 * 0020) joined to holdfast.material_lot for the supplier and material. Read per request from those kept tables, never
 * from the raw inspections.
 */
import type { Pool } from 'pg';

export type ScorecardBucket = 'day' | 'week' | 'month';

export interface ScorecardQuery {
  from: string;
  to: string;
  supplier?: string;
  material?: string;
}

export interface SupplierFigures {
  receipts: number;
  rejectedReceipts: number;
  /** rejected ÷ decided receipts; null without receipts. */
  lotRejectionRate: number | null;
  inspectedParts: number;
  defectiveParts: number;
  /** Defective ÷ inspected parts at incoming inspection × 10⁶; null without parts. */
  incomingPpm: number | null;
  /** Parts made from the supplier's lots and first inspected in production, and those that failed first pass. */
  productionUnits: number;
  productionFailed: number;
  productionDefects: number;
  /** productionFailed ÷ productionUnits × 10⁶; null without units. */
  productionPpm: number | null;
}

export interface SupplierScore extends SupplierFigures {
  supplier: string;
  material: string;
  /** 0–100 (see docs): what the ERP's supplier evaluation receives. */
  qualityScore: number;
  /** incomingPpm, 0 when none: the ppm figure the ERP receives. */
  ppm: number;
  defectClasses: { class: string; defects: number }[];
}

export interface ScorecardPoint extends SupplierFigures {
  period: string;
}

export interface SupplierScorecard extends SupplierFigures {
  supplier: string;
  from: string;
  to: string;
  bucket: ScorecardBucket;
  qualityScore: number;
  byMaterial: SupplierScore[];
  defectClasses: { class: string; defects: number }[];
  series: ScorecardPoint[];
  /** The last period's rejection rate against the one before: lower is improving. */
  trend: 'improving' | 'worsening' | 'steady' | 'insufficient-data';
}

interface Counts {
  receipts: number;
  rejected: number;
  inspected: number;
  defective: number;
  units: number;
  failed: number;
  defects: number;
}

const zero = (): Counts => ({ receipts: 0, rejected: 0, inspected: 0, defective: 0, units: 0, failed: 0, defects: 0 });
const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

function figures(c: Counts): SupplierFigures {
  const incomingPpm = ratio(c.defective, c.inspected);
  const productionPpm = ratio(c.failed, c.units);
  return {
    receipts: c.receipts,
    rejectedReceipts: c.rejected,
    lotRejectionRate: ratio(c.rejected, c.receipts),
    inspectedParts: c.inspected,
    defectiveParts: c.defective,
    incomingPpm: incomingPpm === null ? null : incomingPpm * 1e6,
    productionUnits: c.units,
    productionFailed: c.failed,
    productionDefects: c.defects,
    productionPpm: productionPpm === null ? null : productionPpm * 1e6,
  };
}

/**
 * 100 for a supplier with nothing rejected and nothing defective; minus 100 × the lot rejection rate, minus one point
 * per 1 000 ppm (incoming and production together) up to 30; never below 0. Rounded to one decimal.
 */
export function qualityScore(f: SupplierFigures): number {
  const lrr = f.lotRejectionRate ?? 0;
  const ppm = (f.incomingPpm ?? 0) + (f.productionPpm ?? 0);
  return Math.round(Math.max(0, 100 - 100 * lrr - Math.min(30, ppm / 1000)) * 10) / 10;
}

const add = (a: Counts, b: Partial<Counts>) => {
  for (const k of Object.keys(b) as (keyof Counts)[]) a[k] += b[k] ?? 0;
};

interface GroupRow {
  supplier: string;
  material: string;
  period: string | null;
  receipts: number;
  rejected: number;
  inspected: number;
  defective: number;
  units: number;
  failed: number;
  defects: number;
}

/** Incoming and production counts per supplier, material and (with `bucket`) period. */
async function counts(pool: Pick<Pool, 'query'>, q: ScorecardQuery, bucket?: ScorecardBucket): Promise<GroupRow[]> {
  const { rows } = await pool.query<GroupRow>(
    `WITH incoming AS (
       SELECT supplier, material,
              CASE WHEN $5::text IS NULL THEN NULL
                   ELSE to_char(date_trunc($5::text, decided_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD') END AS period,
              count(*)::int AS receipts,
              count(*) FILTER (WHERE decision = 'rejected')::int AS rejected,
              sum(inspected)::int AS inspected, sum(defective)::int AS defective,
              0 AS units, 0 AS failed, 0 AS defects
         FROM holdfast.incoming_receipt
        WHERE decision <> 'open' AND supplier IS NOT NULL
          AND decided_at >= $1::timestamptz AND decided_at < $2::timestamptz
          AND ($3::text IS NULL OR supplier = $3) AND ($4::text IS NULL OR material = $4)
        GROUP BY 1, 2, 3
     ), production AS (
       SELECT l.supplier, COALESCE(l.erp_material, l.material, '') AS material,
              CASE WHEN $5::text IS NULL THEN NULL
                   ELSE to_char(date_trunc($5::text, q.shift_date::timestamp), 'YYYY-MM-DD') END AS period,
              0 AS receipts, 0 AS rejected, 0 AS inspected, 0 AS defective,
              sum(q.units)::int AS units, sum(q.units - q.first_pass_good)::int AS failed,
              sum(q.defects)::int AS defects
         FROM holdfast.lot_quality_daily q
         JOIN holdfast.material_lot l ON l.lot_key = q.lot_key
        WHERE q.lot_kind = 'supplier' AND l.supplier IS NOT NULL
          AND q.shift_date >= ($1::timestamptz AT TIME ZONE 'UTC')::date
          AND q.shift_date < ($2::timestamptz AT TIME ZONE 'UTC')::date
          AND ($3::text IS NULL OR l.supplier = $3)
          AND ($4::text IS NULL OR COALESCE(l.erp_material, l.material, '') = $4)
        GROUP BY 1, 2, 3
     )
     SELECT supplier, material, period,
            sum(receipts)::int AS receipts, sum(rejected)::int AS rejected, sum(inspected)::int AS inspected,
            sum(defective)::int AS defective, sum(units)::int AS units, sum(failed)::int AS failed,
            sum(defects)::int AS defects
       FROM (SELECT * FROM incoming UNION ALL SELECT * FROM production) t
      GROUP BY 1, 2, 3
      ORDER BY 1, 2, 3`,
    [q.from, q.to, q.supplier ?? null, q.material ?? null, bucket ?? null],
  );
  return rows;
}

async function defectClasses(
  pool: Pick<Pool, 'query'>,
  q: ScorecardQuery,
): Promise<{ supplier: string; material: string; class: string; defects: number }[]> {
  const { rows } = await pool.query<{ supplier: string; material: string; class: string; defects: number }>(
    `SELECT r.supplier, r.material, d.key AS class, sum(d.value::int)::int AS defects
       FROM holdfast.incoming_receipt r, jsonb_each_text(r.defects) d
      WHERE r.decision <> 'open' AND r.supplier IS NOT NULL
        AND r.decided_at >= $1::timestamptz AND r.decided_at < $2::timestamptz
        AND ($3::text IS NULL OR r.supplier = $3) AND ($4::text IS NULL OR r.material = $4)
      GROUP BY 1, 2, 3
      ORDER BY 4 DESC, 3`,
    [q.from, q.to, q.supplier ?? null, q.material ?? null],
  );
  return rows;
}

const toCounts = (r: GroupRow): Counts => ({
  receipts: r.receipts,
  rejected: r.rejected,
  inspected: r.inspected,
  defective: r.defective,
  units: r.units,
  failed: r.failed,
  defects: r.defects,
});

/** Each supplier and material's figures over the period (the ERP feed of supplier evaluation and GET /v1/suppliers). */
export async function supplierScores(pool: Pick<Pool, 'query'>, q: ScorecardQuery): Promise<SupplierScore[]> {
  const [rows, classes] = await Promise.all([counts(pool, q), defectClasses(pool, q)]);
  return rows.map((r) => {
    const f = figures(toCounts(r));
    return {
      supplier: r.supplier,
      material: r.material,
      ...f,
      qualityScore: qualityScore(f),
      ppm: f.incomingPpm ?? 0,
      defectClasses: classes
        .filter((c) => c.supplier === r.supplier && c.material === r.material)
        .map((c) => ({ class: c.class, defects: c.defects })),
    };
  });
}

export async function supplierScorecard(
  pool: Pick<Pool, 'query'>,
  q: ScorecardQuery & { supplier: string },
  bucket: ScorecardBucket,
): Promise<SupplierScorecard | undefined> {
  const [byMaterial, series] = await Promise.all([supplierScores(pool, q), counts(pool, q, bucket)]);
  if (byMaterial.length === 0) return undefined;
  const total = zero();
  for (const m of byMaterial) {
    add(total, {
      receipts: m.receipts,
      rejected: m.rejectedReceipts,
      inspected: m.inspectedParts,
      defective: m.defectiveParts,
      units: m.productionUnits,
      failed: m.productionFailed,
      defects: m.productionDefects,
    });
  }
  const periods = new Map<string, Counts>();
  for (const r of series) {
    const c = periods.get(r.period ?? '') ?? zero();
    add(c, toCounts(r));
    periods.set(r.period ?? '', c);
  }
  const points = [...periods.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([period, c]) => ({ period, ...figures(c) }));
  const classes = new Map<string, number>();
  for (const m of byMaterial)
    for (const c of m.defectClasses) classes.set(c.class, (classes.get(c.class) ?? 0) + c.defects);
  const f = figures(total);
  return {
    supplier: q.supplier,
    from: q.from,
    to: q.to,
    bucket,
    ...f,
    qualityScore: qualityScore(f),
    byMaterial,
    defectClasses: [...classes.entries()]
      .map(([c, defects]) => ({ class: c, defects }))
      .sort((a, b) => b.defects - a.defects || a.class.localeCompare(b.class)),
    series: points,
    trend: trendOf(points),
  };
}

function trendOf(points: ScorecardPoint[]): SupplierScorecard['trend'] {
  const withReceipts = points.filter((p) => p.lotRejectionRate !== null);
  if (withReceipts.length < 2) return 'insufficient-data';
  const last = withReceipts[withReceipts.length - 1]!.lotRejectionRate!;
  const before = withReceipts[withReceipts.length - 2]!.lotRejectionRate!;
  if (Math.abs(last - before) < 1e-9) return 'steady';
  return last < before ? 'improving' : 'worsening';
}
