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
import type { DispatchedDetection, WorkflowDescription, WorkflowGateway } from '../../infra/temporal/gateway';
import type {
  DetectionDispatch,
  DispositionOutcome,
  DispositionRequest,
  LotCaseState,
} from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';
import { asAdmin, testSigningKey } from '../support/identity';

/**
 * Behaves like signal-with-start: the first hand-over of a lot opens a run, later ones reach it. `failing` makes
 * every hand-over fail the way an unreachable frontend does. Nothing confirms rows: the tests do, as a lot case would.
 */
class DispatchRecordingGateway implements WorkflowGateway {
  readonly attempts: { eventId: string; ok: boolean }[] = [];
  /** Run per lot case. */
  readonly runs = new Map<string, string>();
  failing = false;

  async dispatchDetection(input: DetectionDispatch): Promise<DispatchedDetection> {
    const { eventId, site, lotId } = input.detection;
    if (this.failing) {
      this.attempts.push({ eventId, ok: false });
      throw new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7233');
    }
    this.attempts.push({ eventId, ok: true });
    if (input.mode === 'shadow')
      return { workflowId: `shadow-${eventId}`, runId: 'run-shadow', awaitsConfirmation: false };
    const workflowId = `lot-${site}-${lotId}`;
    const runId = this.runs.get(workflowId) ?? `run-${randomUUID()}`;
    this.runs.set(workflowId, runId);
    return { workflowId, runId, awaitsConfirmation: true };
  }
  async describe(_: string): Promise<WorkflowDescription | undefined> {
    return undefined;
  }
  async lotCaseState(_: string): Promise<LotCaseState | undefined> {
    return undefined;
  }
  async submitDisposition(_: string, __: DispositionRequest): Promise<DispositionOutcome> {
    throw new Error('not used');
  }
  async countersignDisposition(): Promise<DispositionOutcome> {
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
  outbox: { pollInterval: '1h', batchSize: 50, maxBackoff: '300ms', confirmationGrace: '1h' },
};
const run = `outbox-${randomUUID().slice(0, 8)}`;
let seq = 0;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;
let gateway: DispatchRecordingGateway;
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
    headers: { 'content-type': 'application/json', ...(await asAdmin()) },
    body: JSON.stringify({ results }),
  });
  expect(res.status).toBe(202);
  return results.map((r) => r.eventId as string);
}

interface OutboxRow {
  id: string;
  event_id: string;
  workflow_id: string;
  attempts: number;
  last_error: string | null;
  dispatched_at: Date | null;
  confirmed_at: Date | null;
  redispatches: number;
  workflow_run_id: string | null;
  backoff_ms: number;
}

async function outboxRows(eventIds: string[]): Promise<OutboxRow[]> {
  const res = await pool.query<OutboxRow>(
    `SELECT id, event_id, workflow_id, attempts, last_error, dispatched_at, confirmed_at, redispatches, workflow_run_id,
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

function start(outbox: Partial<HoldfastConfig['outbox']> = {}): OutboxDispatcher {
  dispatcher = startOutboxDispatcher({ pool, gateway, config: { ...config, outbox: { ...config.outbox, ...outbox } } });
  return dispatcher;
}

/** What the lot case's first activity does once it has recorded the parts (activities/traceability). */
async function confirm(eventIds: string[]): Promise<void> {
  await pool.query(`UPDATE holdfast.outbox SET confirmed_at = clock_timestamp() WHERE event_id = ANY($1::text[])`, [
    eventIds,
  ]);
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  app = await buildApp({
    signingKey: await testSigningKey(),
    pool,
    gateway: new DispatchRecordingGateway(),
    config,
    namespace: 'default',
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

beforeEach(() => {
  gateway = new DispatchRecordingGateway();
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

  it('hands each pending row over once, each lot in id order, and records the run id', async () => {
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
      expect(row.workflow_run_id).toBe(gateway.runs.get(row.workflow_id));
      expect(row.attempts).toBe(0);
      expect(row.last_error).toBeNull();
      // Handed over, not yet recorded: the lot case confirms it.
      expect(row.confirmed_at).toBeNull();
    }
  });

  it('sends again, once the grace has passed, a row its workflow never recorded, and leaves confirmed rows alone', async () => {
    const [recorded, lost] = await ingest(failed('F'), failed('G'));
    const d = start({ confirmationGrace: '600ms' });
    await eventually('both rows handed over', () => allDispatched([recorded!, lost!]));
    await confirm([recorded!]);

    // The reconciler runs every half grace; the lost row goes back to pending and the next drain sends it again.
    await eventually(
      'the unrecorded row sent again',
      () => gateway.mine(run).filter((a) => a.eventId === lost).length >= 2,
    );
    await eventually('the row handed over again', () => allDispatched([lost!]));
    const [again] = await outboxRows([lost!]);
    expect(again).toMatchObject({ redispatches: 1, confirmed_at: null, attempts: 0 });
    await confirm([lost!]);
    // Two more grace periods: nothing confirmed is sent again.
    await sleep(1_300);
    await d.stop();
    const sent = gateway.mine(run);
    expect(sent.filter((a) => a.eventId === recorded)).toHaveLength(1);
    expect(sent.filter((a) => a.eventId === lost)).toHaveLength(2);
    expect((await outboxRows([recorded!]))[0]).toMatchObject({ redispatches: 0 });
    // Earlier tests' rows, never confirmed, were sent again too: settle them so later tests start from quiet rows.
    await pool.query(`UPDATE holdfast.outbox SET confirmed_at = now() WHERE event_id LIKE $1`, [`${run}-%`]);
  });

  it('does not send a row its workflow recorded while it waited to be sent again', async () => {
    const [id] = await ingest(failed('H'));
    // As after a reconciler reset: pending again, but the lot case had the part all along and confirmed it.
    await confirm([id!]);
    const d = start();
    await d.drainOnce();
    await d.stop();
    expect(gateway.mine(run).filter((a) => a.eventId === id)).toEqual([]);
  });

  it('counts a shadow row done at its dispatch: its workflow has nothing to record', async () => {
    const [id] = await ingest({ ...failed('SH'), station: 'S3' });
    const d = start();
    await eventually('the shadow row dispatched', () => allDispatched([id!]));
    await d.stop();
    const [row] = await outboxRows([id!]);
    expect(row!.workflow_id).toBe(`shadow-${id}`);
    expect(row!.confirmed_at).not.toBeNull();
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
    for (const row of after) expect(row.workflow_run_id).toBe(gateway.runs.get(row.workflow_id));
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
