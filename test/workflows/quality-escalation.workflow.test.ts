/**
 * The line evaluator and the escalation workflow on a real Temporal dev server, over the PostgreSQL rule store and a
 * typed fake MES: inspections trip a line-wide consecutive-NC rule, the evaluator starts one escalation for the trip,
 * which alerts, holds the work order once although the MES's first answer is lost, waits for the release decision and
 * releases the hold once. The site is this run's own.
 */
import { randomUUID } from 'node:crypto';
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
import { ProductionHoldMes } from '../support/escalation-fakes';
import { eventually } from '../support/eventually';
import { FakeErp, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `WF${run}`;

function inspection(n: number, station: string, fail: boolean): InspectionRecord {
  return {
    eventId: `${run}-${n}`,
    site: SITE,
    line: 'L1',
    station,
    partId: `${run}-P${n}`,
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

test('a trip starts one escalation that holds the order once and releases it once after the decision', async () => {
  const audit = createAuditTrail(harness.pool);
  const store = createPgQualityRuleStore(harness.pool, audit);
  await putRuleVersion(
    audit,
    {
      site: SITE,
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
    site: SITE,
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
      workflowId: lineRuleEvaluatorWorkflowId(SITE, 'L1'),
      taskQueue,
      args: [input],
    });
    await eventually('the evaluator’s first pass', async () => {
      const res = await harness.pool.query(`SELECT 1 FROM holdfast.quality_rule_cursor WHERE site = $1`, [SITE]);
      return res.rowCount === 1;
    });
    // Line-wide: S1's and S2's first inspections interleave; the pass between them resets the run.
    await insertInspections(harness.pool, [
      inspection(1, 'S1', true),
      inspection(2, 'S2', false),
      inspection(3, 'S2', true),
      inspection(4, 'S1', true),
    ]);
    const row = await eventually('the order held', async () => {
      const res = await harness.pool.query<{ escalation_id: string; workflow_id: string; state: string }>(
        `SELECT escalation_id, workflow_id, state FROM holdfast.quality_escalation WHERE site = $1`,
        [SITE],
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
    await evaluator.terminate('test done');
  });
});
