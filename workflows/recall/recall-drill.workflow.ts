import { condition, proxyActivities, setCurrentDetails, startChild, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  recallDrillId,
  recallScopeLabel,
  recallWorkflowId,
  scheduledStartTimeKey,
  SearchAttributes,
  type RecallDrillEscalation,
  type RecallDrillInput,
  type RecallDrillResult,
  type RecallStatus,
} from '../contracts';
import { activityOptions } from '../options';
import { recallWorkflow } from './recall.workflow';

/**
 * One mock-recall drill (docs/recall.md#drills), started by the site's schedule: opens a mock recall of a supplier lot
 * (or the configured scope) as the API would, runs it as a child workflow against a `completeWithin` timer, and keeps
 * the result. A drill that follows a missed one, runs late or fails (the recall failed, or its score missed the site's
 * targets) escalates to the site's escalation target, once per reason.
 */
export async function recallDrillWorkflow(input: RecallDrillInput): Promise<RecallDrillResult> {
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const info = workflowInfo();
  const scheduledAt =
    input.scheduledAt ??
    info.typedSearchAttributes.get(scheduledStartTimeKey)?.toISOString() ??
    info.startTime.toISOString();
  const drillId = recallDrillId(input.site, scheduledAt);
  const started = Date.now();
  const result: RecallDrillResult = {
    drillId,
    site: input.site,
    scheduledAt,
    recallId: null,
    state: 'running',
    durationMs: 0,
    escalations: [],
  };
  const details = (line: string) => setCurrentDetails(`**Recall drill at ${input.site}**, due ${scheduledAt}: ${line}`);
  const escalate = async (reason: RecallDrillEscalation, text: string) => {
    await act.escalateRecallDrill.executeWithOptions({ summary: `Escalate: recall drill ${reason}` }, [
      { drillId, site: input.site, workflowId: info.workflowId, scheduledAt, recallId: result.recallId, reason, text },
    ]);
    result.escalations.push(reason);
  };

  details('starting');
  const begun = await act.beginRecallDrill({
    drillId,
    site: input.site,
    scheduleId: input.scheduleId,
    workflowId: info.workflowId,
    scheduledAt,
    completeWithin: input.completeWithin,
    missedAfter: input.missedAfter,
  });
  if (begun.missed) {
    await escalate(
      'missed',
      `Recall drill at ${input.site}: the previous drill was due ${begun.previousScheduledAt}, longer than ` +
        `${input.missedAfter} before this one (${scheduledAt}); a drill was missed`,
    );
  }

  let overdue = false;
  let error: string | undefined;
  try {
    const scope = await act.pickRecallDrillScope({ drillId, site: input.site, scope: input.scope });
    const recall = await act.openRecallDrill({ drillId, scope });
    result.recallId = recall.recallId;
    details(`mock recall ${recall.recallId} running`);
    const child = await startChild(recallWorkflow, {
      workflowId: recallWorkflowId(recall.recallId),
      args: [recall],
      typedSearchAttributes: [
        { key: SearchAttributes.site, value: recall.site },
        { key: SearchAttributes.recallKind, value: recall.kind },
        { key: SearchAttributes.recallScope, value: recallScopeLabel(recall.scope) },
        { key: SearchAttributes.recallState, value: 'running' },
      ],
      staticSummary: `mock recall of drill ${drillId}`,
    });
    let settled = false;
    const outcome = child.result().then(
      (status: RecallStatus) => status,
      (err: unknown) => err as Error,
    );
    void outcome.finally(() => (settled = true));
    if (!(await condition(() => settled, input.completeWithin))) {
      overdue = true;
      details(`mock recall ${recall.recallId} overdue`);
      await escalate(
        'overdue',
        `Recall drill at ${input.site} due ${scheduledAt}: mock recall ${recall.recallId} not finished within ` +
          `${input.completeWithin}`,
      );
    }
    // Late or not, the drill waits for its recall: the result an auditor sees has the recall's timings.
    const finished = await outcome;
    if (finished instanceof Error) error = `mock recall ${recall.recallId} failed: ${rootMessage(finished)}`;
  } catch (err) {
    error = rootMessage(err as Error);
  }

  result.durationMs = Date.now() - started;
  result.state = (
    await act.finishRecallDrill({ drillId, overdue, durationMs: result.durationMs, ...(error ? { error } : {}) })
  ).state;
  if (result.state === 'failed') {
    await escalate(
      'failed',
      `Recall drill at ${input.site} due ${scheduledAt} failed: ${
        error ?? `mock recall ${result.recallId} missed the site's targets`
      }`,
    );
  }
  details(`${result.state}${result.recallId ? `, mock recall ${result.recallId}` : ''} in ${result.durationMs} ms`);
  return result;
}

/** What went wrong, not the wrapper that carried it here (an ActivityFailure's or ChildWorkflowFailure's cause). */
function rootMessage(err: Error): string {
  let cause = err;
  while (cause.cause instanceof Error) cause = cause.cause;
  return cause.message;
}
