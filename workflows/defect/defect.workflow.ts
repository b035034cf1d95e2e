import {
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  SearchAttributes,
  defectStateQuery,
  lotCaseWorkflowId,
  retryFailedStepUpdate,
  type DefectState,
  type DefectWorkflowInput,
  type DefectWorkflowResult,
} from '../contracts';
import { localActivityOptions } from '../options';
import { createStepRunner, describeParked } from '../shared/step-runner';

/**
 * One failed inspection. Part-level effects run here (work-order quality count, trace links); the lot-level ones
 * (hold, notification, stock block) belong to the lot's case workflow, which the outbox dispatcher hands the part
 * to as it starts this workflow, so that many defective parts of one lot give one hold and one notification.
 *
 * The steps are local activities: short, idempotent calls that run inside the first workflow task, so a
 * defect costs the server one workflow task rather than a round trip per step (BENCHMARKS.md). Retries and the
 * needs-attention state work as for any activity.
 */
export async function defectWorkflow(input: DefectWorkflowInput): Promise<DefectWorkflowResult> {
  const { detection: d, policy } = input;
  const { workflowId } = workflowInfo();
  const lotCaseId = lotCaseWorkflowId(d.site, d.lotId);
  const defectClass = d.defects[0]?.class ?? 'unknown';

  const mes = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.mesCall));
  const local = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.traceWrite));

  const state: DefectState = { stage: 'recording', lotCaseWorkflowId: lotCaseId };

  const runner = createStepRunner({
    async onFailure(_failure, parked) {
      state.stage = 'needs-attention';
      state.failures = [...parked];
      upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'needs-attention' }]);
      setCurrentDetails(details('**Needs attention**', describeParked(parked)));
    },
    async onRetry() {
      delete state.failures;
      state.stage = 'recording';
      upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'containing' }]);
    },
  });

  setHandler(defectStateQuery, () => state, {
    description: 'Stage of this defect and the lot case that contains it.',
  });
  setHandler(retryFailedStepUpdate, (_request) => runner.requestRetry(), {
    description: 'Run a step that failed for good again, after its cause was fixed.',
    validator: (_request) => {
      if (!runner.waiting) throw new Error(`no step is waiting for a retry (stage ${state.stage})`);
    },
  });

  function details(headline: string, extra = ''): string {
    return [
      `${headline} — **${defectClass}** on ${d.site}/${d.line}/${d.station}, part \`${d.partId}\``,
      `Lot \`${d.lotId}\` · work order \`${d.workOrder}\` · lot case \`${lotCaseId}\``,
      `Model ${d.modelVersion} · recipe ${d.recipeVersion} · inspected ${d.inspectedAt}`,
      extra,
    ]
      .filter(Boolean)
      .join('\n\n');
  }

  if (input.mode === 'shadow') {
    // Parallel monitoring: the plan is the record. No reject, no MES or ERP call, no lot case.
    const wouldDo = [
      `MES: hold lot ${d.lotId} (lot case ${lotCaseId}) unless already held`,
      `MES: work order ${d.workOrder} +1 nonconforming (${defectClass})`,
      `ERP: quality notification (${policy.notificationType}) for lot ${d.lotId}, one item for part ${d.partId}`,
      `ERP: block ${policy.blockQuantity === 'whole-lot' ? 'the whole lot' : '1 part'} of lot ${d.lotId} (344)`,
      `Trace: link inspection ${d.eventId} to lot ${d.lotId} and work order ${d.workOrder}`,
    ];
    state.stage = 'shadow-recorded';
    upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'shadow' }]);
    setCurrentDetails(details('**Shadow mode: nothing was done**', wouldDo.map((w) => `- would ${w}`).join('\n')));
    return { eventId: d.eventId, mode: 'shadow', wouldDo };
  }

  const [quality] = await Promise.all([
    runner.step('mes-work-order-quality', () =>
      mes.recordWorkOrderQuality.executeWithOptions(
        { summary: `MES work order ${d.workOrder}: +1 nonconforming (${defectClass})` },
        [
          {
            site: d.site,
            idempotencyKey: `${d.eventId}:wo-quality`,
            workOrder: d.workOrder,
            lotId: d.lotId,
            partId: d.partId,
            defectClass,
            nonconformingQuantity: 1,
          },
        ],
      ),
    ),
    runner.step('trace-link', () =>
      local.linkInspection.executeWithOptions({ summary: `Trace ${d.eventId} → lot ${d.lotId}` }, [
        { detection: d, defectWorkflowId: workflowId },
      ]),
    ),
  ]);

  state.stage = 'handed-to-lot-case';
  setCurrentDetails(
    details(
      '**Handed to the lot case**',
      `Work order quality: ${quality.qualityStatus}. Hold, notification item and stock block: see \`${lotCaseId}\`.`,
    ),
  );
  return { eventId: d.eventId, workOrderQualityStatus: quality.qualityStatus, lotCaseWorkflowId: lotCaseId };
}
