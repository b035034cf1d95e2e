import {
  ActivityFailure,
  condition,
  makeContinueAsNewFunc,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import type { Activities } from '../../activities';
import {
  adviceDecidedSignal,
  lineQualityAdvisorStatusQuery,
  type LineQualityAdvisorInput,
  type LineQualityAdvisorStatus,
} from '../contracts';
import { activityOptions } from '../options';

/** Evaluations per run before continue-as-new: a run's history stays a few hundred events long. */
const EVALUATIONS_PER_RUN = 100;

/**
 * A line's quality-aware scheduling rule (docs/changeover.md#scheduling-advice), for as long as the line runs: every
 * evaluation interval, one activity counts each component lot's parts over the sliding window, tests them and stores
 * advice for the lots that trip; then the line's accepted advice is sent to the MES. An accepted advice wakes the loop
 * (`adviceDecided`), so it goes out at once rather than at the next evaluation; one lost signal only delays it, since
 * every pass sends what is accepted. A workflow rather than a Temporal Schedule: it takes that signal, and a line's
 * evaluations and sends never overlap.
 */
export async function lineQualityAdvisorWorkflow(input: LineQualityAdvisorInput): Promise<void> {
  const { site, line } = input;
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const status: LineQualityAdvisorStatus = {
    site,
    line,
    totals: { evaluations: 0, proposed: 0, sent: 0, ...input.totals },
  };
  let decided = false;
  setHandler(adviceDecidedSignal, () => {
    decided = true;
  });
  setHandler(lineQualityAdvisorStatusQuery, () => status, {
    description: 'Evaluations so far, advice proposed and sent, and the last evaluation’s lots.',
  });

  for (let evaluations = 0; ;) {
    const evaluatedAt = new Date().toISOString();
    const evaluation = await act.evaluateLineQuality.executeWithOptions(
      { summary: `Defect rates by component lot on ${site}/${line}` },
      [{ site, line, rule: input.rule, evaluatedAt, proposedBy: `${workflowInfo().workflowId}@${evaluatedAt}` }],
    );
    evaluations += 1;
    status.totals = {
      ...status.totals,
      evaluations: status.totals.evaluations + 1,
      proposed: status.totals.proposed + evaluation.proposed.length,
    };
    status.lastEvaluatedAt = evaluatedAt;
    status.lastLots = evaluation.lots;
    setCurrentDetails(describe(status));

    // Sends until nothing accepted is left, then waits for the next evaluation or an accepted advice; a wake-up does
    // not push the next evaluation back.
    const nextEvaluation = Date.now() + msToNumber(input.evaluationInterval);
    for (;;) {
      decided = false;
      try {
        const { sent } = await act.sendAcceptedAdvice.executeWithOptions(
          { summary: `Accepted advice of ${site}/${line} to the MES` },
          [{ site, line }],
        );
        status.totals = { ...status.totals, sent: status.totals.sent + sent.length };
        delete status.sendFailure;
      } catch (err) {
        // The rule keeps running when the MES refuses or cannot take resequencing: the advice stays accepted and
        // unsent, shown here, and is tried again on the next pass.
        if (!(err instanceof ActivityFailure)) throw err;
        status.sendFailure = err.cause?.message ?? err.message;
      }
      setCurrentDetails(describe(status));
      const remaining = nextEvaluation - Date.now();
      if (remaining <= 0) break;
      const woken = await condition(() => decided, remaining);
      if (!woken) break;
    }

    if (evaluations >= EVALUATIONS_PER_RUN || workflowInfo().continueAsNewSuggested) {
      await makeContinueAsNewFunc<typeof lineQualityAdvisorWorkflow>()({ ...input, totals: status.totals });
    }
  }
}

function describe(s: LineQualityAdvisorStatus): string {
  const tripped = (s.lastLots ?? []).filter((l) => l.tripped).length;
  return [
    `**Scheduling advice for ${s.site}/${s.line}**`,
    `Last evaluation ${s.lastEvaluatedAt ?? '—'}: ${s.lastLots?.length ?? 0} lot(s) tested, ${tripped} above threshold`,
    `${s.totals.evaluations} evaluation(s), ${s.totals.proposed} advice proposed, ${s.totals.sent} sent to the MES`,
    ...(s.sendFailure ? [`Sending failed: ${s.sendFailure}`] : []),
  ].join('\n\n');
}
