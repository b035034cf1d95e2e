/**
 * Starts each line's escalation-rule evaluator (docs/analytics.md#statistical-escalation) unless it runs already: one
 * workflow per line, `quality-rule-evaluator-<site>-<line>`. A worker calls this at every start. The rules themselves
 * live in PostgreSQL and are read at every pass, so a rule change needs no restart; the settings here (interval,
 * batch) apply to a running evaluator from its next continue-as-new only if it is terminated first.
 */
import type { Client } from '@temporalio/client';
import type { HoldfastConfig } from '../config/schema';
import { type LineRuleEvaluatorInput, SearchAttributes, lineRuleEvaluatorWorkflowId } from '../../workflows/contracts';

export const LINE_RULE_EVALUATOR_WORKFLOW_TYPE = 'lineRuleEvaluatorWorkflow';

export function lineRuleEvaluatorInput(config: HoldfastConfig, site: string, line: string): LineRuleEvaluatorInput {
  const q = config.qualityRules;
  return {
    site,
    line,
    evaluationInterval: q.evaluationInterval,
    batchSize: q.batchSize,
    maxBatches: q.maxBatches,
    preset: config.activityPresets.traceWrite,
    escalation: {
      presets: {
        store: config.activityPresets.traceWrite,
        mes: config.activityPresets.mesCall,
        notify: config.activityPresets.notify,
      },
      releaseCheckInterval: q.releaseCheckInterval,
    },
  };
}

export async function ensureLineRuleEvaluators(
  client: Client,
  config: HoldfastConfig,
  opts: { taskQueue?: string } = {},
): Promise<string[]> {
  if (!config.qualityRules.enabled) return [];
  const started: string[] = [];
  for (const site of config.sites) {
    for (const line of site.lines) {
      const workflowId = lineRuleEvaluatorWorkflowId(site.id, line.id);
      await client.workflow.start(LINE_RULE_EVALUATOR_WORKFLOW_TYPE, {
        workflowId,
        taskQueue: opts.taskQueue ?? config.taskQueues.quality,
        args: [lineRuleEvaluatorInput(config, site.id, line.id)],
        workflowIdConflictPolicy: 'USE_EXISTING',
        typedSearchAttributes: [
          { key: SearchAttributes.site, value: site.id },
          { key: SearchAttributes.line, value: line.id },
        ],
        staticSummary: `Escalation rules of ${site.id}/${line.id}`,
      });
      started.push(workflowId);
    }
  }
  return started;
}
