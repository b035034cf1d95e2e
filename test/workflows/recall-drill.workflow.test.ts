/**
 * Recall drills on Temporal's time-skipping test server, with the real activities over the jest run's PostgreSQL: a
 * small plant's genealogy of the test's own site, a drill that passes and is listed by GET /v1/recalls?kind=mock
 * with its timings, and a drill whose recall outlasts `completeWithin` (eight minutes skipped, not waited), which
 * escalates as overdue and, following the first drill by more than `every` plus grace, as missed too; and a drill of a
 * scope the genealogy does not know, which fails before its recall and is listed by GET /v1/recall-drills.
 */
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { createActivities } from '../../activities';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import { createRecallDrillStore } from '../../infra/recall/recall-drill-store';
import { createRecallStore } from '../../infra/recall/recall-store';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import type { RecallDrillInput, RecallDrillResult } from '../../workflows/contracts';
import { writeDrillPlant } from '../support/drill-plant';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { bearerFor, testSigningKey } from '../support/identity';
import { testPool } from '../support/test-env';
import { startTimeSkippingEnvironment } from '../support/time-skipping';
import { installQuietRuntime } from '../support/workflow-harness';

jest.setTimeout(120_000);

const run = randomUUID().slice(0, 8);
const site = `DRL-${run}`;
const plant = run.slice(0, 4).toUpperCase();
const base = loadConfig();
const config: HoldfastConfig = {
  ...base,
  // The drill's recall stages take skipped time in the overdue drill: the trace target is not what is tested here.
  sites: [
    { ...base.sites[0]!, id: site, erpPlant: plant, recall: { traceWithin: '30d', reconciliationAtLeast: 0.995 } },
  ],
  // One attempt of the held-back trace outlives the skipped eight minutes: no retry storm while it waits.
  activityPresets: {
    ...base.activityPresets,
    traceWrite: { ...base.activityPresets.traceWrite, startToCloseTimeout: '1h' },
  },
};

let env: TestWorkflowEnvironment;
let pool: Pool;
let app: FastifyInstance;
const escalation = new RecordingEscalation();
/** Holds the drill recall's trace back while set: the recall then outlasts the drill's `completeWithin`. */
let traceGate: Promise<void> | undefined;
let traceHeld = false;

beforeAll(async () => {
  installQuietRuntime();
  env = await startTimeSkippingEnvironment();
  pool = testPool();
  await writeDrillPlant(pool, { site, plant, run });
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) => () => Promise.reject(new Error(`listing recalls must not call the gateway (${String(name)})`)),
  });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'test' });
}, 600_000);

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await env?.teardown();
});

async function drillWorker() {
  const real = createActivities({
    pool,
    ledger: createPgIntentLedger(pool),
    mesFor: () => new FakeMes(),
    erpFor: () => new FakeErp(),
    escalationFor: () => ({ target: 'test-andon', port: escalation }),
    recalls: createRecallStore(pool),
    drills: createRecallDrillStore(pool, config, createAuditTrail(pool)),
  });
  const taskQueue = `drill-${randomUUID()}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath: require.resolve('../../workflows'),
    activities: {
      ...real,
      async traceRecall(input: Parameters<typeof real.traceRecall>[0]) {
        if (traceGate) {
          traceHeld = true;
          await traceGate;
        }
        return real.traceRecall(input);
      },
    },
  });
  return { worker, taskQueue };
}

const drillInput = (scheduledAt: string): RecallDrillInput => ({
  site,
  scheduleId: `recall-drill-${site}`,
  scheduledAt,
  scope: 'random-supplier-lot',
  completeWithin: '8m',
  missedAfter: '97d',
  preset: config.activityPresets.traceWrite,
});

test('a drill passes and is listed with its timings; a late one escalates overdue, and missed after a gap', async () => {
  const { worker, taskQueue } = await drillWorker();
  await worker.runUntil(async () => {
    // A drill on time: the supplier lot with genealogy is recalled, reconciles in full and passes.
    const first = (await env.client.workflow.execute('recallDrillWorkflow', {
      workflowId: `recall-drill-${site}-1`,
      taskQueue,
      args: [drillInput('2026-01-01T06:00:00.000Z')],
    })) as RecallDrillResult;
    expect(first).toMatchObject({ site, state: 'passed', escalations: [] });
    expect(first.recallId).toEqual(expect.any(String));
    expect(escalation.messages).toEqual([]);

    // 120 days later (every 90d + grace 7d exceeded), and its recall's trace held back past `completeWithin`.
    let release!: () => void;
    traceGate = new Promise<void>((r) => (release = r));
    const before = await env.currentTimeMs();
    const late = await env.client.workflow.start('recallDrillWorkflow', {
      workflowId: `recall-drill-${site}-2`,
      taskQueue,
      args: [drillInput('2026-05-01T06:00:00.000Z')],
    });
    const result = late.result() as Promise<RecallDrillResult>;
    await eventually('the late recall tracing', () => traceHeld);
    // The test server does not skip time while an activity runs: it is told to, past `completeWithin`.
    await env.sleep('9m');
    await eventually('the overdue escalation', () =>
      escalation.messages.find((m) => m.recallDrill?.reason === 'overdue'),
    );
    // Time the server skipped rather than waited: eight minutes of it, in far less of ours.
    expect((await env.currentTimeMs()) - before).toBeGreaterThanOrEqual(8 * 60_000);
    release();
    traceGate = undefined;
    const second = await result;
    expect(second).toMatchObject({ state: 'overdue', escalations: ['missed', 'overdue'] });
    expect(second.durationMs).toBeGreaterThanOrEqual(8 * 60_000);
    expect(escalation.messages.map((m) => [m.recallDrill?.reason, m.site, m.lotId, m.idempotencyKey])).toEqual([
      ['missed', site, '', `recall-drill:${second.drillId}:missed`],
      ['overdue', site, second.recallId, `recall-drill:${second.drillId}:overdue`],
    ]);
    expect(escalation.messages[0]!.text).toMatch(/previous drill was due 2026-01-01T06:00:00.000Z/);

    // What an auditor sees: both drills' recalls, newest first, with their stages' timings, scores and results.
    const qm = await bearerFor({ username: 'qm-drill', roles: ['quality-manager'], sites: [site] });
    const listed = await app.inject({ method: 'GET', url: `/v1/recalls?site=${site}&kind=mock`, headers: qm });
    expect(listed.statusCode).toBe(200);
    const { recalls } = listed.json<{
      recalls: {
        recallId: string;
        origin: string;
        requestedBy: string;
        state: string;
        score: { passed: boolean } | null;
        stages: { name: string; state: string; durationMs?: number; startedAt?: string; finishedAt?: string }[];
        drill: {
          drillId: string;
          scheduledAt: string;
          state: string;
          durationMs: number;
          escalations: { reason: string }[];
        };
      }[];
    }>();
    expect(recalls.map((r) => [r.recallId, r.origin, r.requestedBy, r.state, r.score?.passed])).toEqual([
      [second.recallId, 'drill', `schedule:recall-drill-${site}`, 'completed', true],
      [first.recallId, 'drill', `schedule:recall-drill-${site}`, 'completed', true],
    ]);
    expect(recalls.map((r) => [r.drill.drillId, r.drill.scheduledAt, r.drill.state])).toEqual([
      [second.drillId, '2026-05-01T06:00:00.000Z', 'overdue'],
      [first.drillId, '2026-01-01T06:00:00.000Z', 'passed'],
    ]);
    expect(recalls[0]!.drill.escalations.map((e) => e.reason)).toEqual(['missed', 'overdue']);
    expect(recalls[0]!.drill.durationMs).toBe(second.durationMs);
    for (const recall of recalls) {
      // The report stage stores the report while it runs: the stages before it are what it timed.
      expect(recall.stages.filter((s) => s.name !== 'report').map((s) => [s.name, s.state])).toEqual([
        ['trace', 'done'],
        ['classify', 'done'],
        ['reinspect', 'skipped'],
        ['contain', 'skipped'],
        ['notify', 'skipped'],
        ['reconcile', 'done'],
      ]);
      for (const s of recall.stages.filter((x) => x.state === 'done')) {
        expect(Date.parse(s.finishedAt!) - Date.parse(s.startedAt!)).toBe(s.durationMs);
      }
    }
    // The held-back trace took the skipped minutes, in workflow time.
    expect(recalls[0]!.stages[0]!.durationMs).toBeGreaterThanOrEqual(8 * 60_000);

    // A drill of a configured scope the genealogy does not know: it fails before it opens a recall, and escalates.
    const third = (await env.client.workflow.execute('recallDrillWorkflow', {
      workflowId: `recall-drill-${site}-3`,
      taskQueue,
      args: [{ ...drillInput('2026-06-01T06:00:00.000Z'), scope: { kind: 'lot-key', lotKey: `erp:${plant}/NONE/X` } }],
    })) as RecallDrillResult;
    expect(third).toMatchObject({ state: 'failed', recallId: null, escalations: ['failed'] });
    expect(escalation.messages.at(-1)!.text).toMatch(/names nothing in the genealogy/);

    // Every drill, the failed one too, as GET /v1/recall-drills lists them.
    const drills = await app.inject({ method: 'GET', url: `/v1/recall-drills?site=${site}&limit=2`, headers: qm });
    expect(drills.statusCode).toBe(200);
    const page = drills.json<{
      drills: {
        drillId: string;
        state: string;
        recallId: string | null;
        error: string | null;
        escalations: { reason: string; target: string }[];
        links: { recall: string | null };
      }[];
      next: string | null;
    }>();
    expect(page.drills.map((d) => [d.drillId, d.state, d.recallId, d.links.recall])).toEqual([
      [third.drillId, 'failed', null, null],
      [second.drillId, 'overdue', second.recallId, `/v1/recalls/${second.recallId}`],
    ]);
    expect(page.drills[0]!.error).toMatch(/names nothing in the genealogy/);
    expect(page.drills[1]!.escalations.map((e) => [e.reason, e.target])).toEqual([
      ['missed', 'test-andon'],
      ['overdue', 'test-andon'],
    ]);
    expect(page.next).toBe('2026-05-01T06:00:00.000Z');
    const rest = await app.inject({
      method: 'GET',
      url: `/v1/recall-drills?site=${site}&before=${encodeURIComponent(page.next!)}`,
      headers: qm,
    });
    expect(rest.json<{ drills: { drillId: string; state: string }[]; next: string | null }>()).toMatchObject({
      drills: [{ drillId: first.drillId, state: 'passed' }],
      next: null,
    });
  });
});
