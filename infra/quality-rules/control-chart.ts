/**
 * A rule drawn as a chart for the dashboard (docs/dashboard.md#control-charts): its points over a range, its centre
 * line and limits, and the points that tripped it with the escalation each raised.
 *
 * The evaluator stores no points, only its state (the open subgroup and the last closed ones) and each trip's evidence
 * (the subgroups it judged, with their limits and z). So a p- or u-chart is drawn again from the parts in its scope:
 * subgrouped in PostgreSQL as `chartSubgroups` (rules.ts) subgroups them, which the tests hold it to (a week of a line
 * is tens of thousands of parts, and only its subgroups come back), standardised with the evaluator's `standardise`,
 * keeping the boundaries of the subgroups the evaluator closed; every subgroup the evaluator recorded (trip evidence,
 * state history) is shown with the values the evaluator computed. The other rules judge parts or windows, not subgroups: they are drawn per
 * UTC hour from the aggregates kept at ingest (migration 0020), with the hours that tripped them marked.
 */
import type pg from 'pg';
import type { QualityRuleVersion } from '../../activities/quality-rules/quality-rules.ports';
import {
  type ChartDefinition,
  type ChartSubgroup,
  type RuleState,
  type RunRule,
  type SubgroupPoint,
  type TripEvidence,
  standardise,
} from '../../activities/quality-rules/rules';
import { FIRST_INSPECTION } from './pg-quality-rule-store';

type Queryable = Pick<pg.Pool, 'query'>;

/** The run rules by name, as a chart's tripped points list them. */
export const RUN_RULE_NAMES: Record<RunRule, string> = {
  1: 'beyond-3-sigma',
  2: '2-of-3-beyond-2-sigma',
  3: '4-of-5-beyond-1-sigma',
  4: 'run-of-8',
};

export interface ChartPoint {
  /** A time subgroup's bucket start; a parts subgroup's last part; an hour's start. */
  at: string;
  value: number;
  n: number | null;
  /** The subgroup's own limits and z (charts with limits: they vary with the subgroup's size). */
  upperLimit: number | null;
  lowerLimit: number | null;
  z: number | null;
  tripped: string[];
  escalationId: string | null;
}

export interface ControlChart {
  title: string;
  statistic: string;
  centre: number | null;
  upperLimit: number | null;
  lowerLimit: number | null;
  points: ChartPoint[];
}

interface TripRow {
  escalation_id: string;
  tripped_at: Date;
  evidence: TripEvidence;
}

async function tripsOf(db: Queryable, rule: QualityRuleVersion, from: string, to: string): Promise<TripRow[]> {
  const res = await db.query<TripRow>(
    `SELECT escalation_id, tripped_at, evidence FROM holdfast.quality_escalation
      WHERE site = $1 AND rule_id = $2 AND tripped_at >= $3 AND tripped_at < $4
      ORDER BY tripped_at, escalation_id`,
    [rule.site, rule.ruleId, from, to],
  );
  return res.rows;
}

const scope = (rule: QualityRuleVersion) => `${rule.line}${rule.station ? `/${rule.station}` : ''}`;

export async function controlChart(
  db: Queryable,
  rule: QualityRuleVersion,
  range: { from: string; to: string; now: string },
): Promise<ControlChart> {
  const trips = await tripsOf(db, rule, range.from, range.to);
  const def = rule.definition;
  if (def.kind === 'p-chart' || def.kind === 'u-chart') return subgroupChart(db, rule, def, trips, range);
  return hourlyChart(db, rule, trips, range);
}

async function subgroupChart(
  db: Queryable,
  rule: QualityRuleVersion,
  def: ChartDefinition,
  trips: TripRow[],
  range: { from: string; to: string; now: string },
): Promise<ControlChart> {
  const stateRes = await db.query<{ state: RuleState }>(
    `SELECT state FROM holdfast.quality_rule_state WHERE site = $1 AND rule_id = $2 AND version = $3`,
    [rule.site, rule.ruleId, rule.version],
  );
  const state = stateRes.rows[0]?.state ?? {};
  // What the evaluator itself closed and judged: its values win over the drawing's.
  const recorded = new Map<string, SubgroupPoint>();
  for (const t of trips) {
    if (t.evidence.kind === 'p-chart' || t.evidence.kind === 'u-chart') {
      for (const g of t.evidence.subgroups) recorded.set(g.key, g);
    }
  }
  for (const g of state.history ?? []) recorded.set(g.key, g);
  const starts = new Set([...recorded.values()].map((g) => g.firstId));
  if (state.open) starts.add(state.open.firstId);

  const until = range.to < range.now ? range.to : range.now;
  const drawn = new Map<string, ChartSubgroup>(
    (await drawnSubgroups(db, rule, def, { from: range.from, to: range.to, until }, starts)).map((g) => [g.key, g]),
  );
  for (const [key, g] of recorded) {
    if (g.to >= range.from && g.from < range.to) drawn.set(key, g);
  }

  const tripOf = new Map<string, { escalationId: string; tripped: string[] }>();
  for (const t of trips) {
    if (t.evidence.kind !== 'p-chart' && t.evidence.kind !== 'u-chart') continue;
    // The subgroup that tripped the rule is the newest one its evidence judged.
    const newest = t.evidence.subgroups[t.evidence.subgroups.length - 1];
    if (!newest) continue;
    tripOf.set(newest.key, {
      escalationId: t.escalation_id,
      tripped: t.evidence.violations.map((v) => RUN_RULE_NAMES[v.rule]),
    });
  }

  const timeSubgroups = 'seconds' in def.subgroup;
  const points = [...drawn.values()]
    .map((g): ChartPoint => {
      const trip = tripOf.get(g.key);
      return {
        at: timeSubgroups ? g.key : g.to,
        value: g.x,
        n: g.n,
        upperLimit: g.ucl ?? null,
        lowerLimit: g.lcl ?? null,
        z: g.z ?? null,
        tripped: trip?.tripped ?? [],
        escalationId: trip?.escalationId ?? null,
      };
    })
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));

  // One pair of limits for the whole chart where every subgroup has the same size (parts subgroups).
  const fixed =
    rule.limits && 'parts' in def.subgroup
      ? standardise(def.kind, rule.limits, {
          key: '',
          firstId: '',
          lastId: '',
          from: '',
          to: '',
          n: def.subgroup.parts,
          count: 0,
          workOrder: '',
          lotId: '',
          station: '',
        })
      : undefined;
  const size = 'parts' in def.subgroup ? `${def.subgroup.parts} parts` : `${def.subgroup.seconds} s`;
  return {
    title: `${rule.ruleId}: ${def.kind} on ${scope(rule)}, subgroups of ${size}`,
    statistic: def.kind === 'p-chart' ? 'p (fraction nonconforming per subgroup)' : 'u (defects per unit per subgroup)',
    centre: rule.limits?.centre ?? null,
    upperLimit: fixed?.ucl ?? null,
    lowerLimit: fixed?.lcl ?? null,
    points,
  };
}

/** Rules over parts or windows: their statistic per UTC hour from the aggregates, the hours that tripped marked. */
async function hourlyChart(
  db: Queryable,
  rule: QualityRuleVersion,
  trips: TripRow[],
  range: { from: string; to: string },
): Promise<ControlChart> {
  const def = rule.definition;
  const params = [rule.site, rule.line, rule.station, range.from, range.to];
  const filter = `site = $1 AND line = $2 AND ($3::text IS NULL OR station = $3) AND hour >= $4 AND hour < $5`;
  let rows: { hour: Date; value: number; n: number | null }[];
  let statistic: string;
  let centre: number | null = null;
  let lowerLimit: number | null = null;
  if (def.kind === 'defect-class-window') {
    statistic = `${def.defectClass} defects found at first inspections per hour`;
    const res = await db.query<{ hour: Date; defects: string }>(
      `SELECT hour, sum(defects) AS defects FROM holdfast.defect_hourly
        WHERE ${filter} AND inspection_kind = 'first' AND defect_class = $6
        GROUP BY hour ORDER BY hour`,
      [...params, def.defectClass],
    );
    rows = res.rows.map((r) => ({ hour: r.hour, value: Number(r.defects), n: null }));
  } else {
    const res = await db.query<{ hour: Date; units: string; good: string }>(
      `SELECT hour, sum(units) AS units, sum(first_pass_good) AS good FROM holdfast.quality_hourly
        WHERE ${filter} GROUP BY hour HAVING sum(units) > 0 ORDER BY hour`,
      params,
    );
    if (def.kind === 'fpy-below') {
      statistic = 'first-pass yield per hour';
      centre = null;
      lowerLimit = def.threshold;
      rows = res.rows.map((r) => ({ hour: r.hour, value: Number(r.good) / Number(r.units), n: Number(r.units) }));
    } else {
      statistic = 'nonconforming parts (first inspection failed) per hour';
      rows = res.rows.map((r) => ({ hour: r.hour, value: Number(r.units) - Number(r.good), n: Number(r.units) }));
    }
  }
  const tripOf = new Map<number, TripRow>();
  for (const t of trips) {
    const hour = Math.floor(t.tripped_at.getTime() / 3_600_000) * 3_600_000;
    if (!tripOf.has(hour)) tripOf.set(hour, t);
  }
  return {
    title: `${rule.ruleId}: ${def.kind} on ${scope(rule)}`,
    statistic,
    centre,
    upperLimit: null,
    lowerLimit,
    points: rows.map((r) => {
      const trip = tripOf.get(r.hour.getTime());
      return {
        at: r.hour.toISOString(),
        value: r.value,
        n: r.n,
        upperLimit: null,
        lowerLimit: null,
        z: null,
        tripped: trip ? [def.kind] : [],
        escalationId: trip?.escalation_id ?? null,
      };
    }),
  };
}

interface SubgroupRow {
  bucket_ms: string | null;
  n: string;
  count: string;
  first_id: string;
  last_id: string;
  first_at: Date;
  last_at: Date;
  station: string;
  work_order: string;
  lot_id: string;
}

/**
 * A chart's closed subgroups over the first production inspections in the rule's scope in [from, to), in
 * inspection-time order, as `chartSubgroups` (rules.ts) forms them: a parts subgroup closes at each nth part, counted
 * afresh from each part in `starts`, and a short one is left out; a time subgroup is its UTC bucket, closed when a
 * later bucket has parts or its end is not after `until`. Aggregated in SQL: only the subgroups come back.
 */
export async function drawnSubgroups(
  db: Queryable,
  rule: Pick<QualityRuleVersion, 'site' | 'line' | 'station' | 'limits'>,
  def: ChartDefinition,
  range: { from: string; to: string; until: string },
  starts: ReadonlySet<string> = new Set(),
): Promise<ChartSubgroup[]> {
  // What a part adds to its subgroup: 1 when it failed (p-chart); its defects, one per entry (u-chart).
  const count = def.kind === 'p-chart' ? `(i.result = 'fail')::int` : 'jsonb_array_length(i.defects)';
  const parts = `SELECT i.event_id, i.inspected_at, i.station, i.work_order, i.lot_id, ${count} AS c
                   FROM holdfast.inspection i
                  WHERE i.site = $1 AND i.line = $2 AND ($3::text IS NULL OR i.station = $3)
                    AND i.inspected_at >= $4 AND i.inspected_at < $5 AND ${FIRST_INSPECTION}`;
  const summary = `count(*) AS n, sum(c) AS count,
                   (array_agg(event_id ORDER BY inspected_at, event_id))[1] AS first_id,
                   (array_agg(event_id ORDER BY inspected_at DESC, event_id DESC))[1] AS last_id,
                   min(inspected_at) AS first_at, max(inspected_at) AS last_at,
                   (array_agg(station ORDER BY inspected_at DESC, event_id DESC))[1] AS station,
                   (array_agg(work_order ORDER BY inspected_at DESC, event_id DESC))[1] AS work_order,
                   (array_agg(lot_id ORDER BY inspected_at DESC, event_id DESC))[1] AS lot_id`;
  const params = [rule.site, rule.line, rule.station, range.from, range.to];
  let rows: SubgroupRow[];
  if ('parts' in def.subgroup) {
    const res = await db.query<SubgroupRow>(
      `WITH p AS (${parts}),
       s AS (SELECT p.*, count(*) FILTER (WHERE event_id = ANY ($6::text[]))
                           OVER (ORDER BY inspected_at, event_id ROWS UNBOUNDED PRECEDING) AS seg
               FROM p),
       g AS (SELECT s.*, (row_number() OVER (PARTITION BY seg ORDER BY inspected_at, event_id) - 1) / $7 AS grp
               FROM s)
       SELECT NULL AS bucket_ms, ${summary}
         FROM g GROUP BY seg, grp HAVING count(*) = $7 ORDER BY seg, grp`,
      [...params, [...starts], def.subgroup.parts],
    );
    rows = res.rows;
  } else {
    const size = def.subgroup.seconds * 1000;
    const res = await db.query<SubgroupRow>(
      `WITH p AS (${parts})
       SELECT (floor(extract(epoch FROM inspected_at) * 1000 / $6) * $6)::bigint::text AS bucket_ms, ${summary}
         FROM p GROUP BY 1 ORDER BY 1`,
      [...params, size],
    );
    const last = res.rows[res.rows.length - 1];
    // The newest bucket is closed only once its end has passed.
    rows = last && Number(last.bucket_ms) + size > Date.parse(range.until) ? res.rows.slice(0, -1) : res.rows;
  }
  return rows.map((r) => {
    const g = {
      key: r.bucket_ms === null ? r.first_id : new Date(Number(r.bucket_ms)).toISOString(),
      firstId: r.first_id,
      lastId: r.last_id,
      from: r.first_at.toISOString(),
      to: r.last_at.toISOString(),
      n: Number(r.n),
      count: Number(r.count),
      workOrder: r.work_order,
      lotId: r.lot_id,
      station: r.station,
    };
    return rule.limits ? standardise(def.kind, rule.limits, g) : { ...g, x: g.count / g.n };
  });
}
