import { ExternalSystemError } from '../../activities/errors';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import { createPgQualityRuleStore, putRuleVersion } from '../../infra/quality-rules/pg-quality-rule-store';
import {
  type LineRuleEvaluatorInput,
  lineRuleEvaluatorStatusQuery,
  lineRuleEvaluatorWorkflowId,
  qualityEscalationReleasedSignal,
  qualityEscalationStatusQuery,
} from '../../workflows/contracts';
import { eventually } from './eventually';
import { FakeErp, RecordingEscalation } from './fake-ports';
import type { WorkflowHarness } from './workflow-harness';
import type {
  CreateOptions,
  MesProductionHold,
  MesProductionHoldRelease,
  MesProductionHoldRequest,
} from '../../activities/ports';
import { FakeMes } from './fake-ports';

/**
 * A MES with line and work-order holds (statistical escalation), in memory: like the simulator it does not
 * de-duplicate a create asked with `lookupFirst: false`, so a test sees every hold the activities asked for.
 */
export class ProductionHoldMes extends FakeMes {
  readonly productionHolds: MesProductionHold[] = [];
  readonly releaseRequests: MesProductionHoldRelease[] = [];
  /** The next hold is made, then its answer lost (a transient error), as a dropped response would. */
  loseNextHoldAnswer = false;

  async holdProduction(req: MesProductionHoldRequest, opts?: CreateOptions): Promise<MesProductionHold> {
    this.calls.push(`holdProduction ${req.scope} ${req.line}`);
    if (opts?.lookupFirst !== false) {
      const found = this.productionHolds.find((h) => h.externalReference === req.idempotencyKey);
      if (found) return found;
    }
    const hold: MesProductionHold = {
      holdId: `PH-${this.productionHolds.length + 1}`,
      scope: req.scope,
      line: req.line,
      ...(req.workOrder !== undefined ? { workOrder: req.workOrder } : {}),
      ...(req.station !== undefined ? { station: req.station } : {}),
      status: 'ACTIVE',
      reason: req.reason,
      externalReference: req.idempotencyKey,
      createdAt: '2026-04-01T08:00:00.000Z',
    };
    this.productionHolds.push(hold);
    if (this.loseNextHoldAnswer) {
      this.loseNextHoldAnswer = false;
      throw new ExternalSystemError(this.system, 'transient', 'answer lost after the hold was made');
    }
    return hold;
  }

  async getProductionHold(holdId: string): Promise<MesProductionHold> {
    const found = this.productionHolds.find((h) => h.holdId === holdId);
    if (!found) throw new ExternalSystemError(this.system, 'not-found', `hold ${holdId} not found`, 404);
    return found;
  }

  async releaseProductionHold(req: MesProductionHoldRelease): Promise<MesProductionHold> {
    this.releaseRequests.push(req);
    const hold = await this.getProductionHold(req.holdId);
    if (hold.status === 'RELEASED' && hold.releaseReference !== req.idempotencyKey) {
      throw new ExternalSystemError(this.system, 'rejected', `hold ${req.holdId} released before`, 409);
    }
    Object.assign(hold, {
      status: 'RELEASED',
      releaseReference: req.idempotencyKey,
      releaseComment: req.comment,
      releasedAt: '2026-04-01T09:00:00.000Z',
    });
    return hold;
  }
}

function inspection(site: string, n: number, station: string, fail: boolean): InspectionRecord {
  return {
    eventId: `${site}-${n}`,
    site,
    line: 'L1',
    station,
    partId: `${site}-P${n}`,
    sku: 'BRKT-200',
    lotId: 'L-0001',
    workOrder: 'WO-77',
    result: fail ? 'fail' : 'pass',
    defects: fail ? [{ class: 'scratch', score: 0.9 }] : [],
    modelVersion: 'vision-1.0.0',
    recipeVersion: 'BRKT-200@1',
    inspectedAt: new Date(Date.parse('2026-04-01T08:00:00Z') + n * 1000).toISOString(),
    payloadSha256: 'x'.repeat(64),
    mode: 'production',
  };
}

/**
 * The escalation scenario on a harness worker (test/workflows/quality-escalation.workflow.test.ts checks it, and
 * test/replay/record.histories.ts records its histories): a line-wide consecutive-NC rule of `site` tripped by four
 * inspections, one escalation under policy hold-order whose first MES answer is lost, a release decision stored as
 * the route stores it, and the wake-up. Returns the evaluator's (terminated) and the escalation's workflow ids.
 */
export async function runEscalationScenario(
  harness: WorkflowHarness,
  site: string,
): Promise<{ evaluator: string; escalation: string }> {
  let ids: { evaluator: string; escalation: string } | undefined;
  const audit = createAuditTrail(harness.pool);
  const store = createPgQualityRuleStore(harness.pool, audit);
  await putRuleVersion(
    audit,
    {
      site,
      ruleId: 'nc2',
      line: 'L1',
      station: null,
      definition: { kind: 'consecutive-nc', count: 2 },
      active: true,
      reason: 'test',
    },
    { kind: 'system', id: 'test' },
  );
  const mes = new ProductionHoldMes();
  mes.loseNextHoldAnswer = true;
  const alerts = new RecordingEscalation();
  const { worker, taskQueue } = await harness.worker({
    mes,
    erp: new FakeErp(),
    escalation: alerts,
    qualityRules: store,
    escalationPolicy: 'hold-order',
  });
  const presets = harness.config.activityPresets;
  const input: LineRuleEvaluatorInput = {
    site,
    line: 'L1',
    evaluationInterval: '200ms',
    batchSize: 50,
    maxBatches: 2,
    preset: presets.traceWrite,
    escalation: {
      presets: { store: presets.traceWrite, mes: presets.mesCall, notify: presets.notify },
      releaseCheckInterval: '1s',
    },
  };
  await worker.runUntil(async () => {
    const evaluator = await harness.client.workflow.start('lineRuleEvaluatorWorkflow', {
      workflowId: lineRuleEvaluatorWorkflowId(site, 'L1'),
      taskQueue,
      args: [input],
    });
    await eventually('the evaluator’s first pass', async () => {
      const res = await harness.pool.query(`SELECT 1 FROM holdfast.quality_rule_cursor WHERE site = $1`, [site]);
      return res.rowCount === 1;
    });
    // Line-wide: S1's and S2's first inspections interleave; the pass between them resets the run.
    await insertInspections(harness.pool, [
      inspection(site, 1, 'S1', true),
      inspection(site, 2, 'S2', false),
      inspection(site, 3, 'S2', true),
      inspection(site, 4, 'S1', true),
    ]);
    const row = await eventually('the order held', async () => {
      const res = await harness.pool.query<{ escalation_id: string; workflow_id: string; state: string }>(
        `SELECT escalation_id, workflow_id, state FROM holdfast.quality_escalation WHERE site = $1`,
        [site],
      );
      return res.rows[0]?.state === 'held' ? res.rows[0] : undefined;
    });
    // The first answer was lost after the hold was made: the retry found it instead of making another.
    expect(mes.loseNextHoldAnswer).toBe(false);
    expect(mes.productionHolds).toEqual([
      expect.objectContaining({ scope: 'work-order', workOrder: 'WO-77', line: 'L1', status: 'ACTIVE' }),
    ]);
    expect(alerts.messages).toHaveLength(1);
    expect(alerts.messages[0]!.qualityEscalation).toMatchObject({ ruleId: 'nc2', version: 1, policy: 'hold-order' });
    const escalation = harness.client.workflow.getHandle(row.workflow_id);
    expect(await escalation.query(qualityEscalationStatusQuery)).toMatchObject({ state: 'held', holdId: 'PH-1' });

    // The decision as the release route stores it, then the wake-up.
    await harness.pool.query(
      `UPDATE holdfast.quality_escalation SET state = 'release-decided', decided_at = now(), decided_by = 'qe',
              decision_reason = 'fixed' WHERE escalation_id = $1`,
      [row.escalation_id],
    );
    await escalation.signal(qualityEscalationReleasedSignal, row.escalation_id);
    expect(await escalation.result()).toMatchObject({ state: 'released', holdId: 'PH-1' });
    expect(mes.productionHolds[0]).toMatchObject({ status: 'RELEASED' });
    expect(mes.releaseRequests).toHaveLength(1);
    expect(await evaluator.query(lineRuleEvaluatorStatusQuery)).toMatchObject({ totals: { trips: 1 } });
    await evaluator.terminate('scenario done');
    ids = { evaluator: evaluator.workflowId, escalation: row.workflow_id };
  });
  return ids!;
}
