/**
 * Starts each line's scheduling-advice rule (docs/changeover.md#scheduling-advice) unless it runs already: one
 * workflow per line, `line-quality-advisor-<site>-<line>`, for as long as the line runs. A worker calls this at every
 * start; a rule already running keeps its totals and is left alone (a changed rule applies from its next
 * continue-as-new only if it is terminated first: the running input is its own).
 */
import type { Client } from '@temporalio/client';
import { parseDurationMs } from '../config/duration';
import type { HoldfastConfig } from '../config/schema';
import { type LineQualityAdvisorInput, lineQualityAdvisorWorkflowId } from '../../workflows/contracts';

export const LINE_QUALITY_ADVISOR_WORKFLOW_TYPE = 'lineQualityAdvisorWorkflow';

export function lineQualityAdvisorInput(config: HoldfastConfig, site: string, line: string): LineQualityAdvisorInput {
  const { advice } = config;
  return {
    site,
    line,
    rule: {
      windowMs: parseDurationMs(advice.window),
      thresholdRate: advice.thresholdRate,
      minParts: advice.minParts,
      significance: advice.significance,
    },
    evaluationInterval: advice.evaluationInterval,
    preset: config.activityPresets.erpPost,
  };
}

export async function ensureLineQualityAdvisors(client: Client, config: HoldfastConfig): Promise<string[]> {
  if (!config.advice.enabled) return [];
  const started: string[] = [];
  for (const site of config.sites) {
    for (const line of site.lines) {
      const workflowId = lineQualityAdvisorWorkflowId(site.id, line.id);
      await client.workflow.start(LINE_QUALITY_ADVISOR_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: config.taskQueues.quality,
        args: [lineQualityAdvisorInput(config, site.id, line.id)],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `Scheduling advice for ${site.id}/${line.id}`,
      });
      started.push(workflowId);
    }
  }
  return started;
}
