import { setCurrentDetails } from '@temporalio/workflow';
import { lotCaseWorkflowId, type DetectionDispatch, type ShadowDefectResult } from '../contracts';

/**
 * A defect from a station in shadow mode (parallel monitoring while a new camera is validated): the plan is the
 * record. No reject, no MES or ERP call, no lot case; the workflow only shows in the Web UI what a production station
 * would have done (its DispositionState, `shadow`, is set at start). The station is measured against verdicts from
 * PostgreSQL (GET /v1/stations/.../shadow-report), not from here.
 */
export async function shadowDefectWorkflow({ detection: d, policy }: DetectionDispatch): Promise<ShadowDefectResult> {
  const defectClass = d.defects[0]?.class ?? 'unknown';
  const lotCaseId = lotCaseWorkflowId(d.site, d.lotId);
  const wouldDo = [
    `MES: hold lot ${d.lotId} (lot case ${lotCaseId}) unless already held`,
    `MES: work order ${d.workOrder} +1 nonconforming (${defectClass})`,
    `ERP: quality notification (${policy.notificationType}) for lot ${d.lotId}, one item for part ${d.partId}`,
    `ERP: block ${policy.blockQuantity === 'whole-lot' ? 'the whole lot' : '1 part'} of lot ${d.lotId} (344)`,
    `Trace: link inspection ${d.eventId} to lot ${d.lotId} and work order ${d.workOrder}`,
  ];
  setCurrentDetails(
    [
      `**Shadow mode: nothing was done** — **${defectClass}** on ${d.site}/${d.line}/${d.station}, part \`${d.partId}\``,
      `Lot \`${d.lotId}\` · work order \`${d.workOrder}\``,
      `Model ${d.modelVersion} · recipe ${d.recipeVersion} · inspected ${d.inspectedAt}`,
      wouldDo.map((w) => `- would ${w}`).join('\n'),
    ].join('\n\n'),
  );
  return { eventId: d.eventId, mode: 'shadow', wouldDo };
}
