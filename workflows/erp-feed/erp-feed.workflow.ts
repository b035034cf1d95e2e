import { ActivityFailure, proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../../activities';
import type { ErpFeedInput, ErpFeedIntervalResult, ErpFeedResult } from '../contracts';
import { activityOptions } from '../options';

/**
 * One run of a site's ERP feed (docs/analytics.md#the-erp-feed), started by its schedule: posts every interval that
 * is due and not yet posted, oldest first, so a run after an outage catches up in order. An ERP that is down keeps
 * the interval's activity retrying (the schedule skips runs meanwhile); an interval that cannot be posted at all ends
 * the run there, and the next run starts at it.
 */
export async function erpFeedWorkflow(input: ErpFeedInput): Promise<ErpFeedResult> {
  const act = proxyActivities<Activities>(activityOptions(input.preset));
  const asOf = input.asOf ?? new Date(Date.now()).toISOString();
  const due = await act.dueErpFeedIntervals({ site: input.site, asOf });
  const posted: ErpFeedIntervalResult[] = [];
  for (const interval of due) {
    setCurrentDetails(`**ERP feed of ${input.site}**: posting ${interval.from} to ${interval.to}`);
    try {
      posted.push(await act.postErpFeedInterval({ site: input.site, interval }));
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      return { site: input.site, posted, stoppedAt: { ...interval, error: (err.cause ?? err).message } };
    }
  }
  setCurrentDetails(`**ERP feed of ${input.site}**: posted ${posted.length} interval(s) up to ${asOf}`);
  return { site: input.site, posted };
}
