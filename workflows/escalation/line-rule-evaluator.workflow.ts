import {
  ActivityFailure,
  ParentClosePolicy,
  makeContinueAsNewFunc,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../../activities';
import {
  type LineRuleEvaluatorInput,
  type LineRuleEvaluatorStatus,
  SearchAttributes,
  lineRuleEvaluatorStatusQuery,
} from '../contracts';
import { activityOptions } from '../options';
import { qualityEscalationWorkflow } from './quality-escalation.workflow';

/** Passes per run before continue-as-new: a run's history stays a few hundred events long. */
const PASSES_PER_RUN = 200;

/**
 * A line's statistical escalation rules (docs/analytics.md#statistical-escalation), for as long as the line runs: each
 * pass reads the line's new inspections after the cursor kept in PostgreSQL and evaluates every active rule over them,
 * the cursor, the rules' state and the trips written in one transaction; then each trip's escalation workflow is
 * started. A workflow rather than a loop in the worker: one per line wherever the workers run, visible with its totals,
 * and a pass that fails is retried by Temporal while the cursor keeps what committed. The id of each escalation comes
 * from its trip, so a start repeated after a crash finds the one already running.
 */
export async function lineRuleEvaluatorWorkflow(input: LineRuleEvaluatorInput): Promise<void> {
  const { site, line } = input;
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const status: LineRuleEvaluatorStatus = {
    site,
    line,
    totals: { evaluations: 0, inspections: 0, trips: 0, ...input.totals },
  };
  setHandler(lineRuleEvaluatorStatusQuery, () => status, {
    description: 'Passes so far, inspections read, rules tripped, and the last pass’s time or failure.',
  });

  for (let passes = 0; ; passes += 1) {
    try {
      const pass = await act.evaluateLineRules.executeWithOptions({ summary: `Escalation rules of ${site}/${line}` }, [
        { site, line, batchSize: input.batchSize, maxBatches: input.maxBatches },
      ]);
      status.totals = {
        evaluations: status.totals.evaluations + 1,
        inspections: status.totals.inspections + pass.inspections,
        trips: status.totals.trips + pass.tripped.length,
      };
      status.lastEvaluatedAt = new Date().toISOString();
      delete status.failure;
      for (const e of pass.toStart) {
        try {
          await startChild(qualityEscalationWorkflow, {
            workflowId: e.workflowId,
            args: [
              {
                ...input.escalation,
                escalationId: e.escalationId,
                site: e.site,
                line: e.line,
                station: e.station,
                ruleId: e.ruleId,
                version: e.version,
                policy: e.policy,
                summary: e.summary,
              },
            ],
            // The escalation outlives this run (continue-as-new) and waits for a person, so it is not this run's.
            parentClosePolicy: ParentClosePolicy.ABANDON,
            workflowIdReusePolicy: 'REJECT_DUPLICATE',
            typedSearchAttributes: [
              { key: SearchAttributes.site, value: e.site },
              { key: SearchAttributes.line, value: e.line },
              { key: SearchAttributes.station, value: e.station ? [e.station] : [] },
              { key: SearchAttributes.dispositionState, value: 'escalation-open' },
            ],
            staticSummary: `Rule ${e.ruleId} v${e.version} tripped on ${e.site}/${e.line}: ${e.summary}`.slice(0, 190),
          });
        } catch (err) {
          // Started before (by a pass whose start was not yet recorded by the escalation): it runs already.
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
        }
      }
    } catch (err) {
      // A pass that failed for good (misconfiguration) is shown and tried again at the next interval.
      if (!(err instanceof ActivityFailure)) throw err;
      status.failure = err.cause?.message ?? err.message;
    }
    setCurrentDetails(describe(status));
    await sleep(input.evaluationInterval);
    if (passes + 1 >= PASSES_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await makeContinueAsNewFunc<typeof lineRuleEvaluatorWorkflow>()({ ...input, totals: status.totals });
    }
  }
}

function describe(s: LineRuleEvaluatorStatus): string {
  return [
    `**Escalation rules of ${s.site}/${s.line}**`,
    `Last pass ${s.lastEvaluatedAt ?? '—'}: ${s.totals.evaluations} pass(es), ${s.totals.inspections} inspection(s) read, ${s.totals.trips} trip(s)`,
    ...(s.failure ? [`Last pass failed: ${s.failure}`] : []),
  ].join('\n\n');
}
