import {
  allHandlersFinished,
  condition,
  continueAsNew,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, TraceLink } from '../../activities';
import type { ErpMovementType, MesLot } from '../../activities/ports';
import {
  SearchAttributes,
  dispositionUpdate,
  lotCaseStateQuery,
  partDefectSignal,
  retryFailedStepUpdate,
  type ContainedPart,
  type DispositionDecision,
  type DispositionOutcome,
  type DispositionRequest,
  type LotCaseInput,
  type LotCaseStage,
  type LotCaseState,
  type MaterialDocumentRef,
  type PartDefect,
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

/**
 * One hold cycle of one lot: the single MES hold, the single ERP quality notification (one defect item per part),
 * the stock block, then the wait for a disposition and its follow-ups. The outbox dispatcher hands it each part by
 * signal-with-start, next to the start of the part's defect workflow.
 */
export async function lotCaseWorkflow(input: LotCaseInput): Promise<LotCaseState> {
  const { site, line, lotId, policy } = input;
  const { workflowId, runId } = workflowInfo();
  // A part's trace links go out with the case's next stage record (one local activity and one database round trip
  // instead of two): fewer steps on the path every new lot takes when defects arrive faster than the workers can
  // take them (BENCHMARKS.md).
  const pendingLinks: TraceLink[] = [];

  // Containment is the burst that must be fast: its MES and ERP calls are local activities, so a first defect's
  // hold, notification and block cost the server one or two workflow tasks (BENCHMARKS.md). Dispositions and
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
  const queue: PartDefect[] = [];
  const seen = new Set<string>();
  let lot: MesLot | undefined;
  let decision: DispositionRequest | undefined;
  let outcome: DispositionOutcome | undefined;
  let stageBeforeFailure: LotCaseStage = 'containing';
  // Set to 'containing' by the signal-with-start that opened this case (createTemporalLotCaseStarter in
  // infra/temporal/gateway.ts).
  let searchableState = 'containing';

  const enqueue = (part: PartDefect) => {
    // Signal-with-start may deliver a part twice (an outbox row dispatched again): the event id decides.
    if (seen.has(part.eventId)) return;
    seen.add(part.eventId);
    queue.push(part);
    state.pendingParts = queue.length;
  };
  (input.carriedParts ?? []).forEach(enqueue);

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

  setHandler(partDefectSignal, enqueue, { description: 'A defective part of this lot, from the outbox dispatcher.' });
  setHandler(lotCaseStateQuery, () => state, {
    description: 'The lot case: stage, hold, notification, parts, material documents, disposition.',
  });
  setHandler(retryFailedStepUpdate, (_request) => runner.requestRetry(), {
    description: 'Run a step that failed for good again, after its cause was fixed in the MES or ERP.',
    validator: (_request) => {
      if (!runner.waiting) throw new Error(`no step of lot ${lotId} is waiting for a retry (stage ${state.stage})`);
    },
  });
  setHandler(
    dispositionUpdate,
    async (request) => {
      decision = request;
      await condition(() => outcome !== undefined || state.stage === 'needs-attention');
      return outcome ?? pendingOutcome(request);
    },
    {
      description: 'Decide what happens to the held lot: use-as-is, rework, scrap or return-to-vendor.',
      validator: validateDisposition,
    },
  );

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
    if (request.decision === 'return-to-vendor' && !lot?.supplier) {
      throw new Error(`lot ${lotId} was made in-house: return-to-vendor needs a supplier`);
    }
  }

  function pendingOutcome(request: DispositionRequest): DispositionOutcome {
    return {
      status: 'needs-attention',
      decision: request.decision,
      decidedBy: request.decidedBy,
      reason: request.reason,
      requestId: request.requestId,
      materialDocuments: [],
      lotStatus: lot?.status ?? 'unknown',
      notificationClosed: false,
    };
  }

  async function enter(stage: LotCaseStage, note = ''): Promise<void> {
    state.stage = stage;
    const searchable = stage === 'closed' && decision ? decision.decision : stage;
    // Each upsert is a visibility write on the server: only when the value changes.
    if (searchable !== searchableState) {
      searchableState = searchable;
      upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: searchable }]);
    }
    setCurrentDetails(describe(note));
    await trace.saveLotCase.executeWithOptions({ summary: `Record lot case ${lotId}: ${stage}` }, [
      { workflowId, runId, state, links: pendingLinks.splice(0) },
    ]);
  }

  function describe(note: string): string {
    const docs = state.materialDocuments
      .map((m) => `${m.movementType}:${m.materialDocument} (${m.quantity})`)
      .join(', ');
    return [
      `**${state.stage}** — lot \`${lotId}\` at ${site}/${line}, ${state.parts.length} defective part(s)`,
      `MES hold \`${state.holdId ?? '—'}\` · ERP notification \`${state.notification ?? '—'}\` · blocked ${state.blockedQuantity}`,
      docs ? `Material documents: ${docs}` : '',
      state.disposition ? `Disposition **${state.disposition.decision}** by ${state.disposition.decidedBy}` : '',
      note,
    ]
      .filter(Boolean)
      .join('\n\n');
  }

  // Keys name the business event, never the run: a reset or a retry reuses them (docs/reliability.md#idempotency-keys).
  await condition(() => queue.length > 0);
  const caseKey = `${site}:${lotId}:${queue[0]!.eventId}`;
  const lotNode = { fromKind: 'lot', fromId: `${site}/${lotId}` };

  function holdLot(part: PartDefect): Promise<{ holdId: string }> {
    const cls = part.defects[0]?.class ?? 'unknown';
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

  async function containPart(part: PartDefect): Promise<void> {
    const cls = part.defects[0]?.class ?? 'unknown';
    const item = {
      idempotencyKey: `${part.eventId}:qn-item`,
      defectCodeGroup: 'HF-VISN',
      defectCode: defectCode(cls),
      text: `${cls} on part ${part.partId} at ${part.line}/${part.station}`.slice(0, 40),
    };
    const blockKey = policy.blockQuantity === 'whole-lot' ? `${caseKey}:block-344` : `${part.eventId}:block-344`;
    const blockQuantity = policy.blockQuantity === 'whole-lot' ? (state.lotBlocked ? 0 : lot!.quantity) : 1;
    const erpLot = { site, material: lot!.sku, plant: lot!.erpPlant, batch: lot!.batch, unit: lot!.unit };

    const [hold, notified, block] = await Promise.all([
      state.holdId ? { holdId: state.holdId } : holdLot(part),
      state.notification
        ? runner
            .step('erp-defect-item', () =>
              erpNow.addNotificationItem.executeWithOptions({ summary: `ERP defect item for part ${part.partId}` }, [
                { site, notification: state.notification!, item },
              ]),
            )
            .then((r) => ({ notification: state.notification!, item: r.item }))
        : runner.step('erp-quality-notification', () =>
            erpNow.raiseQualityNotification.executeWithOptions(
              { summary: `ERP quality notification ${policy.notificationType} for lot ${lotId}` },
              [
                {
                  ...erpLot,
                  idempotencyKey: `${caseKey}:qn`,
                  notificationType: policy.notificationType,
                  text: `Vision defects in lot ${lotId}`.slice(0, 40),
                  ...(lot!.supplier ? { supplier: lot!.supplier } : {}),
                  quantity: lot!.quantity,
                  firstItem: item,
                },
              ],
            ),
          ),
      blockQuantity > 0
        ? runner.step('erp-stock-block', () =>
            erpNow.postGoodsMovement.executeWithOptions(
              { summary: `ERP 344 block ${blockQuantity} ${lot!.unit} of batch ${lot!.batch}` },
              [
                {
                  ...erpLot,
                  idempotencyKey: blockKey,
                  movementType: '344',
                  storageLocation: lot!.storageLocation,
                  quantity: blockQuantity,
                  headerText: `Hold ${lotId}`,
                },
              ],
            ),
          )
        : undefined,
    ]);

    state.holdId = hold.holdId;
    state.notification = notified.notification;
    let materialDocument: MaterialDocumentRef | undefined;
    if (block) {
      materialDocument = { ...block, movementType: '344', quantity: blockQuantity };
      state.materialDocuments.push(materialDocument);
      state.blockedQuantity += blockQuantity;
      state.lotBlocked = policy.blockQuantity === 'whole-lot';
    }
    const contained: ContainedPart = {
      eventId: part.eventId,
      partId: part.partId,
      defectClass: cls,
      station: part.station,
      defectWorkflowId: part.defectWorkflowId,
      notificationItem: notified.item,
      ...(materialDocument ? { materialDocument } : {}),
    };
    state.parts.push(contained);

    const links: TraceLink[] = [
      { ...lotNode, relation: 'held-by', toKind: 'mes-hold', toId: hold.holdId, system: 'mes' },
      {
        ...lotNode,
        relation: 'notified-in',
        toKind: 'quality-notification',
        toId: notified.notification,
        system: 'erp',
      },
      { ...lotNode, relation: 'case', toKind: 'workflow', toId: workflowId, system: 'temporal', attributes: { runId } },
      {
        fromKind: 'inspection',
        fromId: part.eventId,
        relation: 'defect-item',
        toKind: 'quality-notification-item',
        toId: `${notified.notification}/${notified.item}`,
        system: 'erp',
      },
    ];
    if (materialDocument) {
      links.push({
        ...lotNode,
        relation: 'blocked-by',
        toKind: 'material-document',
        toId: `${materialDocument.materialDocumentYear}/${materialDocument.materialDocument}`,
        system: 'erp',
        attributes: { movementType: '344', quantity: blockQuantity, eventId: part.eventId },
      });
    }
    pendingLinks.push(...links);
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
            comment: `${request.reason} (${request.decidedBy})`,
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
      requestId: request.requestId,
      materialDocuments: documents,
      lotStatus: released.lotStatus,
      notificationClosed: true,
    };
  }

  // Containment
  // The hold needs nothing from the lot record, so it goes out at once: it is the latency that matters on the line.
  const [fetched, firstHold] = await Promise.all([
    runner.step('mes-lot', () =>
      mesNow.fetchLot.executeWithOptions({ summary: `MES read lot ${lotId}` }, [{ site, lotId }]),
    ),
    holdLot(queue[0]!),
  ]);
  lot = fetched;
  state.holdId = firstHold.holdId;
  // No stage record between the hold and the first part's containment: the next stage's record supersedes it a few
  // calls later.
  setCurrentDetails(describe(''));
  let escalated = false;
  for (;;) {
    while (queue.length > 0) {
      await containPart(queue[0]!);
      queue.shift();
      state.pendingParts = queue.length;
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
    await enter('containing');
  }

  // Disposition
  const request = decision;
  await enter('executing-disposition');
  outcome = await executeDisposition(request);
  state.disposition = outcome;
  state.closedAt = new Date().toISOString();
  await enter('closed');
  await condition(allHandlersFinished);
  if (queue.length > 0) {
    // Parts that arrived during the disposition open the lot's next case, under the same workflow id.
    await continueAsNew<typeof lotCaseWorkflow>({ ...input, carriedParts: [...queue] });
  }
  return state;
}
