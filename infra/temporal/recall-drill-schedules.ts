/**
 * The sites' recall drill schedules (docs/recall.md#drills): one Temporal Schedule per site with `recall.drill`
 * enabled, `recall-drill-<site>`, whose action starts recallDrillWorkflow. A worker calls this at every start: a
 * schedule that exists is updated to the configuration, one whose site no longer drills is deleted, so the Web UI's
 * Schedules page shows what temporal.yaml says.
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { deleteScheduleIfAny, upsertSchedule } from './schedules';
import { msToNumber } from '@temporalio/common/lib/time';
import type { HoldfastConfig, SiteConfig } from '../config/schema';
import {
  recallDrillScheduleId,
  SearchAttributes,
  type RecallDrillInput,
  type RecallDrillScope,
} from '../../workflows/contracts';

export const RECALL_DRILL_WORKFLOW_TYPE = 'recallDrillWorkflow';

type Drill = NonNullable<SiteConfig['recall']['drill']>;

function scheduleOptions(config: HoldfastConfig, site: SiteConfig, drill: Drill): ScheduleOptions {
  const scheduleId = recallDrillScheduleId(site.id);
  const input: RecallDrillInput = {
    site: site.id,
    scheduleId,
    scope: drill.scope as RecallDrillScope,
    completeWithin: drill.completeWithin,
    missedAfter: readable(msToNumber(drill.every) + msToNumber(drill.grace)),
    preset: config.activityPresets.traceWrite,
  };
  const when = drill.cron ? `cron ${drill.cron} (${site.timezone})` : `every ${drill.every}`;
  const scope = drill.scope === 'random-supplier-lot' ? 'a random supplier lot' : `${drill.scope.kind} scope`;
  return {
    scheduleId,
    spec: drill.cron
      ? { cronExpressions: [drill.cron], timezone: site.timezone }
      : { intervals: [{ every: drill.every }] },
    action: {
      type: 'startWorkflow',
      workflowType: RECALL_DRILL_WORKFLOW_TYPE,
      // Temporal appends the time each run was due: one workflow id per drill.
      workflowId: scheduleId,
      taskQueue: config.taskQueues.quality,
      args: [input],
      typedSearchAttributes: [
        { key: SearchAttributes.site, value: site.id },
        { key: SearchAttributes.recallKind, value: 'mock' },
      ],
      staticSummary: `Recall drill at ${site.id}: mock recall of ${scope}, within ${drill.completeWithin}`,
    },
    policies: {
      // A drill still running when the next is due: the next is skipped, and the drill after it reports it missed.
      overlap: ScheduleOverlapPolicy.SKIP,
      // A server down over the due time still runs the drill when back within a day; later it counts as missed.
      catchupWindow: '1d',
      pauseOnFailure: false,
    },
    memo: { site: site.id, every: drill.every, cron: drill.cron ?? null, completeWithin: drill.completeWithin },
    state: { note: `Mock-recall drill of ${site.id}, ${when} (temporal.yaml sites[].recall.drill)` },
  };
}

/** Creates or updates each drilling site's schedule and deletes the schedules of sites that stopped; their ids. */
export async function ensureRecallDrillSchedules(client: Client, config: HoldfastConfig): Promise<string[]> {
  const scheduled: string[] = [];
  for (const site of config.sites) {
    const drill = site.recall.drill;
    const scheduleId = recallDrillScheduleId(site.id);
    if (!drill?.enabled) {
      await deleteScheduleIfAny(client, scheduleId);
      continue;
    }
    const options = scheduleOptions(config, site, drill);
    await upsertSchedule(client, options);
    scheduled.push(scheduleId);
  }
  return scheduled;
}

/** A duration in whole days where it is one, as an escalation's text shows it ('97d'), else in milliseconds. */
function readable(ms: number): string {
  return ms % 86_400_000 === 0 ? `${ms / 86_400_000}d` : `${ms}ms`;
}
