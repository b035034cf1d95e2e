import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities } from '../../activities';
import { scheduledStartTimeKey, type SupplierEvaluationInput } from '../contracts';
import { activityOptions } from '../options';

/**
 * One run of the supplier evaluation schedule: every supplier and material's score over the period ending at the
 * scheduled time, to the ERP once per supplier, material and period (a rerun of the same action posts nothing new).
 */
export async function supplierEvaluationWorkflow(input: SupplierEvaluationInput): Promise<{ posted: number }> {
  const erp = proxyActivities<Activities>(activityOptions(input.erpPost));
  const scheduled = workflowInfo().typedSearchAttributes.get(scheduledStartTimeKey);
  const end = scheduled ?? new Date(workflowInfo().startTime);
  const periodEnd = end.toISOString();
  const periodStart = new Date(end.getTime() - msToNumber(input.period)).toISOString();
  return erp.postSupplierScores({ site: input.erpSite, periodStart, periodEnd });
}
