/**
 * Statistical escalation in PostgreSQL (migration 0023, docs/analytics.md#statistical-escalation): rule versions, each
 * line's evaluator cursor and the rules' state, and the escalations. The evaluation itself is pure
 * (activities/quality-rules/rules.ts); this file reads what it needs and writes what it decided in one transaction.
 */
import type pg from 'pg';
import type {
  LineBatch,
  LineBatchResult,
  QualityRuleStore,
  QualityRuleVersion,
  StoredEscalation,
} from '../../activities/quality-rules/quality-rules.ports';
import {
  type ChartLimits,
  type PartPoint,
  type RuleDefinition,
  type RuleState,
  baselineLimits,
} from '../../activities/quality-rules/rules';
import type { MesProductionHold } from '../../activities/ports';
import type { AuditActor, AuditEntry } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';
import type { HoldfastConfig } from '../config/schema';
import { withTransaction } from '../db/pool';

export type {
  EscalationPolicy,
  QualityRuleVersion,
  StoredEscalation,
} from '../../activities/quality-rules/quality-rules.ports';
export type { ChartLimits, RuleDefinition, TripEvidence } from '../../activities/quality-rules/rules';
export { RuleDefinitionSchema, RuleIdSchema } from '../../activities/quality-rules/rule-definition.schema';

type Queryable = Pick<pg.Pool, 'query'>;

interface RuleRow {
  site: string;
  rule_id: string;
  version: number;
  line: string;
  station: string | null;
  kind: string;
  definition: RuleDefinition;
  limits: ChartLimits | null;
  active: boolean;
  changed_by: string;
  reason: string;
  changed_at: Date;
}

export const ruleOfRow = (r: RuleRow): QualityRuleVersion => ({
  site: r.site,
  ruleId: r.rule_id,
  version: r.version,
  line: r.line,
  station: r.station,
  definition: r.definition,
  limits: r.limits,
  active: r.active,
  changedBy: r.changed_by,
  reason: r.reason,
  changedAt: r.changed_at.toISOString(),
});

export interface EscalationRow {
  escalation_id: string;
  workflow_id: string;
  site: string;
  line: string;
  station: string | null;
  rule_id: string;
  version: number;
  kind: StoredEscalation['kind'];
  first_point: string;
  tripped_by: string;
  tripped_at: Date;
  summary: string;
  evidence: StoredEscalation['evidence'];
  work_order: string;
  lot_id: string;
  policy: StoredEscalation['policy'];
  state: StoredEscalation['state'];
  started_at: Date | null;
  alerted_at: Date | null;
  alert_target: string | null;
  hold: MesProductionHold | null;
  held_at: Date | null;
  decided_at: Date | null;
  decided_by: string | null;
  decision_reason: string | null;
  signature: unknown;
  release: MesProductionHold | null;
  released_at: Date | null;
  created_at: Date;
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

export const escalationOfRow = (r: EscalationRow): StoredEscalation => ({
  escalationId: r.escalation_id,
  workflowId: r.workflow_id,
  site: r.site,
  line: r.line,
  station: r.station,
  ruleId: r.rule_id,
  version: r.version,
  kind: r.kind,
  firstPoint: r.first_point,
  trippedBy: r.tripped_by,
  trippedAt: r.tripped_at.toISOString(),
  summary: r.summary,
  evidence: r.evidence,
  workOrder: r.work_order,
  lotId: r.lot_id,
  policy: r.policy,
  state: r.state,
  startedAt: iso(r.started_at),
  alertedAt: iso(r.alerted_at),
  alertTarget: r.alert_target,
  hold: r.hold,
  heldAt: iso(r.held_at),
  decidedAt: iso(r.decided_at),
  decidedBy: r.decided_by,
  decisionReason: r.decision_reason,
  signature: r.signature,
  release: r.release,
  releasedAt: iso(r.released_at),
  createdAt: r.created_at.toISOString(),
});

interface InspectionFeedRow {
  event_id: string;
  station: string;
  work_order: string;
  lot_id: string;
  result: 'pass' | 'fail';
  defects: { class: string }[];
  inspected_at: Date;
  xid: string;
  counted: boolean;
}

/**
 * Whether an inspection is a part's first production inspection at its station: the kind ingest stored
 * (docs/analytics.md#shared-definitions), else, for a row stored without one, no earlier production inspection of the
 * part at the station. `i` is the inspection's alias.
 */
export const FIRST_INSPECTION = `(i.mode = 'production' AND COALESCE(i.inspection_kind,
    CASE WHEN EXISTS (SELECT 1 FROM holdfast.inspection e
                       WHERE e.site = i.site AND e.part_id = i.part_id AND e.station = i.station
                         AND e.mode = 'production' AND (e.inspected_at, e.event_id) < (i.inspected_at, i.event_id))
         THEN 're-inspection' ELSE 'first' END) = 'first')`;

function pointOf(
  r: Pick<InspectionFeedRow, 'event_id' | 'station' | 'work_order' | 'lot_id' | 'result' | 'defects' | 'inspected_at'>,
): PartPoint {
  const defects: Record<string, number> = {};
  for (const d of r.defects) defects[d.class] = (defects[d.class] ?? 0) + 1;
  return {
    id: r.event_id,
    at: r.inspected_at.toISOString(),
    station: r.station,
    workOrder: r.work_order,
    lotId: r.lot_id,
    nonconforming: r.result === 'fail',
    defects,
  };
}

/** The current version of each of a site's rules (optionally of one line). */
export async function currentRules(db: Queryable, site: string, line?: string): Promise<QualityRuleVersion[]> {
  const res = await db.query<RuleRow>(
    `SELECT DISTINCT ON (rule_id) * FROM holdfast.quality_rule WHERE site = $1 ORDER BY rule_id, version DESC`,
    [site],
  );
  return res.rows.map(ruleOfRow).filter((r) => line === undefined || r.line === line);
}

/**
 * `audit`: the escalation workflow's steps (system actor `quality-escalation`) are recorded as they change a row.
 */
export function createPgQualityRuleStore(pool: pg.Pool, audit: AuditTrail): QualityRuleStore {
  const actor: AuditActor = { kind: 'system', id: 'quality-escalation' };
  const get = async (id: string) => {
    const res = await pool.query<EscalationRow>(`SELECT * FROM holdfast.quality_escalation WHERE escalation_id = $1`, [
      id,
    ]);
    return res.rows[0] && escalationOfRow(res.rows[0]);
  };
  /** Changes the row in a transaction with its audit record; none when the change did not apply (a repeat). */
  const change = async (
    id: string,
    action: string,
    sql: string,
    values: unknown[],
    describe: (r: EscalationRow) => Pick<AuditEntry, 'old' | 'new' | 'detail'>,
  ) =>
    audit.inTransaction(async (client) => {
      const res = await client.query<EscalationRow>(sql, [id, ...values]);
      const row = res.rows[0];
      return {
        result: row,
        audit: row
          ? [
              {
                actor,
                action,
                recordType: 'quality-escalation',
                recordId: id,
                reason: null,
                outcome: 'done' as const,
                ...describe(row),
              },
            ]
          : [],
      };
    });

  return {
    async evaluateLine(site, line, batchSize, evaluate, escalation) {
      return withTransaction(pool, async (client) => {
        const cur = await client.query<{ xid: string; inspected_at: Date; event_id: string; parts: string }>(
          `SELECT xid::text AS xid, inspected_at, event_id, parts FROM holdfast.quality_rule_cursor
            WHERE site = $1 AND line = $2 FOR UPDATE`,
          [site, line],
        );
        const cursor = cur.rows[0];
        if (!cursor) {
          // From the present on: every transaction older than the oldest one running has committed or never will.
          await client.query(
            `INSERT INTO holdfast.quality_rule_cursor (site, line, xid, inspected_at, event_id)
             VALUES ($1, $2, pg_snapshot_xmin(pg_current_snapshot()), '-infinity', '')
             ON CONFLICT (site, line) DO NOTHING`,
            [site, line],
          );
          return { parts: 0, trips: [], initialised: true };
        }
        const feed = await client.query<InspectionFeedRow>(
          `SELECT i.event_id, i.station, i.work_order, i.lot_id, i.result, i.defects, i.inspected_at,
                  i.stored_xid::text AS xid, ${FIRST_INSPECTION} AS counted
             FROM holdfast.inspection i
            WHERE i.site = $1 AND i.line = $2 AND i.stored_xid IS NOT NULL
              AND (i.stored_xid, i.inspected_at, i.event_id) > ($3::xid8, $4::timestamptz, $5::text)
              AND i.stored_xid < pg_snapshot_xmin(pg_current_snapshot())
            ORDER BY i.stored_xid, i.inspected_at, i.event_id
            LIMIT $6`,
          [site, line, cursor.xid, cursor.inspected_at, cursor.event_id, batchSize],
        );
        const last = feed.rows[feed.rows.length - 1];
        if (!last) return { parts: 0, trips: [], initialised: false };

        const rules = (await currentRules(client, site, line)).filter((r) => r.active);
        const states = new Map<string, RuleState>();
        if (rules.length > 0) {
          const res = await client.query<{ rule_id: string; version: number; state: RuleState }>(
            `SELECT rule_id, version, state FROM holdfast.quality_rule_state
              WHERE site = $1 AND (rule_id, version) IN (SELECT * FROM unnest($2::text[], $3::int[]))`,
            [site, rules.map((r) => r.ruleId), rules.map((r) => r.version)],
          );
          for (const s of res.rows) states.set(`${s.rule_id}@${s.version}`, s.state);
        }
        const batch: LineBatch = {
          rules: rules.map((rule) => ({ rule, state: states.get(`${rule.ruleId}@${rule.version}`) ?? {} })),
          points: feed.rows.filter((r) => r.counted).map(pointOf),
        };
        const decided: LineBatchResult = evaluate(batch);
        for (const s of decided.states) {
          await client.query(
            `INSERT INTO holdfast.quality_rule_state (site, rule_id, version, state, parts, trips)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (site, rule_id, version) DO UPDATE
               SET state = EXCLUDED.state, parts = quality_rule_state.parts + EXCLUDED.parts,
                   trips = quality_rule_state.trips + EXCLUDED.trips, updated_at = now()`,
            [site, s.ruleId, s.version, JSON.stringify(s.state), s.parts, s.trips],
          );
        }
        const tripped: string[] = [];
        for (const { rule, trip } of decided.trips) {
          const { escalationId, workflowId, policy } = escalation(rule, trip);
          const res = await client.query<{ escalation_id: string }>(
            `INSERT INTO holdfast.quality_escalation (escalation_id, workflow_id, site, line, station, rule_id, version,
                                                      kind, first_point, tripped_by, tripped_at, summary, evidence,
                                                      work_order, lot_id, policy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT DO NOTHING RETURNING escalation_id`,
            [
              escalationId,
              workflowId,
              site,
              rule.line,
              rule.station,
              rule.ruleId,
              rule.version,
              rule.definition.kind,
              trip.firstPoint,
              trip.trippedBy,
              trip.at,
              trip.summary,
              JSON.stringify(trip.evidence),
              trip.workOrder,
              trip.lotId,
              policy,
            ],
          );
          if (res.rows[0]) tripped.push(res.rows[0].escalation_id);
        }
        await client.query(
          `UPDATE holdfast.quality_rule_cursor
              SET xid = $3::xid8, inspected_at = $4, event_id = $5, parts = parts + $6, evaluated_at = now()
            WHERE site = $1 AND line = $2`,
          [site, line, last.xid, last.inspected_at, last.event_id, batch.points.length],
        );
        return { parts: feed.rows.length, trips: tripped, initialised: false };
      });
    },

    async unstarted(site, line) {
      const res = await pool.query<EscalationRow>(
        `SELECT * FROM holdfast.quality_escalation WHERE site = $1 AND line = $2 AND started_at IS NULL
          ORDER BY created_at, escalation_id`,
        [site, line],
      );
      return res.rows.map(escalationOfRow);
    },

    get,

    async markStarted(id) {
      await change(
        id,
        'quality-escalation.open',
        `UPDATE holdfast.quality_escalation SET started_at = now() WHERE escalation_id = $1 AND started_at IS NULL
         RETURNING *`,
        [],
        (r) => ({
          old: null,
          new: { state: r.state, policy: r.policy, ruleId: r.rule_id, version: r.version, firstPoint: r.first_point },
          detail: { site: r.site, line: r.line, station: r.station, summary: r.summary, evidence: r.evidence },
        }),
      );
      const found = await get(id);
      if (!found) throw new Error(`no quality escalation ${id}`);
      return found;
    },

    async recordAlert(id, target) {
      await change(
        id,
        'quality-escalation.alert',
        `UPDATE holdfast.quality_escalation
            SET alerted_at = now(), alert_target = $2, state = CASE WHEN state = 'tripped' THEN 'alerted' ELSE state END
          WHERE escalation_id = $1 AND alerted_at IS NULL RETURNING *`,
        [target],
        (r) => ({ old: { state: 'tripped' }, new: { state: r.state, target }, detail: null }),
      );
    },

    async recordHold(id, hold) {
      await change(
        id,
        'quality-escalation.hold',
        `UPDATE holdfast.quality_escalation
            SET hold = $2, held_at = now(), state = CASE WHEN state IN ('tripped', 'alerted') THEN 'held' ELSE state END
          WHERE escalation_id = $1 AND held_at IS NULL RETURNING *`,
        [JSON.stringify(hold)],
        (r) => ({
          old: { state: 'alerted' },
          new: { state: r.state, holdId: hold.holdId, scope: hold.scope, status: hold.status },
          detail: { line: hold.line, workOrder: hold.workOrder ?? null, externalReference: hold.externalReference },
        }),
      );
    },

    async recordRelease(id, release) {
      await change(
        id,
        'quality-escalation.release',
        `UPDATE holdfast.quality_escalation SET release = $2, released_at = now(), state = 'released'
          WHERE escalation_id = $1 AND state = 'release-decided' RETURNING *`,
        [release === null ? null : JSON.stringify(release)],
        () => ({
          old: { state: 'release-decided' },
          new: { state: 'released', holdId: release?.holdId ?? null, status: release?.status ?? null },
          detail: { releaseReference: release?.releaseReference ?? null },
        }),
      );
    },
  };
}

// For the API: rule versions, limits, escalations -------------------------------------------------------------------

export interface RuleChange {
  site: string;
  ruleId: string;
  line: string;
  station: string | null;
  definition: RuleDefinition;
  active: boolean;
  reason: string;
  /** The version the change was made against; another one current: RuleVersionConflict. */
  expectedVersion?: number;
}

export class RuleVersionConflict extends Error {
  override readonly name = 'RuleVersionConflict';
}

/** A limits request the data cannot answer (no complete subgroup in the period, not a chart). */
export class LimitsUnavailable extends Error {
  override readonly name = 'LimitsUnavailable';
}

const lockRule = (client: pg.PoolClient, site: string, ruleId: string) =>
  client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`holdfast:quality-rule:${site}:${ruleId}`]);

async function latest(client: pg.PoolClient, site: string, ruleId: string): Promise<QualityRuleVersion | undefined> {
  const res = await client.query<RuleRow>(
    `SELECT * FROM holdfast.quality_rule WHERE site = $1 AND rule_id = $2 ORDER BY version DESC LIMIT 1`,
    [site, ruleId],
  );
  return res.rows[0] && ruleOfRow(res.rows[0]);
}

async function insertVersion(
  client: pg.PoolClient,
  r: Omit<QualityRuleVersion, 'changedAt'>,
): Promise<QualityRuleVersion> {
  const res = await client.query<RuleRow>(
    `INSERT INTO holdfast.quality_rule (site, rule_id, version, line, station, kind, definition, limits, active,
                                        changed_by, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING *`,
    [
      r.site,
      r.ruleId,
      r.version,
      r.line,
      r.station,
      r.definition.kind,
      JSON.stringify(r.definition),
      r.limits === null ? null : JSON.stringify(r.limits),
      r.active,
      r.changedBy,
      r.reason,
    ],
  );
  return ruleOfRow(res.rows[0]!);
}

const summaryOf = (r: QualityRuleVersion | undefined) =>
  r && {
    version: r.version,
    line: r.line,
    station: r.station,
    definition: r.definition,
    limits: r.limits,
    active: r.active,
  };

/**
 * Stores a rule's next version (the first is 1), audited in the same transaction. A chart keeps the limits of the
 * version before when its kind and scope are unchanged; otherwise its limits must be computed again.
 */
export async function putRuleVersion(audit: AuditTrail, change: RuleChange, by: AuditActor) {
  return audit.inTransaction(async (client) => {
    await lockRule(client, change.site, change.ruleId);
    const before = await latest(client, change.site, change.ruleId);
    if (change.expectedVersion !== undefined && (before?.version ?? 0) !== change.expectedVersion) {
      throw new RuleVersionConflict(
        `rule ${change.ruleId} is at version ${before?.version ?? 0}, not ${change.expectedVersion}`,
      );
    }
    const sameChart =
      before !== undefined &&
      before.definition.kind === change.definition.kind &&
      before.line === change.line &&
      before.station === change.station;
    const created = await insertVersion(client, {
      site: change.site,
      ruleId: change.ruleId,
      version: (before?.version ?? 0) + 1,
      line: change.line,
      station: change.station,
      definition: change.definition,
      limits: sameChart ? before.limits : null,
      active: change.active,
      changedBy: by.id,
      reason: change.reason,
    });
    const entry: AuditEntry = {
      actor: by,
      action: before ? 'quality-rule.change' : 'quality-rule.create',
      recordType: 'quality-rule',
      recordId: `${change.site}/${change.ruleId}`,
      old: summaryOf(before) ?? null,
      new: summaryOf(created),
      reason: change.reason,
      outcome: 'done',
      detail: null,
    };
    return { result: created, audit: [entry] };
  });
}

/** The parts a chart's baseline counts: first production inspections in its scope, in [from, to), by time. */
export async function baselinePoints(
  db: Queryable,
  rule: Pick<QualityRuleVersion, 'site' | 'line' | 'station'>,
  from: string,
  to: string,
): Promise<PartPoint[]> {
  const res = await db.query<InspectionFeedRow>(
    `SELECT i.event_id, i.station, i.work_order, i.lot_id, i.result, i.defects, i.inspected_at
       FROM holdfast.inspection i
      WHERE i.site = $1 AND i.line = $2 AND ($3::text IS NULL OR i.station = $3)
        AND i.inspected_at >= $4 AND i.inspected_at < $5 AND ${FIRST_INSPECTION}
      ORDER BY i.inspected_at, i.event_id`,
    [rule.site, rule.line, rule.station, from, to],
  );
  return res.rows.map(pointOf);
}

/** Computes a chart's centre line from a baseline period and stores it as the rule's next version, audited. */
export async function recomputeLimits(
  audit: AuditTrail,
  req: { site: string; ruleId: string; from: string; to: string; reason: string },
  by: AuditActor,
): Promise<QualityRuleVersion | undefined> {
  return audit.inTransaction(async (client) => {
    await lockRule(client, req.site, req.ruleId);
    const before = await latest(client, req.site, req.ruleId);
    if (!before) return { result: undefined, audit: [] };
    const def = before.definition;
    if (def.kind !== 'p-chart' && def.kind !== 'u-chart') {
      throw new LimitsUnavailable(`rule ${req.ruleId} is a ${def.kind} rule: only p-charts and u-charts have limits`);
    }
    const points = await baselinePoints(client, before, req.from, req.to);
    const limits = baselineLimits(def, points, { from: req.from, to: req.to });
    if (!limits) {
      throw new LimitsUnavailable(
        `no complete subgroup of rule ${req.ruleId} between ${req.from} and ${req.to} (${points.length} part(s))`,
      );
    }
    const created = await insertVersion(client, {
      ...before,
      version: before.version + 1,
      limits,
      changedBy: by.id,
      reason: req.reason,
    });
    const entry: AuditEntry = {
      actor: by,
      action: 'quality-rule.limits',
      recordType: 'quality-rule',
      recordId: `${req.site}/${req.ruleId}`,
      old: summaryOf(before),
      new: summaryOf(created),
      reason: req.reason,
      outcome: 'done',
      detail: { baseline: limits.baseline },
    };
    return { result: created, audit: [entry] };
  });
}

/**
 * Stores each rule of `qualityRules.seed` (temporal.yaml) as version 1 unless the rule has a version already, audited
 * as changed by `temporal.yaml`: the ids of the rules it stored. A seed naming a site, line or station the
 * configuration lacks stops the process, named.
 */
export async function seedQualityRules(audit: AuditTrail, config: HoldfastConfig): Promise<string[]> {
  const seeded: string[] = [];
  for (const [i, r] of config.qualityRules.seed.entries()) {
    const line = config.sites.find((s) => s.id === r.site)?.lines.find((l) => l.id === r.line);
    if (!line || (r.station !== undefined && !line.stations.some((s) => s.id === r.station))) {
      throw new Error(
        `qualityRules.seed[${i}]: ${r.site}/${r.line}${r.station ? `/${r.station}` : ''} is not configured`,
      );
    }
    try {
      await putRuleVersion(
        audit,
        {
          site: r.site,
          ruleId: r.ruleId,
          line: r.line,
          station: r.station ?? null,
          definition: r.definition,
          active: r.active,
          reason: 'seeded from temporal.yaml',
          expectedVersion: 0,
        },
        { kind: 'system', id: 'temporal.yaml' },
      );
      seeded.push(`${r.site}/${r.ruleId}`);
    } catch (err) {
      // The rule exists (seeded before, or made through the API): it is the API's now.
      if (!(err instanceof RuleVersionConflict)) throw err;
    }
  }
  return seeded;
}
