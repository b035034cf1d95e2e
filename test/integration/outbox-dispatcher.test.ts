import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { type OutboxDispatcher, backoffForAttempt, startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import type {
  DefectLiveState,
  StartDefectOptions,
  WorkflowDescription,
  WorkflowGateway,
} from '../../infra/temporal/gateway';
import type {
  DefectWorkflowInput,
  DispositionOutcome,
  DispositionRequest,
  LotCaseState,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';

/**
 * Behaves like Temporal with USE_EXISTING: a second start of one workflow id returns the first run. `failing`
 * makes every start fail the way an unreachable frontend does.
 */
class StartRecordingGateway implements WorkflowGateway {
  readonly attempts: { eventId: string; ok: boolean; enrol: boolean }[] = [];
  readonly runs = new Map<string, string>();
  failing = false;

  async startDefectWorkflow(input: DefectWorkflowInput, opts: StartDefectOptions = {}) {
    const eventId = input.detection.eventId;
    const enrol = opts.enrol ?? true;
    const workflowId = `defect-${eventId}`;
    if (this.failing) {
      this.attempts.push({ eventId, ok: false, enrol });
      throw new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7233');
    }
    this.attempts.push({ eventId, ok: true, enrol });
    const existing = this.runs.get(workflowId);
    if (existing) return { workflowId, runId: existing, alreadyStarted: true };
    const runId = `run-${randomUUID()}`;
    this.runs.set(workflowId, runId);
    return { workflowId, runId, alreadyStarted: false };
  }
  async describe(_: string): Promise<WorkflowDescription | undefined> {
    return undefined;
  }
  async defectState(_: string): Promise<DefectLiveState | undefined> {
    return undefined;
  }
  async lotCaseState(_: string): Promise<LotCaseState | undefined> {
    return undefined;
  }
  async submitDisposition(_: string, __: DispositionRequest): Promise<DispositionOutcome> {
    throw new Error('not used');
  }
  async retryFailedStep(_: string, __: string): Promise<never> {
    throw new Error('not used by these tests');
  }

  /** Attempts for this file's events only: other suites may leave rows in the shared database. */
  mine(prefix: string) {
    return this.attempts.filter((a) => a.eventId.startsWith(prefix));
  }
}

const baseConfig = loadConfig();
// Poll once an hour: anything dispatched within seconds was woken by LISTEN/NOTIFY.
const config: HoldfastConfig = {
  ...baseConfig,
  outbox: { pollInterval: '1h', batchSize: 50, maxBackoff: '300ms' },
};
const run = `outbox-${randomUUID().slice(0, 8)}`;
let seq = 0;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
let gateway: StartRecordingGateway;
let dispatcher: OutboxDispatcher | undefined;

function failed(lotId: string): Record<string, unknown> {
  seq += 1;
  return {
    eventId: `${run}-${String(seq).padStart(3, '0')}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${seq}`,
    sku: 'BRKT-200',
    lotId: `${run}-${lotId}`,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.9 }],
    modelVersion: 'm-1',
    recipeVersion: 'r-1',
    inspectedAt: '2025-03-04T10:15:00Z',
  };
}

async function ingest(...results: Record<string, unknown>[]): Promise<string[]> {
  const res = await fetch(`${baseUrl}/v1/inspections`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ results }),
  });
  expect(res.status).toBe(202);
  return results.map((r) => r.eventId as string);
}

interface OutboxRow {
  id: string;
  event_id: string;
  attempts: number;
  last_error: string | null;
  dispatched_at: Date | null;
  workflow_run_id: string | null;
  backoff_ms: number;
}

async function outboxRows(eventIds: string[]): Promise<OutboxRow[]> {
  const res = await pool.query<OutboxRow>(
    `SELECT id, event_id, attempts, last_error, dispatched_at, workflow_run_id,
            (extract(epoch FROM next_attempt_at - now()) * 1000)::float8 AS backoff_ms
       FROM holdfast.outbox WHERE event_id = ANY($1::text[]) ORDER BY id`,
    [eventIds],
  );
  return res.rows;
}

const allDispatched = async (ids: string[]) => (await outboxRows(ids)).every((r) => r.dispatched_at !== null);

async function listenerBackends(): Promise<number[]> {
  const res = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN holdfast_outbox'`,
  );
  return res.rows.map((r) => r.pid);
}

function start(): OutboxDispatcher {
  dispatcher = startOutboxDispatcher({ pool, gateway, config });
  return dispatcher;
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  app = await buildApp({ pool, gateway: new StartRecordingGateway(), config, namespace: 'default' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  gateway = new StartRecordingGateway();
});

afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
});

afterAll(async () => {
  await app?.close();
  if (pool) {
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.trace_link WHERE from_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
});

describe('outbox dispatcher', () => {
  it('backs off exponentially from 1 s, capped at outbox.maxBackoff', () => {
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffForAttempt(n, 30_000))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ]);
    expect([1, 2, 5].map((n) => backoffForAttempt(n, 300))).toEqual([300, 300, 300]);
  });

  it('starts each pending row once, each lot in id order, and records the run id', async () => {
    const d = start();
    await eventually('the LISTEN connection', listenerBackends, (pids) => pids.length > 0);
    const lots = ['A', 'B', 'A', 'C', 'B'];
    const ids = await ingest(...lots.map((lot) => failed(lot)));

    await eventually('all rows dispatched', () => allDispatched(ids));
    await d.stop();

    const rows = await outboxRows(ids);
    expect(rows.map((r) => r.event_id)).toEqual(ids);
    const attempts = gateway.mine(run);
    expect(attempts.every((a) => a.ok)).toBe(true);
    expect(attempts.map((a) => a.eventId).sort()).toEqual([...ids].sort());
    // Lots start side by side; within a lot the order of ingest is kept (docs/reliability.md#order-per-lot).
    const lotOf = new Map(ids.map((id, i) => [id, lots[i]!]));
    for (const lot of new Set(lots)) {
      const started = attempts.map((a) => a.eventId).filter((id) => lotOf.get(id) === lot);
      expect(started).toEqual(ids.filter((id) => lotOf.get(id) === lot));
    }
    for (const row of rows) {
      expect(row.workflow_run_id).toBe(gateway.runs.get(`defect-${row.event_id}`));
      expect(row.attempts).toBe(0);
      expect(row.last_error).toBeNull();
    }
  });

  it('does not hand a part its lot case already contained to the lot case again', async () => {
    // The first dispatch of `contained` reached Temporal but its commit was lost; meanwhile its lot case contained
    // the part (the defect-item trace link) and may have closed. A second hand-off would open a new hold cycle.
    const [contained, fresh] = await ingest(failed('D'), failed('E'));
    await pool.query(
      `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id, system)
       VALUES ('inspection', $1, 'defect-item', 'quality-notification-item', '200000001/0001', 'erp')`,
      [contained],
    );
    const d = start();
    await eventually('both rows dispatched', () => allDispatched([contained!, fresh!]));
    await d.stop();

    const attempts = gateway.mine(run).filter((a) => a.eventId === contained || a.eventId === fresh);
    expect(attempts).toEqual(
      expect.arrayContaining([
        { eventId: contained, ok: true, enrol: false },
        { eventId: fresh, ok: true, enrol: true },
      ]),
    );
    expect(attempts).toHaveLength(2);
  });

  it('is woken by NOTIFY without waiting for the poll', async () => {
    start();
    await eventually('the LISTEN connection', listenerBackends, (pids) => pids.length > 0);
    const started = Date.now();
    const ids = await ingest(failed('N'));

    // Read often: the time to the dispatch is what this test measures.
    await eventually('the NOTIFY-driven dispatch', () => allDispatched(ids), { timeoutMs: 3_000, intervalMs: 20 });

    // The poll interval is one hour: only the notification can explain a dispatch this fast.
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('re-connects its LISTEN connection when the server drops it', async () => {
    start();
    await eventually('the LISTEN connection', listenerBackends, (pids) => pids.length > 0);
    const [before] = await listenerBackends();
    await pool.query('SELECT pg_terminate_backend($1)', [before]);
    await eventually('a new LISTEN connection', listenerBackends, (now) => now.length > 0 && !now.includes(before!), {
      timeoutMs: 5_000,
    });

    const ids = await ingest(failed('R'));
    await eventually('dispatch after the reconnect', () => allDispatched(ids), { timeoutMs: 3_000 });
  });

  it('keeps rows pending with attempts and last_error while Temporal is unreachable, ingest still answers 202, and starts each row once after recovery', async () => {
    gateway.failing = true;
    const d = start();
    await eventually('the LISTEN connection', listenerBackends, (pids) => pids.length > 0);
    const [a1, a2, b1] = await ingest(failed('LOT-X'), failed('LOT-X'), failed('LOT-Y'));

    // Drain until both lots' first rows have failed at least once.
    await eventually('failed attempts on both lots', async () => {
      await d.drainOnce();
      const attempted = new Set(gateway.mine(run).map((a) => a.eventId));
      return attempted.has(a1!) && attempted.has(b1!);
    });
    const duringOutage = await outboxRows([a1!, a2!, b1!]);
    for (const row of duringOutage) expect(row.dispatched_at).toBeNull();
    const byId = new Map(duringOutage.map((r) => [r.event_id, r]));
    expect(byId.get(a1!)!.attempts).toBeGreaterThanOrEqual(1);
    expect(byId.get(a1!)!.last_error).toMatch(/UNAVAILABLE/);
    expect(byId.get(a1!)!.backoff_ms).toBeLessThanOrEqual(300 + 50);
    // The later row of LOT-X never overtook its failing predecessor.
    expect(gateway.mine(run).some((a) => a.eventId === a2)).toBe(false);
    expect(byId.get(a2!)!.attempts).toBe(0);

    const [c1] = await ingest(failed('LOT-Z'));
    expect((await outboxRows([c1!]))[0]!.dispatched_at).toBeNull();

    gateway.failing = false;
    const ids = [a1!, a2!, b1!, c1!];
    await eventually('dispatch after recovery', async () => {
      await d.drainOnce();
      return allDispatched(ids);
    });

    const successes = gateway.mine(run).filter((a) => a.ok);
    for (const id of ids) expect(successes.filter((a) => a.eventId === id)).toHaveLength(1);
    const order = successes.map((a) => a.eventId);
    expect(order.indexOf(a1!)).toBeLessThan(order.indexOf(a2!));
    const after = await outboxRows(ids);
    for (const row of after) expect(row.workflow_run_id).toBe(gateway.runs.get(`defect-${row.event_id}`));
    expect(after.find((r) => r.event_id === a1)!.last_error).toBeNull();
  });

  it('dispatches nothing after stop()', async () => {
    const d = start();
    await eventually('the LISTEN connection', listenerBackends, (pids) => pids.length > 0);
    await d.stop();
    expect(await listenerBackends()).toEqual([]);

    const ids = await ingest(failed('S'));
    await sleep(500);

    expect(gateway.mine(run)).toEqual([]);
    expect((await outboxRows(ids))[0]!.dispatched_at).toBeNull();
  });
});
