import type { Client } from '@temporalio/client';
import { deleteScheduleIfAny, upsertSchedule } from '../temporal/schedules';
import type { HoldfastConfig } from '../config/schema';
import type { SupplierEvaluationInput } from '../../workflows/contracts';

/** One global schedule: scorecards go to the ERP of the first site (supplier evaluation is a purchasing matter). */
export const SUPPLIER_EVALUATION_SCHEDULE_ID = 'supplier-evaluation';

/**
 * Creates, updates or (when supplierQuality.evaluation.enabled is false) deletes the supplier evaluation schedule, so
 * the schedule always follows temporal.yaml. Overlapping runs are skipped: a run posts once per key anyway.
 */
export async function ensureSupplierEvaluationSchedule(client: Client, config: HoldfastConfig): Promise<string> {
  const evaluation = config.supplierQuality.evaluation;
  if (!evaluation.enabled) {
    await deleteScheduleIfAny(client, SUPPLIER_EVALUATION_SCHEDULE_ID);
    return 'disabled';
  }
  const input: SupplierEvaluationInput = {
    period: evaluation.period,
    erpSite: config.sites[0]!.id,
    erpPost: config.activityPresets.erpPost,
    traceWrite: config.activityPresets.traceWrite,
  };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'supplierEvaluationWorkflow',
    workflowId: 'supplier-evaluation-run',
    taskQueue: config.taskQueues.quality,
    args: [input],
  };
  const spec = { intervals: [{ every: evaluation.every }] };
  const done = await upsertSchedule(client, { scheduleId: SUPPLIER_EVALUATION_SCHEDULE_ID, spec, action });
  return `${done}, every ${evaluation.every}`;
}
