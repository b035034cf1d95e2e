/**
 * A recall drill's rows (docs/recall.md#drills): holdfast.recall_drill, and the drill's mock recall, opened through
 * openRecall as the API opens one. Keyed by the drill, so an activity retried after a crash opens nothing twice.
 */
import type pg from 'pg';
import { ConfigError } from '../../activities/errors';
import type { RecallDrillStore } from '../../activities/ports';
import type { AuditTrail } from '../audit/audit-trail';
import type { HoldfastConfig } from '../config/schema';
import { resolveStart } from '../genealogy/trace-queries';
import type { RecallInput, RecallScope } from '../../workflows/contracts';
import { openRecall } from './recall-starter';
import type { RecallReport } from './recall-store';

export function createRecallDrillStore(pool: pg.Pool, config: HoldfastConfig, audit: AuditTrail): RecallDrillStore {
  const drillRow = async (drillId: string) => {
    const { rows } = await pool.query<{
      site: string;
      schedule_id: string;
      scheduled_at: Date;
      scope: RecallScope | null;
    }>('SELECT site, schedule_id, scheduled_at, scope FROM holdfast.recall_drill WHERE drill_id = $1', [drillId]);
    if (!rows[0]) throw new Error(`recall drill ${drillId} has no row (begin it first)`);
    return rows[0];
  };
  return {
    async begin(drill) {
      await pool.query(
        `INSERT INTO holdfast.recall_drill (drill_id, site, schedule_id, workflow_id, scheduled_at, complete_within_ms)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (drill_id) DO NOTHING`,
        [drill.drillId, drill.site, drill.scheduleId, drill.workflowId, drill.scheduledAt, drill.completeWithinMs],
      );
      const previous = await pool.query<{ scheduled_at: Date }>(
        `SELECT scheduled_at FROM holdfast.recall_drill WHERE site = $1 AND scheduled_at < $2
          ORDER BY scheduled_at DESC LIMIT 1`,
        [drill.site, drill.scheduledAt],
      );
      return { previousScheduledAt: previous.rows[0]?.scheduled_at.toISOString() ?? null };
    },

    async pickScope(drillId, site, scope) {
      const kept = (await drillRow(drillId)).scope;
      if (kept) return kept;
      let picked: RecallScope;
      if (scope !== 'random-supplier-lot') {
        // A configured scope the genealogy does not know would trace nothing and pass: the drill fails instead.
        if ((await resolveStart(pool, scope)).length === 0) {
          throw new ConfigError(`the drill's scope ${JSON.stringify(scope)} names nothing in the genealogy`);
        }
        picked = scope;
      } else {
        // Random per drill, not per attempt: the drill's id seeds the order, and the pick is kept on its row.
        const { rows } = await pool.query<{ lot_key: string; plant: string | null; material: string; batch: string }>(
          `SELECT l.lot_key, l.erp_plant AS plant, l.erp_material AS material, l.erp_batch AS batch
             FROM holdfast.material_lot l
            WHERE l.site = $1 AND l.origin = 'purchased'
              AND EXISTS (SELECT 1 FROM holdfast.genealogy_edge e WHERE e.from_node = 'lot:' || l.lot_key)
            ORDER BY md5($2 || l.lot_key) LIMIT 1`,
          [site, drillId],
        );
        const lot = rows[0];
        if (!lot) throw new ConfigError(`site ${site} has no supplier lot with genealogy to recall in a drill`);
        picked =
          lot.plant && lot.batch
            ? { kind: 'erp-batch', plant: lot.plant, material: lot.material, batch: lot.batch }
            : { kind: 'lot-key', lotKey: lot.lot_key };
      }
      await pool.query('UPDATE holdfast.recall_drill SET scope = coalesce(scope, $2) WHERE drill_id = $1', [
        drillId,
        JSON.stringify(picked),
      ]);
      return (await drillRow(drillId)).scope as RecallScope;
    },

    async openRecall({ drillId, scope }) {
      const drill = await drillRow(drillId);
      let input: RecallInput | undefined;
      const requestedBy = `schedule:${drill.schedule_id}`;
      const opened = await openRecall(
        pool,
        config,
        {
          site: drill.site,
          kind: 'mock',
          scope,
          reason: `recall drill due ${drill.scheduled_at.toISOString()}`,
          requestedBy,
          idempotencyKey: `drill:${drillId}`,
        },
        // The drill's workflow runs the recall as its child: here it is only opened.
        async (recall) => {
          input = recall;
        },
        { trail: audit, actor: { kind: 'system', id: requestedBy } },
      );
      if (opened.outcome === 'key-reused' || !input) {
        throw new ConfigError(`recall drill ${drillId}: its recall ${opened.recallId} was opened with another scope`);
      }
      await pool.query('UPDATE holdfast.recall_drill SET recall_id = $2 WHERE drill_id = $1', [
        drillId,
        input.recallId,
      ]);
      return input;
    },

    async finish(drillId, outcome) {
      const { rows } = await pool.query<{ state: string | null; report: RecallReport | null }>(
        `SELECT r.state, r.report FROM holdfast.recall_drill d LEFT JOIN holdfast.recall r USING (recall_id)
          WHERE d.drill_id = $1`,
        [drillId],
      );
      const recall = rows[0];
      const passed = recall?.state === 'completed' && recall.report?.score.passed === true;
      const state = outcome.error !== undefined || !passed ? 'failed' : outcome.overdue ? 'overdue' : 'passed';
      await pool.query(
        `UPDATE holdfast.recall_drill SET state = $2, duration_ms = $3, error = $4, completed_at = coalesce(completed_at, now())
          WHERE drill_id = $1`,
        [drillId, state, outcome.durationMs, outcome.error ?? null],
      );
      return { state };
    },

    async escalated(drillId, reason) {
      const { rowCount } = await pool.query(
        `SELECT 1 FROM holdfast.recall_drill WHERE drill_id = $1 AND escalations @> $2::jsonb`,
        [drillId, JSON.stringify([{ reason }])],
      );
      return (rowCount ?? 0) > 0;
    },

    async recordEscalation(drillId, escalation) {
      await pool.query(
        `UPDATE holdfast.recall_drill
            SET escalations = escalations || jsonb_build_array($2::jsonb || jsonb_build_object('at', now()))
          WHERE drill_id = $1 AND NOT escalations @> jsonb_build_array(jsonb_build_object('reason', $3::text))`,
        [drillId, JSON.stringify(escalation), escalation.reason],
      );
    },
  };
}
