/**
 * The line-quality advisor on a real Temporal dev server, over typed fakes of the advice store and the MES: each
 * evaluation proposes advice for the lots that trip (once per lot while it is open), an accepted advice wakes the
 * rule and is sent to the MES once with its read-back stored, and an MES without resequencing leaves the rule running
 * with the failure in its status.
 */
import { randomUUID } from 'node:crypto';
import {
  adviceDecidedSignal,
  lineQualityAdvisorStatusQuery,
  lineQualityAdvisorWorkflowId,
  type LineQualityAdvisorInput,
} from '../../workflows/contracts';
import { MemoryAdviceStore, mesWithoutResequencing, ResequencingMes } from '../support/advice-fakes';
import { eventually } from '../support/eventually';
import { FakeErp, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

const rule = { windowMs: 7 * 86_400_000, thresholdRate: 0.05, minParts: 50, significance: 0.05 };

function input(site: string, evaluationInterval: string): LineQualityAdvisorInput {
  return { site, line: 'L1', rule, evaluationInterval, preset: harness.config.activityPresets.erpPost };
}

test('proposes advice for the lot that trips, once, and sends it to the MES once when accepted', async () => {
  const mes = new ResequencingMes();
  mes.lineOrderList = [
    {
      workOrder: 'W1',
      sku: 'BRKT-200',
      line: 'L1',
      status: 'RUNNING',
      sequence: 1,
      customerCriticality: 5,
      plannedQuantity: 100,
    },
    {
      workOrder: 'W2',
      sku: 'BRKT-200',
      line: 'L1',
      status: 'RELEASED',
      sequence: 2,
      customerCriticality: 1,
      plannedQuantity: 100,
    },
  ];
  const store = new MemoryAdviceStore();
  store.counts = [
    { lotKey: 'erp:1010/CMP/A', lotId: 'A', material: 'CMP', parts: 100, defective: 10, skus: ['BRKT-200'] },
    { lotKey: 'erp:1010/CMP/B', lotId: 'B', material: 'CMP', parts: 100, defective: 3, skus: ['BRKT-200'] },
    { lotKey: 'erp:1010/CMP/C', lotId: 'C', material: 'CMP', parts: 10, defective: 10, skus: ['BRKT-200'] },
  ];
  const { worker, taskQueue } = await harness.worker({
    mes,
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    advice: store,
  });
  const site = `ADV-${randomUUID().slice(0, 6)}`;
  await worker.runUntil(async () => {
    const handle = await harness.client.workflow.start('lineQualityAdvisorWorkflow', {
      workflowId: lineQualityAdvisorWorkflowId(site, 'L1'),
      taskQueue,
      // Evaluations every second: several pass while the advice is open, and none proposes it again.
      args: [input(site, '1s')],
    });
    const status = await eventually(
      'three evaluations',
      () => handle.query(lineQualityAdvisorStatusQuery),
      (s) => s.totals.evaluations >= 3,
    );
    expect(status.totals.proposed).toBe(1);
    // C is under the minimum sample size: not tested at all.
    expect(status.lastLots).toEqual([
      expect.objectContaining({ lotKey: 'erp:1010/CMP/A', parts: 100, defective: 10, tripped: true }),
      expect.objectContaining({ lotKey: 'erp:1010/CMP/B', parts: 100, defective: 3, tripped: false }),
    ]);
    expect(store.advice).toHaveLength(1);
    const [advice] = store.advice;
    expect(advice).toMatchObject({
      componentLot: 'erp:1010/CMP/A',
      lotId: 'A',
      state: 'open',
      action: 'use-on-less-critical',
      orders: ['W2'],
      currentOrder: { workOrder: 'W1', customerCriticality: 5 },
      evidence: { parts: 100, defective: 10, rate: 0.1, thresholdRate: 0.05, significance: 0.05, minParts: 50 },
    });
    expect(advice!.evidence.pValue).toBeCloseTo(0.028188294163416106, 12);
    expect(mes.requests).toHaveLength(0);

    store.accept(advice!.adviceId);
    await handle.signal(adviceDecidedSignal, advice!.adviceId);
    await eventually('the advice sent', async () => store.advice[0]!.state === 'sent');
    expect(store.advice[0]!.resequencing).toMatchObject({ requestId: 'RS-1', status: 'ACCEPTED', componentLot: 'A' });
    expect(mes.requests).toEqual([
      expect.objectContaining({ idempotencyKey: `advice:${advice!.adviceId}:resequence` }),
    ]);

    // Woken again, and evaluating on: nothing accepted is left, so nothing more goes to the MES.
    await handle.signal(adviceDecidedSignal, advice!.adviceId);
    await eventually(
      'two more evaluations',
      () => handle.query(lineQualityAdvisorStatusQuery),
      (s) => s.totals.evaluations >= status.totals.evaluations + 2 && s.totals.sent === 1,
    );
    expect(mes.resequencings.size).toBe(1);
    await handle.terminate('test done');
  });
});

test('an MES without resequencing leaves the advice accepted and the rule running, the failure in its status', async () => {
  const store = new MemoryAdviceStore();
  store.counts = [{ lotKey: 'erp:1010/CMP/A', lotId: 'A', material: 'CMP', parts: 100, defective: 10, skus: [] }];
  const { worker, taskQueue } = await harness.worker({
    mes: mesWithoutResequencing(),
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    advice: store,
  });
  const site = `ADV-${randomUUID().slice(0, 6)}`;
  await worker.runUntil(async () => {
    const handle = await harness.client.workflow.start('lineQualityAdvisorWorkflow', {
      workflowId: lineQualityAdvisorWorkflowId(site, 'L1'),
      taskQueue,
      args: [input(site, '1h')],
    });
    await eventually('the advice proposed', async () => store.advice.length === 1);
    // The fake MES lists no line orders: the safe advice is to hold what is left.
    expect(store.advice[0]).toMatchObject({ action: 'hold-remaining', orders: [], currentOrder: null });
    store.accept(store.advice[0]!.adviceId);
    await handle.signal(adviceDecidedSignal, store.advice[0]!.adviceId);
    const status = await eventually(
      'the send failure shown',
      () => handle.query(lineQualityAdvisorStatusQuery),
      (s) => s.sendFailure !== undefined,
    );
    expect(status.sendFailure).toContain('fake-mes');
    expect(status.sendFailure).toContain('offers no resequencing');
    expect(store.advice[0]!.state).toBe('accepted');
    expect((await handle.describe()).status.name).toBe('RUNNING');
    await handle.terminate('test done');
  });
});
