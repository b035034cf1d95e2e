/**
 * Material-lot context on inspections against real PostgreSQL (docs/changeover.md#material-lot-context): a seeded plant
 * history's MES production events written through the genealogy store (the purchased lots as the ERP's receipts would
 * state them), its inspections stored through ingest, and every inspection's component and supplier lots checked
 * against the history's ground truth, including one work order whose consumption arrives after its inspections,
 * and the defect-rate route against rates counted from the truth. The site and ERP plant are this run's own.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { LotInput } from '../../activities/ports';
import { buildApp } from '../../api/app';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { ProductionEvent, productionEventFacts } from '../../infra/connectors/mes-rest/mes-genealogy';
import { createPool } from '../../infra/db/pool';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import { type GenealogyStore, createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { ingestInspections } from '../../infra/ingest/ingest.service';
import {
  type GroundTruth,
  type InspectionBody,
  type TruthLot,
  generatePlantHistory,
} from '../../infra/simulators/plant-history/plant-history';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `MC${run}`;
const PLANT = `Q${run.slice(0, 3)}`;
const source = { source: `material-context-test-${run}` };

const history = generatePlantHistory({
  seed: 17,
  parts: 400,
  lots: 30,
  supplierLots: 8,
  days: 20,
  site: SITE,
  erpPlant: PLANT,
  defectRate: 0.05,
});
const truth: GroundTruth = history.groundTruth();
const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
const keyOf = (l: TruthLot) => lotKey({ erp: { plant: PLANT, material: l.material, batch: l.lotId } });
// Inspections of this run only: event ids are global, and other tests seed the same histories.
const inspections: InspectionBody[] = [...history.inspections()].map((b) => ({ ...b, eventId: `${run}-${b.eventId}` }));
const events = [...history.productionEvents()].map((e) => ProductionEvent.parse(e));

/** The truth's component lots of a work order: what the lot it produced consumed. */
function truthComponents(workOrder: string): string[] {
  const made = truth.lots.filter((l) => l.origin === 'production' && l.workOrder === workOrder);
  const parents = made.flatMap((l) => l.parents.filter((p) => p.via === 'consumption').map((p) => p.lotId));
  return [...new Set(parents.map((id) => keyOf(byId.get(id)!)))].sort();
}

/** The truth's supplier lots behind a work order: every supplier-level lot reached back from its components. */
function truthSuppliers(workOrder: string): string[] {
  const made = truth.lots.filter((l) => l.origin === 'production' && l.workOrder === workOrder);
  const seen = new Set<string>();
  const found = new Set<string>();
  const stack = made.flatMap((l) => l.parents.filter((p) => p.via === 'consumption').map((p) => p.lotId));
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const lot = byId.get(id)!;
    if (lot.level === 'supplier') found.add(keyOf(lot));
    stack.push(...lot.parents.map((p) => p.lotId));
  }
  return [...found].sort();
}

/** The ERP's receipts of the supplier lots, as the ERP sync states them. */
const purchasedLots: LotInput[] = truth.lots
  .filter((l) => l.level === 'supplier')
  .map((l) => ({
    lotKey: keyOf(l),
    site: SITE,
    material: l.material,
    quantity: l.quantity,
    unit: l.unit,
    origin: 'purchased',
    erp: { plant: PLANT, material: l.material, batch: l.lotId },
    purchased: {
      supplier: l.supplier!,
      supplierBatch: l.supplierBatch!,
      purchaseOrder: l.purchaseOrder!,
      purchaseOrderItem: '00010',
      goodsReceipt: `gr-${l.lotId}`,
    },
    sourceSystem: 'erp',
    document: `gr-${run}-${l.lotId}`,
  }));

const scope = { site: SITE, erpPlant: PLANT, production: 'mes' as const };

// The late work order: a sub-assembly's, whose lot a finished work order consumed, so the late consumption changes
// both its own inspections (pending until then) and the finished order's supplier lots (joined at ingest, partly).
const lateLot = truth.lots.find(
  (l) =>
    l.level === 'subassembly' &&
    l.origin === 'production' &&
    inspections.some((i) => i.workOrder === l.workOrder) &&
    l.children.some((c) => c.via === 'consumption' && byId.get(c.lotId)?.origin === 'production'),
)!;
const LATE = lateLot.workOrder!;
const downstream = byId.get(lateLot.children.find((c) => c.via === 'consumption')!.lotId)!.workOrder!;
const isLate = (e: ProductionEvent) => e.eventType === 'production' && e.productionRequestId === LATE;

let pool: Pool;
let store: GenealogyStore;
let config: HoldfastConfig;
let app: FastifyInstance;

interface ContextRow {
  event_id: string;
  work_order: string;
  material_context: string;
  material_context_at: Date | null;
  component_lots: string[] | null;
  supplier_lots: string[] | null;
  received_at: Date;
}

async function contexts(): Promise<ContextRow[]> {
  const { rows } = await pool.query<ContextRow>(
    `SELECT event_id, work_order, material_context, material_context_at, component_lots, supplier_lots, received_at
       FROM holdfast.inspection WHERE site = $1 ORDER BY event_id`,
    [SITE],
  );
  return rows;
}

async function ingestAll(): Promise<void> {
  for (let i = 0; i < inspections.length; i += 100) {
    const outcome = await ingestInspections(pool, config, inspections.slice(i, i + 100));
    expect(outcome.kind).toBe('stored');
  }
}

beforeAll(async () => {
  expect(lateLot).toBeDefined();
  pool = createPool(readTestEnv().databaseUrl, { max: 4 });
  store = createGenealogyStore(createAuditTrail(pool));
  const base = loadConfig();
  config = { ...base, sites: [{ ...base.sites[0]!, id: SITE, erpPlant: PLANT }] };
  const gateway = new Proxy({} as WorkflowGateway, {
    get: (_, name) => () => Promise.reject(new Error(`reads must not call the gateway (${String(name)})`)),
  });
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'test' });

  await store.recordLots(source, purchasedLots);
  const early = events.filter((e) => !isLate(e)).map((e) => productionEventFacts(e, scope));
  for (let i = 0; i < early.length; i += 50) {
    const page = early.slice(i, i + 50);
    await store.recordPage(source, {
      lots: page.flatMap((f) => f.lots),
      movements: page.flatMap((f) => f.movements),
      deliveries: [],
      parts: [],
    });
  }
  await ingestAll();
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

describe('material-lot context', () => {
  test('every inspection whose consumption was known is joined at ingest with the truth’s lots', async () => {
    const rows = await contexts();
    expect(rows).toHaveLength(inspections.length);
    const joined = rows.filter((r) => r.work_order !== LATE && r.work_order !== downstream);
    expect(joined.length).toBeGreaterThan(100);
    for (const r of joined) {
      expect({ id: r.event_id, state: r.material_context }).toEqual({ id: r.event_id, state: 'at-ingest' });
      expect(r.component_lots).toEqual(truthComponents(r.work_order));
      expect(r.supplier_lots).toEqual(truthSuppliers(r.work_order));
      expect(r.supplier_lots!.length).toBeGreaterThan(0);
      expect(r.material_context_at).not.toBeNull();
    }
  });

  test('the late work order is pending; the order downstream of it lacks the supplier lots behind it', async () => {
    const rows = await contexts();
    const late = rows.filter((r) => r.work_order === LATE);
    expect(late.length).toBeGreaterThan(0);
    for (const r of late) {
      expect(r.material_context).toBe('pending');
      expect(r.component_lots).toBeNull();
      expect(r.material_context_at).toBeNull();
    }
    const down = rows.filter((r) => r.work_order === downstream);
    // Its components are all known (its own consumption arrived); what the late order consumed is not reached yet.
    for (const r of down) {
      expect(r.material_context).toBe('at-ingest');
      expect(r.component_lots).toEqual(truthComponents(downstream));
    }
  });

  test('the consumption arriving after the inspection completes the join, marked completed-later with when', async () => {
    const before = new Date();
    const facts = events.filter(isLate).map((e) => productionEventFacts(e, scope));
    expect(facts).toHaveLength(1);
    await store.recordPage(source, { ...facts[0]!, parts: [] });

    const rows = await contexts();
    const late = rows.filter((r) => r.work_order === LATE);
    for (const r of late) {
      expect(r.material_context).toBe('completed-later');
      expect(r.component_lots).toEqual(truthComponents(LATE));
      expect(r.supplier_lots).toEqual(truthSuppliers(LATE));
      expect(r.material_context_at!.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1000);
      expect(r.material_context_at!.getTime()).toBeGreaterThan(r.received_at.getTime());
    }
    // Every inspection now matches the truth, the downstream order's included.
    for (const r of rows) {
      expect({ id: r.event_id, lots: r.supplier_lots }).toEqual({
        id: r.event_id,
        lots: truthSuppliers(r.work_order),
      });
    }
    // The lots kept per work order for the lot figures (holdfast.work_order_lot) are the truth's too, the late order's
    // and the downstream order's (which gained the supplier lots behind the late one) included.
    const kept = await pool.query<{ work_order: string; lot_kind: string; lot_key: string }>(
      `SELECT work_order, lot_kind, lot_key FROM holdfast.work_order_lot WHERE site = $1`,
      [SITE],
    );
    const keptOf = (wo: string, kind: string) =>
      kept.rows
        .filter((k) => k.work_order === wo && k.lot_kind === kind)
        .map((k) => k.lot_key)
        .sort();
    const orders = [...new Set(rows.map((r) => r.work_order))];
    expect(orders).toEqual(expect.arrayContaining([LATE, downstream]));
    for (const wo of orders) {
      expect({ wo, component: keptOf(wo, 'component'), supplier: keptOf(wo, 'supplier') }).toEqual({
        wo,
        component: truthComponents(wo),
        supplier: truthSuppliers(wo),
      });
    }
    expect(new Set(kept.rows.map((k) => k.work_order))).toEqual(new Set(orders));
    // A replay of the same page changes nothing (the store keys facts by document; the context is unchanged).
    const stamped = late.map((r) => r.material_context_at!.getTime());
    await store.recordPage(source, { ...facts[0]!, parts: [] });
    expect(
      (await contexts()).filter((r) => r.work_order === LATE).map((r) => r.material_context_at!.getTime()),
    ).toEqual(stamped);
  });

  test('GET /v1/quality/defect-rates by supplier lot equals the rates counted from the truth', async () => {
    const expected = new Map<string, { parts: Set<string>; failed: Set<string> }>();
    for (const i of inspections) {
      for (const key of truthSuppliers(i.workOrder)) {
        const e = expected.get(key) ?? { parts: new Set(), failed: new Set() };
        e.parts.add(i.partId);
        if (i.result === 'fail') e.failed.add(i.partId);
        expected.set(key, e);
      }
    }
    const res = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=supplier-lot&from=2025-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
      headers: await asAdmin(),
    });
    expect(res.statusCode).toBe(200);
    const body = res.json<{ rows: { key: string; parts: number; defective: number; supplier: string }[] }>();
    expect(body.rows.map((r) => r.key).sort()).toEqual([...expected.keys()].sort());
    for (const r of body.rows) {
      const e = expected.get(r.key)!;
      expect({ key: r.key, parts: r.parts, defective: r.defective }).toEqual({
        key: r.key,
        parts: e.parts.size,
        defective: e.failed.size,
      });
      expect(r.supplier).toBe(byId.get(r.key.split('/')[2]!)!.supplier);
    }

    const bySupplier = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=supplier&from=2025-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
      headers: await asAdmin(),
    });
    expect(bySupplier.statusCode).toBe(200);
    const suppliers = new Set(truth.lots.filter((l) => l.level === 'supplier').map((l) => l.supplier));
    expect(bySupplier.json<{ rows: { key: string }[] }>().rows.every((r) => suppliers.has(r.key))).toBe(true);
  });

  test('defect-rates refuses bad parameters with problem+json naming the field, and unauthenticated callers', async () => {
    const bad = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=colour&from=2025-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
      headers: await asAdmin(),
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(bad.body).toContain('by');
    const backwards = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=supplier&from=2030-01-01T00:00:00Z&to=2025-01-01T00:00:00Z`,
      headers: await asAdmin(),
    });
    expect(backwards.statusCode).toBe(400);
    expect(backwards.body).toContain('to');
    const anonymous = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=supplier&from=2025-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
    });
    expect(anonymous.statusCode).toBe(401);
    const otherSite = await app.inject({
      method: 'GET',
      url: `/v1/quality/defect-rates?site=${SITE}&by=supplier&from=2025-01-01T00:00:00Z&to=2030-01-01T00:00:00Z`,
      headers: await bearerFor({ username: 'qe-elsewhere', roles: ['quality-engineer'], sites: ['ELSEWHERE'] }),
    });
    expect(otherSite.statusCode).toBe(403);
  });

  test('GET /v1/defects/:id shows the inspection’s component and supplier lots with their suppliers', async () => {
    const one = inspections.find((i) => i.workOrder === LATE)!;
    const res = await app.inject({ method: 'GET', url: `/v1/defects/${one.eventId}`, headers: await asAdmin() });
    expect(res.statusCode).toBe(200);
    const ctx = res.json<{
      inspection: {
        materialContext: {
          state: string;
          componentLots: { lotKey: string }[];
          supplierLots: { lotKey: string; supplier: string; supplierBatch: string }[];
        };
      };
    }>().inspection.materialContext;
    expect(ctx.state).toBe('completed-later');
    expect(ctx.componentLots.map((l) => l.lotKey)).toEqual(truthComponents(LATE));
    for (const s of ctx.supplierLots) {
      const lot = byId.get(s.lotKey.split('/')[2]!)!;
      expect({ supplier: s.supplier, batch: s.supplierBatch }).toEqual({
        supplier: lot.supplier,
        batch: lot.supplierBatch,
      });
    }
  });
});
