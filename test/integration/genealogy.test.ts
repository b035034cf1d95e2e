/**
 * The genealogy against real PostgreSQL: a small plant written through the store (supplier lots → component lots →
 * a sub-assembly → finished lots → a pallet → deliveries, with a split and a merge) and traced both ways, through the
 * trace queries and the HTTP routes. Every key carries this run's id and the plant's two sites are this run's own, so
 * other test files writing the same tables change nothing here.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import {
  type BatchContext,
  GenealogyInputError,
  type GenealogyStore,
  type LotInput,
  type MovementInput,
  createGenealogyStore,
} from '../../infra/genealogy/genealogy-store';
import { lotKey, lotNode, mesEventKey, workOrderNode } from '../../infra/genealogy/genealogy-keys';
import { type TracePage, resolveStart, traceGenealogy } from '../../infra/genealogy/trace-queries';
import { readTestEnv } from '../support/test-env';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';

const run = randomUUID().slice(0, 8);
const A = `GA-${run}`;
const B = `GB-${run}`;
const batch: BatchContext = { source: `genealogy-test-${run}` };
let pool: Pool;
let store: GenealogyStore;
let app: FastifyInstance;
let baseUrl: string;

/** Reads never reach Temporal: every call fails the test that made it. */
const gateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`the genealogy routes must not call the gateway (${String(name)})`)),
});

const erpKey = (material: string, batchId: string) => lotKey({ erp: { plant: '1010', material, batch: batchId } });
const K = {
  sup1: erpKey('STEEL', `S1-${run}`),
  sup2: erpKey('PAINT', `S2-${run}`),
  comp1: erpKey('BRKT', `C1-${run}`),
  comp1a: erpKey('BRKT', `C1A-${run}`),
  comp1b: erpKey('BRKT', `C1B-${run}`),
  comp2: erpKey('COVER', `C2-${run}`),
  sub1: erpKey('SUBASM', `SA1-${run}`),
  fin1: erpKey('UNIT', `F1-${run}`),
  fin4: erpKey('UNIT', `F4-${run}`),
  pal1: erpKey('UNIT', `P1-${run}`),
  fin2: erpKey('UNIT', `F2-${run}`),
};
const wo = (order: string, site = A) => workOrderNode(site, `${order}-${run}`);

function purchased(
  key: string,
  material: string,
  supplier: string,
  supplierBatch: string,
  quantity: number,
  unit: string,
): LotInput {
  return {
    lotKey: key,
    site: A,
    material,
    quantity,
    unit,
    origin: 'purchased',
    erp: { plant: '1010', material, batch: key.split('/')[2] as string },
    purchased: {
      supplier,
      supplierBatch,
      purchaseOrder: '4500000001',
      purchaseOrderItem: '00010',
      goodsReceipt: `gr-${key}`,
    },
    sourceSystem: 'erp',
    document: `gr-${key}`,
  };
}

function produced(key: string, material: string, order: string, quantity: number, site = A): LotInput {
  return {
    lotKey: key,
    site,
    material,
    quantity,
    unit: 'PC',
    origin: 'produced',
    mes: { site, lotId: `${material}-${key.split('/')[2] as string}` },
    erp: { plant: '1010', material, batch: key.split('/')[2] as string },
    produced: { workOrder: `${order}-${run}`, line: 'L1' },
    sourceSystem: 'mes',
    document: `lot-${key}`,
  };
}

let eventSeq = 0;
function move(
  kind: MovementInput['kind'],
  from: string,
  to: string,
  quantity: number,
  unit = 'PC',
  site = A,
): MovementInput {
  eventSeq += 1;
  return {
    edgeKey: mesEventKey(`${run}-${eventSeq}`),
    kind,
    from,
    to,
    quantity,
    unit,
    occurredAt: `2026-11-0${1 + (eventSeq % 8)}T08:00:00Z`,
    site,
    sourceSystem: 'mes',
    document: `event-${run}-${eventSeq}`,
  };
}

const LOTS: LotInput[] = [
  purchased(K.sup1, 'STEEL', 'V100', `VB1-${run}`, 1000, 'KG'),
  purchased(K.sup2, 'PAINT', 'V200', `VB2-${run}`, 200, 'L'),
  produced(K.comp1, 'BRKT', 'C1', 100),
  produced(K.comp1a, 'BRKT', 'C1', 60),
  produced(K.comp1b, 'BRKT', 'C1', 40),
  produced(K.comp2, 'COVER', 'C2', 100),
  produced(K.sub1, 'SUBASM', 'SA1', 60),
  produced(K.fin1, 'UNIT', 'F1', 60),
  produced(K.fin4, 'UNIT', 'F4', 20),
  produced(K.pal1, 'UNIT', 'F1', 80),
  produced(K.fin2, 'UNIT', 'F2', 40, B),
];

const MOVES: MovementInput[] = [
  move('consumed', lotNode(K.sup1), wo('C1'), 300, 'KG'),
  move('produced', wo('C1'), lotNode(K.comp1), 100),
  move('split', lotNode(K.comp1), lotNode(K.comp1a), 60),
  move('split', lotNode(K.comp1), lotNode(K.comp1b), 40),
  move('consumed', lotNode(K.sup2), wo('C2'), 50, 'L'),
  move('produced', wo('C2'), lotNode(K.comp2), 100),
  move('consumed', lotNode(K.comp1a), wo('SA1'), 60),
  move('consumed', lotNode(K.comp2), wo('SA1'), 60),
  move('produced', wo('SA1'), lotNode(K.sub1), 60),
  move('consumed', lotNode(K.sub1), wo('F1'), 60),
  move('produced', wo('F1'), lotNode(K.fin1), 60),
  move('consumed', lotNode(K.comp2), wo('F4'), 20),
  move('produced', wo('F4'), lotNode(K.fin4), 20),
  move('merged', lotNode(K.fin1), lotNode(K.pal1), 60),
  move('merged', lotNode(K.fin4), lotNode(K.pal1), 20),
  move('consumed', lotNode(K.comp1b), wo('F2', B), 40, 'PC', B),
  move('produced', wo('F2', B), lotNode(K.fin2), 40, 'PC', B),
];

const everyone = (): boolean => true;
const lotKeys = (page: Pick<TracePage, 'lots'>) => page.lots.map((l) => l.lotKey).sort();

async function trace(
  direction: 'forward' | 'backward',
  key: string,
  extra: Partial<Parameters<typeof traceGenealogy>[2]> = {},
) {
  const start = await resolveStart(pool, { kind: 'lot-key', lotKey: key });
  return traceGenealogy(pool, start, { direction, depth: 10, limit: 500, maySee: everyone, ...extra });
}

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${baseUrl}${path}`, { headers: { ...(await asAdmin()), ...headers } });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type') ?? '',
    text,
    json: <T>() => JSON.parse(text) as T,
  };
}

async function auditBatches(): Promise<number> {
  const res = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM holdfast.audit_record WHERE record_type = 'genealogy-batch' AND record_id LIKE $1`,
    [`${batch.source}:%`],
  );
  return Number(res.rows[0]?.n);
}

async function gap(kind: string, subject: string) {
  const res = await pool.query<{ resolved_at: Date | null; resolved_by: string | null; site: string }>(
    `SELECT resolved_at, resolved_by, site FROM holdfast.trace_gap WHERE kind = $1 AND subject = $2`,
    [kind, subject],
  );
  return res.rows[0];
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 5 });
  store = createGenealogyStore(createAuditTrail(pool));
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config: loadConfig(), namespace: 'test' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const lots = await store.recordLots(batch, LOTS);
  expect(lots).toEqual({ added: LOTS.length, updated: 0, unchanged: 0, gapsOpened: 9, gapsResolved: 0 });
  const moves = await store.recordMovements(batch, MOVES);
  // Every produced lot waited for the movement that made it: each is now explained.
  expect(moves).toEqual({ added: MOVES.length, updated: 0, unchanged: 0, gapsOpened: 0, gapsResolved: 9 });
  await store.recordDeliveries(batch, [
    {
      delivery: `80${run}`,
      item: '000010',
      site: A,
      customer: 'C-1',
      shipTo: 'SH-1',
      material: 'UNIT',
      lotKey: K.pal1,
      quantity: 80,
      unit: 'PC',
      shippedAt: '2026-11-10T12:00:00Z',
      sourceSystem: 'erp',
    },
    {
      delivery: `81${run}`,
      item: '000010',
      site: B,
      customer: 'C-2',
      shipTo: 'SH-2',
      material: 'UNIT',
      lotKey: K.fin2,
      quantity: 40,
      unit: 'PC',
      shippedAt: '2026-11-11T12:00:00Z',
      sourceSystem: 'erp',
    },
  ]);
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

describe('the store', () => {
  it('changes nothing when a batch is replayed: counts say unchanged and no audit record is added', async () => {
    const before = await auditBatches();
    expect(before).toBe(3);
    expect(await store.recordLots(batch, LOTS)).toEqual({
      added: 0,
      updated: 0,
      unchanged: LOTS.length,
      gapsOpened: 0,
      gapsResolved: 0,
    });
    expect(await store.recordMovements(batch, MOVES)).toEqual({
      added: 0,
      updated: 0,
      unchanged: MOVES.length,
      gapsOpened: 0,
      gapsResolved: 0,
    });
    expect(await auditBatches()).toBe(before);
  });

  it('records one audit record per batch, naming its source, counts and first and last document', async () => {
    const res = await pool.query<{ content: string }>(
      `SELECT content FROM holdfast.audit_record WHERE record_id LIKE $1 ORDER BY seq LIMIT 1`,
      [`${batch.source}:movements:%`],
    );
    const record = JSON.parse(res.rows[0]?.content ?? '{}') as { action: string; new: Record<string, unknown> };
    expect(record.action).toBe('genealogy.sync');
    expect(record.new).toMatchObject({
      source: batch.source,
      records: 'movements',
      rows: MOVES.length,
      added: MOVES.length,
      firstKey: MOVES[0]?.edgeKey,
      lastKey: MOVES[MOVES.length - 1]?.edgeKey,
    });
  });

  it('keeps a consumption that arrives before its receipt as a gap and resolves it when the receipt arrives', async () => {
    const late = erpKey('STEEL', `LATE-${run}`);
    const consumed = await store.recordMovements(batch, [move('consumed', lotNode(late), wo('C9'), 10, 'KG')]);
    expect(consumed).toMatchObject({ added: 1, gapsOpened: 1 });
    expect(await gap('consumption-without-receipt', lotNode(late))).toMatchObject({ resolved_at: null, site: A });
    const lotBefore = await pool.query(`SELECT origin FROM holdfast.material_lot WHERE lot_key = $1`, [late]);
    expect(lotBefore.rows).toEqual([{ origin: 'unknown' }]);

    const open = await get(`/v1/trace/gaps?site=${A}&kind=consumption-without-receipt`);
    expect(open.json<{ gaps: { subject: string }[] }>().gaps.map((g) => g.subject)).toEqual([lotNode(late)]);

    const receipt = purchased(late, 'STEEL', 'V100', `VB9-${run}`, 10, 'KG');
    expect(await store.recordLots(batch, [receipt])).toMatchObject({ added: 0, updated: 1, gapsResolved: 1 });
    expect(await gap('consumption-without-receipt', lotNode(late))).toMatchObject({ resolved_by: receipt.document });
    const after = await get(`/v1/trace/gaps?site=${A}&kind=consumption-without-receipt`);
    expect(after.json<{ gaps: unknown[] }>().gaps).toEqual([]);
    const all = await get(`/v1/trace/gaps?site=${A}&kind=consumption-without-receipt&state=all`);
    expect(all.json<{ gaps: { resolvedAt: string | null }[] }>().gaps).toEqual([
      expect.objectContaining({ subject: lotNode(late), resolvedAt: expect.any(String) }),
    ]);
  });

  it('refuses a second key for a lot whose MES lot id is already stored', async () => {
    const first = produced(erpKey('BRKT', `DUP-${run}`), 'BRKT', 'C1', 5);
    await store.recordLots(batch, [first]);
    const second: LotInput = { ...first, lotKey: lotKey({ mes: first.mes as { site: string; lotId: string } }) };
    delete second.erp;
    await expect(store.recordLots(batch, [second])).rejects.toThrow(GenealogyInputError);
    const rows = await pool.query(`SELECT lot_key FROM holdfast.material_lot WHERE lot_key = $1`, [second.lotKey]);
    expect(rows.rows).toEqual([]);
  });

  it('reports a part no camera inspected, and finds a part’s lot', async () => {
    const result = await store.recordParts(batch, [
      {
        site: A,
        partId: `P1-${run}`,
        serial: `SN1-${run}`,
        lotKey: K.fin1,
        workOrder: `F1-${run}`,
        sourceSystem: 'mes',
      },
    ]);
    expect(result).toMatchObject({ added: 1, gapsOpened: 1 });
    expect(await gap('part-without-inspection', `part:${A}/P1-${run}`)).toMatchObject({ resolved_at: null });
    expect(await resolveStart(pool, { kind: 'serial', serial: `SN1-${run}` })).toEqual([
      { node: lotNode(K.fin1), site: A },
    ]);
  });

  it('reports a delivery of a lot whose case is still open', async () => {
    const held = produced(erpKey('UNIT', `H1-${run}`), 'UNIT', 'F1', 5);
    await store.recordLots(batch, [held]);
    await pool.query(
      `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, state)
       VALUES ($1, 'r1', $2, 'L1', $3, 'UNIT', 'awaiting-disposition', '{}'::jsonb)`,
      [`lot-${run}-held`, A, held.mes?.lotId],
    );
    const shipped = await store.recordDeliveries(batch, [
      {
        delivery: `82${run}`,
        item: '000010',
        site: A,
        customer: 'C-1',
        shipTo: 'SH-1',
        lotKey: held.lotKey,
        shippedAt: '2026-11-12T12:00:00Z',
        sourceSystem: 'erp',
      },
    ]);
    expect(shipped).toMatchObject({ added: 1, gapsOpened: 1 });
    expect(await gap('shipment-of-held-lot', `delivery:82${run}/000010`)).toMatchObject({ resolved_at: null });
  });
});

describe('trace queries', () => {
  it('traces forward from a supplier lot to every lot made from it, with quantities and deliveries', async () => {
    const page = await trace('forward', K.sup1);
    expect(lotKeys(page)).toEqual([K.sup1, K.comp1, K.comp1a, K.comp1b, K.sub1, K.fin1, K.pal1, K.fin2].sort());
    expect(page.workOrders).toEqual([wo('C1'), wo('F1'), wo('F2', B), wo('SA1')].sort());
    const byKey = new Map(page.lots.map((l) => [l.lotKey, l]));
    expect(byKey.get(K.comp1)?.reachedVia).toEqual([
      expect.objectContaining({ kind: 'produced', from: wo('C1'), quantity: 100, unit: 'PC' }),
    ]);
    expect(byKey.get(K.comp1b)?.reachedVia).toEqual([
      expect.objectContaining({ kind: 'split', from: lotNode(K.comp1), quantity: 40 }),
    ]);
    expect(byKey.get(K.pal1)).toMatchObject({
      depth: 8,
      deliveries: [expect.objectContaining({ delivery: `80${run}`, customer: 'C-1', shipTo: 'SH-1', quantity: 80 })],
    });
    expect(byKey.get(K.sup1)).toMatchObject({ depth: 0, supplier: 'V100', supplierBatch: `VB1-${run}` });
    expect(page).toMatchObject({ totalLots: 8, hiddenLots: 0, cycles: [], truncated: false, next: null });
  });

  it('traces backward from the pallet to every lot it was made from, through the merge', async () => {
    const page = await trace('backward', K.pal1);
    expect(lotKeys(page)).toEqual([K.pal1, K.fin1, K.fin4, K.sub1, K.comp1a, K.comp2, K.comp1, K.sup1, K.sup2].sort());
    const byKey = new Map(page.lots.map((l) => [l.lotKey, l]));
    // Backward, `from` is the node nearer the pallet.
    expect(
      byKey
        .get(K.comp2)
        ?.reachedVia.map((e) => [e.from, e.quantity])
        .sort(),
    ).toEqual(
      [
        [wo('F4'), 20],
        [wo('SA1'), 60],
      ].sort(),
    );
    // Two routes into one lot (the cover through the sub-assembly and the finished lot F4) are no cycle.
    expect(page.cycles).toEqual([]);
    expect(byKey.get(K.sup2)?.reachedVia).toEqual([
      expect.objectContaining({ kind: 'consumed', quantity: 50, unit: 'L' }),
    ]);
  });

  it('stops at the depth asked for', async () => {
    const page = await trace('forward', K.sup1, { depth: 2 });
    expect(lotKeys(page)).toEqual([K.sup1, K.comp1].sort());
  });

  it('reports a cycle in bad data as a gap and does not hang', async () => {
    const [x, y] = [erpKey('BRKT', `CY1-${run}`), erpKey('BRKT', `CY2-${run}`)];
    await store.recordLots(batch, [produced(x, 'BRKT', 'CY', 1), produced(y, 'BRKT', 'CY', 1)]);
    await store.recordMovements(batch, [
      move('reworked', lotNode(x), lotNode(y), 1),
      move('reworked', lotNode(y), lotNode(x), 1),
    ]);
    const started = Date.now();
    const page = await trace('forward', x, { depth: 20 });
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(lotKeys(page)).toEqual([x, y].sort());
    expect(page.cycles).toEqual([[lotNode(x), lotNode(y), lotNode(x)]]);
    expect(await gap('cycle', [lotNode(x), lotNode(y)].sort()[0] as string)).toMatchObject({ resolved_at: null });
  });

  it('hides lots of sites the caller may not see, counting them', async () => {
    const page = await trace('forward', K.sup1, { maySee: (site) => site === A });
    expect(lotKeys(page)).not.toContain(K.fin2);
    expect(page).toMatchObject({ totalLots: 7, hiddenLots: 1 });
    expect(page.workOrders).not.toContain(wo('F2', B));
  });
});

describe('trace routes', () => {
  const forward = `/v1/trace/forward?by=supplier-lot&supplier=V100&supplierBatch=VB1-${run}`;

  it('pages a trace by cursor: the pages together are the whole trace', async () => {
    const whole = (await get(forward)).json<TracePage>();
    const keys: string[] = [];
    let path: string | null = `${forward}&limit=3`;
    let pages = 0;
    while (path) {
      const res = await get(path);
      expect(res.status).toBe(200);
      const page = res.json<TracePage>();
      keys.push(...page.lots.map((l) => l.lotKey));
      pages += 1;
      path = page.next ? `${forward}&limit=3&cursor=${page.next}` : null;
    }
    expect(pages).toBe(3);
    expect(keys).toEqual(whole.lots.map((l) => l.lotKey));
  });

  it('answers CSV with the same lots and quantities as JSON', async () => {
    const json = (await get(forward)).json<TracePage>();
    const csv = await get(forward, { accept: 'text/csv' });
    expect(csv.type).toMatch(/^text\/csv/);
    const [header, ...rows] = csv.text
      .trimEnd()
      .split('\r\n')
      .map((line) => line.split(','));
    const col = (name: string) => (header as string[]).indexOf(name);
    expect(rows.map((r) => [r[col('lot_key')], r[col('depth')], r[col('quantity')]])).toEqual(
      json.lots.map((l) => [l.lotKey, String(l.depth), String(l.quantity)]),
    );
    expect((await get(`${forward}&format=csv`)).text).toBe(csv.text);
  });

  it("refuses a trace from another site's lot, and hides other sites' lots from a site's user", async () => {
    const plantA = await bearerFor({ roles: ['quality-engineer'], sites: [A] });
    const plantB = await bearerFor({ roles: ['quality-engineer'], sites: [B] });
    const fromA = await get(forward, plantA);
    expect(fromA.status).toBe(200);
    const page = fromA.json<TracePage>();
    expect(page.hiddenLots).toBe(1);
    expect(page.lots.map((l) => l.lotKey)).not.toContain(K.fin2);
    expect(page.lots.flatMap((l) => l.deliveries.map((d) => d.site))).toEqual([A]);
    expect((await get(forward, plantB)).status).toBe(403);
    expect((await get(`/v1/trace/gaps?site=${A}`, plantB)).status).toBe(403);
  });

  it('answers 400 naming the missing field, 404 for an unknown start', async () => {
    const missing = await get(`/v1/trace/backward?by=mes-lot&site=${A}`);
    expect(missing.status).toBe(400);
    expect(missing.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toContain('querystring.lotId');
    const badCursor = await get(`${forward}&cursor=bm90LWEtY3Vyc29y`);
    expect(badCursor.status).toBe(400);
    expect(badCursor.json<{ errors: { field: string }[] }>().errors).toEqual([
      expect.objectContaining({ field: 'querystring.cursor' }),
    ]);
    expect((await get(`/v1/trace/forward?by=lot&lot=erp:none/${run}`)).status).toBe(404);
  });

  it('shows a lot: where it came from, what it went into, what the cameras saw', async () => {
    const fin1 = LOTS.find((l) => l.lotKey === K.fin1) as LotInput;
    const lotId = fin1.mes?.lotId as string;
    await pool.query(
      `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                        model_version, recipe_version, inspected_at, payload_sha256)
       SELECT $1 || n, $2, 'L1', 'S1', 'P' || n, 'UNIT', $3, 'F1', CASE WHEN n = 1 THEN 'fail' ELSE 'pass' END,
              CASE WHEN n = 1 THEN '[{"class":"scratch","score":0.9}]'::jsonb ELSE '[]'::jsonb END,
              'vision-' || $1, 'R1', now(), 'x'
         FROM generate_series(1, 3) AS n`,
      [`${run}-insp-`, A, lotId],
    );
    const res = await get(`/v1/lots/${lotId}/genealogy?site=${A}`);
    expect(res.status).toBe(200);
    const body = res.json<{
      lot: { lotKey: string; inspections: unknown };
      cameFrom: TracePage;
      wentInto: TracePage;
    }>();
    expect(body.lot).toMatchObject({
      lotKey: K.fin1,
      inspections: { pass: 2, fail: 1, defects: { scratch: 1 }, modelVersions: [`vision-${run}-insp-`] },
    });
    expect(lotKeys(body.cameFrom)).toEqual([K.sub1, K.comp1a, K.comp2, K.comp1, K.sup1, K.sup2].sort());
    expect(lotKeys(body.wentInto)).toEqual([K.pal1]);
    const byModel = await get(`/v1/trace/forward?by=model-version&modelVersion=vision-${run}-insp-`);
    expect(lotKeys(byModel.json<TracePage>())).toEqual([K.fin1, K.pal1].sort());
  });
});
