/**
 * The genealogy from the systems that own the facts, checked against the plant history's ground truth: a seeded
 * history goes into the SAP and MES simulators, each site's ERP and MES sync workflow runs on a real worker until it
 * is current, and every lot's parents and children in Holdfast's genealogy equal the generator's. Out-of-order and
 * replayed MES events change nothing; the gaps put in on purpose are reported.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { createPool } from '../../infra/db/pool';
import { deliveryNode, lotKey, lotNode } from '../../infra/genealogy/genealogy-keys';
import { MAX_DEPTH, resolveStart, walkGenealogy } from '../../infra/genealogy/trace-queries';
import { generatePlantHistory, type GroundTruth } from '../../infra/simulators/plant-history/plant-history';
import { genealogySyncWorkflowId } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import type { HoldfastStack } from '../support/stack';
import { startGenealogyStack, stopGenealogyStack, syncGenealogy } from '../support/genealogy-stack';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
let stack: HoldfastStack;
/** A plant of its own, so this run's lot keys are its own in the shared database. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
/**
 * A site of its own too: the sync workflows' ids name the site, and other tests' workers (npm start's own) run the
 * syncs of temporal.yaml's PLANT1 on the same Temporal server.
 */
const site = `GEN-${erpPlant}`;

const history = generatePlantHistory({
  seed: 20261206,
  // Delivery numbers of its own: other tests' histories share this genealogy.
  firstDelivery: 83000001,
  parts: 400,
  lots: 60,
  supplierLots: 12,
  days: 20,
  site,
  erpPlant,
  // No random defects: the one failing part is the lot that will be held after it shipped.
  defectRate: 0,
  gaps: {
    'batch-never-received': 1,
    'lot-without-source': 1,
    'part-without-inspection': 2,
    'shipped-lot-will-be-held': 1,
  },
  outOfOrderEvents: 3,
  replayedEvents: 3,
});
const truth: GroundTruth = history.groundTruth();
/**
 * The lot made from nothing on purpose: the truth keeps the components it was made of, but neither system ever states
 * that consumption, so the genealogy has no edges into it (and reports the gap instead).
 */
const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
const sourceless = new Set(truth.expectedGaps.filter((g) => g.kind === 'lot-without-source').map((g) => g.lotId!));
/** The truth as the systems state it: each lot's parents and children, less the consumption never stated. */
const stated = (lot: GroundTruth['lots'][number]) => ({
  parents: sourceless.has(lot.lotId) ? [] : lot.parents,
  children: lot.children.filter((c) => !sourceless.has(c.lotId)),
});

beforeAll(async () => {
  stack = await startGenealogyStack(pool, { site, erpPlant, history });
  // The cameras' findings, as the stations posted them; the failing part holds its lot (after it shipped).
  const inspections = [...history.inspections()];
  for (let i = 0; i < inspections.length; i += 500) {
    const res = await stack.api.inject({
      method: 'POST',
      url: '/v1/inspections',
      headers: stack.adminHeaders,
      payload: { results: inspections.slice(i, i + 500) },
    });
    expect(res.statusCode).toBe(202);
  }
}, 120_000);

afterAll(async () => {
  await stopGenealogyStack(stack, site);
  await pool.end();
});

/** A lot's neighbours in Holdfast's genealogy, through work orders: lot ids with quantities. */
async function neighbours(direction: 'parents' | 'children'): Promise<Map<string, string[]>> {
  const [near, far] = direction === 'parents' ? ['to_node', 'from_node'] : ['from_node', 'to_node'];
  // Lot → lot directly (split, merge), or lot → work order → lot (consumed, then produced).
  const { rows } = await pool.query<{ lot: string; other: string; quantity: string }>(
    `SELECT e.${near} AS lot, e.${far} AS other, e.quantity::text AS quantity
       FROM holdfast.genealogy_edge e
      WHERE e.${near} LIKE $1 AND e.${far} LIKE 'lot:%'
     UNION ALL
     SELECT p.${near}, c.${far}, ${direction === 'parents' ? 'c' : 'p'}.quantity::text
       FROM holdfast.genealogy_edge p
       JOIN holdfast.genealogy_edge c ON c.${near} = p.${far}
      WHERE p.${near} LIKE $1 AND p.${far} LIKE 'wo:%' AND c.${far} LIKE 'lot:%'`,
    [`lot:erp:${erpPlant}/%`],
  );
  const byLot = new Map<string, string[]>();
  for (const r of rows) {
    const list = byLot.get(r.lot) ?? [];
    list.push(`${r.other.split('/').at(-1)}:${Number(r.quantity)}`);
    byLot.set(r.lot, list);
  }
  return byLot;
}

test('both syncs catch up, and every lot has exactly its parents and children, quantities included', async () => {
  const [held] = truth.expectedGaps.filter((g) => g.kind === 'shipped-lot-will-be-held');
  await eventually('the held lot has its case', async () => {
    const { rows } = await pool.query('SELECT 1 FROM holdfast.lot_case WHERE site = $1 AND lot_id = $2', [
      site,
      held!.lotId,
    ]);
    return rows.length === 1;
  });
  const started = await syncGenealogy(stack);
  expect(started.sort()).toEqual([genealogySyncWorkflowId('erp', site), genealogySyncWorkflowId('mes', site)]);

  const keyOf = (l: { lotId: string; material: string }) =>
    lotNode(lotKey({ erp: { plant: erpPlant, material: l.material, batch: l.lotId } }));
  const [parents, children] = await Promise.all([neighbours('parents'), neighbours('children')]);
  const expected = (edges: GroundTruth['lots'][number]['parents']) =>
    edges.map((e) => `${e.lotId}:${e.quantity}`).sort();
  const mismatches: string[] = [];
  for (const lot of truth.lots) {
    const node = keyOf(lot);
    const got = { parents: (parents.get(node) ?? []).sort(), children: (children.get(node) ?? []).sort() };
    const want = { parents: expected(stated(lot).parents), children: expected(stated(lot).children) };
    if (JSON.stringify(got) !== JSON.stringify(want)) mismatches.push(`${lot.lotId}: ${JSON.stringify({ got, want })}`);
  }
  expect(mismatches.slice(0, 5)).toEqual([]);
  // No lot of this plant that the truth does not have, and none missing.
  const { rows } = await pool.query<{ lot_key: string; origin: string }>(
    `SELECT lot_key, origin FROM holdfast.material_lot WHERE lot_key LIKE $1`,
    [`erp:${erpPlant}/%`],
  );
  const truthKeys = new Set(truth.lots.map((l) => keyOf(l).slice('lot:'.length)));
  expect(rows.filter((r) => !truthKeys.has(r.lot_key)).map((r) => r.lot_key)).toEqual([]);
  expect(rows).toHaveLength(truth.lots.length);

  // Every gap put in on purpose is reported, and nothing else is open: the replayed and out-of-order events left none.
  const lotOf = (g: { lotId?: string }) => keyOf(byId.get(g.lotId!)!);
  const expectedGaps = truth.expectedGaps.flatMap((g): { kind: string; subject: string }[] => {
    switch (g.kind) {
      case 'batch-never-received':
        return [{ kind: 'consumption-without-receipt', subject: lotOf(g) }];
      case 'lot-without-source':
        return [{ kind: 'lot-without-source', subject: lotOf(g) }];
      case 'part-without-inspection':
        return [{ kind: 'part-without-inspection', subject: `part:${site}/${g.partId!}` }];
      case 'shipped-lot-will-be-held':
        return byId
          .get(g.lotId!)!
          .deliveries.map((d) => ({ kind: 'shipment-of-held-lot', subject: deliveryNode(d.delivery, d.item) }));
      default:
        return [];
    }
  });
  expect(expectedGaps.map((g) => g.kind).sort()).toEqual(
    expect.arrayContaining([
      'consumption-without-receipt',
      'lot-without-source',
      'part-without-inspection',
      'shipment-of-held-lot',
    ]),
  );
  const open = await pool.query<{ kind: string; subject: string }>(
    `SELECT kind, subject FROM holdfast.trace_gap WHERE site = $1 AND resolved_at IS NULL ORDER BY kind, subject`,
    [site],
  );
  const bySubject = (a: { kind: string; subject: string }, b: { kind: string; subject: string }) =>
    `${a.kind} ${a.subject}`.localeCompare(`${b.kind} ${b.subject}`);
  expect(open.rows.sort(bySubject)).toEqual(expectedGaps.sort(bySubject));
  const unreceived = truth.expectedGaps.find((g) => g.kind === 'batch-never-received')!;
  expect(rows.find((r) => `lot:${r.lot_key}` === lotOf(unreceived))?.origin).toBe('unknown');

  // Every delivery with its customer, ship-to and lots; every serialised part in its lot.
  const shipped = await pool.query<{ delivery: string; customer: string; ship_to: string; lots: string[] }>(
    `SELECT delivery, min(customer) AS customer, min(ship_to) AS ship_to, array_agg(DISTINCT lot_key ORDER BY lot_key) AS lots
       FROM holdfast.delivery WHERE lot_key LIKE $1 GROUP BY delivery ORDER BY delivery`,
    [`erp:${erpPlant}/%`],
  );
  const lotKeyOf = (id: string) => keyOf(byId.get(id)!).slice('lot:'.length);
  expect(shipped.rows).toEqual(
    truth.deliveries
      .map((d) => ({
        delivery: d.delivery,
        customer: d.soldToParty,
        ship_to: d.shipToParty,
        lots: [...new Set(d.lots.map(lotKeyOf))].sort(),
      }))
      .sort((a, b) => a.delivery.localeCompare(b.delivery)),
  );
  const parts = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM holdfast.produced_part WHERE lot_key LIKE $1`,
    [`erp:${erpPlant}/%`],
  );
  expect(parts.rows[0]!.n).toBe(truth.counts.parts);
}, 180_000);

test("every supplier lot's forward trace reaches exactly the finished lots and deliveries the ground truth says", async () => {
  // Runs after the sync test above has brought the genealogy up to date (jest runs a file's tests in order).
  const finishedKey = (lotId: string) => {
    const lot = truth.lots.find((l) => l.lotId === lotId)!;
    return lotNode(lotKey({ erp: { plant: erpPlant, material: lot.material, batch: lot.lotId } }));
  };
  const finishedLots = new Set(truth.lots.filter((l) => l.level === 'finished').map((l) => finishedKey(l.lotId)));
  const wrong: string[] = [];
  let checked = 0;
  for (const reach of truth.supplierReach) {
    const supplier = truth.lots.find((l) => l.lotId === reach.supplierLot)!;
    const start = await resolveStart(pool, {
      kind: 'erp-batch',
      plant: erpPlant,
      material: supplier.material,
      batch: supplier.lotId,
    });
    const walk = await walkGenealogy(pool, start, 'forward', MAX_DEPTH);
    const reached = new Set(walk.depthOf.keys());
    const finished = [...reached].filter((n) => finishedLots.has(n)).sort();
    const deliveries = [
      ...new Set(
        [...reached].filter((n) => n.startsWith('delivery:')).map((n) => n.slice('delivery:'.length).split('/')[0]!),
      ),
    ];
    // Every lot the supplier lot reaches through what the systems stated, and the deliveries of its finished lots.
    const reachable = new Set<string>();
    const queue = [reach.supplierLot];
    while (queue.length > 0) {
      for (const child of stated(byId.get(queue.pop()!)!).children) {
        if (reachable.has(child.lotId)) continue;
        reachable.add(child.lotId);
        queue.push(child.lotId);
      }
    }
    const finishedReached = [...reachable].filter((id) => byId.get(id)!.level === 'finished');
    const want = {
      finished: finishedReached.map(finishedKey).sort(),
      deliveries: [...new Set(finishedReached.flatMap((id) => byId.get(id)!.deliveries.map((d) => d.delivery)))].sort(),
    };
    checked += 1;
    const got = { finished, deliveries: deliveries.sort() };
    if (JSON.stringify(got) !== JSON.stringify(want))
      wrong.push(`${reach.supplierLot}: ${JSON.stringify({ got, want })}`);
  }
  expect(checked).toBeGreaterThan(5);
  expect(wrong.slice(0, 3)).toEqual([]);
});
