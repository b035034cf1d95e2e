/**
 * A rule drawn as a chart for the dashboard (docs/dashboard.md#control-charts): its points over a range, its centre
 * line and limits, and the points that tripped it with the escalation each raised.
 *
 * The evaluator stores no points, only its state (the open subgroup and the last closed ones) and each trip's evidence
 * (the subgroups it judged, with their limits and z). So a p- or u-chart is drawn again from the parts in its scope
 * with the evaluator's own functions (`chartSubgroups`, `standardise`, rules.ts), keeping the boundaries of the
 * subgroups the evaluator closed, and every subgroup the evaluator recorded (trip evidence, state history) is shown
 * with the values the evaluator computed. The other rules judge parts or windows, not subgroups: they are drawn per
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
  chartSubgroups,
  standardise,
} from '../../activities/quality-rules/rules';
import { baselinePoints } from './pg-quality-rule-store';

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

  const parts = await baselinePoints(db, rule, range.from, range.to);
  const until = range.to < range.now ? range.to : range.now;
  const drawn = new Map<string, ChartSubgroup>(
    chartSubgroups(def, rule.limits, parts, { starts, until }).map((g) => [g.key, g]),
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
