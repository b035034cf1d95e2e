import {
  ActivityFailure,
  condition,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { Activities } from '../../activities';
import {
  type QualityEscalationInput,
  type QualityEscalationStatus,
  SearchAttributes,
  qualityEscalationReleasedSignal,
  qualityEscalationStatusQuery,
} from '../contracts';
import { activityOptions } from '../options';

/**
 * One tripped rule (docs/analytics.md#statistical-escalation): alert the site's escalation target, hold the line or the
 * order in the MES when the site's policy says so (exactly once: intent ledger and lookup by key), then wait for a
 * signed release, which the API stores before it signals here, and release the hold exactly once. The decision is read
 * from PostgreSQL: the signal only wakes the workflow, and a lost one delays the release by releaseCheckInterval.
 */
export async function qualityEscalationWorkflow(input: QualityEscalationInput): Promise<QualityEscalationStatus> {
  const { escalationId } = input;
  const store = proxyActivities<Activities>(activityOptions(input.presets.store));
  const mes = proxyActivities<Activities>(activityOptions(input.presets.mes));
  const notify = proxyActivities<Activities>(activityOptions(input.presets.notify));
  const status: QualityEscalationStatus = { escalationId, state: 'open' };
  let woken = false;
  setHandler(qualityEscalationReleasedSignal, () => {
    woken = true;
  });
  setHandler(qualityEscalationStatusQuery, () => status, {
    description: 'Where the escalation stands: open, alerted, held (with the MES hold id) or released.',
  });
  const show = (state: QualityEscalationStatus['state']) => {
    status.state = state;
    upsertSearchAttributes([{ key: SearchAttributes.dispositionState, value: `escalation-${state}` }]);
    setCurrentDetails(
      [
        `**Rule ${input.ruleId} v${input.version} tripped on ${input.site}/${input.line}${input.station ? `/${input.station}` : ''}**`,
        input.summary,
        `Policy ${input.policy}; ${state}${status.holdId ? ` (MES hold ${status.holdId})` : ''}`,
        ...(status.failure ? [`Failing: ${status.failure}`] : []),
      ].join('\n\n'),
    );
  };
  /** Runs a step until it succeeds; a step failing for good is shown and tried again after a pause. */
  const persist = async <T>(what: string, step: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        const out = await step();
        delete status.failure;
        return out;
      } catch (err) {
        if (!(err instanceof ActivityFailure)) throw err;
        status.failure = `${what}: ${err.cause?.message ?? err.message}`;
        show(status.state);
        await condition(() => false, input.releaseCheckInterval);
      }
    }
  };

  await store.openQualityEscalation({ escalationId });
  show('open');
  await persist('alert', () => notify.alertQualityEscalation({ escalationId }));
  show('alerted');
  if (input.policy !== 'alert') {
    const hold = await persist('MES hold', () => mes.holdForQualityEscalation({ escalationId }));
    status.holdId = hold.holdId;
    show('held');
  }

  for (;;) {
    const { decided } = await store.qualityEscalationDecision({ escalationId });
    if (decided) break;
    woken = false;
    await condition(() => woken, input.releaseCheckInterval);
  }
  await persist('MES release', () => mes.releaseQualityEscalation({ escalationId }));
  show('released');
  return status;
}
