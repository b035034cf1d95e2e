/**
 * The ERP feed (docs/analytics.md#the-erp-feed) with the whole stack in process: real Temporal, PostgreSQL and the
 * SAP simulator. A site with a 15-minute feed gets inspections written straight into holdfast.inspection (with their
 * inspection kind, as ingest stores it) and a completed real recall; the feed workflow posts each order's
 * confirmation once per interval although SAP's answers are dropped (activity retries) and two runs overlap, and the
 * cost of quality matches a computation written here from the fixture. An ERP outage delays the next interval, which
 * the status route shows, and once SAP is back the interval is posted once.
 */
import { randomUUID } from 'node:crypto';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { createErpFeedStore } from '../../infra/erp-feed/erp-feed-store';
import { ensureErpFeedSchedules } from '../../infra/temporal/erp-feed-schedules';
import { erpFeedScheduleId, type ErpFeedInput, type ErpFeedResult } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { bearerFor } from '../support/identity';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
const run = randomUUID().slice(0, 8);
const site = `ERPF-${run}`;
const plant = run.slice(0, 4).toUpperCase();
const MIN = 60_000;
const STEP = 15 * MIN;
// Two hours back, aligned: the intervals are in the past, and the route's "now" sees how far the feed is behind.
const T0 = Math.floor(Date.now() / STEP) * STEP - 8 * STEP;
const at = (minutes: number) => new Date(T0 + minutes * MIN);
const iso = (minutes: number) => at(minutes).toISOString();
const SKU_A = `A-${run}`;
const SKU_B = `B-${run}`;
const WO1 = `WO1-${run}`;
const WO2 = `WO2-${run}`;
const LOT_X = `erp:${plant}/RM-1/X${run}`;
const LOT_Y = `erp:${plant}/RM-2/Y${run}`;
const RATES = { reworkPerHour: 48, reworkMinutesPerPart: 12.5, inspectionPerPart: 0.35 };
const ACCOUNTS = {
  scrap: '52100000',
  rework: '52200000',
  inspection: '52300000',
  externalFailure: '52400000',
  offset: '89000000',
};
// SAP's standard prices: A 12.40 per piece, B 250.00 per 100 pieces.
const PRICE_A = 12.4;
const PRICE_B = 2.5;
let stack: HoldfastStack;

interface Posted {
  confirmations: Record<string, string | boolean>[];
  journalEntries: (Record<string, string> & { items: Record<string, string>[] })[];
}

async function postings(): Promise<Posted> {
  const res = await fetch(`${stack.sapUrl}/__sim/erp-feed-postings`);
  return (await res.json()) as Posted;
}

async function putFaults(body: unknown): Promise<void> {
  const res = await fetch(`${stack.sapUrl}/__faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBeLessThan(300);
}

let seq = 0;
type Kind = 'first' | 're-inspection' | 'after-rework';
/** One stored inspection with the kind its producer declared; the aggregates' trigger sets inspection_kind from it. */
async function inspect(i: {
  line: string;
  station: string;
  sku: string;
  wo: string;
  result: 'pass' | 'fail';
  kind: Kind;
  at: number;
  lots?: string[];
  mode?: 'production' | 'shadow';
}): Promise<void> {
  seq += 1;
  await pool.query(
    `INSERT INTO holdfast.inspection
       (event_id, site, line, station, part_id, sku, lot_id, work_order, result, model_version, recipe_version,
        inspected_at, received_at, payload_sha256, mode, declared_kind, supplier_lots)
     VALUES ($1, $2, $3, $4, $5, $6, 'LOT-1', $7, $8, 'm1', 'r1', $9, $9, 'x', $10, $11, $12)`,
    [
      `erpf-${run}-${seq}`,
      site,
      i.line,
      i.station,
      `P-${seq}`,
      i.sku,
      i.wo,
      i.result,
      at(i.at),
      i.mode ?? 'production',
      i.kind,
      i.lots ?? null,
    ],
  );
}

const times = async (n: number, i: Parameters<typeof inspect>[0]) => {
  for (let k = 0; k < n; k++) await inspect(i);
};

/** The fixture: what each interval holds, written once and counted by hand below. */
async function writePlant(): Promise<void> {
  await pool.query(
    `INSERT INTO holdfast.material_lot (lot_key, site, material, origin, supplier)
     VALUES ($1, $3, 'RM-1', 'purchased', 'SUP-1'), ($2, $3, 'RM-2', 'purchased', 'SUP-2')`,
    [LOT_X, LOT_Y, site],
  );
  const l1s2 = { line: 'L1', station: 'S2', sku: SKU_A, wo: WO1 };
  // Interval 1, [T0, T0+15m): WO1 on L1 (confirming station S2), WO2 on L2 (S1).
  await times(5, { ...l1s2, result: 'pass', kind: 'first', at: 1, lots: [LOT_X] });
  await times(2, { ...l1s2, result: 'fail', kind: 'first', at: 2, lots: [LOT_X, LOT_Y] });
  await times(1, { ...l1s2, result: 'pass', kind: 'after-rework', at: 6, lots: [LOT_X, LOT_Y] });
  await times(1, { ...l1s2, result: 'fail', kind: 'after-rework', at: 7 });
  await times(1, { ...l1s2, result: 'fail', kind: 're-inspection', at: 8, lots: [LOT_Y] });
  await times(4, { line: 'L1', station: 'S1', sku: SKU_A, wo: WO1, result: 'pass', kind: 'first', at: 3 });
  await times(2, { ...l1s2, result: 'fail', kind: 'first', at: 4, mode: 'shadow' });
  await times(3, { line: 'L2', station: 'S1', sku: SKU_B, wo: WO2, result: 'pass', kind: 'first', at: 5 });
  await times(2, { line: 'L2', station: 'S1', sku: SKU_B, wo: WO2, result: 'pass', kind: 'after-rework', at: 9 });
  // Interval 2, [T0+15m, T0+30m): WO1 only; a real recall completes at T0+20m (40 pieces of B shipped).
  await times(2, { ...l1s2, result: 'pass', kind: 'first', at: 16 });
  await times(1, { ...l1s2, result: 'fail', kind: 'after-rework', at: 17, lots: [LOT_X] });
  const recallId = `R-${run}`;
  await pool.query(
    `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key, request_sha256,
                                  workflow_id, state, created_at, completed_at)
     VALUES ($1, $2, 'real', '{}', 'test', 'qe', $1, 'x', $1, 'completed', $3, $4)`,
    [recallId, site, at(18), at(20)],
  );
  await pool.query(
    `INSERT INTO holdfast.recall_lot (recall_id, lot_key, reached_by, depth, site, material, quantity, shipped, class)
     VALUES ($1, $2, 'forward', 1, $3, $4, 60, 40, 'shipped'), ($1, $5, 'scope', 0, $3, $4, 10, 0, 'in-stock')`,
    [recallId, `erp:${plant}/${SKU_B}/F1`, site, SKU_B, `erp:${plant}/${SKU_B}/F2`],
  );
  // Interval 3 is empty: nothing is posted for it.
}

/** The expected cost of quality, counted from the fixture above by hand. */
const reworkPerPart = (RATES.reworkMinutesPerPart / 60) * RATES.reworkPerHour; // 10.00
const expectedCost = {
  interval1: {
    // WO1 at S2: after-rework fail 1 + re-inspection fail 1 = 2 scrapped pieces of A.
    scrap: 2 * PRICE_A,
    // after-rework inspections: WO1 2 (one passed, one failed), WO2 2.
    rework: 4 * reworkPerPart,
    // production inspections, all stations: L1 S2 10, L1 S1 4, L2 S1 5 (the 2 shadow ones never count).
    inspection: 19 * RATES.inspectionPerPart,
    externalFailure: 0,
  },
  interval2: {
    scrap: 1 * PRICE_A,
    rework: 1 * reworkPerPart,
    inspection: 3 * RATES.inspectionPerPart,
    externalFailure: 40 * PRICE_B,
  },
};
const round2 = (x: number) => Math.round(x * 100) / 100;

function feedConfig(base: HoldfastConfig): HoldfastConfig {
  const first = base.sites[0]!;
  return {
    ...base,
    activityPresets: {
      ...base.activityPresets,
      erpPost: {
        startToCloseTimeout: '5s',
        retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '1s' },
      },
    },
    sites: [
      {
        ...first,
        id: site,
        erpPlant: plant,
        lines: [
          {
            id: 'L1',
            stations: [
              { id: 'S1', mode: 'production' },
              { id: 'S2', mode: 'production' },
            ],
          },
          { id: 'L2', stations: [{ id: 'S1', mode: 'production' }] },
        ],
        erpFeed: {
          every: '15m',
          settle: '1m',
          confirmingStations: {},
          operation: '0010',
          unit: 'PC',
          companyCode: '1010',
          costCentre: '4100',
          accounts: ACCOUNTS,
          rates: RATES,
          currency: 'EUR',
          startBack: '46m',
        },
      },
    ],
  };
}

async function runFeed(asOfMinutes: number, id = randomUUID()): Promise<ErpFeedResult> {
  const input: ErpFeedInput = { site, preset: stack.config.activityPresets.erpPost, asOf: iso(asOfMinutes) };
  return stack.client.workflow.execute<(i: ErpFeedInput) => Promise<ErpFeedResult>>('erpFeedWorkflow', {
    taskQueue: stack.taskQueue,
    workflowId: `erp-feed-test-${run}-${id}`,
    args: [input],
  });
}

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config: feedConfig(loadConfig()),
    seedDemo: false,
  });
  for (const [product, standardPrice, priceUnitQty] of [
    [SKU_A, 12.4, 1],
    [SKU_B, 250, 100],
  ] as const) {
    const res = await fetch(`${stack.sapUrl}/__sim/standard-price`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ product, valuationArea: plant, standardPrice, priceUnitQty, currency: 'EUR' }),
    });
    expect(res.status).toBe(204);
  }
  await writePlant();
}, 120_000);

afterAll(async () => {
  await fetch(`${stack?.sapUrl}/__faults`, { method: 'DELETE' }).catch(() => undefined);
  await stack?.client.schedule
    .getHandle(erpFeedScheduleId(site))
    .delete()
    .catch(() => undefined);
  await stack?.stop();
  await pool.end();
});

test('each order is confirmed once per interval under dropped answers and overlapping runs; CoQ adds up', async () => {
  // Every confirmation POST commits in SAP and loses its answer once: the activity fails and is retried.
  await putFaults({ dropResponse: { remaining: 3, methods: ['POST'], pathContains: 'ProdnOrdConf2' } });
  // Two runs at once, as a schedule's run and a manual one would overlap.
  const [a, b] = await Promise.all([runFeed(46), runFeed(46)]);
  const faults = (await (await fetch(`${stack.sapUrl}/__faults`)).json()) as { counters: { responsesDropped: number } };
  await fetch(`${stack.sapUrl}/__faults`, { method: 'DELETE' });
  // Three confirmations were committed and their answers lost: each retry found its own by look-up.
  expect(faults.counters.responsesDropped).toBe(3);
  for (const r of [a, b]) expect(r.stoppedAt).toBeUndefined();
  expect(a.posted.map((p) => [p.from, p.to])).toEqual([
    [iso(0), iso(15)],
    [iso(15), iso(30)],
    [iso(30), iso(45)],
  ]);

  const { confirmations, journalEntries } = await postings();
  const mine = confirmations.filter((c) => c.OrderID === WO1 || c.OrderID === WO2);
  const quantities = mine.map((c) => ({
    order: c.OrderID,
    yield: c.ConfirmationYieldQuantity,
    scrap: c.ConfirmationScrapQuantity,
    rework: c.ConfirmationReworkQuantity,
    unit: c.ConfirmationUnit,
    operation: c.OrderOperation,
  }));
  // Interval 1: WO1 at S2 passed 5 first + 1 after rework, scrapped 2 (failed again), reworked 2; WO2 passed 5,
  // reworked 2. Interval 2: WO1 passed 2, scrapped 1, reworked 1. Each exactly once.
  expect(quantities.sort((x, y) => String(x.order).localeCompare(String(y.order)))).toEqual([
    { order: WO1, yield: '6.000', scrap: '2.000', rework: '2.000', unit: 'PC', operation: '0010' },
    { order: WO1, yield: '2.000', scrap: '1.000', rework: '1.000', unit: 'PC', operation: '0010' },
    { order: WO2, yield: '5.000', scrap: '0.000', rework: '2.000', unit: 'PC', operation: '0010' },
  ]);

  // One journal entry per interval with costs (interval 3 had none), balanced, on the configured accounts.
  const entries = journalEntries.filter((j) => j.DocumentHeaderText?.includes(site.slice(0, 13)));
  expect(entries).toHaveLength(2);
  for (const [entry, expected] of [
    [entries[0]!, expectedCost.interval1],
    [entries[1]!, expectedCost.interval2],
  ] as const) {
    const debit = (account: string) =>
      entry.items
        .filter((i) => i.GLAccount === account && i.DebitCreditCode === 'S')
        .reduce((s, i) => s + Number(i.AmountInTransactionCurrency), 0);
    // Rows are rounded to the cent one by one (parts split across supplier lots): within a cent per row.
    expect(Math.abs(debit(ACCOUNTS.scrap) - round2(expected.scrap))).toBeLessThanOrEqual(0.03);
    expect(Math.abs(debit(ACCOUNTS.rework) - round2(expected.rework))).toBeLessThanOrEqual(0.03);
    expect(Math.abs(debit(ACCOUNTS.inspection) - round2(expected.inspection))).toBeLessThanOrEqual(0.05);
    expect(debit(ACCOUNTS.externalFailure)).toBeCloseTo(expected.externalFailure, 2);
    const credit = entry.items.filter((i) => i.DebitCreditCode === 'H');
    expect(credit.map((i) => i.GLAccount)).toEqual([ACCOUNTS.offset]);
    const debits = entry.items.filter((i) => i.DebitCreditCode === 'S');
    expect(debits.every((i) => i.CostCenter === '4100' && i.TransactionCurrency === 'EUR')).toBe(true);
    expect(Number(credit[0]!.AmountInTransactionCurrency)).toBeCloseTo(
      debits.reduce((s, i) => s + Number(i.AmountInTransactionCurrency), 0),
      2,
    );
  }

  // What Holdfast kept equals what SAP holds, and the recall was charged once.
  const kept = await pool.query<{ category: string; total: string }>(
    `SELECT category, sum(amount)::text AS total FROM holdfast.cost_of_quality WHERE site = $1
      GROUP BY category ORDER BY category`,
    [site],
  );
  const keptBy = Object.fromEntries(kept.rows.map((r) => [r.category, Number(r.total)]));
  expect(keptBy['external-failure']).toBeCloseTo(100, 2);
  expect(
    Math.abs(keptBy.scrap! - round2(expectedCost.interval1.scrap + expectedCost.interval2.scrap)),
  ).toBeLessThanOrEqual(0.05);
  const journalTotal = entries
    .flatMap((e) => e.items)
    .filter((i) => i.DebitCreditCode === 'S')
    .reduce((s, i) => s + Number(i.AmountInTransactionCurrency), 0);
  expect(journalTotal).toBeCloseTo(
    Object.values(keptBy).reduce((s, v) => s + v, 0),
    2,
  );

  // Reported by supplier: scrap on parts from lot X goes to SUP-1 (half of a two-lot part's share).
  const admin = stack.adminHeaders;
  const report = await stack.api.inject({
    method: 'GET',
    url: `/v1/metrics/cost-of-quality?site=${site}&from=${iso(0)}&to=${iso(60)}&groupBy=supplier,category`,
    headers: admin,
  });
  expect(report.statusCode).toBe(200);
  const groups = report.json<{ groups: { supplier: string | null; category: string; amount: number }[] }>().groups;
  const sup1Scrap = groups.find((g) => g.supplier === 'SUP-1' && g.category === 'scrap')?.amount ?? 0;
  // Interval 2's after-rework fail on lot X: 12.40; none in interval 1 (its two scrapped parts: no lots, lot Y only).
  expect(sup1Scrap).toBeCloseTo(12.4, 2);

  // A third run posts nothing more: every due interval is posted.
  const again = await runFeed(46);
  expect(again.posted).toEqual([]);
  const after = await postings();
  expect(after.confirmations.length).toBe(confirmations.length);
  expect(after.journalEntries.length).toBe(journalEntries.length);
}, 120_000);

test('an ERP outage delays the next interval, visibly; once SAP is back it is posted once', async () => {
  await times(4, { line: 'L2', station: 'S1', sku: SKU_B, wo: WO2, result: 'pass', kind: 'first', at: 50 });
  const qe = await bearerFor({ username: `qe-${run}`, roles: ['quality-engineer'], sites: [site] }, stack.signingKey);
  const before = await postings();
  await putFaults({ outageUntil: new Date(Date.now() + 4_000).toISOString() });
  const running = runFeed(61);
  // While SAP refuses every call, the feed is behind and says so.
  const status = await stack.api.inject({ method: 'GET', url: `/v1/erp-feed/${site}`, headers: qe });
  expect(status.statusCode).toBe(200);
  const s = status.json<{ lastPosted: { to: string } | null; pending: number; lagSeconds: number }>();
  expect(s.lastPosted?.to).toBe(iso(45));
  expect(s.pending).toBeGreaterThanOrEqual(1);
  expect(s.lagSeconds).toBeGreaterThan(0);
  const lag = await stack.api.inject({ method: 'GET', url: '/metrics', headers: stack.adminHeaders });
  expect(lag.body).toMatch(new RegExp(`holdfast_erp_feed_lag_seconds\\{site="${site}"\\} [1-9]`));

  const result = await running;
  const faults = await (await fetch(`${stack.sapUrl}/__faults`)).json();
  await fetch(`${stack.sapUrl}/__faults`, { method: 'DELETE' });
  expect((faults as { counters: { outageRejected: number } }).counters.outageRejected).toBeGreaterThan(0);
  expect(result.posted.map((p) => [p.from, p.to, p.confirmations])).toEqual([[iso(45), iso(60), 1]]);
  const after = await postings();
  const added = after.confirmations.slice(before.confirmations.length);
  expect(added.map((c) => [c.OrderID, c.ConfirmationYieldQuantity])).toEqual([[WO2, '4.000']]);

  const caughtUp = await eventually('the status after the outage', async () => {
    const r = await stack.api.inject({ method: 'GET', url: `/v1/erp-feed/${site}`, headers: qe });
    const body = r.json<{ lastPosted: { to: string } | null }>();
    return body.lastPosted?.to === iso(60) ? body : undefined;
  });
  expect(caughtUp.lastPosted?.to).toBe(iso(60));
}, 120_000);

test('one schedule per feeding site, updated in place, deleted when the feed goes', async () => {
  const scheduleId = erpFeedScheduleId(site);
  await expect(ensureErpFeedSchedules(stack.client, stack.config)).resolves.toEqual([scheduleId]);
  const handle = stack.client.schedule.getHandle(scheduleId);
  const created = await handle.describe();
  expect(created.spec.intervals?.map((i) => [i.every, i.offset])).toEqual([[STEP, MIN]]);
  expect(created.policies).toMatchObject({ overlap: ScheduleOverlapPolicy.SKIP });
  expect(created.action).toMatchObject({ workflowType: 'erpFeedWorkflow', workflowId: scheduleId });

  const hourly: HoldfastConfig = {
    ...stack.config,
    sites: stack.config.sites.map((s) => ({ ...s, erpFeed: { ...s.erpFeed!, every: '1h' } })),
  };
  await ensureErpFeedSchedules(stack.client, hourly);
  expect((await handle.describe()).spec.intervals?.map((i) => i.every)).toEqual([60 * MIN]);

  const without: HoldfastConfig = {
    ...stack.config,
    sites: stack.config.sites.map(({ erpFeed: _feed, ...s }) => s),
  };
  await expect(ensureErpFeedSchedules(stack.client, without)).resolves.toEqual([]);
  await expect(handle.describe()).rejects.toThrow(ScheduleNotFoundError);
}, 60_000);

test('shift-end intervals follow the site calendar in local time, across the end of daylight saving', async () => {
  const shiftSite = `ERPS-${run}`;
  await pool.query(
    `INSERT INTO holdfast.site_shift (site, shift, starts, ends, time_zone)
     VALUES ($1, 'A', '06:00', '14:00', 'America/Chicago'), ($1, 'B', '14:00', '22:00', 'America/Chicago'),
            ($1, 'C', '22:00', '06:00', 'America/Chicago')`,
    [shiftSite],
  );
  const base = stack.config.sites[0]!;
  const config = {
    ...stack.config,
    sites: [
      {
        ...base,
        id: shiftSite,
        timezone: 'America/Chicago',
        erpFeed: { ...base.erpFeed!, every: 'shift-end', startBack: '2d' },
      },
    ],
  } as HoldfastConfig;
  const store = createErpFeedStore(pool, config);
  // US clocks went back on Sunday 2026-11-01 at 02:00 CDT: shift C of Oct 31 ran 9 hours.
  const due = await store.dueIntervals(shiftSite, Date.parse('2026-11-02T12:01:00Z'));
  expect(due.map((i) => [i.from, i.to])).toEqual([
    ['2026-10-31T11:00:00.000Z', '2026-10-31T19:00:00.000Z'],
    ['2026-10-31T19:00:00.000Z', '2026-11-01T03:00:00.000Z'],
    ['2026-11-01T03:00:00.000Z', '2026-11-01T12:00:00.000Z'],
    ['2026-11-01T12:00:00.000Z', '2026-11-01T20:00:00.000Z'],
    ['2026-11-01T20:00:00.000Z', '2026-11-02T04:00:00.000Z'],
    ['2026-11-02T04:00:00.000Z', '2026-11-02T12:00:00.000Z'],
  ]);
});
