import {
  condition,
  proxyActivities,
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
  partContainedSignal,
  retryFailedStepUpdate,
  type DefectWorkflowInput,
  type DefectWorkflowResult,
  type PartContainment,
  type StepFailure,
} from '../contracts';
import { activityOptions, localActivityOptions } from '../options';
import { createStepRunner } from '../shared/step-runner';

/**
 * One failed inspection. Part-level effects run here (work-order quality count, trace links); the lot-level ones
 * (hold, notification, stock block) belong to the lot's case workflow, which this workflow joins and then waits on,
 * so that many defective parts of one lot give one hold and one notification.
 */
export async function defectWorkflow(input: DefectWorkflowInput): Promise<DefectWorkflowResult> {
  const { detection: d, policy, taskQueue } = input;
  const { workflowId } = workflowInfo();
  const lotCaseId = lotCaseWorkflowId(d.site, d.lotId);
  const defectClass = d.defects[0]?.class ?? 'unknown';

  const mes = proxyActivities<Activities>(activityOptions(policy.presets.mesCall));
  const local = proxyLocalActivities<Activities>(localActivityOptions(policy.presets.traceWrite));

  let stage = 'recording';
  let containment: PartContainment | undefined;
  let failure: StepFailure | undefined;

  const runner = createStepRunner({
    async onFailure(f) {
      failure = f;
      upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'needs-attention' }]);
      setCurrentDetails(details('**Needs attention**', `Step \`${f.step}\` failed: ${f.message}`));
    },
    async onRetry() {
      failure = undefined;
      upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'containing' }]);
    },
  });

  setHandler(
    partContainedSignal,
    (c) => {
      if (c.eventId === d.eventId) containment = c;
    },
    { description: 'The lot case reports this part contained (hold, notification item, stock block).' },
  );
  setHandler(defectStateQuery, () => ({ stage, ...(containment ? { containment } : {}) }), {
    description: 'Current stage of this defect and, once contained, the ERP/MES documents.',
  });
  setHandler(
    retryFailedStepUpdate,
    (_request) => {
      const retrying = failure?.step ?? '';
      runner.requestRetry();
      return { retrying };
    },
    {
      description: 'Run a step that failed for good again, after its cause was fixed.',
      validator: (_request) => {
        if (!runner.waiting) throw new Error(`no step is waiting for a retry (stage ${stage})`);
      },
    },
  );

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

  setCurrentDetails(details('**Recording** the defect'));
  const part = { ...d, defectWorkflowId: workflowId };
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
    runner.step('join-lot-case', () =>
      local.joinLotCase.executeWithOptions({ summary: `Join lot case ${lotCaseId}` }, [
        { part, policy, taskQueue, lotCaseWorkflowId: lotCaseId },
      ]),
    ),
  ]);

  stage = 'awaiting-containment';
  setCurrentDetails(details('**Waiting** for the lot case to contain the part'));
  await condition(() => containment !== undefined);
  const contained = containment!;
  stage = 'contained';
  upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: 'contained' }]);
  setCurrentDetails(
    details(
      '**Contained**',
      `MES hold \`${contained.holdId}\` · ERP notification \`${contained.notification}\` item \`${contained.notificationItem}\`` +
        (contained.materialDocument ? ` · material document \`${contained.materialDocument.materialDocument}\`` : ''),
    ),
  );
  return {
    eventId: d.eventId,
    workOrderQualityStatus: quality.qualityStatus,
    lotCaseWorkflowId: lotCaseId,
    containment: contained,
  };
}
