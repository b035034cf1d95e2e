/**
 * The recall workflow's reinspect stage on a real Temporal dev server, with the stages' stores as stand-ins (their own
 * test, test/integration/model-recall.test.ts, runs them on PostgreSQL and onnxruntime): a model recall asks for
 * batches until none are left, then concludes once, and its history grows by one activity per batch; any other scope
 * skips the stage.
 */
import { randomUUID } from 'node:crypto';
import type { RecallReinspector, RecallStore, ReinspectionBatch } from '../../activities/ports';
import { recallWorkflowId, type RecallInput, type RecallScope, type RecallStatus } from '../../workflows/contracts';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

const stages: RecallStore = {
  trace: async () => ({
    scopeLots: 3,
    forwardLots: 0,
    backwardLots: 0,
    deliveries: 0,
    customers: 0,
    gaps: 0,
    cycles: 0,
    truncated: 0,
  }),
  classify: async () => ({ 'in-stock': 3 }),
  reconcile: async () => ({ produced: 0, accounted: 0, unreconciledLots: 0 }),
  report: async () => undefined,
};

/** Three batches: two full ones, then the rest. */
class ScriptedReinspector implements RecallReinspector {
  readonly batches: { limit: number; corrected: string | undefined }[] = [];
  concluded = 0;
  async reinspectBatch(
    input: Parameters<RecallReinspector['reinspectBatch']>[0],
    progress: (done: number) => void,
  ): Promise<ReinspectionBatch> {
    this.batches.push({ limit: input.limit, corrected: input.correctedModelVersion });
    progress(input.limit);
    const last = this.batches.length === 3;
    return { counts: { 'now-fails': 1, 'still-passes': last ? 2 : input.limit - 2, 'no-image': 1 }, more: !last };
  }
  async conclude(): Promise<Record<string, number>> {
    this.concluded += 1;
    return { 'lots-reinspection-failed': 2, 'lots-reinspection-passed': 1 };
  }
}

async function runRecall(scope: RecallScope, reinspector: RecallReinspector, correctedModelVersion?: string) {
  const { worker, taskQueue } = await harness.worker({
    mes: new FakeMes(),
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    recalls: stages,
    reinspector,
  });
  const recallId = `WF-${randomUUID().slice(0, 8)}`;
  const input: RecallInput = {
    recallId,
    site: 'PLANT1',
    kind: 'mock',
    scope,
    reason: 'workflow test',
    requestedBy: 'test',
    targets: { traceWithin: '8m', reconciliationAtLeast: 0.995 },
    preset: harness.config.activityPresets.traceWrite,
    ...(correctedModelVersion ? { correctedModelVersion } : {}),
  };
  return worker.runUntil(async () => {
    const handle = await harness.client.workflow.start('recallWorkflow', {
      workflowId: recallWorkflowId(recallId),
      taskQueue,
      args: [input],
    });
    const status = (await handle.result()) as RecallStatus;
    const scheduled: string[] = [];
    const history = await handle.fetchHistory();
    for (const event of history.events ?? []) {
      const type = event.activityTaskScheduledEventAttributes?.activityType?.name;
      if (type) scheduled.push(type);
    }
    return { status, scheduled };
  });
}

test('a model recall re-inspects batch after batch until none is left, then concludes once', async () => {
  const reinspector = new ScriptedReinspector();
  const { status, scheduled } = await runRecall(
    { kind: 'model-version', modelVersion: 'holdfast-surface@1.0.0', from: '2026-11-01T00:00:00Z' },
    reinspector,
    'holdfast-surface@1.0.1',
  );
  expect(status.state).toBe('completed');
  const reinspect = status.stages.find((s) => s.name === 'reinspect')!;
  expect(reinspect.state).toBe('done');
  const limit = reinspector.batches[0]!.limit;
  expect(reinspector.batches).toEqual(Array(3).fill({ limit, corrected: 'holdfast-surface@1.0.1' }));
  expect(reinspector.concluded).toBe(1);
  expect(reinspect.counts).toEqual({
    'now-fails': 3,
    'still-passes': 2 * (limit - 2) + 2,
    'no-image': 3,
    'lots-reinspection-failed': 2,
    'lots-reinspection-passed': 1,
  });
  // One activity per batch in the history, whatever the parts' number.
  expect(scheduled).toEqual([
    'traceRecall',
    'classifyRecall',
    'reinspectRecallBatch',
    'reinspectRecallBatch',
    'reinspectRecallBatch',
    'concludeReinspection',
    'reconcileRecall',
    'reportRecall',
  ]);
});

test('a recall of any other scope skips the reinspect stage', async () => {
  const reinspector = new ScriptedReinspector();
  const { status, scheduled } = await runRecall(
    { kind: 'supplier-lot', supplier: 'V1', supplierBatch: 'B1' },
    reinspector,
  );
  expect(status.stages.find((s) => s.name === 'reinspect')).toEqual({ name: 'reinspect', state: 'skipped' });
  expect(reinspector.batches).toEqual([]);
  expect(scheduled).not.toContain('reinspectRecallBatch');
});
