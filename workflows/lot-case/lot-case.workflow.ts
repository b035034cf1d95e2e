import {
  allHandlersFinished,
  condition,
  makeContinueAsNewFunc,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import type { Activities, TraceLink } from '../../activities';
import type { ErpMovementType, MesLot } from '../../activities/ports';
import {
  SearchAttributes,
  countersignDispositionUpdate,
  detectionSearchAttributes,
  dispositionUpdate,
  signaturesRequired,
  type CountersignRequest,
  lotCaseStateQuery,
  partDefectSignal,
  retryFailedStepUpdate,
  type DefectDetection,
  type DispositionDecision,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseInput,
  type LotCasePart,
  type LotCaseStage,
  type LotCaseState,
  type MaterialDocumentRef,
} from '../contracts';
import { activityOptions, localActivityOptions } from '../options';
import { createStepRunner, describeParked } from '../shared/step-runner';

/**
 * ERP movement that carries out each decision on the blocked stock (docs/vendor-interfaces.md#sap-material-documents).
 */
const DISPOSITION_MOVEMENT: Record<DispositionDecision, ErpMovementType> = {
  'use-as-is': '343',
  rework: '343',
  scrap: '555',
  'return-to-vendor': '122',
};

/** SAP defect codes are short catalog codes; vision classes map onto code group HF-VISN. */
const defectCode = (cls: string): string =>
  cls
    .replace(/[^A-Za-z0-9]/g, '')
    .toUpperCase()
    .slice(0, 4) || 'UNKN';

const defectClassOf = (d: DefectDetection): string => d.defects[0]?.class ?? 'unknown';

/**
 * One hold cycle of one lot, and everything done for each of its defective parts: the single MES hold, the single
 * ERP quality notification (one defect item per part), the stock block, each part's work-order quality count and
 * trace links, then the wait for a disposition and its follow-ups. The outbox dispatcher hands it each part by
 * signal-with-start; parts that arrive together are taken as one batch.
 */
export async function lotCaseWorkflow(input: LotCaseInput): Promise<LotCaseState> {
  const { site, line, lotId, policy } = input;
  const { workflowId, runId } = workflowInfo();
  // Trace links go out with the case's next stage record: one local activity and one database round trip for both.
  const pendingLinks: TraceLink[] = [];

  // Containment is the burst that must be fast: its MES and ERP calls are local activities, so a new lot's hold,
  // notification, block and work-order count cost the server one workflow task (BENCHMARKS.md). Dispositions and
  // escalations wait on people anyway; they stay regular activities, each visible with its attempts in the Web UI.
  const mesNow = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.mesCall));
  const erpNow = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.erpPost));
  const mes = proxyActivities<Activities>(activityOptions(policy.presets.mesCall));
  const erp = proxyActivities<Activities>(activityOptions(policy.presets.erpPost));
  const trace = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.traceWrite));
  const notify = proxyActivities<Activities>(activityOptions(policy.presets.notify));

  const state: LotCaseState = {
    site,
    line,
    lotId,
    sku: input.sku,
    stage: 'containing',
    parts: [],
    pendingParts: 0,
    lotBlocked: false,
    blockedQuantity: 0,
    materialDocuments: [],
    openedAt: new Date().toISOString(),
  };
  /** Parts signalled and not yet taken into a batch. */
  const queue: DefectDetection[] = [];
  const seen = new Set<string>();
  let lot: MesLot | undefined;
  let decision: DispositionRequest | undefined;
  let outcome: DispositionOutcome | undefined;
  let stageBeforeFailure: LotCaseStage = 'containing';

  /** Parts taken and not yet recorded in PostgreSQL (see `recordArrivals`). */
  const unrecorded: DefectDetection[] = [];
  let recording = false;

  const enqueue = (part: DefectDetection, recorded = false) => {
    // Signal-with-start may deliver a part twice (an outbox row sent again): the event id decides.
    if (seen.has(part.eventId)) return;
    seen.add(part.eventId);
    queue.push(part);
    if (!recorded) unrecorded.push(part);
    state.pendingParts = queue.length;
  };
  // The run before recorded them, and waited for that before it continued as new.
  (input.carriedParts ?? []).forEach((part) => enqueue(part, true));

  const runner = createStepRunner({
    async onFailure(_failure, parked) {
      if (state.stage !== 'needs-attention') stageBeforeFailure = state.stage;
      state.failures = [...parked];
      await enter('needs-attention', describeParked(parked));
    },
    async onRetry() {
      delete state.failures;
      await enter(stageBeforeFailure);
    },
  });

  setHandler(partDefectSignal, (part) => enqueue(part), {
    description: 'A defective part of this lot, from the outbox dispatcher.',
  });
  setHandler(lotCaseStateQuery, () => state, {
    description: 'The lot case: stage, hold, notification, parts, material documents, disposition.',
  });
  setHandler(retryFailedStepUpdate, (_request) => runner.requestRetry(), {
    description: 'Run the steps that failed for good again, after their cause was fixed in the MES or ERP.',
    validator: (_request) => {
      if (!runner.waiting) throw new Error(`no step of lot ${lotId} is waiting for a retry (stage ${state.stage})`);
    },
  });
  setHandler(
    dispositionUpdate,
    async (request) => {
      decision = request;
      state.decision = request;
      // A use-as-is answers once the case waits for its second signature; the others once the case has acted.
      await condition(
        () => outcome !== undefined || state.stage === 'needs-attention' || state.stage === 'awaiting-second-signature',
      );
      return outcome ?? pendingOutcome(decision, state.stage);
    },
    {
      description:
        'Decide what happens to the held lot (use-as-is, rework, scrap, return-to-vendor), electronically signed. ' +
        'A use-as-is waits for a quality manager to countersign.',
      validator: validateDisposition,
    },
  );
  setHandler(
    countersignDispositionUpdate,
    async ({ signature }) => {
      decision = { ...decision!, signatures: [...decision!.signatures, signature] };
      state.decision = decision;
      await condition(() => outcome !== undefined || state.stage === 'needs-attention');
      return outcome ?? pendingOutcome(decision, state.stage);
    },
    {
      description: 'The second signature of a use-as-is, by a quality manager other than the first signer.',
      validator: validateCountersignature,
    },
  );

  /**
   * Records every part as soon as it arrives, whatever else the case is doing (containing an earlier batch, waiting
   * for an operator, executing a disposition): its inspection's trace links and, in the same statement, its outbox
   * row confirmed (docs/reliability.md#outbox). Until then the dispatcher sends the part again after its grace
   * period; a part recorded only when its batch starts would be sent again all the while a parked step waits.
   * For a new case this runs beside the hold, in the first workflow task.
   */
  async function recordArrivals(): Promise<void> {
    for (;;) {
      await condition(() => unrecorded.length > 0);
      const parts = unrecorded.splice(0);
      recording = true;
      await runner.step('trace-enrol', () =>
        trace.enrolParts.executeWithOptions({ summary: `Record ${parts.length} part(s) of lot ${lotId}` }, [
          { lotCaseWorkflowId: workflowId, runId, parts },
        ]),
      );
      recording = false;
    }
  }
  void recordArrivals();

  /** Illegal transitions are refused here, synchronously, before anything is written to history. */
  function validateDisposition(request: DispositionRequest): void {
    if (decision)
      throw new Error(`lot ${lotId} already has a disposition: ${decision.decision} by ${decision.decidedBy}`);
    if (state.stage !== 'awaiting-disposition') {
      throw new Error(`lot ${lotId} cannot take a disposition while its case is ${state.stage}`);
    }
    if (queue.length > 0) throw new Error(`lot ${lotId} still has ${queue.length} part(s) being contained`);
    if (!request.reason.trim()) throw new Error('a disposition needs a reason');
    if (!request.decidedBy.trim()) throw new Error('a disposition needs the deciding user');
    const [first, ...more] = request.signatures ?? [];
    if (!first || more.length > 0) throw new Error("a disposition carries exactly one signature: its decider's");
    if (first.signer.id !== request.decidedBy) {
      throw new Error(`the disposition is signed by ${first.signer.id}, not by its decider ${request.decidedBy}`);
    }
    if (request.decision === 'return-to-vendor' && !lot?.supplier) {
      throw new Error(`lot ${lotId} was made in-house: return-to-vendor needs a supplier`);
    }
    // The ERP's return refers to the purchase order item the lot was received on; without one it could only park.
    if (request.decision === 'return-to-vendor' && !(lot?.purchaseOrder && lot.purchaseOrderItem)) {
      throw new Error(`lot ${lotId} has no purchase order in the MES: return-to-vendor needs the order it came on`);
    }
  }

  /**
   * Part 11's two-person rule for releasing nonconforming material: the second signer is another person, a quality
   * manager, signing the same content. Refused here, before anything is written to history, with the reason.
   */
  function validateCountersignature({ signature }: CountersignRequest): void {
    if (!decision || decision.signatures.length >= signaturesRequired(decision.decision)) {
      throw new Error(`lot ${lotId} has no disposition waiting for a second signature (stage ${state.stage})`);
    }
    const first = decision.signatures[0]!;
    if (signature.contentSha256 !== first.contentSha256) {
      throw new Error(
        `the signature is for other content than the ${decision.decision} of lot ${lotId} it would approve`,
      );
    }
    if (decision.signatures.some((s) => s.signer.id === signature.signer.id)) {
      throw new Error(
        `${decision.decision} needs a second person: ${signature.signer.name} (${signature.signer.id}) has signed it already`,
      );
    }
    if (!signature.signer.roles.includes('quality-manager')) {
      throw new Error(
        `the second signature of a ${decision.decision} must be a quality manager's; ${signature.signer.name} has ` +
          `role(s) ${signature.signer.roles.join(', ') || 'none'}`,
      );
    }
  }

  function pendingOutcome(request: DispositionRequest, stage: LotCaseStage): DispositionOutcome {
    return {
      status: stage === 'awaiting-second-signature' ? 'awaiting-second-signature' : 'needs-attention',
      decision: request.decision,
      decidedBy: request.decidedBy,
      reason: request.reason,
      requestId: request.requestId,
      signatures: request.signatures,
      materialDocuments: [],
      lotStatus: lot?.status ?? 'unknown',
      notificationClosed: false,
    };
  }

  /** A stage the case records: search attributes (only what changed), Web UI details, the PostgreSQL projection. */
  async function enter(stage: LotCaseStage, note = ''): Promise<void> {
    state.stage = stage;
    const searchable = stage === 'closed' && decision ? decision.decision : stage;
    const indexed = workflowInfo().typedSearchAttributes;
    const updates = listAttributeUpdates();
    // Each upsert is a visibility write on the server: one per stage at most, and only when a value changes.
    if (indexed.get(SearchAttributes.dispositionState) !== searchable) {
      updates.push({ key: SearchAttributes.dispositionState, value: searchable });
    }
    if (updates.length > 0) upsertSearchAttributes(updates);
    setCurrentDetails(describe(note));
    await trace.saveLotCase.executeWithOptions({ summary: `Record lot case ${lotId}: ${stage}` }, [
      { workflowId, runId, state, links: pendingLinks.splice(0) },
    ]);
  }

  /** Stations, work orders and defect classes of parts taken since the last upsert, so the case is found by them. */
  function listAttributeUpdates(): SearchAttributeUpdatePair[] {
    const indexed = workflowInfo().typedSearchAttributes;
    const updates: SearchAttributeUpdatePair[] = [];
    for (const [key, values] of [
      [SearchAttributes.station, state.parts.map((p) => p.station)],
      [SearchAttributes.workOrder, state.parts.map((p) => p.workOrder)],
      [SearchAttributes.defectClass, state.parts.map((p) => p.defectClass)],
    ] as const) {
      const known = indexed.get(key) ?? [];
      const all = [...new Set([...known, ...values])];
      if (all.length > known.length) updates.push({ key, value: all });
    }
    return updates;
  }

  function describe(note: string): string {
    const docs = state.materialDocuments
      .map((m) => `${m.movementType}:${m.materialDocument} (${m.quantity})`)
      .join(', ');
    const parts = state.parts
      .map((p) => `- \`${p.partId}\` ${p.defectClass} at ${p.station}, work order ${p.workOrder}: ${p.status}`)
      .join('\n');
    return [
      `**${state.stage}** — lot \`${lotId}\` at ${site}/${line}, ${state.parts.length} defective part(s)`,
      `MES hold \`${state.holdId ?? '—'}\` · ERP notification \`${state.notification ?? '—'}\` · blocked ${state.blockedQuantity}`,
      docs ? `Material documents: ${docs}` : '',
      state.decision ? `Disposition **${state.decision.decision}**: ${state.decision.reason}` : '',
      ...(state.decision?.signatures ?? []).map(
        (s) => `- Signed by **${s.signer.name}** (${s.signer.id}) at ${s.signedAt}, meaning: ${s.meaning}`,
      ),
      note,
      parts,
    ]
      .filter(Boolean)
      .join('\n\n');
  }

  // Keys name the business event, never the run: a reset or a retry reuses them (docs/reliability.md#idempotency-keys).
  await condition(() => queue.length > 0);
  const caseKey = `${site}:${lotId}:${queue[0]!.eventId}`;
  const lotNode = { fromKind: 'lot', fromId: `${site}/${lotId}` };

  function holdLot(part: DefectDetection): Promise<{ holdId: string }> {
    const cls = defectClassOf(part);
    return runner.step('mes-hold', () =>
      mesNow.holdLot.executeWithOptions({ summary: `MES hold lot ${lotId}` }, [
        {
          site,
          idempotencyKey: `${caseKey}:mes-hold`,
          lotId,
          workOrder: part.workOrder,
          reason: `Vision defect ${cls} on part ${part.partId} (${part.station})`,
          defectClass: cls,
          line: part.line,
          station: part.station,
        },
      ]),
    );
  }

  /**
   * Everything for the parts that arrived together, as local activities in one workflow task (the parts' record runs
   * beside it, `recordArrivals`):
   * 1. For a new case, the lot record and the hold, which needs nothing else: it is the latency that matters on the
   *    line.
   * 2. Each part's notification item (a new case raises the notification with its first part's), block and
   *    work-order count, all at once.
   * 3. For a new case that took several parts at once: the other parts' items, which need the notification.
   * The batch's trace links go out with the next stage record.
   */
  async function takeBatch(batch: DefectDetection[]): Promise<void> {
    const parts = batch.map((d): LotCasePart => ({
      eventId: d.eventId,
      partId: d.partId,
      station: d.station,
      workOrder: d.workOrder,
      defectClass: defectClassOf(d),
      status: 'containing',
    }));
    state.parts.push(...parts);
    if (!lot) {
      const [fetched, hold] = await Promise.all([
        runner.step('mes-lot', () =>
          mesNow.fetchLot.executeWithOptions({ summary: `MES read lot ${lotId}` }, [{ site, lotId }]),
        ),
        holdLot(batch[0]!),
      ]);
      lot = fetched;
      state.holdId = hold.holdId;
      pendingLinks.push(
        { ...lotNode, relation: 'held-by', toKind: 'mes-hold', toId: hold.holdId, system: 'mes' },
        {
          ...lotNode,
          relation: 'case',
          toKind: 'workflow',
          toId: workflowId,
          system: 'temporal',
          attributes: { runId },
        },
      );
      setCurrentDetails(describe(''));
    }
    const raising = !state.notification;
    await Promise.all([
      raising ? raiseNotification(batch[0]!, parts[0]!) : addItems(batch, parts),
      blockParts(batch, parts),
      ...batch.map((d, i) => count(d, parts[i]!)),
    ]);
    if (raising && batch.length > 1) await addItems(batch.slice(1), parts.slice(1));
    for (const part of parts) {
      part.status = 'contained';
      pendingLinks.push({
        fromKind: 'inspection',
        fromId: part.eventId,
        relation: 'defect-item',
        toKind: 'quality-notification-item',
        toId: `${state.notification}/${part.notificationItem}`,
        system: 'erp',
      });
    }
  }

  function qualityItem(d: DefectDetection) {
    const cls = defectClassOf(d);
    return {
      idempotencyKey: `${d.eventId}:qn-item`,
      defectCodeGroup: 'HF-VISN',
      defectCode: defectCode(cls),
      text: `${cls} on part ${d.partId} at ${d.line}/${d.station}`.slice(0, 40),
    };
  }

  /** A new case's notification, raised with its first part's item. */
  async function raiseNotification(d: DefectDetection, part: LotCasePart): Promise<void> {
    const raised = await runner.step('erp-quality-notification', () =>
      erpNow.raiseQualityNotification.executeWithOptions(
        { summary: `ERP quality notification ${policy.notificationType} for lot ${lotId}` },
        [
          {
            site,
            material: lot!.sku,
            plant: lot!.erpPlant,
            batch: lot!.batch,
            unit: lot!.unit,
            idempotencyKey: `${caseKey}:qn`,
            notificationType: policy.notificationType,
            text: `Vision defects in lot ${lotId}`.slice(0, 40),
            ...(lot!.supplier ? { supplier: lot!.supplier } : {}),
            quantity: lot!.quantity,
            firstItem: qualityItem(d),
          },
        ],
      ),
    );
    state.notification = raised.notification;
    part.notificationItem = raised.item;
    pendingLinks.push({
      ...lotNode,
      relation: 'notified-in',
      toKind: 'quality-notification',
      toId: raised.notification,
      system: 'erp',
    });
  }

  /** Each part's own defect item on the case's notification. */
  async function addItems(batch: DefectDetection[], parts: LotCasePart[]): Promise<void> {
    const notification = state.notification!;
    await Promise.all(
      batch.map(async (d, i) => {
        const part = parts[i]!;
        const added = await runner.step(
          'erp-defect-item',
          () =>
            erpNow.addNotificationItem.executeWithOptions({ summary: `ERP defect item for part ${d.partId}` }, [
              { site, notification, item: qualityItem(d) },
            ]),
          part,
        );
        part.notificationItem = added.item;
      }),
    );
  }

  /** One 344 block per part, or the whole lot once (site policy). */
  async function blockParts(batch: DefectDetection[], parts: LotCasePart[]): Promise<void> {
    const block = async (quantity: number, idempotencyKey: string, part: LotCasePart, stepOf?: LotCasePart) => {
      const posted = await runner.step(
        'erp-stock-block',
        () =>
          erpNow.postGoodsMovement.executeWithOptions(
            { summary: `ERP 344 block ${quantity} ${lot!.unit} of batch ${lot!.batch}` },
            [
              {
                site,
                material: lot!.sku,
                plant: lot!.erpPlant,
                batch: lot!.batch,
                unit: lot!.unit,
                idempotencyKey,
                movementType: '344',
                storageLocation: lot!.storageLocation,
                quantity,
                headerText: `Hold ${lotId}`,
              },
            ],
          ),
        stepOf,
      );
      const materialDocument: MaterialDocumentRef = { ...posted, movementType: '344', quantity };
      part.materialDocument = materialDocument;
      state.materialDocuments.push(materialDocument);
      state.blockedQuantity += quantity;
      pendingLinks.push({
        ...lotNode,
        relation: 'blocked-by',
        toKind: 'material-document',
        toId: `${materialDocument.materialDocumentYear}/${materialDocument.materialDocument}`,
        system: 'erp',
        attributes: { movementType: '344', quantity, eventId: part.eventId },
      });
    };
    if (policy.blockQuantity === 'whole-lot') {
      if (state.lotBlocked) return;
      // The lot's own step: the block is recorded against the part that caused it.
      await block(lot!.quantity, `${caseKey}:block-344`, parts[0]!);
      state.lotBlocked = true;
      return;
    }
    await Promise.all(
      batch.map((d, i) => {
        const part = parts[i]!;
        return block(1, `${d.eventId}:block-344`, part, part);
      }),
    );
  }

  async function count(d: DefectDetection, part: LotCasePart): Promise<void> {
    const quality = await runner.step(
      'mes-work-order-quality',
      () =>
        mesNow.recordWorkOrderQuality.executeWithOptions(
          { summary: `MES work order ${d.workOrder}: +1 nonconforming (${part.defectClass})` },
          [
            {
              site,
              idempotencyKey: `${d.eventId}:wo-quality`,
              workOrder: d.workOrder,
              lotId,
              partId: d.partId,
              defectClass: part.defectClass,
              nonconformingQuantity: 1,
            },
          ],
        ),
      part,
    );
    part.workOrderQuality = quality.qualityStatus;
  }

  async function executeDisposition(request: DispositionRequest): Promise<DispositionOutcome> {
    const movementType = DISPOSITION_MOVEMENT[request.decision];
    const [released, moved] = await Promise.all([
      runner.step('mes-release', () =>
        mes.releaseLotHold.executeWithOptions({ summary: `MES ${request.decision}: close hold ${state.holdId}` }, [
          {
            site,
            idempotencyKey: `${caseKey}:mes-release`,
            holdId: state.holdId!,
            lotId,
            disposition: request.decision,
            comment: `${request.reason} (signed: ${request.signatures.map((s) => s.signer.name).join(', ')})`,
          },
        ]),
      ),
      state.blockedQuantity > 0
        ? runner.step(`erp-${movementType}`, () =>
            erp.postGoodsMovement.executeWithOptions(
              { summary: `ERP ${movementType} ${state.blockedQuantity} ${lot!.unit} of batch ${lot!.batch}` },
              [
                {
                  site,
                  idempotencyKey: `${caseKey}:disposition-${movementType}`,
                  movementType,
                  material: lot!.sku,
                  plant: lot!.erpPlant,
                  storageLocation: lot!.storageLocation,
                  batch: lot!.batch,
                  quantity: state.blockedQuantity,
                  unit: lot!.unit,
                  headerText: `${request.decision} ${lotId}`,
                  ...(lot!.supplier ? { supplier: lot!.supplier } : {}),
                  // Only the return refers to the order: the other movements' requests stay as the intent ledger has them.
                  ...(movementType === '122'
                    ? { purchaseOrder: lot!.purchaseOrder, purchaseOrderItem: lot!.purchaseOrderItem }
                    : {}),
                },
              ],
            ),
          )
        : undefined,
    ]);
    const documents: MaterialDocumentRef[] = moved ? [{ ...moved, movementType, quantity: state.blockedQuantity }] : [];
    state.materialDocuments.push(...documents);
    await runner.step('erp-complete-notification', () =>
      erp.completeNotification.executeWithOptions({ summary: `ERP complete notification ${state.notification}` }, [
        { site, notification: state.notification! },
      ]),
    );
    await runner.step('trace-documents', () =>
      trace.linkDocuments.executeWithOptions({ summary: `Trace disposition of lot ${lotId}` }, [
        {
          links: documents.map((m) => ({
            ...lotNode,
            relation: `disposition-${request.decision}`,
            toKind: 'material-document',
            toId: `${m.materialDocumentYear}/${m.materialDocument}`,
            system: 'erp',
            attributes: { movementType: m.movementType, quantity: m.quantity, decidedBy: request.decidedBy },
          })),
        },
      ]),
    );
    return {
      status: 'completed',
      decision: request.decision,
      decidedBy: request.decidedBy,
      reason: request.reason,
      signatures: request.signatures,
      requestId: request.requestId,
      materialDocuments: documents,
      lotStatus: released.lotStatus,
      notificationClosed: true,
    };
  }

  // Containment, batch by batch, until a disposition is decided.
  let escalated = false;
  for (;;) {
    while (queue.length > 0) {
      const batch = queue.splice(0);
      state.pendingParts = 0;
      await takeBatch(batch);
    }
    await enter('awaiting-disposition');
    const ready = () => queue.length > 0 || decision !== undefined;
    if (escalated) {
      await condition(ready);
    } else if (
      !(await condition(ready, policy.dispositionTimeout, { summary: `Disposition deadline for lot ${lotId}` }))
    ) {
      escalated = true;
      state.escalatedAt = new Date().toISOString();
      await runner.step('escalate', () =>
        notify.escalateDisposition.executeWithOptions({ summary: `Escalate: lot ${lotId} waits for a disposition` }, [
          {
            idempotencyKey: `${caseKey}:escalation`,
            site,
            line,
            lotId,
            lotCaseWorkflowId: workflowId,
            waitingSince: state.openedAt,
            text: `Lot ${lotId} on ${site}/${line} has been on hold since ${state.openedAt} without a disposition (limit ${policy.dispositionTimeout}).`,
          },
        ]),
      );
      await enter('awaiting-disposition', `Escalated at ${state.escalatedAt}`);
      continue;
    }
    if (decision) break;
    // More parts of a held lot: contained in a moment, and recorded with the next stage. Neither a record nor a
    // search-attribute change for this short stage, so a burst on a held lot costs no extra visibility writes.
    state.stage = 'containing';
  }

  // Disposition. Parts that arrive from here on open the lot's next case (below); the MES hold keeps the lot still.
  const signed = () => decision!.signatures.length >= signaturesRequired(decision!.decision);
  if (!signed()) {
    const first = decision.signatures[0]!;
    await enter(
      'awaiting-second-signature',
      `${decision.decision} signed by ${first.signer.name}; waits for a quality manager's signature`,
    );
    await condition(signed);
  }
  const request = decision;
  await enter('executing-disposition');
  outcome = await executeDisposition(request);
  state.disposition = outcome;
  state.closedAt = new Date().toISOString();
  await enter('closed');
  // Every part this run has taken is recorded before it ends, so that none is sent again to a closed case.
  await condition(() => allHandlersFinished() && unrecorded.length === 0 && !recording);
  if (queue.length > 0) {
    // Parts that arrived during the disposition open the lot's next case, under the same workflow id, found in
    // visibility by their own stations, work orders and defect classes.
    await makeContinueAsNewFunc<typeof lotCaseWorkflow>({
      typedSearchAttributes: detectionSearchAttributes(queue[0]!),
    })({ ...input, carriedParts: [...queue] });
  }
  return state;
}
