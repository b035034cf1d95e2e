/**
 * The sites' ERP feed schedules (docs/analytics.md#the-erp-feed): one Temporal Schedule per site with `erpFeed`,
 * `erp-feed-<site>`, whose action starts erpFeedWorkflow. A worker calls this at every start: a schedule that exists
 * is updated to the configuration, one whose site no longer has a feed is deleted.
 */
import { ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import { deleteScheduleIfAny, upsertSchedule } from './schedules';
import { parseDurationMs } from '../config/duration';
import type { ErpFeedConfig, HoldfastConfig, SiteConfig } from '../config/schema';
import { erpFeedScheduleId, SearchAttributes, type ErpFeedInput } from '../../workflows/contracts';

export const ERP_FEED_WORKFLOW_TYPE = 'erpFeedWorkflow';

/** How often a shift-end feed wakes to look for a shift that has ended (shift calendars live in PostgreSQL). */
const SHIFT_END_WAKE_MS = 15 * 60_000;

/**
 * When the schedule fires: for a fixed interval, at each interval's end plus the settle time (intervals are aligned to
 * the epoch, as Temporal's interval spec is); for shift-end, every 15 minutes, each run posting the shifts that ended.
 */
export function erpFeedSpec(feed: ErpFeedConfig): { everyMs: number; offsetMs: number } {
  const everyMs = feed.every === 'shift-end' ? SHIFT_END_WAKE_MS : parseDurationMs(feed.every);
  return { everyMs, offsetMs: parseDurationMs(feed.settle) % everyMs };
}

function scheduleOptions(config: HoldfastConfig, site: SiteConfig, feed: ErpFeedConfig): ScheduleOptions {
  const scheduleId = erpFeedScheduleId(site.id);
  const input: ErpFeedInput = { site: site.id, preset: config.activityPresets.erpPost };
  const { everyMs, offsetMs } = erpFeedSpec(feed);
  return {
    scheduleId,
    spec: { intervals: [{ every: everyMs, offset: offsetMs }] },
    action: {
      type: 'startWorkflow',
      workflowType: ERP_FEED_WORKFLOW_TYPE,
      // Temporal appends the time each run was due.
      workflowId: scheduleId,
      taskQueue: config.taskQueues.quality,
      args: [input],
      typedSearchAttributes: [{ key: SearchAttributes.site, value: site.id }],
      staticSummary: `ERP feed of ${site.id}: confirmations and cost of quality ${
        feed.every === 'shift-end' ? 'at each shift end' : `every ${feed.every}`
      }`,
    },
    policies: {
      // A run still posting (an ERP that is down) makes the next ones skip; it catches up every interval itself.
      overlap: ScheduleOverlapPolicy.SKIP,
      // Runs missed while the server was down are not made up one by one: the next run posts every due interval.
      catchupWindow: '1m',
      pauseOnFailure: false,
    },
    memo: { site: site.id, every: feed.every, settle: feed.settle },
    state: { note: `ERP feed of ${site.id}, every ${feed.every} (temporal.yaml sites[].erpFeed)` },
  };
}

/** Creates or updates each feeding site's schedule and deletes the schedules of sites without a feed; their ids. */
export async function ensureErpFeedSchedules(client: Client, config: HoldfastConfig): Promise<string[]> {
  const scheduled: string[] = [];
  for (const site of config.sites) {
    const scheduleId = erpFeedScheduleId(site.id);
    if (!site.erpFeed) {
      await deleteScheduleIfAny(client, scheduleId);
      continue;
    }
    const options = scheduleOptions(config, site, site.erpFeed);
    await upsertSchedule(client, options);
    scheduled.push(scheduleId);
  }
  return scheduled;
}
