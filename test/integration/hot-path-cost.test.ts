/**
 * What one worst-case defect (one failed part, a lot of its own) costs the stack, counted from the real run: the
 * histories of every workflow it touched (events, workflow tasks, visibility writes), the HTTP calls to the MES and
 * ERP simulators, and Holdfast's own PostgreSQL statements. BENCHMARKS.md ("Cost of one worst-case defect") reports
 * these figures; the bounds below keep them from creeping back up.
 */
import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import type { temporal } from '@temporalio/proto';
import type { PoolClient } from 'pg';
import { loadConfig } from '../../infra/config/load';
import { lotCaseWorkflowId } from '../../workflows/contracts';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { eventually } from '../support/eventually';
import { createLot, failedInspection } from '../support/plant';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

/** Holdfast's own pool, whose statements are counted; the simulators and this test's reads use `others`. */
const pool = testPool();
const others = testPool();
const suffix = randomBytes(4).toString('hex');
let stack: HoldfastStack;

const statements: string[] = [];
let counting = false;
pool.on('connect', (client: PoolClient) => {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    const first = args[0];
    const text = typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '');
    if (counting) statements.push(text.replace(/\s+/g, ' ').trim().slice(0, 90));
    return query(...args);
  };
});

/**
 * Calls from the connectors to the simulators, as `METHOD path`; the tests' own set-up calls (`/__sim`) excluded.
 * Node announces every client request on this diagnostics channel, whatever HTTP client the connector uses.
 */
const httpCalls: string[] = [];
const onRequest = (message: unknown) => {
  const request = (message as { request: ClientRequest }).request;
  const origin = `${request.protocol}//${String(request.getHeader('host'))}`;
  const url = new URL(request.path, origin);
  if (counting && stack && !url.pathname.includes('/__') && [stack.mesUrl, stack.sapUrl].includes(url.origin)) {
    httpCalls.push(
      `${url.origin === stack.mesUrl ? 'MES' : 'ERP'} ${request.method} ${url.pathname}${url.search ? '?…' : ''}`,
    );
  }
};
subscribe('http.client.request.start', onRequest);

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  const base = loadConfig();
  // Only NOTIFY wakes the dispatcher, so its idle polls are not counted as the defect's.
  const config = { ...base, outbox: { ...base.outbox, pollInterval: '1h' } };
  stack = await startHoldfastStack({
    pool,
    simulatorPool: others,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config,
    schemaSuffix: suffix,
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await pool.end();
  await others.end();
  unsubscribe('http.client.request.start', onRequest);
});

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

async function historyOf(workflowId: string): Promise<HistoryEvent[]> {
  try {
    return (await stack.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  } catch {
    return [];
  }
}

test('one worst-case defect: its workflows, visibility writes, MES/ERP calls and PostgreSQL statements', async () => {
  const lotId = `L-COST-${suffix}`;
  await createLot(stack, { lotId });
  // The dispatcher's first drains run at its start: let them pass, so that only the defect's own work is counted.
  await eventually('the dispatcher listening', async () => {
    const { rows } = await others.query(
      `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN holdfast_outbox'`,
    );
    return rows.length > 0 ? true : undefined;
  });
  await new Promise((r) => setTimeout(r, 500));
  const inspection = failedInspection(lotId);
  const lotCaseId = lotCaseWorkflowId('PLANT1', lotId);

  counting = true;
  const res = await stack.api.inject({
    headers: stack.adminHeaders,
    method: 'POST',
    url: '/v1/inspections',
    payload: inspection,
  });
  expect(res.statusCode).toBe(202);
  await eventually('the lot case awaiting its disposition', async () => {
    const { rows } = await others.query<{ stage: string }>(
      'SELECT stage FROM holdfast.lot_case WHERE workflow_id = $1',
      [lotCaseId],
    );
    return rows[0]?.stage === 'awaiting-disposition' ? true : undefined;
  });
  const defectId = `defect-${inspection.eventId}`;
  await eventually('every workflow of the part done with its work', async () => {
    const defect = await historyOf(defectId);
    return defect.length === 0 || defect.some((e) => e.workflowExecutionCompletedEventAttributes) ? true : undefined;
  });
  // Let the dispatcher's commit and any trailing write land before reading the counters.
  await new Promise((r) => setTimeout(r, 1_000));
  counting = false;

  const workflows = Object.fromEntries(
    (await Promise.all([defectId, lotCaseId].map(async (id) => [id, await historyOf(id)] as const))).filter(
      ([, events]) => events.length > 0,
    ),
  );
  const all = Object.values(workflows).flat();
  const count = (has: (e: HistoryEvent) => unknown) => all.filter((e) => has(e)).length;
  const cost = {
    workflows: Object.keys(workflows).length,
    historyEvents: all.length,
    workflowTasks: count((e) => e.workflowTaskCompletedEventAttributes),
    markers: count((e) => e.markerRecordedEventAttributes),
    visibilityWrites: {
      starts: count((e) => e.workflowExecutionStartedEventAttributes),
      upserts: count((e) => e.upsertWorkflowSearchAttributesEventAttributes),
      closes: count((e) => e.workflowExecutionCompletedEventAttributes),
    },
    http: httpCalls,
    postgres: statements,
  };
  process.stdout.write(`hot-path cost: ${JSON.stringify(cost, null, 2)}\n`);

  // One workflow, one workflow task: the lot case does everything for the part.
  expect(Object.keys(workflows)).toEqual([lotCaseId]);
  expect(cost.workflowTasks).toBe(1);
  // Started with its search attributes, one upsert when it reaches awaiting-disposition.
  expect(cost.visibilityWrites).toEqual({ starts: 1, upserts: 1, closes: 0 });
  // Record of the part, lot, hold, notification, block, work-order count, stage record.
  expect(cost.markers).toBe(7);
  expect(cost.historyEvents).toBeLessThanOrEqual(14);
  // Each create once (hold, quality event, notification, block), none after a look-up: the intent ledger knows they
  // are first attempts (docs/reliability.md#intent-ledger). The lot read is the one GET; a CSRF HEAD may come on top.
  expect(httpCalls.filter((c) => c.includes(' POST '))).toHaveLength(4);
  expect(httpCalls.filter((c) => c.includes(' GET '))).toEqual([`MES GET /api/v1/lots/${lotId}`]);
  expect(httpCalls.length).toBeLessThanOrEqual(6);
  // Ingest (5), the dispatcher's drain (5), the lot case's record of the part and its stage record (2), and for each
  // of the four creates its intent before the call and its outcome after (8). The caller's credentials cost at most
  // one read on top (a local token's account status, reused for 5 s; a machine key's look-up), counted apart.
  expect(statements.filter((s) => s.includes('INSERT INTO holdfast.intent'))).toHaveLength(4);
  expect(statements.filter((s) => s.startsWith('UPDATE holdfast.intent'))).toHaveLength(4);
  const credentials = statements.filter((s) => /FROM holdfast\.(user_account|api_key)\b/.test(s));
  expect(credentials.length).toBeLessThanOrEqual(1);
  expect(statements.length - credentials.length).toBeLessThanOrEqual(20);
});
