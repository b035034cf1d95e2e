/**
 * The drill schedules on the jest run's Temporal dev server, with the whole stack in process: the worker's start-up
 * call creates one schedule per drilling site with the configured spec, a second call updates it in place, and a
 * triggered drill runs its mock recall, whose result GET /v1/recalls?kind=mock lists with its timings. A site that
 * stops drilling loses its schedule.
 */
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { ensureRecallDrillSchedules } from '../../infra/temporal/recall-drill-schedules';
import { recallDrillScheduleId, type RecallDrillInput, type RecallDrillResult } from '../../workflows/contracts';
import { writeDrillPlant } from '../support/drill-plant';
import { eventually } from '../support/eventually';
import { bearerFor } from '../support/identity';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
const run = randomUUID().slice(0, 8);
const site = `DRS-${run}`;
const plant = run.slice(0, 4).toUpperCase();
const scheduleId = recallDrillScheduleId(site);
let stack: HoldfastStack;

const withDrill = (config: HoldfastConfig, drill: Record<string, unknown> | undefined): HoldfastConfig => ({
  ...config,
  sites: config.sites.map((s) => ({
    ...s,
    recall: { ...s.recall, drill: drill && { scope: 'random-supplier-lot', grace: '7d', ...drill } },
  })) as HoldfastConfig['sites'],
});

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  const base = loadConfig();
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config: { ...base, sites: [{ ...base.sites[0]!, id: site, erpPlant: plant }] },
    seedDemo: false,
  });
  await writeDrillPlant(pool, { site, plant, run });
}, 120_000);

afterAll(async () => {
  await stack?.client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch(() => undefined);
  await stack?.stop();
  await pool.end();
});

test('one schedule per drilling site; a triggered drill is listed with its timings; a stopped site loses it', async () => {
  const quarterly = withDrill(stack.config, { enabled: true, every: '90d', completeWithin: '8m' });
  await expect(ensureRecallDrillSchedules(stack.client, quarterly)).resolves.toEqual([scheduleId]);
  const handle = stack.client.schedule.getHandle(scheduleId);
  const created = await handle.describe();
  expect(created.spec.intervals?.map((i) => i.every)).toEqual([90 * 86_400_000]);
  expect(created.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 86_400_000 });
  expect(created.action).toMatchObject({
    type: 'startWorkflow',
    workflowType: 'recallDrillWorkflow',
    workflowId: scheduleId,
    taskQueue: stack.taskQueue,
  });
  const input = (created.action as { args: RecallDrillInput[] }).args[0]!;
  expect(input).toMatchObject({
    site,
    scheduleId,
    scope: 'random-supplier-lot',
    completeWithin: '8m',
    missedAfter: '97d',
  });
  expect(created.state.note).toMatch(/every 90d/);
  expect(created.memo).toMatchObject({ site, every: '90d' });

  // Started again (the next worker start), with a monthly cron: the same schedule, updated.
  const monthly = withDrill(stack.config, { enabled: true, every: '31d', cron: '0 6 1 * *', completeWithin: '10m' });
  await expect(ensureRecallDrillSchedules(stack.client, monthly)).resolves.toEqual([scheduleId]);
  const updated = await handle.describe();
  expect(updated.spec.intervals ?? []).toEqual([]);
  expect(updated.spec.calendars?.length ?? 0).toBeGreaterThan(0);
  expect((updated.action as { args: RecallDrillInput[] }).args[0]).toMatchObject({ completeWithin: '10m' });
  expect(updated.state.note).toMatch(/cron 0 6 1 \* \*/);

  // Triggered now, as the schedule would on its day: a drill of the site's supplier lot.
  await handle.trigger();
  const action = await eventually('the triggered drill', async () => (await handle.describe()).info.recentActions[0]);
  const drill = stack.client.workflow.getHandle(action.action.workflow.workflowId);
  const result = (await drill.result()) as RecallDrillResult;
  expect(result).toMatchObject({ site, state: 'passed', escalations: [] });
  // The time the schedule says it was due (its search attribute keeps whole seconds).
  expect(Date.parse(result.scheduledAt)).toBe(Math.floor(action.scheduledAt.getTime() / 1000) * 1000);

  const qe = await bearerFor({ username: 'qe-drill', roles: ['quality-engineer'], sites: [site] }, stack.signingKey);
  const listed = await stack.api.inject({ method: 'GET', url: `/v1/recalls?site=${site}&kind=mock`, headers: qe });
  expect(listed.statusCode).toBe(200);
  const [recall, ...others] = listed.json<{
    recalls: {
      recallId: string;
      origin: string;
      requestedBy: string;
      score: { passed: boolean; traceMs: number };
      stages: { name: string; state: string; durationMs?: number }[];
      drill: { scheduleId: string; scheduledAt: string; state: string; durationMs: number; completeWithinMs: number };
    }[];
  }>().recalls;
  expect(others).toEqual([]);
  expect(recall).toMatchObject({
    recallId: result.recallId,
    origin: 'drill',
    requestedBy: `schedule:${scheduleId}`,
    score: { passed: true },
    drill: {
      scheduleId,
      scheduledAt: result.scheduledAt,
      state: 'passed',
      durationMs: result.durationMs,
      completeWithinMs: 10 * 60_000,
    },
  });
  const timed = recall!.stages.filter((s) => s.state === 'done');
  expect(timed.map((s) => s.name)).toEqual(['trace', 'classify', 'reconcile']);
  for (const s of timed) expect(s.durationMs).toBeGreaterThanOrEqual(0);

  // The site stops drilling: its schedule goes.
  await expect(ensureRecallDrillSchedules(stack.client, withDrill(stack.config, undefined))).resolves.toEqual([]);
  await expect(handle.describe()).rejects.toThrow(ScheduleNotFoundError);
}, 180_000);
