import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { ExternalSystemError } from '../../activities/errors';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import type { WorkflowHandle } from '@temporalio/client';
import type { Role } from '../../infra/identity/principal';
import {
  SearchAttributes,
  countersignDispositionUpdate,
  dispositionUpdate,
  lotCaseStateQuery,
  lotCaseWorkflowId,
  retryFailedStepUpdate,
  type DefectDetection,
  type DispositionDecision,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseState,
  type SitePolicy,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { caseSignature } from '../support/identity';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness, detection, dispatchOf } from '../support/workflow-harness';

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

/** Hands the part to its lot case as the outbox dispatcher does; resolves to the lot case's handle. */
function enrol(r: Rig, d: DefectDetection) {
  return harness.enrol(d, r.policy, r.taskQueue);
}

async function waitForStage(
  site: string,
  lotId: string,
  stage: LotCaseState['stage'],
  parts = 1,
): Promise<LotCaseState> {
  const handle = harness.client.workflow.getHandle(lotCaseWorkflowId(site, lotId));
  return until(
    `lot ${lotId} in ${stage}`,
    () => handle.query(lotCaseStateQuery),
    (state) =>
      state.stage === stage && (stage === 'needs-attention' || state.parts.length >= parts) ? state : undefined,
  );
}

/** Reads until `done` makes something of what it read (a read that throws counts as not yet). */
const until = <T, R>(what: string, read: () => Promise<T>, done: (value: T) => R | undefined) =>
  eventually(what, async () => done(await read()));

const ENGINEER = { id: 'local:qe.jane', roles: ['quality-engineer'] as Role[] };
const MANAGER = { id: 'local:qm.ola', roles: ['quality-manager'] as Role[] };

function disposition(decision: DispositionDecision, requestId = `req-${Math.random()}`): DispositionRequest {
  return {
    decision,
    reason: 'MRB decision 42',
    decidedBy: ENGINEER.id,
    signatures: [caseSignature(ENGINEER)],
    requestId,
  };
}

const countersign = (signer = MANAGER, contentSha256?: string) => ({
  signature: caseSignature(signer, contentSha256),
  requestId: `req-${Math.random()}`,
});

/** The decision signed by the engineer, and for a use-as-is countersigned by the manager: the final outcome. */
async function decide(handle: WorkflowHandle, decision: DispositionDecision): Promise<DispositionOutcome> {
  const first = await handle.executeUpdate(dispositionUpdate, { args: [disposition(decision)] });
  if (first.status !== 'awaiting-second-signature') return first;
  return handle.executeUpdate(countersignDispositionUpdate, { args: [countersign()] });
}

test('many defective parts of one lot give one hold, one notification with one item per part, one block and one count per part', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}`;
  r.mes.addLot({ lotId, quantity: 200 });
  await r.worker.runUntil(async () => {
    const parts = [0, 1, 2].map(() => detection({ lotId }));
    await Promise.all(parts.map((d) => enrol(r, d)));
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
    expect([...r.mes.qualityEvents.keys()].sort()).toEqual(parts.map((p) => `${p.eventId}:wo-quality`).sort());

    expect(state.blockedQuantity).toBe(3);
    expect(state.parts.map((p) => p.eventId).sort()).toEqual(parts.map((p) => p.eventId).sort());
    for (const part of state.parts) {
      expect(part).toMatchObject({ status: 'contained', workOrder: '1000100', workOrderQuality: 'NONCONFORMING' });
      expect(part.notificationItem).toBeDefined();
      expect(part.materialDocument?.movementType).toBe('344');
    }

    // The durable projection and the trace graph have the documents, and each inspection names its case.
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
    const inspections = await harness.pool.query<{ from_id: string; relation: string; to_id: string }>(
      "SELECT from_id, relation, to_id FROM holdfast.trace_link WHERE from_kind = 'inspection' AND from_id = ANY($1)",
      [parts.map((p) => p.eventId)],
    );
    for (const part of parts) {
      expect(
        inspections.rows
          .filter((l) => l.from_id === part.eventId)
          .map((l) => `${l.relation} ${l.to_id}`)
          .sort(),
      ).toEqual(
        [
          `counted-on 1000100`,
          `defect-item ${qn!.number}/${state.parts.find((p) => p.eventId === part.eventId)!.notificationItem}`,
          `handled-by ${lotCaseWorkflowId('PLANT1', lotId)}`,
          `inspects-part ${part.partId}`,
          `part-of-lot PLANT1/${lotId}`,
        ].sort(),
      );
    }
  });
});

test('parts that arrive together are taken in one batch: a new lot costs one workflow task', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-batch`;
  r.mes.addLot({ lotId, quantity: 200 });
  // Handed over before any worker polls, so that the first workflow task sees all three signals.
  const parts = [0, 1, 2].map(() => detection({ lotId }));
  for (const d of parts) await enrol(r, d);
  await r.worker.runUntil(async () => {
    // Read from the projection, not by query: a query answered while local activities run makes the worker
    // complete the workflow task early (with the answer) and open another.
    await until(
      `lot ${lotId} recorded awaiting its disposition`,
      () =>
        harness.pool.query<{ stage: string }>('SELECT stage FROM holdfast.lot_case WHERE workflow_id = $1', [
          lotCaseWorkflowId('PLANT1', lotId),
        ]),
      (res) => (res.rows[0]?.stage === 'awaiting-disposition' ? true : undefined),
    );
  });
  const history = await harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId)).fetchHistory();
  const events = history.events ?? [];
  expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(1);
  // One record of the batch, one lot read, one hold; the notification with its first item, three blocks, three
  // counts; the two other items; one stage record.
  expect(events.filter((e) => e.markerRecordedEventAttributes)).toHaveLength(13);
  expect(r.mes.calls.filter((c) => c.startsWith('holdLot'))).toHaveLength(1);
});

test('a defect from a station in shadow mode records what it would do and touches neither the MES, the ERP nor a lot case', async () => {
  const r = await rig();
  await r.worker.runUntil(async () => {
    const d = detection();
    const gateway = createTemporalWorkflowGateway(harness.client, { taskQueue: r.taskQueue });
    const sent = await gateway.dispatchDetection({ ...dispatchOf(d, r.policy, r.taskQueue), mode: 'shadow' });
    expect(sent).toMatchObject({ workflowId: `shadow-${d.eventId}`, awaitsConfirmation: false });
    const handle = harness.client.workflow.getHandle(sent.workflowId);
    const result = (await handle.result()) as { eventId: string; mode: string; wouldDo: string[] };
    expect(result).toMatchObject({ eventId: d.eventId, mode: 'shadow' });
    expect(result.wouldDo.join('\n')).toMatch(new RegExp(`hold lot ${d.lotId}`));
    expect(r.mes.holds.size + r.mes.qualityEvents.size).toBe(0);
    expect(r.erp.notifications.size + r.erp.documents.length).toBe(0);
    const lotCase = harness.client.workflow.getHandle(lotCaseWorkflowId(d.site, d.lotId));
    await expect(lotCase.describe()).rejects.toThrow(/not found/i);
    const described = await handle.describe();
    expect(described.searchAttributes.DispositionState).toEqual(['shadow']);
    expect(described.typedSearchAttributes.get(SearchAttributes.lot)).toBe(d.lotId);
    // Sent again (an outbox row dispatched twice): the same run answers, nothing new starts.
    expect(await gateway.dispatchDetection({ ...dispatchOf(d, r.policy, r.taskQueue), mode: 'shadow' })).toEqual(sent);
  });
});

test('whole-lot policy blocks the lot quantity once, however many parts fail', async () => {
  const r = await rig({ blockQuantity: 'whole-lot' });
  const lotId = `L-${Date.now()}-w`;
  r.mes.addLot({ lotId, quantity: 250 });
  await r.worker.runUntil(async () => {
    await Promise.all([detection({ lotId }), detection({ lotId })].map((d) => enrol(r, d)));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition', 2);
    expect(r.erp.documents.map((d) => [d.movementType, d.quantity])).toEqual([['344', 250]]);
  });
});

/** A bought lot: its vendor and the purchase order item it was received on. */
const BOUGHT = { supplier: '17300001', purchaseOrder: '4500000101', purchaseOrderItem: '00010' };

test.each([
  ['use-as-is', '343', 'RELEASED', undefined],
  ['rework', '343', 'REWORK', undefined],
  ['scrap', '555', 'SCRAPPED', undefined],
  ['return-to-vendor', '122', 'RETURNED', BOUGHT],
] as const)(
  'disposition %s posts %s, sets the lot %s and closes the notification',
  async (decision, mvt, lotStatus, bought) => {
    const r = await rig();
    const lotId = `L-${Date.now()}-${decision}`;
    r.mes.addLot({ lotId, ...bought });
    await r.worker.runUntil(async () => {
      const handle = await enrol(r, detection({ lotId }));
      await waitForStage('PLANT1', lotId, 'awaiting-disposition');
      const outcome = await decide(handle, decision);
      expect(outcome).toMatchObject({ status: 'completed', decision, lotStatus, notificationClosed: true });
      expect(outcome.materialDocuments).toEqual([expect.objectContaining({ movementType: mvt, quantity: 1 })]);
      expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344', mvt]);
      // The return names the vendor and the purchase order item; the other movements name no order.
      if (bought) expect(r.erp.documents[1]).toMatchObject(bought);
      else expect(r.erp.documents[1]!.purchaseOrder).toBeUndefined();
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
    const handle = await enrol(r, detection({ lotId }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');

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

test('use-as-is waits for a second signature by another person, a quality manager; the validator says why not', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-2p`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const handle = await enrol(r, detection({ lotId }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const refusal = (update: Promise<unknown>) =>
      update.then(
        () => 'accepted',
        (err: unknown) => (err as WorkflowUpdateFailedError).cause?.message,
      );

    // A disposition must carry its decider's signature.
    expect(
      await refusal(handle.executeUpdate(dispositionUpdate, { args: [{ ...disposition('scrap'), signatures: [] }] })),
    ).toBe("a disposition carries exactly one signature: its decider's");
    expect(await refusal(handle.executeUpdate(countersignDispositionUpdate, { args: [countersign()] }))).toMatch(
      /has no disposition waiting for a second signature/,
    );

    const first = await handle.executeUpdate(dispositionUpdate, { args: [disposition('use-as-is')] });
    expect(first).toMatchObject({ status: 'awaiting-second-signature', decision: 'use-as-is' });
    const waiting = await waitForStage('PLANT1', lotId, 'awaiting-second-signature');
    expect(waiting.decision?.signatures.map((s) => s.signer.id)).toEqual([ENGINEER.id]);
    // Nothing is released while one signature is missing.
    expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344']);
    expect(r.mes.lots.get(lotId)!.status).not.toBe('RELEASED');
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe('awaiting-second-signature');

    const content = first.signatures[0]!.contentSha256;
    expect(
      await refusal(handle.executeUpdate(countersignDispositionUpdate, { args: [countersign(ENGINEER, content)] })),
    ).toBe(`use-as-is needs a second person: ${ENGINEER.id} (${ENGINEER.id}) has signed it already`);
    const otherEngineer = { id: 'local:qe.max', roles: ['quality-engineer', 'operator'] as Role[] };
    expect(
      await refusal(
        handle.executeUpdate(countersignDispositionUpdate, { args: [countersign(otherEngineer, content)] }),
      ),
    ).toBe(
      `the second signature of a use-as-is must be a quality manager's; ${otherEngineer.id} has role(s) quality-engineer, operator`,
    );
    expect(
      await refusal(
        handle.executeUpdate(countersignDispositionUpdate, { args: [countersign(MANAGER, 'd'.repeat(64))] }),
      ),
    ).toBe(`the signature is for other content than the use-as-is of lot ${lotId} it would approve`);
    expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344']);

    const done = await handle.executeUpdate(countersignDispositionUpdate, { args: [countersign(MANAGER, content)] });
    expect(done).toMatchObject({ status: 'completed', decision: 'use-as-is', lotStatus: 'RELEASED' });
    expect(done.signatures.map((s) => s.signer.id)).toEqual([ENGINEER.id, MANAGER.id]);
    expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344', '343']);
    const final = await handle.result();
    expect(final.disposition?.signatures).toHaveLength(2);
  });
});

test('return-to-vendor of a bought lot without a purchase order is refused before anything is posted', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-no-po`;
  r.mes.addLot({ lotId, supplier: BOUGHT.supplier });
  await r.worker.runUntil(async () => {
    const handle = await enrol(r, detection({ lotId }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const refused = await handle.executeUpdate(dispositionUpdate, { args: [disposition('return-to-vendor')] }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
    expect((refused as WorkflowUpdateFailedError).cause?.message).toContain(`lot ${lotId} has no purchase order`);
    expect(r.erp.documents.map((x) => x.movementType)).toEqual(['344']);
    expect((await handle.query(lotCaseStateQuery)).stage).toBe('awaiting-disposition');
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
    const d = detection({ lotId });
    const handle = await enrol(r, d);
    const parked = await waitForStage('PLANT1', lotId, 'needs-attention');
    expect(parked.failures).toEqual([
      expect.objectContaining({
        step: 'erp-stock-block',
        errorType: 'HoldfastBusinessRejection',
        eventId: d.eventId,
        partId: d.partId,
      }),
    ]);
    expect(parked.failures![0]!.message).toContain('Deficit');
    const listed = await harness.client.workflow.count(
      `Lot = '${lotId}' AND DispositionState = 'needs-attention' AND ExecutionStatus = 'Running'`,
    );
    expect(listed.count).toBe(1);
    await expect(handle.executeUpdate(dispositionUpdate, { args: [disposition('scrap')] })).rejects.toThrow(
      WorkflowUpdateFailedError,
    );

    // A part that arrives while the case waits for the operator is recorded at once (its outbox row confirmed, so
    // the dispatcher does not send it again all the while), and contained after the retry.
    const later = detection({ lotId });
    await enrol(r, later);
    await until(
      'the later part recorded while the case is parked',
      () =>
        harness.pool.query(
          "SELECT to_id FROM holdfast.trace_link WHERE from_kind = 'inspection' AND from_id = $1 AND relation = 'handled-by'",
          [later.eventId],
        ),
      (res) => (res.rowCount === 1 ? true : undefined),
    );
    expect((await handle.query(lotCaseStateQuery)).stage).toBe('needs-attention');

    expect(await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] })).toEqual({
      steps: ['erp-stock-block'],
    });
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition', 2);
    expect(state.parts.map((p) => [p.eventId, p.status, p.materialDocument?.movementType])).toEqual([
      [d.eventId, 'contained', '344'],
      [later.eventId, 'contained', '344'],
    ]);
    expect(state.failures).toBeUndefined();
    expect(r.erp.documents).toHaveLength(2);
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
    const d = detection({ lotId });
    const handle = await enrol(r, d);
    const parked = await until(
      'both steps parked',
      () => handle.query(lotCaseStateQuery),
      (x) => (x.failures?.length === 2 ? x : undefined),
    );
    const bothSteps = ['erp-quality-notification', 'erp-stock-block'];
    expect(parked.failures!.map((f) => f.step).sort()).toEqual(bothSteps);
    expect(parked.failures!.map((f) => f.message).join(' | ')).toMatch(
      /does not exist.*unknown|unknown.*does not exist/,
    );
    // What the Web UI shows as the case's current details names both steps, and the part the block is for.
    const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
    expect(metadata.currentDetails).toContain('Step `erp-quality-notification` failed');
    expect(metadata.currentDetails).toContain(`Step \`erp-stock-block\` (part \`${d.partId}\`) failed`);

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

test('a refused work-order count parks the case with the part named, while the lot is held and blocked', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-wo`;
  r.mes.addLot({ lotId });
  r.mes.failures.set(
    'recordQualityEvent',
    new ExternalSystemError('fake-mes', 'rejected', 'Work order 1000100 is closed', 409),
  );
  await r.worker.runUntil(async () => {
    const d = detection({ lotId });
    const handle = await enrol(r, d);
    const parked = await waitForStage('PLANT1', lotId, 'needs-attention');
    expect(parked.failures).toEqual([
      expect.objectContaining({
        step: 'mes-work-order-quality',
        eventId: d.eventId,
        partId: d.partId,
        message: expect.stringContaining('closed'),
      }),
    ]);
    // The count waits for an operator; the part's containment went ahead beside it.
    expect(parked.holdId).toBeDefined();
    expect(parked.parts[0]).toMatchObject({ status: 'containing', notificationItem: '0001' });
    expect(parked.parts[0]!.materialDocument?.movementType).toBe('344');
    expect((await handle.describe()).searchAttributes.DispositionState).toEqual(['needs-attention']);

    expect(await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'mes.admin' }] })).toEqual({
      steps: ['mes-work-order-quality'],
    });
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(state.parts[0]).toMatchObject({ status: 'contained', workOrderQuality: 'NONCONFORMING' });
    expect(state.failures).toBeUndefined();
    expect(r.mes.qualityEvents.size).toBe(1);
    expect(r.mes.holds.size).toBe(1);
  });
});

test('transient faults are retried by Temporal and still give exactly one document', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-tr`;
  r.mes.addLot({ lotId });
  r.mes.failures.set('holdLot', new ExternalSystemError('fake-mes', 'transient', 'ECONNRESET', undefined));
  r.erp.failures.set('raiseQualityNotification', new ExternalSystemError('fake-erp', 'transient', 'HTTP 503', 503));
  await r.worker.runUntil(async () => {
    await enrol(r, detection({ lotId }));
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
    await enrol(r, detection({ lotId }));
    await eventually('the escalation', () => r.escalation.messages.length > 0);
    expect(r.escalation.messages).toHaveLength(1);
    expect(r.escalation.messages[0]).toMatchObject({ lotId, site: 'PLANT1' });
    const rows = await harness.pool.query('SELECT lot_id FROM holdfast.escalation WHERE lot_id = $1', [lotId]);
    expect(rows.rowCount).toBe(1);
    const handle = harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    const outcome = await decide(handle, 'use-as-is');
    expect(outcome.status).toBe('completed');
    expect(r.escalation.messages).toHaveLength(1);
  });
});

test('a part that arrives after the lot was dispositioned opens the next case of the lot', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-next`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const handle = await enrol(r, detection({ lotId }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    await decide(handle, 'use-as-is');
    await handle.result();
    r.mes.lots.get(lotId)!.status = 'RELEASED';
    await enrol(r, detection({ lotId, workOrder: '1000101' }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    expect(r.mes.holds.size).toBe(2);
    expect(r.erp.notifications.size).toBe(2);
    const { rows } = await harness.pool.query<{ stage: string }>(
      'SELECT stage FROM holdfast.lot_case WHERE lot_id = $1 ORDER BY opened_at',
      [lotId],
    );
    expect(rows.map((x) => x.stage)).toEqual(['closed', 'awaiting-disposition']);
    // The new case is found by its own part's work order and its own state, not the closed case's.
    const described = await handle.describe();
    expect(described.typedSearchAttributes.get(SearchAttributes.workOrder)).toEqual(['1000101']);
    expect(described.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe('awaiting-disposition');
  });
});

test('a part that arrives while the disposition runs is recorded at once and opens the next case by continue-as-new', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-can`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const handle = await enrol(r, detection({ lotId }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const firstRun = (await handle.describe()).runId;
    // The 555 is refused once: the disposition parks, so the next part arrives while it runs.
    r.erp.failures.set('postGoodsMovement', new ExternalSystemError('fake-erp', 'rejected', 'Period closed', 400));
    expect(await handle.executeUpdate(dispositionUpdate, { args: [disposition('scrap')] })).toMatchObject({
      status: 'needs-attention',
    });
    const later = detection({ lotId, workOrder: '1000188' });
    await enrol(r, later);
    await until(
      'the later part recorded while the disposition waits',
      () =>
        harness.pool.query(
          "SELECT 1 FROM holdfast.trace_link WHERE from_kind = 'inspection' AND from_id = $1 AND relation = 'handled-by'",
          [later.eventId],
        ),
      (res) => (res.rowCount === 1 ? true : undefined),
    );

    await handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] });
    // The query answers from the workflow task in progress; the search attribute is there once that task completes.
    const next = await until(
      'the next case of the lot awaiting its disposition, in its state and its search attributes',
      async () => ({ state: await handle.query(lotCaseStateQuery), described: await handle.describe() }),
      (x) =>
        x.described.runId !== firstRun &&
        x.state.stage === 'awaiting-disposition' &&
        x.state.parts.length === 1 &&
        x.described.typedSearchAttributes.get(SearchAttributes.dispositionState) === 'awaiting-disposition'
          ? x
          : undefined,
    );
    expect(next.state.parts[0]).toMatchObject({ eventId: later.eventId, status: 'contained', workOrder: '1000188' });
    expect(r.mes.holds.size).toBe(2);
    expect(r.erp.notifications.size).toBe(2);
    // Found by its own part's work order and its own state, not the closed case's.
    expect(next.described.typedSearchAttributes.get(SearchAttributes.workOrder)).toEqual(['1000188']);
    expect(next.described.typedSearchAttributes.get(SearchAttributes.dispositionState)).toBe('awaiting-disposition');
    const { rows } = await harness.pool.query<{ stage: string }>(
      'SELECT stage FROM holdfast.lot_case WHERE lot_id = $1 ORDER BY opened_at',
      [lotId],
    );
    expect(rows.map((x) => x.stage)).toEqual(['closed', 'awaiting-disposition']);
  });
});

test('the same detection handed over twice is taken once', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-dup`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    const d = detection({ lotId });
    const handle = await enrol(r, d);
    await enrol(r, d);
    const state = await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    const signals = (await handle.fetchHistory()).events?.filter((e) => e.workflowExecutionSignaledEventAttributes);
    expect(signals).toHaveLength(2);
    expect(state.parts.map((p) => p.eventId)).toEqual([d.eventId]);
    expect(r.mes.qualityEvents.size).toBe(1);
    expect(r.erp.documents).toHaveLength(1);
  });
});

test('a lot case is listable by line, lot and state, and by every work order, defect class and station of its parts', async () => {
  const r = await rig();
  const lotId = `L-${Date.now()}-sa`;
  r.mes.addLot({ lotId });
  await r.worker.runUntil(async () => {
    await enrol(r, detection({ lotId, line: 'L3', station: 'S1' }));
    await waitForStage('PLANT1', lotId, 'awaiting-disposition');
    await enrol(
      r,
      detection({ lotId, line: 'L3', station: 'S2', workOrder: '1000177', defects: [{ class: 'dent', score: 0.8 }] }),
    );
    await waitForStage('PLANT1', lotId, 'awaiting-disposition', 2);
    const listed = async (query: string) => {
      const ids: string[] = [];
      for await (const wf of harness.client.workflow.list({ query })) ids.push(wf.workflowId);
      return ids;
    };
    const lotCase = [lotCaseWorkflowId('PLANT1', lotId)];
    for (const query of [
      `Line = 'L3' AND Lot = '${lotId}' AND DispositionState = 'awaiting-disposition'`,
      `Lot = '${lotId}' AND WorkOrder = '1000100' AND WorkOrder = '1000177'`,
      `Lot = '${lotId}' AND DefectClass = 'dent' AND DefectClass = 'scratch'`,
      `Lot = '${lotId}' AND Station = 'S2' AND Sku = 'BRKT-200'`,
    ]) {
      await until(
        query,
        () => listed(query),
        (ids) => (ids.length > 0 ? ids : undefined),
      );
      expect(await listed(query)).toEqual(lotCase);
    }
  });
});
