/**
 * Records the workflow histories that test/replay/replay.test.ts replays: one closed workflow per shape of history
 * (`npm run test:record-histories`), each file named for the shape it covers. When to record, keep and re-record
 * them: "Changing a workflow: the patch policy" in workflows/README.md.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { ExternalSystemError } from '../../activities/errors';
import { createRecallNotificationStore } from '../../infra/recall/recall-notification-store';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { ENCRYPTED_ENCODING, payloadFromJson, payloadToJson } from '../../infra/temporal/payload-codec';
import {
  adviceDecidedSignal,
  changeoverStatusQuery,
  changeoverWorkflowId,
  countersignDispositionUpdate,
  genealogySyncStatusQuery,
  genealogySyncWorkflowId,
  lineQualityAdvisorStatusQuery,
  lineQualityAdvisorWorkflowId,
  syncNowSignal,
  dispositionUpdate,
  lotCaseStateQuery,
  lotCaseWorkflowId,
  recallStatusQuery,
  recallAcknowledgedSignal,
  retryFailedStepUpdate,
  type DispositionDecision,
  type LotCaseStage,
} from '../../workflows/contracts';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createRecallDrillStore } from '../../infra/recall/recall-drill-store';
import { createRecallStore } from '../../infra/recall/recall-store';
import { MemoryAdviceStore, ResequencingMes } from '../support/advice-fakes';
import {
  FakeFirstArticles,
  FakeLineInterlock,
  FakeRecipes,
  FakeStationControl,
  FakeVisionSystem,
  ReleasingMes,
  changeoverTestInput,
} from '../support/changeover-fakes';
import { writeDrillPlant } from '../support/drill-plant';
import { FakeErpFeed, MemoryErpFeedStore } from '../support/erp-feed-fakes';
import type { ErpFeedSettings } from '../../activities/ports';
import { runEscalationScenario } from '../support/escalation-fakes';
import { eventually } from '../support/eventually';
import { caseSignature } from '../support/identity';
import { startRecallRig } from '../support/recall-rig';
import {
  FakeErp,
  FakeMes,
  RecordingEscalation,
  RecordingGenealogy,
  RecordingRecallNotice,
  ScriptedGenealogyFeed,
} from '../support/fake-ports';
import { readTestEnv } from '../support/test-env';
import { WorkflowHarness, detection, dispatchOf } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

test('record one history per shape of lot-case, shadow, genealogy sync and recall drill workflow', async () => {
  const mes = new FakeMes();
  const erp = new FakeErp();
  const escalation = new RecordingEscalation();
  const feed = new ScriptedGenealogyFeed();
  erp.genealogy = feed;
  const { worker, taskQueue } = await harness.worker({ mes, erp, escalation, genealogy: new RecordingGenealogy() });
  const run = Date.now();
  const policy = harness.policy();
  /** History name → workflow id, and the run when it is not the latest (a run that continued as new). */
  const histories: Record<string, string | { workflowId: string; runId: string }> = {};

  const lotCase = (lotId: string) => harness.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
  const waitForStage = (lotId: string, stage: LotCaseStage, parts = 1) =>
    eventually(`lot ${lotId} in ${stage}`, async () => {
      const state = await lotCase(lotId).query(lotCaseStateQuery);
      return state.stage === stage && (stage === 'needs-attention' || state.parts.length >= parts);
    });
  /** Signed by the engineer; a use-as-is countersigned by the manager (the two-person rule's history shape). */
  const decide = async (lotId: string, decision: DispositionDecision) => {
    const engineer = caseSignature({ id: 'local:qe.jane', roles: ['quality-engineer'] });
    const first = await lotCase(lotId).executeUpdate(dispositionUpdate, {
      args: [
        {
          decision,
          reason: 'MRB 7',
          decidedBy: engineer.signer.id,
          signatures: [engineer],
          requestId: `${lotId}-disposition`,
        },
      ],
    });
    if (first.status !== 'awaiting-second-signature') return;
    const manager = caseSignature({ id: 'local:qm.ola', roles: ['quality-manager'] }, engineer.contentSha256);
    await lotCase(lotId).executeUpdate(countersignDispositionUpdate, {
      args: [{ signature: manager, requestId: `${lotId}-countersign` }],
    });
  };
  const retry = (handle: WorkflowHandle) =>
    handle.executeUpdate(retryFailedStepUpdate, { args: [{ requestedBy: 'erp.admin' }] });

  await worker.runUntil(async () => {
    // Two parts of one lot, handed over as the outbox dispatcher does; one hold cycle up to its disposition.
    const twoParts = `L-REPLAY-${run}-two-parts`;
    mes.addLot({ lotId: twoParts, supplier: '17300001', purchaseOrder: '4500000101', purchaseOrderItem: '00010' });
    await Promise.all(
      [detection({ lotId: twoParts }), detection({ lotId: twoParts })].map((d) => harness.enrol(d, policy, taskQueue)),
    );
    await waitForStage(twoParts, 'awaiting-disposition', 2);
    await decide(twoParts, 'return-to-vendor');
    await lotCase(twoParts).result();
    histories['lot-case-two-parts-dispositioned'] = lotCase(twoParts).workflowId;

    // A station in shadow mode: the plan only, no lot case.
    const shadow = detection({ lotId: `L-REPLAY-${run}-shadow` });
    const shadowStarted = await createTemporalWorkflowGateway(harness.client, { taskQueue }).dispatchDetection({
      ...dispatchOf(shadow, policy, taskQueue),
      mode: 'shadow',
    });
    await harness.client.workflow.getHandle(shadowStarted.workflowId).result();
    histories['shadow-defect'] = shadowStarted.workflowId;

    // The MES refuses the work-order count: the case parks with the part named until an operator retries.
    const refusedCount = `L-REPLAY-${run}-refused-count`;
    mes.addLot({ lotId: refusedCount });
    mes.failures.set('recordQualityEvent', new ExternalSystemError('fake-mes', 'rejected', 'Work order closed', 409));
    await harness.enrol(detection({ lotId: refusedCount }), policy, taskQueue);
    await waitForStage(refusedCount, 'needs-attention');
    await retry(lotCase(refusedCount));
    await waitForStage(refusedCount, 'awaiting-disposition');
    await decide(refusedCount, 'scrap');
    await lotCase(refusedCount).result();
    histories['lot-case-count-parked-and-retried'] = lotCase(refusedCount).workflowId;

    // The ERP refuses the 344 block: the lot case parks until an operator retries, then takes its disposition.
    const refusedBlock = `L-REPLAY-${run}-refused-block`;
    mes.addLot({ lotId: refusedBlock });
    erp.failures.set('postGoodsMovement', new ExternalSystemError('fake-erp', 'rejected', 'Deficit of SL 1 PC', 400));
    await harness.enrol(detection({ lotId: refusedBlock }), policy, taskQueue);
    await waitForStage(refusedBlock, 'needs-attention');
    await retry(lotCase(refusedBlock));
    await waitForStage(refusedBlock, 'awaiting-disposition');
    await decide(refusedBlock, 'scrap');
    await lotCase(refusedBlock).result();
    histories['lot-case-parked-and-retried'] = lotCase(refusedBlock).workflowId;

    // A part arrives while the disposition waits for an operator: it opens the lot's next case by continue-as-new.
    const carried = `L-REPLAY-${run}-continued`;
    mes.addLot({ lotId: carried });
    await harness.enrol(detection({ lotId: carried }), policy, taskQueue);
    await waitForStage(carried, 'awaiting-disposition');
    const firstRun = (await lotCase(carried).describe()).runId;
    erp.failures.set('postGoodsMovement', new ExternalSystemError('fake-erp', 'rejected', 'Period closed', 400));
    await decide(carried, 'scrap');
    await harness.enrol(detection({ lotId: carried }), policy, taskQueue);
    await eventually(
      'the later part taken',
      async () => (await lotCase(carried).query(lotCaseStateQuery)).pendingParts > 0,
    );
    await retry(lotCase(carried));
    await eventually('the next case', async () => (await lotCase(carried).describe()).runId !== firstRun);
    histories['lot-case-continued-as-new'] = { workflowId: lotCase(carried).workflowId, runId: firstRun };

    // No disposition within the site's limit: the case escalates once, then takes the late decision, a use-as-is
    // that waits for its second signature.
    const late = `L-REPLAY-${run}-escalated`;
    mes.addLot({ lotId: late });
    await harness.enrol(detection({ lotId: late }), harness.policy({ dispositionTimeout: '1s' }), taskQueue);
    await eventually(`lot ${late} escalated`, async () => escalation.messages.length > 0);
    await waitForStage(late, 'awaiting-disposition');
    await decide(late, 'use-as-is');
    await lotCase(late).result();
    histories['lot-case-escalated'] = lotCase(late).workflowId;

    // A site's ERP genealogy: two pages, then waiting; a syncNow reads the document that came since. It runs for as
    // long as the site does, so the history ends with its termination.
    feed.documents.push('mdoc-0', 'mdoc-1', 'mdoc-2');
    const sync = await harness.client.workflow.start('genealogySyncWorkflow', {
      workflowId: genealogySyncWorkflowId('erp', `PLANT-REPLAY-${run}`),
      taskQueue,
      args: [
        {
          site: `PLANT-REPLAY-${run}`,
          erpPlant: '1000',
          production: 'mes',
          system: 'erp',
          pageSize: 2,
          pollInterval: '1h',
          preset: harness.config.activityPresets.erpPost,
        },
      ],
    });
    const synced = (documents: number) =>
      eventually(`${documents} genealogy documents synced`, async () => {
        const status = await sync.query(genealogySyncStatusQuery);
        return status.totals.documents === documents && !status.catchingUp;
      });
    await synced(3);
    feed.documents.push('mdoc-3');
    await sync.signal(syncNowSignal);
    await synced(4);
    await sync.terminate('history recorded');
    histories['genealogy-sync-paged-and-woken'] = sync.workflowId;
  });

  // A real recall contained in batches, and one cancelled while it contains (test/support/recall-rig.ts).
  const contain = { batchSize: 2, parallelBatches: 2, lotConcurrency: 1, batchTimeout: '1m', heartbeatTimeout: '10s' };
  const contained = await startRecallRig(harness, { lots: 5, delayMs: 0 });
  await contained.worker.runUntil(async () => {
    const handle = await contained.start(contain);
    await handle.result();
    histories['recall-real-contained'] = handle.workflowId;
  });
  const cancelled = await startRecallRig(harness, { lots: 12, delayMs: 200 });
  await cancelled.worker.runUntil(async () => {
    const handle = await cancelled.start(contain);
    await eventually(
      'a first recall batch contained',
      () => handle.query(recallStatusQuery),
      (s) => (s.contain?.batchesDone ?? 0) >= 1,
    );
    await handle.cancel();
    await handle.result().catch(() => undefined);
    histories['recall-real-cancelled'] = handle.workflowId;
  });

  // A recall drill that passes: its supplier lot picked, its mock recall run as a child, its result stored.
  const drillSite = `DRL-REPLAY-${run}`;
  const drillPlant = String(run % 10_000).padStart(4, '0');
  await writeDrillPlant(harness.pool, { site: drillSite, plant: drillPlant, run: `replay-${run}` });
  const drillConfig = {
    ...harness.config,
    sites: [{ ...harness.config.sites[0]!, id: drillSite, erpPlant: drillPlant }],
  };
  const drillWorker = await harness.worker({
    mes,
    erp,
    escalation,
    recalls: createRecallStore(harness.pool),
    drills: createRecallDrillStore(harness.pool, drillConfig, createAuditTrail(harness.pool)),
  });
  await drillWorker.worker.runUntil(async () => {
    const drill = await harness.client.workflow.start('recallDrillWorkflow', {
      workflowId: `recall-drill-${drillSite}`,
      taskQueue: drillWorker.taskQueue,
      args: [
        {
          site: drillSite,
          scheduleId: `recall-drill-${drillSite}`,
          scheduledAt: '2026-01-01T06:00:00.000Z',
          scope: 'random-supplier-lot',
          completeWithin: '8m',
          missedAfter: '97d',
          preset: harness.config.activityPresets.traceWrite,
        },
      ],
    });
    await drill.result();
    histories['recall-drill-passed'] = drill.workflowId;
  });

  // A line's scheduling-advice rule: one evaluation proposes advice, which is accepted and sent on the signal.
  const adviceMes = new ResequencingMes();
  const advice = new MemoryAdviceStore();
  advice.counts = [
    { lotKey: 'erp:1010/CMP/A', lotId: 'A', material: 'CMP', parts: 100, defective: 10, skus: ['BRKT-200'] },
  ];
  const advisor = await harness.worker({ mes: adviceMes, erp: new FakeErp(), escalation, advice });
  await advisor.worker.runUntil(async () => {
    const rule = await harness.client.workflow.start('lineQualityAdvisorWorkflow', {
      workflowId: lineQualityAdvisorWorkflowId(`PLANT-REPLAY-${run}`, 'L1'),
      taskQueue: advisor.taskQueue,
      args: [
        {
          site: `PLANT-REPLAY-${run}`,
          line: 'L1',
          rule: { windowMs: 86_400_000, thresholdRate: 0.05, minParts: 50, significance: 0.05 },
          evaluationInterval: '1h',
          preset: harness.config.activityPresets.erpPost,
        },
      ],
    });
    await eventually('advice proposed', async () => advice.advice.length === 1);
    advice.accept(advice.advice[0]!.adviceId);
    await rule.signal(adviceDecidedSignal, advice.advice[0]!.adviceId);
    await eventually('advice sent', async () => (await rule.query(lineQualityAdvisorStatusQuery)).totals.sent === 1);
    // The rule runs for as long as the line does, so the history ends with its termination.
    await rule.terminate('history recorded');
    histories['line-quality-advisor-evaluated-and-sent'] = rule.workflowId;
  });
  await writeHistories(histories);
});

test('record the history of a recall notification', async () => {
  const escalation = new RecordingEscalation();
  const policy = { target: 'recorded', ackWithin: '1s', escalateEvery: '1s', escalationLimit: 1, concurrency: 1 };
  const { worker, taskQueue } = await harness.worker({
    mes: new FakeMes(),
    erp: new FakeErp(),
    escalation,
    recallNotice: { port: new RecordingRecallNotice(), policy },
  });
  const run = Date.now();
  const histories: Record<string, string> = {};
  await worker.runUntil(async () => {
    // A real recall's notification of one customer and ship-to: sent, not acknowledged within 1 s, escalated once
    // (the limit), then acknowledged.
    const recallId = `REPLAY-${run}`;
    await harness.pool.query(
      `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key,
                                    request_sha256, workflow_id)
       VALUES ($1, 'PLANT1', 'real', '{}', 'replay', 'recorder', $1, 'x', $1)`,
      [recallId],
    );
    await harness.pool.query(
      `INSERT INTO holdfast.recall_lot (recall_id, lot_key, reached_by, depth, site, quantity, unit, deliveries)
       VALUES ($1, $1, 'scope', 0, 'PLANT1', 5, 'PC', $2)`,
      [recallId, JSON.stringify([{ delivery: '8000001', item: '10', customer: 'C1', shipTo: 'S1', quantity: 5 }])],
    );
    const [planned] = await createRecallNotificationStore(harness.pool).plan(recallId);
    const notification = await harness.client.workflow.start('recallNotificationWorkflow', {
      workflowId: planned!.workflowId,
      taskQueue,
      args: [
        {
          recallId,
          site: 'PLANT1',
          notificationId: planned!.notificationId,
          customer: 'C1',
          shipTo: 'S1',
          policy,
          preset: harness.config.activityPresets.notify,
        },
      ],
    });
    await eventually('the notification escalated', async () =>
      escalation.messages.some((m) => m.lotCaseWorkflowId === notification.workflowId),
    );
    await notification.signal(recallAcknowledgedSignal, {
      recordedBy: 'recorder',
      contact: 'J. Doe',
      channel: 'phone',
      acknowledgedAt: new Date().toISOString(),
    });
    await notification.result();
    histories['recall-notification-escalated-acknowledged'] = notification.workflowId;
  });
  await writeHistories(histories);
});

test('record the history of a changeover', async () => {
  const stations = new FakeStationControl();
  const vision = new FakeVisionSystem();
  const firstArticles = new FakeFirstArticles();
  const { worker, taskQueue } = await harness.worker({
    mes: new ReleasingMes(),
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    changeover: {
      stationControl: stations,
      firstArticles,
      visionFor: () => vision,
      lineControlFor: () => new FakeLineInterlock(),
      changeoverRecipes: new FakeRecipes()
        .set('S1', 'SKU-B', { version: 'R-B1', model: { name: 'surface', version: '2.0.0' } })
        .set('S2', 'SKU-B', { version: 'R-B2', model: { name: 'surface', version: '2.0.0' } }),
    },
  });
  const histories: Record<string, string> = {};
  await worker.runUntil(async () => {
    // Two Holdfast stations and a vision system; S2 reads back a stale model once, then agrees; the first article
    // comes in part by part and passes; the order is released.
    stations.wrongModel.add('S2');
    const input = changeoverTestInput(
      {
        site: 'PLANT1',
        workOrder: `REPLAY-${Date.now()}`,
        stations: [
          { station: 'S1' },
          { station: 'S2' },
          { station: 'V1', vision: { connector: 'vision-opc', system: 'cam-a', externalRecipeId: 'EXT-B' } },
        ],
      },
      harness.config.activityPresets.mesCall,
    );
    const handle = await harness.client.workflow.start('changeoverWorkflow', {
      workflowId: changeoverWorkflowId(input.site, input.line, input.workOrder),
      taskQueue,
      args: [input],
    });
    await eventually('S2 read back twice', async () => stations.calls.filter((c) => c === 'readBack S2').length >= 3);
    stations.wrongModel.delete('S2');
    await eventually('the first article awaited', async () => {
      const status = await handle.query(changeoverStatusQuery);
      return status.stage === 'first-article';
    });
    firstArticles.add(input.workOrder, 'pass');
    await eventually('one part shown', async () => {
      const status = await handle.query(changeoverStatusQuery);
      return status.firstArticle?.parts.length === 1;
    });
    firstArticles.add(input.workOrder, 'pass');
    await handle.result();
    histories['changeover-reread-released'] = handle.workflowId;
  });
  await writeHistories(histories);
});

test('record the ERP feed history: two intervals posted, the second stopped once for a missing price', async () => {
  const settings: ErpFeedSettings = {
    site: 'PLANT1',
    plant: '1010',
    timezone: 'UTC',
    operation: '0010',
    unit: 'PC',
    companyCode: '1010',
    costCentre: '4100',
    currency: 'EUR',
    accounts: { scrap: '521', rework: '522', inspection: '523', externalFailure: '524', offset: '890' },
    rates: { reworkPerHour: 48, reworkMinutesPerPart: 10, inspectionPerPart: 0.5 },
    confirmingStations: { L1: 'S1' },
  };
  const intervals = [
    { from: '2026-12-01T00:00:00.000Z', to: '2026-12-01T00:15:00.000Z' },
    { from: '2026-12-01T00:15:00.000Z', to: '2026-12-01T00:30:00.000Z' },
  ];
  const counts = (sku: string) => ({
    counts: [
      {
        line: 'L1',
        station: 'S1',
        sku,
        workOrder: `WO-${sku}`,
        supplierLot: null,
        inspections: 6,
        passed: 4,
        reworked: 1,
        scrapped: 1,
      },
    ],
    recalls: [],
  });
  const store = new MemoryErpFeedStore(settings, intervals, (i) =>
    counts(i.from === intervals[0]!.from ? 'BRKT-200' : 'HSG-310'),
  );
  const erp = Object.assign(new FakeErp(), { feed: new FakeErpFeed({ 'BRKT-200': 12.4 }) });
  const { worker, taskQueue } = await harness.worker({
    mes: new FakeMes(),
    erp,
    escalation: new RecordingEscalation(),
    erpFeed: store,
  });
  const histories: Record<string, string> = {};
  await worker.runUntil(async () => {
    const run = async (name: string) => {
      const workflowId = `erp-feed-PLANT1-${name}-${Date.now()}`;
      await harness.client.workflow.execute('erpFeedWorkflow', {
        taskQueue,
        workflowId,
        args: [{ site: 'PLANT1', preset: harness.config.activityPresets.erpPost, asOf: '2026-12-01T00:31:00.000Z' }],
      });
      histories[name] = workflowId;
    };
    // HSG-310 has no standard price: the run posts the first interval and stops at the second.
    await run('erp-feed-stopped-at-missing-price');
    erp.feed = new FakeErpFeed({ 'BRKT-200': 12.4, 'HSG-310': 30 });
    await run('erp-feed-caught-up');
  });
  await writeHistories(histories);
});

test('record the escalation-rule evaluator and a quality escalation held and released', async () => {
  const ids = await runEscalationScenario(harness, `RH${Date.now().toString(36).toUpperCase()}`);
  await writeHistories({
    'quality-rule-evaluator-tripped': ids.evaluator,
    'quality-escalation-held-and-released': ids.escalation,
  });
});

/** Writes each history, by name, from the dev server into histories/. */
async function writeHistories(histories: Record<string, string | { workflowId: string; runId: string }>) {
  // The CLI's JSON is the format operators export from production too (`temporal workflow show --output json`).
  const env = readTestEnv();
  const show = (history: string | { workflowId: string; runId: string }) =>
    execFileSync(env.temporalCliPath, [
      'workflow',
      'show',
      ...(typeof history === 'string'
        ? ['--workflow-id', history]
        : ['--workflow-id', history.workflowId, '--run-id', history.runId]),
      '--address',
      env.temporalAddress,
      '--namespace',
      env.namespace,
      '--output',
      'json',
    ]);
  const dir = join(__dirname, 'histories');
  for (const [name, history] of Object.entries(histories)) {
    // Stored decrypted: the run's key is thrown away after it, and the replay must not need a secret.
    const decrypted = await decryptPayloads(JSON.parse(show(history).toString('utf8')));
    writeFileSync(join(dir, `${name}.json`), `${JSON.stringify(decrypted, null, 2)}\n`);
  }
}

/** Every encrypted payload anywhere in a proto3-JSON history, decrypted with the harness's codec. */
async function decryptPayloads(node: unknown): Promise<unknown> {
  if (Array.isArray(node)) return Promise.all(node.map(decryptPayloads));
  if (node === null || typeof node !== 'object') return node;
  const record = node as Record<string, unknown>;
  const metadata = record.metadata as Record<string, string> | undefined;
  if (metadata && Buffer.from(metadata.encoding ?? '', 'base64').toString() === ENCRYPTED_ENCODING) {
    const [decoded] = await harness.payloadCodec.decode([payloadFromJson(record)]);
    return payloadToJson(decoded!);
  }
  const entries = await Promise.all(Object.entries(record).map(async ([k, v]) => [k, await decryptPayloads(v)]));
  return Object.fromEntries(entries);
}
