/**
 * Supplier scorecards (docs/analytics.md#supplier-quality) against an independent computation: decided receipts and
 * production lot figures written as the ingest path and the lot aggregates would leave them, the expected figures
 * summed here in plain loops from the same inputs; the acceptance plan checked through real ingest (critical class,
 * acceptance number, sample size); and the scores posted once per supplier, material and period to the SAP
 * simulator's supplier evaluation, also when the post is run again.
 */
import { randomUUID } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { FastifyInstance } from 'fastify';
import { createSupplierActivities } from '../../activities/supplier/supplier.activities';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import sapConnector from '../../infra/connectors/sap-s4/sap-s4.connector';
import { ingestInspections } from '../../infra/ingest/ingest.service';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { supplierScores } from '../../infra/supplier/scorecard';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { FakeErp } from '../support/fake-ports';
import { testSigningKey } from '../support/identity';
import { bearerFor } from '../support/identity';
import { testPool } from '../support/test-env';

jest.setTimeout(60_000);

const pool = testPool();
const run = randomUUID().slice(0, 8).toUpperCase();
const supplier = `S${run}`;
const other = `T${run}`;
const base = loadConfig();
const config: HoldfastConfig = {
  ...base,
  sites: base.sites.map((site, i) =>
    i === 0
      ? {
          ...site,
          lines: site.lines.map((line, j) =>
            j === 0
              ? {
                  ...line,
                  stations: [
                    ...line.stations,
                    {
                      id: 'IN-C',
                      mode: 'production' as const,
                      role: 'incoming-inspection' as const,
                      acceptance: { sampleSize: 4, acceptanceNumber: 1, criticalClasses: ['crack'] },
                    },
                  ],
                }
              : line,
          ),
        }
      : site,
  ),
};
let app: FastifyInstance;
let reader: { authorization: string };

interface Receipt {
  supplier: string;
  material: string;
  lot: string;
  decidedAt: string;
  decision: 'accepted' | 'rejected';
  inspected: number;
  defective: number;
  defects: Record<string, number>;
}
interface ProductionDay {
  supplier: string;
  material: string;
  lot: string;
  day: string;
  units: number;
  good: number;
  defects: number;
}

const RECEIPTS: Receipt[] = [
  r(supplier, 'M1', '2026-09-03T10:00:00Z', 'accepted', 13, 0, {}),
  r(supplier, 'M1', '2026-09-10T10:00:00Z', 'rejected', 5, 2, { scratch: 2, dent: 1 }),
  r(supplier, 'M2', '2026-09-20T10:00:00Z', 'accepted', 13, 1, { scratch: 1 }),
  r(supplier, 'M1', '2026-10-02T10:00:00Z', 'accepted', 13, 0, {}),
  r(supplier, 'M2', '2026-10-15T10:00:00Z', 'accepted', 13, 0, {}),
  r(supplier, 'M2', '2026-10-28T10:00:00Z', 'accepted', 13, 0, {}),
  // Outside the period asked for, and another supplier's: counted nowhere below.
  r(supplier, 'M1', '2026-08-31T23:59:59Z', 'rejected', 2, 2, { crack: 1 }),
  r(other, 'M1', '2026-09-15T10:00:00Z', 'rejected', 1, 1, { crack: 1 }),
];
const PRODUCTION: ProductionDay[] = [
  p(supplier, 'M1', 0, '2026-09-11', 400, 396, 5),
  p(supplier, 'M1', 0, '2026-09-12', 300, 299, 1),
  p(supplier, 'M2', 2, '2026-10-16', 1000, 1000, 0),
  p(other, 'M1', 7, '2026-09-16', 50, 10, 40),
];
const FROM = '2026-09-01T00:00:00Z';
const TO = '2026-11-01T00:00:00Z';

function r(
  s: string,
  material: string,
  decidedAt: string,
  decision: Receipt['decision'],
  inspected: number,
  defective: number,
  defects: Record<string, number>,
): Receipt {
  return { supplier: s, material, lot: `L${run}-${decidedAt}`, decidedAt, decision, inspected, defective, defects };
}
function p(s: string, material: string, receipt: number, day: string, units: number, good: number, defects: number) {
  return { supplier: s, material, lot: `erp:1010/${material}/${s}-${receipt}`, day, units, good, defects };
}

beforeAll(async () => {
  for (const x of RECEIPTS) {
    await pool.query(
      `INSERT INTO holdfast.incoming_receipt (site, lot_id, line, station, material, supplier, sample_size,
                                              acceptance_number, first_inspected_at, inspected, defective, defects,
                                              decision, decided_at, decided_recorded_at, dispatched_at)
       VALUES ('PLANT1', $1, 'L1', 'IN', $2, $3, 13, 0, $4, $5, $6, $7, $8, $4, now(), now())`,
      [x.lot, x.material, x.supplier, x.decidedAt, x.inspected, x.defective, JSON.stringify(x.defects), x.decision],
    );
  }
  const lots = new Map(PRODUCTION.map((d) => [d.lot, d]));
  for (const d of lots.values()) {
    await pool.query(
      `INSERT INTO holdfast.material_lot (lot_key, site, material, origin, erp_plant, erp_material, erp_batch, supplier)
       VALUES ($1, 'PLANT1', $2, 'purchased', '1010', $2, $3, $4)`,
      [d.lot, d.material, d.lot.split('/')[2], d.supplier],
    );
  }
  // Production's figures as migration 0020 keeps them: one work order per production day, its counts in
  // quality_hourly, the supplier lot it was made from in work_order_lot (the view lot_quality_daily joins the two).
  for (const [i, d] of PRODUCTION.entries()) {
    const workOrder = `WO-${run}-${i}`;
    await pool.query(
      `INSERT INTO holdfast.quality_hourly (site, line, station, sku, work_order, hour, shift_date, shift, units,
                                            first_pass_good, defects)
       VALUES ('PLANT1', 'L1', 'S1', 'SKU', $1, $2::date::timestamp AT TIME ZONE 'UTC', $2, 'all', $3, $4, $5)`,
      [workOrder, d.day, d.units, d.good, d.defects],
    );
    await pool.query(
      `INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key) VALUES ('PLANT1', $1, 'supplier', $2)`,
      [workOrder, d.lot],
    );
  }
  const gateway = new Proxy({} as WorkflowGateway, {
    get: () => () => Promise.reject(new Error('scorecards must not call Temporal')),
  });
  const signingKey = await testSigningKey();
  app = await buildApp({ signingKey, pool, gateway, config, namespace: 'test' });
  reader = await bearerFor({ username: `auditor-${run}`, roles: ['auditor'] }, signingKey);
});

afterAll(async () => {
  await app?.close();
  await pool.end();
});

/** The expected figures, summed here from the inputs without the product's SQL. */
function expected(filter: (x: { supplier: string; material: string }) => boolean, inPeriod = true) {
  const receipts = RECEIPTS.filter(
    (x) => filter(x) && (!inPeriod || (x.decidedAt >= FROM && Date.parse(x.decidedAt) < Date.parse(TO))),
  );
  const days = PRODUCTION.filter((d) => filter(d) && (!inPeriod || (d.day >= '2026-09-01' && d.day < '2026-11-01')));
  let rejected = 0;
  let inspected = 0;
  let defective = 0;
  const classes: Record<string, number> = {};
  for (const x of receipts) {
    if (x.decision === 'rejected') rejected += 1;
    inspected += x.inspected;
    defective += x.defective;
    for (const [c, n] of Object.entries(x.defects)) classes[c] = (classes[c] ?? 0) + n;
  }
  let units = 0;
  let failed = 0;
  let defects = 0;
  for (const d of days) {
    units += d.units;
    failed += d.units - d.good;
    defects += d.defects;
  }
  return {
    receipts: receipts.length,
    rejectedReceipts: rejected,
    lotRejectionRate: receipts.length ? rejected / receipts.length : null,
    inspectedParts: inspected,
    defectiveParts: defective,
    incomingPpm: inspected ? (defective / inspected) * 1_000_000 : null,
    productionUnits: units,
    productionFailed: failed,
    productionDefects: defects,
    productionPpm: units ? (failed / units) * 1_000_000 : null,
    classes,
  };
}

test('the scorecard equals an independent computation, by supplier, material and month', async () => {
  const res = await app.inject({
    method: 'GET',
    url: `/v1/suppliers/${supplier}/scorecard?from=${FROM}&to=${TO}&bucket=month`,
    headers: reader,
  });
  expect(res.statusCode).toBe(200);
  const card = res.json<Record<string, unknown> & { byMaterial: Record<string, unknown>[]; series: unknown[] }>();
  const all = expected((x) => x.supplier === supplier);
  const { classes, ...figures } = all;
  for (const [k, v] of Object.entries(figures)) {
    if (typeof v === 'number') expect(card[k]).toBeCloseTo(v, 6);
    else expect(card[k]).toBe(v);
  }
  expect(card.defectClasses).toEqual(
    Object.entries(classes)
      .map(([c, defects]) => ({ class: c, defects }))
      .sort((a, b) => b.defects - a.defects || a.class.localeCompare(b.class)),
  );
  for (const material of ['M1', 'M2']) {
    const want = expected((x) => x.supplier === supplier && x.material === material);
    const got = card.byMaterial.find((m) => m.material === material)!;
    expect(got.receipts).toBe(want.receipts);
    expect(got.rejectedReceipts).toBe(want.rejectedReceipts);
    expect(got.productionFailed).toBe(want.productionFailed);
    expect(got.incomingPpm as number).toBeCloseTo(want.incomingPpm!, 6);
  }
  // Months: September has the one rejection of four receipts, October none of three: improving.
  expect(card.series).toEqual([
    expect.objectContaining({ period: '2026-09-01', receipts: 3, rejectedReceipts: 1, productionUnits: 700 }),
    expect.objectContaining({ period: '2026-10-01', receipts: 3, rejectedReceipts: 0, productionUnits: 1000 }),
  ]);
  expect(card.trend).toBe('improving');
  // 100 − 100 × 1/6 − (incoming + production ppm) / 1000 (at most 30).
  const ppm = all.incomingPpm! + all.productionPpm!;
  expect(card.qualityScore).toBeCloseTo(Math.round((100 - 100 / 6 - Math.min(30, ppm / 1000)) * 10) / 10, 6);

  const list = await app.inject({ method: 'GET', url: `/v1/suppliers?from=${FROM}&to=${TO}`, headers: reader });
  expect(list.statusCode).toBe(200);
  const mine = list
    .json<{ suppliers: { supplier: string; material: string; receipts: number }[] }>()
    .suppliers.filter((s) => s.supplier === supplier || s.supplier === other);
  expect(mine.map((s) => [s.supplier, s.material, s.receipts])).toEqual([
    [supplier, 'M1', 3],
    [supplier, 'M2', 3],
    [other, 'M1', 1],
  ]);

  const unknown = await app.inject({ method: 'GET', url: `/v1/suppliers/NOBODY-${run}/scorecard`, headers: reader });
  expect(unknown.statusCode).toBe(404);
  const bad = await app.inject({
    method: 'GET',
    url: `/v1/suppliers/${supplier}/scorecard?from=${TO}&to=${FROM}`,
    headers: reader,
  });
  expect(bad.statusCode).toBe(400);
  expect(bad.json<{ errors: { field: string }[] }>().errors[0]!.field).toBe('from');
});

test('the acceptance plan: a critical class rejects at once, c defective are allowed, n parts accept', async () => {
  const inspection = (lot: string, n: number, defects: string[]) => ({
    eventId: `ac-${run}-${lot}-${n}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'IN-C',
    partId: `${lot}-${n}`,
    sku: 'M9',
    lotId: lot,
    workOrder: `GR-${run}`,
    result: defects.length ? ('fail' as const) : ('pass' as const),
    defects: defects.map((c) => ({ class: c, score: 0.9 })),
    modelVersion: 'm',
    recipeVersion: 'r',
    inspectedAt: new Date(Date.UTC(2026, 10, 1, 0, 0, n)).toISOString(),
  });
  const critical = `C${run}`;
  const allowed = `A${run}`;
  const over = `O${run}`;
  await ingestInspections(pool, config, [inspection(critical, 1, ['crack']), inspection(critical, 2, [])]);
  await ingestInspections(pool, config, [
    inspection(allowed, 1, []),
    inspection(allowed, 2, ['scratch']),
    inspection(allowed, 3, []),
  ]);
  // The fourth part arrives in a later request: n reached, one defective ≤ c = 1.
  await ingestInspections(pool, config, [inspection(allowed, 4, [])]);
  // A re-sent part is not counted twice.
  await ingestInspections(pool, config, [inspection(allowed, 4, [])]);
  await ingestInspections(pool, config, [inspection(over, 1, ['scratch']), inspection(over, 2, ['dent'])]);
  const { rows } = await pool.query<{ lot_id: string; decision: string; inspected: number; decision_reason: string }>(
    `SELECT lot_id, decision, inspected, decision_reason FROM holdfast.incoming_receipt
      WHERE lot_id = ANY($1) ORDER BY lot_id`,
    [[critical, allowed, over]],
  );
  expect(rows).toEqual([
    { lot_id: allowed, decision: 'accepted', inspected: 4, decision_reason: expect.stringContaining('n=4') },
    { lot_id: critical, decision: 'rejected', inspected: 2, decision_reason: 'critical defect crack in part 1' },
    { lot_id: over, decision: 'rejected', inspected: 2, decision_reason: '2 defective > acceptance number 1' },
  ]);
  // No lot case for any incoming part.
  const outbox = await pool.query(`SELECT 1 FROM holdfast.outbox WHERE event_id LIKE $1`, [`ac-${run}-%`]);
  expect(outbox.rowCount).toBe(0);
});

test('scores go to the SAP supplier evaluation once per supplier, material and period', async () => {
  const schema = `sap_sc_${run.toLowerCase()}`;
  const credentials = { username: 'HOLDFAST', password: `pw-${run}` };
  const sap = await buildSapS4Simulator({ pool, schema, credentials });
  const url = await sap.listen({ host: '127.0.0.1', port: 0 });
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const connector = await sapConnector.connect(
    { baseUrl: url, sapClient: '100', username: credentials.username, password: credentials.password, timeoutMs: 5000 },
    { name: 'sap-test', env: {}, log, dataDir: '/tmp' },
  );
  try {
    const erp = Object.assign(new FakeErp(), {
      system: 'sap-test',
      supplierEvaluation: connector.port.supplierEvaluation,
    });
    const activities = createSupplierActivities({
      pool,
      ledger: createPgIntentLedger(pool),
      erpFor: () => erp,
      escalationFor: () => {
        throw new Error('no escalation here');
      },
      supplierScores: async (q) => (await supplierScores(pool, q)).filter((s) => s.supplier === supplier),
    });
    const env = new MockActivityEnvironment();
    const period = { site: 'PLANT1', periodStart: FROM, periodEnd: TO };
    expect(await env.run(activities.postSupplierScores, period)).toEqual({ posted: 2 });
    expect(await env.run(activities.postSupplierScores, period)).toEqual({ posted: 2 });
    const { rows } = await pool.query<{ supplier: string; material: string; score: string }>(
      `SELECT supplier, material, score FROM ${schema}.supplier_eval_score ORDER BY material`,
    );
    const scores = await supplierScores(pool, { from: FROM, to: TO, supplier });
    expect(rows).toEqual(scores.map((s) => ({ supplier, material: s.material, score: s.qualityScore.toFixed(2) })));
  } finally {
    await connector.close();
    await sap.close();
  }
});
