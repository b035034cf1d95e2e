/**
 * The genealogy from the systems that own the facts, checked against the plant history's ground truth: a seeded
 * history goes into the SAP and MES simulators, each site's ERP and MES sync workflow runs on a real worker until it
 * is current, and every lot's parents and children in Holdfast's genealogy equal the generator's. Out-of-order and
 * replayed MES events change nothing; the gaps put in on purpose are reported.
 */
import { randomBytes } from 'node:crypto';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { lotKey, lotNode } from '../../infra/genealogy/genealogy-keys';
import { MAX_DEPTH, resolveStart, walkGenealogy } from '../../infra/genealogy/trace-queries';
import { ensureGenealogySyncs } from '../../infra/temporal/genealogy-sync-starter';
import { generatePlantHistory, type GroundTruth } from '../../infra/simulators/plant-history/plant-history';
import { loadIntoSimulators } from '../../infra/simulators/plant-history/load';
import { genealogySyncStatusQuery, genealogySyncWorkflowId } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { type HoldfastStack, startHoldfastStack } from '../support/stack';
import { readTestEnv } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
let stack: HoldfastStack;
/** A plant of its own, so this run's lot keys are its own in the shared database. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
const site = 'PLANT1';

const history = generatePlantHistory({
  seed: 20261206,
  parts: 400,
  lots: 60,
  supplierLots: 12,
  days: 20,
  site,
  erpPlant,
  gaps: { 'batch-never-received': 1 },
  outOfOrderEvents: 3,
  replayedEvents: 3,
});
const truth: GroundTruth = history.groundTruth();

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  const base = loadConfig();
  const config: HoldfastConfig = {
    ...base,
    sites: base.sites.map((s) => (s.id === site ? { ...s, erpPlant } : s)),
    traceability: { sync: { ...base.traceability.sync, enabled: true, pageSize: 40, pollInterval: '1h' } },
  };
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config,
    seedDemo: false,
  });
  await loadIntoSimulators(history, {
    sap: { url: stack.sapUrl, username: stack.sapEnv.SAP_USER, password: stack.sapEnv.SAP_PASSWORD },
    mes: { url: stack.mesUrl },
  });
}, 120_000);

afterAll(async () => {
  for (const system of ['erp', 'mes'] as const) {
    await stack?.client.workflow
      .getHandle(genealogySyncWorkflowId(system, site))
      .terminate('test done')
      .catch(() => undefined);
  }
  await stack?.stop();
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
  const started = await ensureGenealogySyncs(stack.client, stack.config);
  expect(started.sort()).toEqual([genealogySyncWorkflowId('erp', site), genealogySyncWorkflowId('mes', site)]);
  for (const id of started) {
    await eventually(
      `${id} current`,
      () => stack.client.workflow.getHandle(id).query(genealogySyncStatusQuery),
      (status) => !status.catchingUp && status.totals.documents > 0,
      { timeoutMs: 120_000 },
    );
  }

  const keyOf = (l: { lotId: string; material: string }) =>
    lotNode(lotKey({ erp: { plant: erpPlant, material: l.material, batch: l.lotId } }));
  const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
  const [parents, children] = await Promise.all([neighbours('parents'), neighbours('children')]);
  const expected = (edges: GroundTruth['lots'][number]['parents']) =>
    edges.map((e) => `${e.lotId}:${e.quantity}`).sort();
  const mismatches: string[] = [];
  for (const lot of truth.lots) {
    const node = keyOf(lot);
    const got = { parents: (parents.get(node) ?? []).sort(), children: (children.get(node) ?? []).sort() };
    const want = { parents: expected(lot.parents), children: expected(lot.children) };
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

  // The batch consumed but never received is known only by reference, and reported as the gap it is.
  const unreceived = truth.expectedGaps.filter((g) => g.kind === 'batch-never-received').map((g) => g.lotId!);
  expect(unreceived).toHaveLength(1);
  const unreceivedKey = keyOf(byId.get(unreceived[0]!)!);
  expect(rows.find((r) => `lot:${r.lot_key}` === unreceivedKey)?.origin).toBe('unknown');
  const gaps = await pool.query<{ kind: string; subject: string }>(
    `SELECT kind, subject FROM holdfast.trace_gap WHERE subject LIKE $1 AND resolved_at IS NULL ORDER BY subject`,
    [`lot:erp:${erpPlant}/%`],
  );
  expect(gaps.rows).toEqual([{ kind: 'consumption-without-receipt', subject: unreceivedKey }]);

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
});

test("every supplier lot's forward trace reaches exactly the finished lots and deliveries the ground truth says", async () => {
  // Runs after the sync test above has brought the genealogy up to date (jest runs a file's tests in order).
  const finishedKey = (lotId: string) => {
    const lot = truth.lots.find((l) => l.lotId === lotId)!;
    return lotNode(lotKey({ erp: { plant: erpPlant, material: lot.material, batch: lot.lotId } }));
  };
  const finishedLots = new Set(truth.lots.filter((l) => l.level === 'finished').map((l) => finishedKey(l.lotId)));
  const wrong: string[] = [];
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
    const want = {
      finished: reach.finishedLots.map(finishedKey).sort(),
      deliveries: [...reach.deliveries].sort(),
    };
    const got = { finished, deliveries: deliveries.sort() };
    if (JSON.stringify(got) !== JSON.stringify(want))
      wrong.push(`${reach.supplierLot}: ${JSON.stringify({ got, want })}`);
  }
  expect(truth.supplierReach.length).toBeGreaterThan(5);
  expect(wrong.slice(0, 3)).toEqual([]);
});
