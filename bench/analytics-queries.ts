/**
 * The three questions bench:analytics times, each over one site and a window, grouped by line and shift, through the
 * functions the metrics routes call (infra/analytics/metrics.ts), and the reference: first-pass yield by line and shift
 * read from the raw inspections instead of the aggregates.
 */
import type pg from 'pg';
import { defectHeatmap } from '../infra/analytics/defect-heatmap';
import { controlChart } from '../infra/quality-rules/control-chart';
import { defectPareto, firstPassYield, lotQuality } from '../infra/analytics/metrics';

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

type Queryable = Pick<pg.PoolClient, 'query'>;

const day = (d: Date) => d.toISOString().slice(0, 10);

/** What GET /v1/metrics/fpy?site=…&groupBy=line,shift&from=…&to= runs: first-pass yield by line and shift. */
export async function fpyByLineAndShift(db: Queryable, w: Window): Promise<FpyRow[]> {
  const { rows } = await firstPassYield(db, {
    site: w.site,
    from: w.from.toISOString(),
    to: w.to.toISOString(),
    groupBy: ['line', 'shift'],
    bucket: 'none',
  });
  return rows.map((r) => ({
    line: r.group.line ?? '',
    shift: r.group.shift ?? '',
    units: r.units,
    firstPassGood: r.firstPassGood,
  }));
}

/** What GET /v1/metrics/defects runs for the same window: the defect Pareto of each line and shift. */
export async function paretoByLineAndShift(db: Queryable, w: Window): Promise<number> {
  const { groups } = await defectPareto(db, {
    site: w.site,
    from: w.from.toISOString(),
    to: w.to.toISOString(),
    groupBy: ['line', 'shift'],
    bucket: 'none',
  });
  return groups.length;
}

/**
 * What GET /v1/metrics/lot-quality?by=supplier runs for the window's shift dates: first-pass yield and defects of the
 * parts made from each supplier's lots, by line and shift.
 */
export async function supplierByLineAndShift(db: Queryable, w: Window): Promise<number> {
  const { rows } = await lotQuality(db, {
    site: w.site,
    by: 'supplier',
    fromShiftDate: day(w.from),
    toShiftDate: day(new Date(w.to.getTime() - 24 * 3_600_000)),
    groupBy: ['line', 'shift'],
  });
  return rows.length;
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

/**
 * What the dashboard's GET /v1/metrics/defect-heatmap?by=supplier runs for the window: the defect rate of each
 * supplier's lots per shift date, the heaviest of its keys (work orders' lots joined, suppliers looked up).
 */
export async function supplierHeatmap(db: Queryable, w: Window): Promise<number> {
  const map = await defectHeatmap(db, {
    site: w.site,
    by: 'supplier',
    from: w.from.toISOString(),
    to: w.to.toISOString(),
  });
  return map.cells.length;
}

/** The longest range the dashboard draws a chart over (CHART_MAX_DAYS in api/schemas/dashboard.schema.ts). */
const CHART_DAYS = 2;

/**
 * What the dashboard's GET /v1/quality-rules/{site}/{ruleId}/chart runs at its widest: a line-wide p-chart (subgroups
 * of 50 parts, limits set) drawn again from the line's first inspections over the 2 days ending with the window.
 */
export async function lineChartWeek(db: Queryable, w: Window, line: string): Promise<number> {
  const to = w.to.toISOString();
  const from = new Date(w.to.getTime() - CHART_DAYS * 86_400_000).toISOString();
  const chart = await controlChart(
    db,
    {
      site: w.site,
      ruleId: 'bench-p-chart',
      version: 1,
      line,
      station: null,
      definition: { kind: 'p-chart', subgroup: { parts: 50 }, runRules: [1, 2, 3, 4] },
      limits: { centre: 0.03, baseline: { from, to, subgroups: 1, units: 50, count: 1 } },
      active: true,
      changedBy: 'bench',
      reason: 'bench',
      changedAt: from,
    },
    { from, to, now: to },
  );
  return chart.points.length;
}
