/**
 * A real recall's contain stage as the workflow runs it, on the jest dev server: batches fan out at most
 * parallelBatches at once with lotConcurrency lots each, the history grows by batch and not by lot, progress is a
 * query, and a cancel stops every new effect, keeps what was placed and still reports. The genealogy stages and the
 * rows are stand-ins here (test/integration/recall-real.test.ts runs them for real).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { recallStatusQuery, type RecallStatus } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { startRecallRig } from '../support/recall-rig';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

test('batches fan out within their bounds, the history grows by batch, progress is a query', async () => {
  const { mes, worker, start, reports } = await startRecallRig(harness, { lots: 120, delayMs: 20 });
  await worker.runUntil(async () => {
    const handle = await start({
      batchSize: 20,
      parallelBatches: 3,
      lotConcurrency: 2,
      batchTimeout: '1m',
      heartbeatTimeout: '10s',
    });
    const status = (await handle.result()) as RecallStatus;
    expect(status.contain).toEqual({
      lots: 120,
      batches: 6,
      batchesDone: 6,
      held: 120,
      alreadyHeld: 0,
      blocked: 0,
      nothingToBlock: 0,
      failed: 0,
      cancelled: 0,
    });
    expect(status.stages.find((s) => s.name === 'contain')).toMatchObject({ state: 'done', counts: { held: 120 } });
    await expect(handle.query(recallStatusQuery)).resolves.toEqual(status);
    // At most parallelBatches × lotConcurrency holds at once.
    expect(mes.maxInFlight).toBeLessThanOrEqual(6);
    expect(mes.holds.size).toBe(120);
    // A few events per batch (scheduled, started, completed, and the workflow tasks around them), none per lot.
    const { events } = await handle.fetchHistory();
    expect(events!.length).toBeLessThan(6 * 10 + 30);
  });
  expect(reports).toEqual(['completed']);
});

test('a cancel stops new holds at once, keeps what was placed, skips the rest and still reports', async () => {
  const { mes, containment, worker, start, reports } = await startRecallRig(harness, { lots: 40, delayMs: 300 });
  let cancelledAt = 0;
  const cancel = containment.cancel.bind(containment);
  containment.cancel = async () => {
    cancelledAt ||= Date.now();
    await cancel();
  };
  await worker.runUntil(async () => {
    const handle = await start({
      batchSize: 4,
      parallelBatches: 2,
      lotConcurrency: 1,
      batchTimeout: '1m',
      heartbeatTimeout: '10s',
    });
    await eventually(
      'a first batch contained',
      () => handle.query(recallStatusQuery),
      (s) => (s.contain?.batchesDone ?? 0) >= 1,
    );
    await handle.cancel();
    const failure = await handle.result().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const status = await handle.query(recallStatusQuery);
    expect(status.state).toBe('cancelled');
    expect(status.stages.map((s) => [s.name, s.state])).toEqual([
      ['trace', 'done'],
      ['classify', 'done'],
      ['reinspect', 'skipped'],
      ['contain', 'cancelled'],
      ['notify', 'skipped'],
      ['reconcile', 'skipped'],
      ['report', 'skipped'],
    ]);
  });
  expect(reports).toEqual(['cancelled']);
  expect(cancelledAt).toBeGreaterThan(0);
  // No hold began after the cancel was recorded; every hold placed is on its lot's row; the rest are cancelled.
  expect(mes.started.filter((t) => t > cancelledAt)).toEqual([]);
  const rows = [...containment.lots.values()];
  expect(rows.filter((r) => r.mesState === 'held').length).toBe(mes.holds.size);
  expect(rows.filter((r) => r.state === 'pending')).toEqual([]);
  expect(rows.filter((r) => r.state === 'cancelled').length).toBe(40 - mes.holds.size);
  expect(mes.holds.size).toBeLessThan(40);
});
