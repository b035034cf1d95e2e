/**
 * The three questions bench:analytics times, each over one site and a window, grouped by line and shift, and the
 * reference: first-pass yield by line and shift read from the raw inspections instead of the aggregates.
 */
import type pg from 'pg';

export interface Window {
  site: string;
  /** UTC instants; the window is [from, to). */
  from: Date;
  to: Date;
}

export interface FpyRow {
  line: string;
  shift: string;
  units: number;
  firstPassGood: number;
}

type Queryable = Pick<pg.Pool, 'query'>;

const day = (d: Date) => d.toISOString().slice(0, 10);

/** First-pass yield by line and shift from holdfast.quality_hourly. */
export async function fpyByLineAndShift(db: Queryable, w: Window): Promise<FpyRow[]> {
  const res = await db.query<{ line: string; shift: string; units: string; first_pass_good: string }>(
    `SELECT line, shift, sum(units) AS units, sum(first_pass_good) AS first_pass_good
       FROM holdfast.quality_hourly
      WHERE site = $1 AND hour >= $2 AND hour < $3
      GROUP BY line, shift
      ORDER BY line, shift`,
    [w.site, w.from, w.to],
  );
  return res.rows.map((r) => ({
    line: r.line,
    shift: r.shift,
    units: Number(r.units),
    firstPassGood: Number(r.first_pass_good),
  }));
}

/** Defects by class, line and shift, most frequent first, from holdfast.defect_hourly. */
export async function paretoByLineAndShift(db: Queryable, w: Window): Promise<number> {
  const res = await db.query(
    `SELECT line, shift, defect_class, sum(parts) AS parts, sum(defects) AS defects
       FROM holdfast.defect_hourly
      WHERE site = $1 AND hour >= $2 AND hour < $3
      GROUP BY line, shift, defect_class
      ORDER BY line, shift, sum(defects) DESC`,
    [w.site, w.from, w.to],
  );
  return res.rowCount ?? 0;
}

/** First-pass yield and defects by supplier, line and shift: holdfast.lot_quality_daily's supplier lots by supplier. */
export async function supplierByLineAndShift(db: Queryable, w: Window): Promise<number> {
  const res = await db.query(
    `SELECT m.supplier, q.line, q.shift, sum(q.units) AS units, sum(q.first_pass_good) AS first_pass_good,
            sum(q.defects) AS defects
       FROM holdfast.lot_quality_daily q
       JOIN holdfast.material_lot m ON m.lot_key = q.lot_key
      WHERE q.site = $1 AND q.lot_kind = 'supplier' AND q.shift_date >= $2::date AND q.shift_date < $3::date
      GROUP BY m.supplier, q.line, q.shift
      ORDER BY m.supplier, q.line, q.shift`,
    [w.site, day(w.from), day(w.to)],
  );
  return res.rowCount ?? 0;
}

/**
 * The reference: the same figures as fpyByLineAndShift counted from holdfast.inspection itself, production mode,
 * first inspections by the kind and shift stored on each row (the cheapest a raw query can be).
 */
export async function rawFpyByLineAndShift(db: Queryable, w: Window): Promise<FpyRow[]> {
  const res = await db.query<{ line: string; shift: string; units: string; first_pass_good: string }>(
    `SELECT line, shift, count(*) AS units, count(*) FILTER (WHERE result = 'pass') AS first_pass_good
       FROM holdfast.inspection
      WHERE site = $1 AND inspected_at >= $2 AND inspected_at < $3
        AND mode = 'production' AND inspection_kind = 'first'
      GROUP BY line, shift
      ORDER BY line, shift`,
    [w.site, w.from, w.to],
  );
  return res.rows.map((r) => ({
    line: r.line,
    shift: r.shift,
    units: Number(r.units),
    firstPassGood: Number(r.first_pass_good),
  }));
}
