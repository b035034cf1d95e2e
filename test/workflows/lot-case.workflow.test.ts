import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { ExternalSystemError } from '../../activities/errors';
import { defectWorkflow } from '../../workflows';
import {
  SearchAttributes,
  defectStateQuery,
  defectWorkflowId,
  dispositionUpdate,
  lotCaseStateQuery,
  lotCaseWorkflowId,
  retryFailedStepUpdate,
  type DefectDetection,
  type DispositionDecision,
  type LotCaseState,
  type SitePolicy,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness, defectInput, detection } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

interface Rig {
  mes: FakeMes;
  erp: FakeErp;
  escalation: RecordingEscalation;
  worker: Worker;
  taskQueue: string;
  policy: SitePolicy;
}

async function rig(policy: Partial<SitePolicy> = {}): Promise<Rig> {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const escalation = new RecordingEscalation();
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation });
  return { mes, erp, escalation, worker, taskQueue, policy: harness.policy(policy) };
}

function startDefect(r: Rig, d: DefectDetection) {
  return harness.startDefect(d, r.policy, r.taskQueue);
}

async function waitForStage(
  site: string,
  lotId: string,
  stage: LotCaseState['stage'],
  parts = 1,
): Promise<LotCaseState> {
  const handle = harness.client.workflow.getHandle(lotCaseWorkflowId(site, lotId));
  // Defect workflows end once they have handed their part over; containment is the lot case's to finish.
  return eventually(
    `lot ${lotId} in ${stage}`,
    () => handle.query(lotCaseStateQuery),
    (state) => state.stage === stage && (stage === 'needs-attention' || state.parts.length >= parts),
  );
}

function disposition(decision: DispositionDecision, requestId = `req-${Math.random()}`) {
  return { decision, reason: 'MRB decision 42', decidedBy: 'qe.jane', requestId };
}

test('many defective parts of one lot give one hold, one notification with one item per part, one block per part', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}`;
  r.mes.addLot({ lotId, quantity: 200 });
  await r.worker.runUntil(async () => {
    const parts = [0, 1, 2].map(() => detection({ lotId }));
    const handles = await Promise.all(parts.map((d) => startDefect(r, d)));
    const results = await Promise.all(handles.map((h) => h.result()));
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition', 3);

    expect(r.mes.holds.size).toBe(1);
    expect(r.erp.notifications.size).toBe(1);
    const [qn] = [...r.erp.notifications.values()];
    expect(qn!.items).toHaveLength(3);
    expect(r.erp.documents.map((d) => [d.movementType, d.quantity])).toEqual([
      ['344', 1],
      ['344', 1],
      ['344', 1],
    ]);
    expect(r.mes.qualityEvents.size).toBe(3);
    expect(
      results.every((x) => 'lotCaseWorkflowId' in x && x.lotCaseWorkflowId === lotCaseWorkflowId('PLANT1', lotId)),
    ).toBe(true);
    expect(new Set(results.map((x) => ('workOrderQualityStatus' in x ? x.workOrderQualityStatus : 'shadow')))).toEqual(
      new Set(['NONCONFORMING']),
    );

    expect(state.blockedQuantity).toBe(3);
    expect(state.parts.map((p) => p.eventId).sort()).toEqual(parts.map((p) => p.eventId).sort());

    // The durable projection and the trace graph have the documents.
    const { rows } = await harness.pool.query(
      'SELECT stage, hold_id, notification FROM holdfast.lot_case WHERE workflow_id = $1',
      [lotCaseWorkflowId('PLANT1', lotId)],
    );
    expect(rows).toEqual([{ stage: 'awaiting-disposition', hold_id: 'H-1', notification: qn!.number }]);
    const links = await harness.pool.query(
      "SELECT relation, to_kind FROM holdfast.trace_link WHERE from_kind = 'lot' AND from_id = $1 ORDER BY relation",
      [`PLANT1/${lotId}`],
    );
    expect(links.rows.filter((l) => l.relation === 'blocked-by')).toHaveLength(3);
    expect(links.rows.filter((l) => l.relation === 'held-by')).toHaveLength(1);
  });
});

test('a defect from a station in shadow mode records what it would do and touches neither the MES, the ERP nor a lot case', async () => {
  const r = await rig();
  await r.worker.runUntil(async () => {
    const d = detection();
    const handle = await harness.client.workflow.start(defectWorkflow, {
      workflowId: defectWorkflowId(d.eventId),
      taskQueue: r.taskQueue,
      args: [{ ...defectInput(d, r.policy, r.taskQueue), mode: 'shadow' }],
    });
    const result = await handle.result();
    expect(result).toMatchObject({ eventId: d.eventId, mode: 'shadow' });
    expect('wouldDo' in result && result.wouldDo.join('\n')).toMatch(new RegExp(`hold lot ${d.lotId}`));
    expect(r.mes.holds.size + r.mes.qualityEvents.size).toBe(0);
    expect(r.erp.notifications.size + r.erp.documents.length).toBe(0);
    const lotCase = harness.client.workflow.getHandle(lotCaseWorkflowId(d.site, d.lotId));
    await expect(lotCase.describe()).rejects.toThrow(/not found/i);
    const described = await handle.describe();
    expect(described.searchAttributes.DispositionState).toEqual(['shadow']);
  });
});

test('whole-lot policy blocks the lot quantity once, however many parts fail', async () => {
  const r = await rig({ blockQuantity: 'whole-lot' });
  const lotId = `L-${Date.now()}-w`;
  r.mes.addLot({ lotId, quantity: 250 });
  await r.worker.runUntil(async () => {
    const handles = await Promise.all([detection({ lotId }), detection({ lotId })].map((d) => startDefect(r, d)));
    await Promise.all(handles.map((h) => h.result()));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition', 2);
    expect(r.erp.documents.map((d) => [d.movementType, d.quantity])).toEqual([['344', 250]]);
  });
});

test.each([
  ['use-as-is', '343', 'RELEASED', undefined],
  ['rework', '343', 'REWORK', undefined],
  ['scrap', '555', 'SCRAPPED', undefined],
  ['return-to-vendor', '122', 'RETURNED', '17300001'],
] as const)(
  'disposition %s posts %s, sets the lot %s and closes the notification',
  async (decision, mvt, lotStatus, supplier) => {
    const r = await rig();
    const lotId = `L-${Date.now()}-${decision}`;
    r.mes.addLot({ lotId, ...(supplier ? { supplier } : {}) });
    await r.worker.runUntil(async () => {
      const d = detection({ lotId });
      await (await startDefect(r, d)).result();
      await waitForStage('PLANT1', lotId, 'awaiting-disposition');
      const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
      const outcome = await handle.executeUpdate(dispositionUpdate, { args: [disposition(decision)] });
      expect(outcome).toMatchObject({ status: 'completed', decision, lotStatus, notificationClosed: true });
      expect(outcome.materialDocuments).toEqual([expect.objectContaining({ movementType: mvt, quantity: 1 })]);
      expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344', mvt]);
      if (supplier) expect(r.erp.documents[1]!.supplier).toBe(supplier);
      expect([...r.erp.notifications.values()][0]!.completed).toBe(true);
      expect(r.mes.lots.get(lotId)!.status).toBe(lotStatus);
      const final = await handle.result();
      expect(final.stage).toBe('closed');
      const described = await handle.describe();
      expect(described.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe(decision);
    });
  },
);

test('illegal transitions are rejected synchronously and change nothing', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-ill`;
  r.mes.addLot({ lotId }); // made in-house: no supplier
  await r.worker.runUntil(async () => {
    await (await startDefect(r, detection({ lotId }))).result();
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));

    await expect(handle.executeUpdate(dispositionUpdate, { args: [disposition('return-to-vendor')] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );
    await expect(
      handle.executeUpdate(dispositionUpdate, { args: [{ ...disposition('scrap'), reason: '  ' }] }),
    ).rejects.toThrow(WorkflowUpdateFailedError);
    await expect(handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'op' }] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );
    expect(r.erp.documents).toHaveLength(1);

    const same = disposition('scrap', 'req-fixed');
    const first = await handle.executeUpdate(dispositionUpdate, { args: [same], updateId: same.requestId });
    // The same update id is answered from history, not run twice.
    const again = await handle.executeUpdate(dispositionUpdate, { args: [same], updateId: same.requestId });
    expect(again).toEqual(first);
    await handle.result();
    expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344', '555']);
    // A second, different decision after the first is refused (the case is closed).
    await expect(handle.executeUpdate(dispositionUpdate, { args: [disposition('use-as-is')] })).rejects.toThrow();
  });
});

test('a business rejection parks the case in needs-attention until an operator retries', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-na`;
  r.mes.addLot({ lotId });
  r.erp.failures.set(
    'postGoodsMovement',
    new ExternalSystemError('fake-erp', 'rejected', 'Deficit of SL Unrestricted-use 1 PC', 400),
  );
  await r.worker.runUntil(async () => {
    const defect = await startDefect(r, detection({ lotId }));
    const parked = await waitForStage('PLANT1', lotId, 'needs-attention');
    expect(parked.failures).toEqual([
      expect.objectContaining({ step: 'erp-stock-block', errorType: 'HoldfastBusinessRejection' }),
    ]);
    expect(parked.failures![0]!.message).toContain('Deficit');
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    const listed = await harness.client.workflow.count(
      `Lot = '${lotId}' AND DispositionState = 'needs-attention' AND ExecutionStatus = 'Running'`,
    );
    expect(listed.count).toBe(1);
    await expect(handle.executeUpdate(dispositionUpdate, { args: [disposition('scrap')] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );

    expect(await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] })).toEqual({
      steps: ['erp-stock-block'],
    });
    await defect.result();
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(state.parts[0]!.materialDocument?.movementType).toBe('344');
    expect(state.failures).toBeUndefined();
    expect(r.erp.documents).toHaveLength(1);
  });
});

test('steps refused side by side are all shown, and one retry runs all of them again', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-na2`;
  r.mes.addLot({ lotId });
  // A batch the ERP does not know: the notification and the 344 block (parallel steps) are both refused.
  r.erp.failures.set(
    'raiseQualityNotification',
    new ExternalSystemError('fake-erp', 'rejected', 'Batch B-1 does not exist', 400),
  );
  r.erp.failures.set('postGoodsMovement', new ExternalSystemError('fake-erp', 'rejected', 'Batch B-1 unknown', 400));
  await r.worker.runUntil(async () => {
    await startDefect(r, detection({ lotId }));
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    const parked = await eventually(
      'both steps parked',
      () => handle.query(lotCaseStateQuery),
      (x) => x.failures?.length === 2,
    );
    const bothSteps = ['erp-quality-notification', 'erp-stock-block'];
    expect(parked.failures!.map((f) => f.step).sort()).toEqual(bothSteps);
    expect(parked.failures!.map((f) => f.message).join(' | ')).toMatch(
      /does not exist.*unknown|unknown.*does not exist/,
    );
    // What the Web UI shows as the case's current details names both steps.
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    for (const step of bothSteps) expect(metadata.currentDetails).toContain(`Step \`${step}\` failed`);

    const retried = await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] });
    expect([...retried.steps].sort()).toEqual(bothSteps);
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(state.failures).toBeUndefined();
    expect(state.notification).toBeDefined();
    expect(r.erp.notifications.size).toBe(1);
    expect(r.erp.documents.map((d) => d.movementType)).toEqual(['344']);
    // Nothing is parked any more: a second retry is refused.
    await expect(handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );
  });
});

test('a refused work-order count parks the defect workflow with its failure until an operator retries', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-wo`;
  r.mes.addLot({ lotId });
  r.mes.failures.set(
    'recordQualityEvent',
    new ExternalSystemError('fake-mes', 'rejected', 'Work order 1000100 is closed', 409),
  );
  await r.worker.runUntil(async () => {
    const d = detection({ lotId });
    const defect = await startDefect(r, d);
    const state = await eventually(
      'defect workflow parked',
      () => defect.query(defectStateQuery),
      (x) => x.stage === 'needs-attention',
    );
    expect(state.failures).toEqual([
      expect.objectContaining({ step: 'mes-work-order-quality', message: expect.stringContaining('closed') }),
    ]);
    expect((await defect.describe()).searchAttributes.DispositionState).toEqual(['needs-attention']);

    expect(await defect.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'mes.admin' }] })).toEqual({
      steps: ['mes-work-order-quality'],
    });
    expect(await defect.result()).toMatchObject({ eventId: d.eventId, workOrderQualityStatus: 'NONCONFORMING' });
    expect((await defect.query(defectStateQuery)).failures).toBeUndefined();
    expect(r.mes.qualityEvents.size).toBe(1);
  });
});

test('transient faults are retried by Temporal and still give exactly one document', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-tr`;
  r.mes.addLot({ lotId });
  r.mes.failures.set('holdLot', new ExternalSystemError('fake-mes', 'transient', 'ECONNRESET', undefined));
  r.erp.failures.set('raiseQualityNotification', new ExternalSystemError('fake-erp', 'transient', 'HTTP 503', 503));
  await r.worker.runUntil(async () => {
    await (await startDefect(r, detection({ lotId }))).result();
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(r.mes.calls.filter((c) => c.startsWith('holdLot'))).toHaveLength(2);
    expect(r.mes.holds.size).toBe(1);
    expect(r.erp.notifications.size).toBe(1);
  });
});

test('no disposition within the configured time escalates once; a decision is still accepted afterwards', async () => {
  const r = await rig({ dispositionTimeout: '2s' });
  const lotId = `L-${Date.now()}-esc`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    await (await startDefect(r, detection({ lotId }))).result();
    await eventually('the escalation', () => r.escalation.messages.length > 0);
    expect(r.escalation.messages).toHaveLength(1);
    expect(r.escalation.messages[0]).toMatchObject({ lotId, site: 'PLANT1' });
    const rows = await harness.pool.query('SELECT lot_id FROM holdfast.escalation WHERE lot_id = $1', [lotId]);
    expect(rows.rowCount).toBe(1);
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    const outcome = await handle.executeUpdate(dispositionUpdate, { args: [disposition('use-as-is')] });
    expect(outcome.status).toBe('completed');
    expect(r.escalation.messages).toHaveLength(1);
  });
});

test('a part that arrives after the lot was dispositioned opens the next case of the lot', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-next`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    await (await startDefect(r, detection({ lotId }))).result();
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    await handle.executeUpdate(dispositionUpdate, { args: [disposition('use-as-is')] });
    await handle.result();
    r.mes.lots.get(lotId)!.status = 'RELEASED';
    await (await startDefect(r, detection({ lotId }))).result();
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(r.mes.holds.size).toBe(2);
    expect(r.erp.notifications.size).toBe(2);
    const { rows } = await harness.pool.query<{ stage: string }>(
      'SELECT stage FROM holdfast.lot_case WHERE lot_id = $1 ORDER BY opened_at',
      [lotId],
    );
    expect(rows.map((x) => x.stage)).toEqual(['closed', 'awaiting-disposition']);
  });
});

test('the same detection started twice runs once', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-dup`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const d = detection({ lotId });
    const first = await startDefect(r, d);
    await expect(startDefect(r, d)).rejects.toThrow(/already started/i);
    await first.result();
    expect(r.mes.qualityEvents.size).toBe(1);
  });
});

test('workflows are listable by business search attributes', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-sa`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const d = detection({ lotId, line: 'L3', station: 'S1' });
    await (await startDefect(r, d)).result();
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const ids = await eventually(
      'the lot case listed by line, lot and disposition state',
      async () => {
        const found: string[] = [];
        for await (const wf of harness.client.workflow.list({
          query: `Line = 'L3' AND Lot = '${lotId}' AND DispositionState = 'awaiting-disposition'`,
        })) {
          found.push(wf.workflowId);
        }
        return found;
      },
      (found) => found.length > 0,
    );
    expect(ids).toEqual([lotCaseWorkflowId('PLANT1', lotId)]);
  });
});
