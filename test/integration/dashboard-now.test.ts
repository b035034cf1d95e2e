/**
 * The dashboard's Now view and live updates (docs/dashboard.md#now, #live-updates) against real PostgreSQL: the
 * figures of GET /v1/dashboard/now against hand counts of seeded rows (a site of this test's own, so nothing else
 * counts), site authorisation, and GET /v1/live's server-sent events from the triggers of 0024_live_events.sql.
 */
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { createServer, get as httpGet, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { buildApp } from '../../api/app';
import type { LiveEvent, NowResponse } from '../../api/schemas/dashboard.schema';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { HealthCheckError } from '../../infra/observability/health-checks';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import {
  CHANGEOVER_WORKFLOW_TYPE,
  type ChangeoverControl,
  createTemporalChangeoverControl,
} from '../../infra/temporal/changeover-starter';
import { SearchAttributes } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().slice(0, 8);
/** A site of this test's own (PLANT1's lines and policy), so that its counts are the seeded rows and nothing else. */
const SITE = `DASH${run}`;
const HOUR = 3_600_000;
const base = loadConfig();
const plant1 = base.sites.find((s) => s.id === 'PLANT1')!;

/** A changeover control that is never asked to do anything but list (the fallback test replaces that). */
const noChangeovers: ChangeoverControl = {
  orderStarted: () => Promise.reject(new Error('not used')),
  start: () => Promise.reject(new Error('not used')),
  view: () => Promise.reject(new Error('not used')),
  approveFirstArticle: () => Promise.reject(new Error('not used')),
  cancel: () => Promise.reject(new Error('not used')),
};

/** Temporal is not asked: every read of the Now view comes from PostgreSQL. */
const gateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`unexpected Temporal call ${String(name)}`)),
});

let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
let healthServer: Server;
let appConfig: HoldfastConfig;
let seq = 0;

/** Stands in for the worker's /health: MES up, ERP down (the shapes infra/observability/health-route.ts answers). */
function startHealthServer(): Promise<Server> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.statusCode = 503;
    res.end(
      JSON.stringify({
        status: 503,
        checks: {
          'connector:mes-sim': { ok: true, required: false, detail: 'answered in 3 ms' },
          'connector:sap-sim': { ok: false, required: false, detail: 'down (ECONNREFUSED)' },
        },
      }),
    );
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function inspection(overrides: Record<string, unknown> = {}) {
  seq += 1;
  return {
    eventId: `${run}-ev-${String(seq).padStart(3, '0')}`,
    site: SITE,
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}`,
    sku: 'BRKT-200',
    lotId: `${run}-LOT-1`,
    workOrder: '1000100',
    result: 'fail',
    defects: [
      { class: 'scratch', score: 0.9 },
      { class: 'dent', score: 0.8 },
      { class: 'scratch', score: 0.7 },
    ],
    modelVersion: 'm-1',
    recipeVersion: 'R-1',
    inspectedAt: new Date(Date.UTC(2026, 11, 1, 8, 0, seq)).toISOString(),
    ...overrides,
  };
}

async function http(path: string, headers?: Record<string, string>) {
  const res = await fetch(`${baseUrl}${path}`, { headers: headers ?? (await asAdmin()) });
  const body: unknown = await res.json();
  return { status: res.status, body };
}

async function post(results: Record<string, unknown>[]): Promise<void> {
  const res = await fetch(`${baseUrl}/v1/inspections`, {
    method: 'POST',
    headers: { ...(await asAdmin()), 'content-type': 'application/json' },
    body: JSON.stringify({ results }),
  });
  expect(res.status).toBe(202);
}

async function openStreams(): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const m = /^holdfast_api_live_streams (\d+)$/m.exec(text);
  if (!m) throw new Error('holdfast_api_live_streams is not on /metrics');
  return Number(m[1]);
}

/** An open GET /v1/live: its events as they arrive, parsed from the raw text/event-stream. */
async function openLive(query: string, headers?: Record<string, string>) {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}/v1/live?${query}`, {
    headers: headers ?? (await asAdmin()),
    signal: abort.signal,
  });
  const events: { type: string; data: LiveEvent }[] = [];
  const comments: string[] = [];
  let retry: number | undefined;
  let ended = false;
  const reading = (async () => {
    if (!res.body || res.status !== 200) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = (await reader.read()) as { value?: Uint8Array; done: boolean };
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('retry: ')) retry = Number(line.slice(7));
            else if (line.startsWith('event: ')) type = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) events.push({ type, data: JSON.parse(data.join('\n')) as LiveEvent });
        }
      }
    } catch {
      // aborted by the test
    }
    ended = true;
  })();
  return {
    res,
    events,
    comments,
    retry: () => retry,
    ended: () => ended,
    close: async () => {
      abort.abort();
      await reading;
    },
    reading,
  };
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  healthServer = await startHealthServer();
  const healthUrl = `http://127.0.0.1:${(healthServer.address() as AddressInfo).port}/health`;
  appConfig = {
    ...base,
    sites: [...base.sites, { ...plant1, id: SITE }],
    api: {
      ...base.api,
      dashboard: {
        ...base.api.dashboard,
        healthEndpoints: [
          { name: 'MES', url: healthUrl, check: 'connector:mes-sim' },
          { name: 'ERP', url: healthUrl, check: 'connector:sap-sim' },
          // Nothing listens on port 9 of loopback: unreachable.
          { name: 'PLC', url: 'http://127.0.0.1:9/health', check: 'reject-station' },
        ],
      },
    },
  };
  app = await buildApp({
    signingKey: await testSigningKey(),
    pool,
    gateway,
    config: appConfig,
    namespace: 'holdfast-test-ns',
    metrics: new Registry(),
    healthChecks: [
      {
        name: 'temporal',
        required: false,
        check: () => Promise.reject(new HealthCheckError('not connected yet (retrying in the background)')),
      },
    ],
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  // fetch's pool may keep a connection that never sent a request (after a stream the server ended), which the server's
  // close would wait out for its headers timeout; the graceful close itself is tested on an app of its own below.
  const closing = app?.close();
  app?.server.closeAllConnections();
  await closing;
  await new Promise((resolve) => healthServer?.close(resolve));
  if (pool) {
    await pool.query(`DELETE FROM holdfast.lot_case WHERE site = $1`, [SITE]);
    await pool.query(`DELETE FROM holdfast.recall_drill WHERE site = $1`, [SITE]);
    await pool.query(`DELETE FROM holdfast.recall WHERE site = $1`, [SITE]);
    await pool.query(`DELETE FROM holdfast.station_assignment WHERE site = $1`, [SITE]);
    await pool.query(
      `DELETE FROM holdfast.outbox WHERE event_id IN (SELECT event_id FROM holdfast.inspection
                                                                      WHERE site = $1)`,
      [SITE],
    );
    await pool.query(`DELETE FROM holdfast.inspection WHERE site = $1`, [SITE]);
    await pool.end();
  }
});

describe('GET /v1/dashboard/now', () => {
  const now = Date.now();
  const ago = (ms: number) => new Date(now - ms).toISOString();
  const lot = (n: string) => `${run}-LOT-${n}`;
  const seeded = [
    // line, lot, stage, opened, state extras, closed
    { line: 'L1', lot: lot('A'), stage: 'awaiting-disposition', opened: ago(5 * HOUR), state: {} },
    {
      line: 'L1',
      lot: lot('B'),
      stage: 'needs-attention',
      opened: ago(1 * HOUR),
      state: {
        failures: [
          { step: 'mes-hold', errorType: 'x', message: 'm', at: ago(HOUR) },
          { step: 'erp-block', errorType: 'x', message: 'm', at: ago(HOUR) },
          { step: 'mes-hold', errorType: 'x', message: 'm', at: ago(HOUR) },
        ],
      },
    },
    {
      line: 'L1',
      lot: lot('C'),
      stage: 'awaiting-second-signature',
      opened: ago(6 * HOUR),
      state: { decision: { decision: 'use-as-is', reason: 'r', decidedBy: 'qe', requestId: 'q', signatures: [] } },
    },
    { line: 'L1', lot: lot('D'), stage: 'closed', opened: ago(9 * HOUR), state: {}, closed: ago(HOUR) },
    { line: 'L2', lot: lot('E'), stage: 'awaiting-disposition', opened: ago(10 * HOUR), state: {} },
  ];
  /** Failed production inspections, a passed one and a shadow station's failure (not a defect here). */
  const failedL1 = Array.from({ length: 22 }, () => inspection());
  const failedL2 = [inspection({ line: 'L2' }), inspection({ line: 'L2' })];
  const passed = inspection({ result: 'pass', defects: [] });

  beforeAll(async () => {
    for (const c of seeded) {
      await pool.query(
        `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, state, opened_at,
                                        closed_at)
         VALUES ($1, 'run-1', $2, $3, $4, 'BRKT-200', $5, $6::jsonb, $7, $8)`,
        [`lot-case-${c.lot}`, SITE, c.line, c.lot, c.stage, JSON.stringify(c.state), c.opened, c.closed ?? null],
      );
    }
    const recall = (id: string, kind: string, state: string, createdAt: string) =>
      pool.query(
        `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key,
                                      request_sha256, workflow_id, state, created_at)
         VALUES ($1, $2, $3, '{}', 'r', 'qm', $1, 'x', $4, $5, $6)`,
        [id, SITE, kind, `recall-${id}`, state, createdAt],
      );
    await recall(`${run}-R1`, 'real', 'running', ago(3 * HOUR));
    await recall(`${run}-M1`, 'mock', 'running', ago(2 * HOUR));
    await recall(`${run}-M2`, 'mock', 'completed', ago(8 * HOUR));
    await recall(`${run}-DR`, 'mock', 'running', ago(HOUR / 2));
    await pool.query(
      `INSERT INTO holdfast.recall_drill (drill_id, site, schedule_id, workflow_id, scheduled_at, recall_id,
                                          complete_within_ms, started_at)
       VALUES ($1, $2, 'drill', $3, $4, $5, 480000, $4)`,
      [`${run}-D1`, SITE, `drill-${run}`, ago(HOUR / 2), `${run}-DR`],
    );
    for (const [station, prepared] of [
      ['S1', true],
      ['S2', false],
    ] as const) {
      await pool.query(
        `INSERT INTO holdfast.station_assignment (site, line, station, changeover_id, work_order, sku, recipe_version,
                                                  model_name, model_version, armed_at, prepared_at, model_sha256)
         VALUES ($1, 'L1', $2, $3, 'WO-9', 'BRKT-200', 'R-2', 'm', '2', $4, $5, $6)`,
        [
          SITE,
          station,
          `changeover-${SITE}-L1-WO-9`,
          ago(HOUR / 4),
          prepared ? ago(HOUR / 5) : null,
          prepared ? 'a'.repeat(64) : null,
        ],
      );
    }
    await post([...failedL1, ...failedL2, passed]);
    await pool.query(
      `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                        defects, model_version, recipe_version, inspected_at, payload_sha256, mode)
       VALUES ($1, $2, 'L1', 'S9', 'P-shadow', 'BRKT-200', $3, '1000100', 'fail', '[{"class":"burr"}]', 'm', 'r',
               '2026-12-01T09:00:00Z', 'x', 'shadow')`,
      [`${run}-shadow`, SITE, lot('1')],
    );
  });

  it('counts open lot cases by stage against the deadline, with parked steps, running work, backlogs and defects', async () => {
    const backlogBefore = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM holdfast.outbox WHERE dispatched_at IS NULL`,
    );
    const res = await http(`/v1/dashboard/now?site=${SITE}`);
    expect(res.status).toBe(200);
    const body = res.body as NowResponse;

    // By hand: A, B, C and E are open (D is closed); A (5 h) and E (10 h) are past PLANT1's 4 h without a decision,
    // C (6 h) has a decision, so no deadline applies to it.
    expect(body.lotCases.open).toBe(4);
    expect(body.lotCases.overdue).toBe(2);
    expect(body.lotCases.byStage).toEqual([
      { stage: 'awaiting-disposition', count: 2 },
      { stage: 'awaiting-second-signature', count: 1 },
      { stage: 'needs-attention', count: 1 },
    ]);
    expect(body.lotCases.items.map((c) => c.lotId)).toEqual([lot('E'), lot('C'), lot('A'), lot('B')]);
    const byLot = Object.fromEntries(body.lotCases.items.map((c) => [c.lotId, c]));
    expect(byLot[lot('A')]).toMatchObject({
      stage: 'awaiting-disposition',
      overdue: true,
      dispositionDueAt: new Date(now - 5 * HOUR + 4 * HOUR).toISOString(),
      parkedSteps: [],
      temporalUiUrl: `${base.api.temporalUiUrl.replace(/\/+$/, '')}/namespaces/holdfast-test-ns/workflows/lot-case-${lot('A')}/run-1`,
    });
    expect(Math.abs(byLot[lot('A')]!.ageSeconds - 5 * 3600)).toBeLessThanOrEqual(5);
    expect(byLot[lot('B')]).toMatchObject({ overdue: false, parkedSteps: ['mes-hold', 'erp-block'] });
    expect(byLot[lot('C')]).toMatchObject({ overdue: false, dispositionDueAt: null });

    // A drill's own mock recall shows as the drill; the completed mock recall is not running.
    expect(body.running.map((r) => [r.kind, r.id, r.stage])).toEqual([
      ['changeover', 'WO-9', 'preparing'],
      ['recall', `${run}-R1`, 'running'],
      ['mock-recall', `${run}-M1`, 'running'],
      ['recall-drill', `${run}-DR`, 'recalling'],
    ]);
    expect(body.running[0]).toMatchObject({ line: 'L1', workflowId: `changeover-${SITE}-L1-WO-9` });

    expect(Object.fromEntries(body.connectors.map((c) => [c.name, c.status]))).toEqual({
      PostgreSQL: 'up',
      Temporal: 'down',
      MES: 'up',
      ERP: 'down',
      PLC: 'unknown',
      'MQTT broker': 'unknown',
    });

    const backlogAfter = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM holdfast.outbox WHERE dispatched_at IS NULL`,
    );
    expect(backlogAfter.rows[0]!.n).toBe(backlogBefore.rows[0]!.n);
    expect(body.backlogs.outboxPending).toBe(Number(backlogAfter.rows[0]!.n));
    // Every failed inspection posted above waits in the outbox (no dispatcher runs here).
    expect(body.backlogs.outboxPending).toBeGreaterThanOrEqual(failedL1.length + failedL2.length);
    expect(body.backlogs.outboxOldestAgeSeconds).not.toBeNull();
    const deferred = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM holdfast.frame_deferred`);
    expect(body.backlogs.deferredFrames).toBe(Number(deferred.rows[0]!.n));

    // The 20 latest failed production inspections, newest first: by hand from what was posted.
    const expected = [...failedL1, ...failedL2]
      .sort((a, b) => b.inspectedAt.localeCompare(a.inspectedAt) || b.eventId.localeCompare(a.eventId))
      .slice(0, 20);
    expect(body.latestDefects.map((d) => d.eventId)).toEqual(expected.map((e) => e.eventId));
    expect(body.latestDefects[0]).toEqual({
      eventId: expected[0]!.eventId,
      line: expected[0]!.line,
      station: 'S1',
      lotId: expected[0]!.lotId,
      partId: expected[0]!.partId,
      defectClasses: ['scratch', 'dent'],
      inspectedAt: expected[0]!.inspectedAt,
    });
  });

  it('lists running changeovers from Temporal, and from PostgreSQL when Temporal cannot answer in time', async () => {
    const { temporalAddress, namespace } = readTestEnv();
    const connection = await Connection.connect({ address: temporalAddress });
    const client = new Client({ connection, namespace });
    const workflowId = `changeover-${SITE}-L2-WO-T${run}`;
    // No worker polls this queue: the execution stays running with the stage it was started with.
    const handle = await client.workflow.start(CHANGEOVER_WORKFLOW_TYPE, {
      workflowId,
      taskQueue: `dashboard-${run}`,
      args: [{}],
      typedSearchAttributes: [
        { key: SearchAttributes.site, value: SITE },
        { key: SearchAttributes.line, value: 'L2' },
        { key: SearchAttributes.workOrder, value: [`WO-T${run}`] },
        { key: SearchAttributes.changeoverState, value: 'first-article' },
      ],
    });
    const withTemporal = await buildApp({
      signingKey: await testSigningKey(),
      pool,
      gateway,
      config: appConfig,
      namespace,
      changeovers: createTemporalChangeoverControl(client, appConfig, { taskQueue: `dashboard-${run}` }),
    });
    // Temporal hangs: the view waits 300 ms for it, then shows what PostgreSQL knows.
    const hung = await buildApp({
      signingKey: await testSigningKey(),
      pool,
      gateway,
      config: appConfig,
      namespace,
      changeovers: { ...noChangeovers, running: () => new Promise<never>(() => undefined) },
    });
    const now = async (target: FastifyInstance) => {
      const res = await target.inject({
        method: 'GET',
        url: `/v1/dashboard/now?site=${SITE}`,
        headers: await asAdmin(),
      });
      expect(res.statusCode).toBe(200);
      return res.json<NowResponse>().running.filter((r) => r.kind === 'changeover');
    };
    try {
      // Visibility is eventually consistent: the started execution is listed within moments.
      const listed = await eventually('the changeover in Temporal’s list', async () => {
        const found = await now(withTemporal);
        return found.length > 0 ? found : undefined;
      });
      expect(listed.map((c) => [c.id, c.line, c.stage, c.workflowId])).toEqual([
        [`WO-T${run}`, 'L2', 'first-article', workflowId],
      ]);
      const started = Date.now();
      expect((await now(hung)).map((c) => [c.id, c.stage])).toEqual([['WO-9', 'preparing']]);
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      await handle.terminate('test done').catch(() => undefined);
      await withTemporal.close();
      await hung.close();
      await connection.close();
    }
  });

  it('narrows to a line: its lot cases, changeovers and defects; recalls and drills stay the site’s', async () => {
    const res = await http(`/v1/dashboard/now?site=${SITE}&line=L2`);
    expect(res.status).toBe(200);
    const body = res.body as NowResponse;
    expect(body.line).toBe('L2');
    expect(body.lotCases).toMatchObject({
      open: 1,
      overdue: 1,
      byStage: [{ stage: 'awaiting-disposition', count: 1 }],
    });
    expect(body.running.map((r) => r.kind)).toEqual(['recall', 'mock-recall', 'recall-drill']);
    expect(body.latestDefects.map((d) => d.eventId)).toEqual(
      failedL2.map((e) => e.eventId).sort((a, b) => b.localeCompare(a)),
    );
  });

  it('refuses a reader of another site (403), an unknown site or line (404) and a bad query (400)', async () => {
    const elsewhere = await bearerFor({ roles: ['quality-engineer'], sites: ['PLANT2'] });
    expect((await http(`/v1/dashboard/now?site=${SITE}`, elsewhere)).status).toBe(403);
    const operator = await bearerFor({ roles: ['operator'], sites: [SITE] });
    expect((await http(`/v1/dashboard/now?site=${SITE}`, operator)).status).toBe(200);
    expect((await http(`/v1/dashboard/now?site=NOSUCH${run}`)).status).toBe(404);
    expect((await http(`/v1/dashboard/now?site=${SITE}&line=L99`)).status).toBe(404);
    const bad = await http(`/v1/dashboard/now?site=${SITE}&extra=1`);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toContain('querystring');
    expect((await http(`/v1/dashboard/now`, {})).status).toBe(401);
  });

  it('reads its lists by index', async () => {
    // Planner choices on a small table prove little; with sequential scans off, a missing index shows as one.
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL enable_seqscan = off');
      const plan = async (sql: string, params: unknown[]) =>
        (await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows
          .map((r) => r['QUERY PLAN'])
          .join('\n');
      expect(
        await plan(
          `SELECT event_id FROM holdfast.inspection WHERE site = $1 AND result = 'fail' AND mode = 'production'
            ORDER BY inspected_at DESC, event_id DESC LIMIT 20`,
          [SITE],
        ),
      ).toMatch(/inspection_failed_site_idx/);
      expect(
        await plan(
          `SELECT event_id FROM holdfast.inspection
            WHERE site = $1 AND line = $2 AND result = 'fail' AND mode = 'production'
            ORDER BY inspected_at DESC, event_id DESC LIMIT 20`,
          [SITE, 'L1'],
        ),
      ).toMatch(/inspection_failed_line_idx/);
      expect(
        await plan(`SELECT * FROM holdfast.lot_case WHERE site = $1 AND closed_at IS NULL ORDER BY opened_at`, [SITE]),
      ).toMatch(/lot_case_open_idx/);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
  });
});

describe('GET /v1/live', () => {
  it('streams a posted defect as an inspections event within 2 s, only to subscribers of its site and line', async () => {
    const l1 = await openLive(`site=${SITE}&line=L1`);
    const l2 = await openLive(`site=${SITE}&line=L2`);
    try {
      expect(l1.res.status).toBe(200);
      expect(l1.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      await eventually('the retry hint', () => l1.retry() !== undefined);
      expect(l1.retry()).toBeGreaterThan(0);
      expect(await openStreams()).toBe(2);

      const defect = inspection({ line: 'L1', inspectedAt: new Date().toISOString() });
      const posted = Date.now();
      await post([defect, inspection({ line: 'L1', result: 'pass', defects: [] })]);
      const event = await eventually(
        'the inspections event of the posted defect',
        () =>
          l1.events.find(
            (e) => e.data.type === 'inspections' && e.data.defects.some((d) => d.eventId === defect.eventId),
          ),
        { timeoutMs: 2_000 },
      );
      expect(Date.now() - posted).toBeLessThan(2_000);
      expect(event.type).toBe('inspections');
      expect(event.data).toEqual({
        type: 'inspections',
        site: SITE,
        lines: ['L1'],
        inspections: 2,
        failed: 1,
        defects: [
          {
            eventId: defect.eventId,
            line: 'L1',
            station: 'S1',
            lotId: defect.lotId,
            partId: defect.partId,
            defectClasses: ['scratch', 'dent'],
            inspectedAt: defect.inspectedAt,
          },
        ],
      });

      // A lot case opening on L1: an event for L1's page.
      await pool.query(
        `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, state)
         VALUES ($1, 'run-1', $2, 'L1', $3, 'BRKT-200', 'containing', '{}')`,
        [`lot-case-${run}-LOT-LIVE`, SITE, `${run}-LOT-LIVE`],
      );
      await pool.query(`UPDATE holdfast.lot_case SET stage = 'awaiting-disposition' WHERE workflow_id = $1`, [
        `lot-case-${run}-LOT-LIVE`,
      ]);
      await eventually('the lot case events', () =>
        l1.events.some((e) => e.data.type === 'lot-case' && e.data.stage === 'awaiting-disposition'),
      );
      expect(l1.events.filter((e) => e.type === 'lot-case').map((e) => e.data)).toEqual([
        { type: 'lot-case', site: SITE, line: 'L1', lotId: `${run}-LOT-LIVE`, stage: 'containing' },
        { type: 'lot-case', site: SITE, line: 'L1', lotId: `${run}-LOT-LIVE`, stage: 'awaiting-disposition' },
      ]);
      // L2's subscriber heard nothing of L1.
      expect(l2.events).toEqual([]);
    } finally {
      await l1.close();
      await l2.close();
    }
    await eventually('both streams closed on the server', async () => (await openStreams()) === 0);
  });

  it('keeps a statement of 20 failures with long identifiers under the NOTIFY limit, counting them all', async () => {
    const live = await openLive(`site=${SITE}`);
    try {
      await eventually('the stream open', () => live.retry() !== undefined);
      const long = (n: number) => `${run}-${'x'.repeat(180)}-${n}`;
      const rows = Array.from({ length: 20 }, (_, n) => [
        long(n),
        SITE,
        long(n),
        long(n),
        new Date(Date.UTC(2026, 11, 2, 0, 0, n)).toISOString(),
      ]);
      await pool.query(
        `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                          defects, model_version, recipe_version, inspected_at, payload_sha256)
         SELECT r[1], r[2], 'L1', 'S1', r[3], 'BRKT-200', r[4], '1000100', 'fail', '[{"class":"scratch"}]', 'm', 'r',
                r[5]::timestamptz, 'x'
           FROM jsonb_array_elements($1::jsonb) AS j,
                LATERAL (SELECT ARRAY(SELECT jsonb_array_elements_text(j))) AS a (r)`,
        [JSON.stringify(rows)],
      );
      const event = await eventually('the long batch event', () =>
        live.events.find((e) => e.data.type === 'inspections' && e.data.failed === 20),
      );
      if (event.data.type !== 'inspections') throw new Error('not an inspections event');
      expect(event.data.inspections).toBe(20);
      expect(event.data.defects.length).toBeGreaterThan(0);
      expect(event.data.defects.length).toBeLessThan(20);
      // Newest first, whatever was left out.
      expect(event.data.defects[0]!.eventId).toBe(long(19));
      expect(Buffer.byteLength(JSON.stringify(event.data))).toBeLessThan(8_000);
    } finally {
      await live.close();
    }
  });

  it('refuses a reader of another site (403) and an unknown site (404) without opening a stream', async () => {
    const elsewhere = await bearerFor({ roles: ['auditor'], sites: ['PLANT2'] });
    const refused = await openLive(`site=${SITE}`, elsewhere);
    expect(refused.res.status).toBe(403);
    expect(refused.res.headers.get('content-type')).toMatch(/problem\+json/);
    await refused.close();
    const unknown = await openLive(`site=NOSUCH${run}`);
    expect(unknown.res.status).toBe(404);
    await unknown.close();
    expect(await openStreams()).toBe(0);
  });

  it('ends open streams when the LISTEN connection drops (events would be lost), and serves new ones after', async () => {
    const live = await openLive(`site=${SITE}`);
    await eventually('the stream open', () => live.retry() !== undefined);
    const killed = await pool.query<{ killed: boolean }>(
      `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
        WHERE datname = current_database() AND query = 'LISTEN holdfast_live'`,
    );
    expect(killed.rows.map((r) => r.killed)).toEqual([true]);
    await eventually('the client saw the stream end', () => live.ended(), { timeoutMs: 5_000 });
    await live.close();
    expect(await openStreams()).toBe(0);

    // The listener reconnects on its own (250 ms, doubling); a stream opened after gets events again.
    await eventually('the LISTEN connection back', async () => {
      const { rows } = await pool.query(
        `SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN holdfast_live'`,
      );
      return rows.length === 1;
    });
    const again = await openLive(`site=${SITE}`);
    try {
      await eventually('the stream open', () => again.retry() !== undefined);
      const defect = inspection({ inspectedAt: new Date().toISOString() });
      await post([defect]);
      await eventually(
        'the defect on the new stream',
        () => again.events.some((e) => e.data.type === 'inspections' && e.data.defects[0]?.eventId === defect.eventId),
        { timeoutMs: 2_000 },
      );
    } finally {
      await again.close();
    }
  });

  it('ends open streams when the app closes, so a graceful shutdown does not wait on them', async () => {
    // An app of its own, and node:http without an agent: a connection another test's client left open without a
    // request (fetch's pool) would hold any HTTP server's close until its headers timeout, whatever the routes do.
    const own = await buildApp({
      signingKey: await testSigningKey(),
      pool,
      gateway,
      config: appConfig,
      namespace: 'holdfast-test-ns',
    });
    await own.listen({ host: '127.0.0.1', port: 0 });
    const url = new URL(`http://127.0.0.1:${(own.server.address() as AddressInfo).port}/v1/live?site=${SITE}`);
    const headers = await asAdmin();
    const received: string[] = [];
    let ended = false;
    await new Promise<void>((resolve, reject) => {
      const req = httpGet(url, { agent: false, headers }, (res) => {
        expect(res.statusCode).toBe(200);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received.push(chunk);
          resolve();
        });
        res.on('end', () => (ended = true));
        res.on('error', () => (ended = true));
      });
      req.on('error', reject);
    });
    expect(received.join('')).toMatch(/^retry: \d+/);
    const started = Date.now();
    await own.close();
    expect(Date.now() - started).toBeLessThan(3_000);
    await eventually('the client saw the stream end', () => ended, { timeoutMs: 5_000 });
  });
});
