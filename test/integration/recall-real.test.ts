/**
 * A real recall of a supplier lot over a synced plant history, checked against the generator's ground truth and the
 * simulators' own records: every affected lot held once in the MES and blocked once in SAP, nothing else touched,
 * every customer and ship-to that received lots made from it notified once (the file drop) with what reached it,
 * with a worker process killed in the middle of the contain stage and a new one finishing it; the same request again
 * changes nothing; a cancelled recall places nothing after its cancel and still reports.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pool } from 'pg';
import type { RecallNotice } from '../../activities/ports';
import type { RecallReportDocument } from '../../api/routes/recalls/recall-report';
import { createPool } from '../../infra/db/pool';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import { generatePlantHistory } from '../../infra/simulators/plant-history/plant-history';
import type { HoldfastConfig } from '../../infra/config/schema';
import { recallStatusQuery, type RecallStatus } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { signerAccount } from '../support/identity';
import { getJson, postJson, putJson, sapAuth } from '../support/plant';
import type { HoldfastStack } from '../support/stack';
import { startGenealogyStack, stopGenealogyStack, syncGenealogy } from '../support/genealogy-stack';
import { readTestEnv } from '../support/test-env';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
let stack: HoldfastStack;
let worker: WorkerProcess | undefined;
/** A plant and site of their own: this run's lot keys and workflow ids collide with no other test's. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
const site = `RRC-${erpPlant}`;
const history = generatePlantHistory({
  // Two supplier lots of this seed reach 26 and 23 lots the plant still has, none in common.
  seed: 7,
  // Delivery numbers of its own: other tests' histories share this genealogy.
  firstDelivery: 87000001,
  parts: 1600,
  lots: 800,
  supplierLots: 10,
  days: 10,
  site,
  erpPlant,
  defectRate: 0,
});
const truth = history.groundTruth();
const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
const left = new Map(history.stock().map((s) => [s.batch, s.quantity]));
const NOTICES = mkdtempSync(join(tmpdir(), 'holdfast-recall-notices-'));
const keyOf = (id: string) => lotKey({ erp: { plant: erpPlant, material: byId.get(id)!.material, batch: id } });

/** The lot and every lot made from it, at any depth. */
function reachedFrom(supplierLot: string): Set<string> {
  const reached = new Set<string>([supplierLot]);
  const stack = [supplierLot];
  while (stack.length > 0) {
    for (const c of byId.get(stack.pop()!)!.children) {
      if (!reached.has(c.lotId)) {
        reached.add(c.lotId);
        stack.push(c.lotId);
      }
    }
  }
  return reached;
}

/** The scope's lot and every lot made from it that the plant still has some of: what a recall must contain. */
function affectedBy(supplierLot: string): string[] {
  return [...reachedFrom(supplierLot)].filter((id) => (left.get(id) ?? 0) > 0).sort();
}

// The supplier lot that reaches the most lots.
const scopeLot = [...truth.lots]
  .filter((l) => l.level === 'supplier')
  .sort((a, b) => affectedBy(b.lotId).length - affectedBy(a.lotId).length)[0]!;
const affected = affectedBy(scopeLot.lotId);

interface MesHold {
  holdId: string;
  lotId: string;
  status: string;
  externalReference: string;
}
interface SapItem {
  MaterialDocument: string;
  MaterialDocumentYear: string;
  Material: string;
  Batch: string;
  QuantityInEntryUnit: string;
}

const mesHolds = async () => (await getJson<{ items: MesHold[] }>(`${stack.mesUrl}/api/v1/holds`)).items;
/** Every 344 (to blocked stock) SAP has posted at this plant, as SAP lists its document items. */
async function sapBlocks(): Promise<SapItem[]> {
  const filter = encodeURIComponent(`GoodsMovementType eq '344' and Plant eq '${erpPlant}'`);
  const body = await getJson<{ d: { results: SapItem[] } }>(
    `${stack.sapUrl}/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${filter}&$top=5000`,
    sapAuth(stack),
  );
  return body.d.results;
}

function withSmallBatches(config: HoldfastConfig): HoldfastConfig {
  // Several batches, two at a time, and a dead worker's batch handed on within seconds.
  return {
    ...config,
    // The worker processes validate the file they are given: no recipe of the demo plant's site, which is not here.
    vision: { ...config.vision, recipes: [] },
    recall: {
      contain: { batchSize: 4, parallelBatches: 2, lotConcurrency: 2, batchTimeout: '2m', heartbeatTimeout: '4s' },
    },
    // The notices go to a directory of this run's own: the test reads what the customers would receive.
    connectors: {
      ...config.connectors,
      'recall-notices': {
        ...config.connectors['recall-notices']!,
        directory: NOTICES,
      },
    },
  };
}

beforeAll(async () => {
  expect(affected.length).toBeGreaterThanOrEqual(10);
  stack = await startGenealogyStack(pool, { site, erpPlant, history, configure: withSmallBatches });
  await syncGenealogy(stack);
  // The recall runs on worker processes of its own (one of them killed): the in-process worker stops here.
  for (const w of stack.workers) w.shutdown();
  await eventually('in-process worker stopped', () => stack.workers.every((w) => w.getState() === 'STOPPED'), {
    timeoutMs: 60_000,
  });
}, 300_000);

afterAll(async () => {
  await worker?.stop();
  await stopGenealogyStack(stack, site);
  await pool.end();
});

test('a real recall holds and blocks every affected lot once, through a worker killed mid-contain', async () => {
  const produced = affected.filter((id) => byId.get(id)!.level !== 'supplier');
  // One lot an MES user has on hold already, one held by an open lot case (its projection row): neither is held again.
  const mesHeld = produced[0]!;
  const caseHeld = produced[1]!;
  const own = (await postJson(`${stack.mesUrl}/api/v1/lots/${mesHeld}/holds`, {
    reason: 'quarantine by the MES',
    defectClass: 'other',
    line: 'L1',
    station: 'S1',
    externalReference: `mes-user-${erpPlant}`,
  })) as { holdId: string };
  await pool.query(
    `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, state)
     VALUES ($1, 'open', $2, 'L1', $3, $4, 'awaiting-disposition', 'H-CASE', '{}')`,
    [`lot-${site}-${caseHeld}`, site, caseHeld, byId.get(caseHeld)!.material],
  );
  const holdsBefore = await mesHolds();
  const blocksBefore = await sapBlocks();
  expect(blocksBefore).toEqual([]);

  // The first worker dies right after SAP committed a block, before the intent ledger records it.
  const doomed = (worker = startWorkerProcess(stack, { HOLDFAST_CRASH_AT: 'before-outcome-erp-goods-movement' }));
  await doomed.ready;
  const qm = await signerAccount(
    pool,
    { username: `rrc-qm-${erpPlant.toLowerCase()}`, roles: ['quality-manager'], sites: [site] },
    stack.signingKey,
  );
  const request = {
    method: 'POST' as const,
    url: '/v1/recalls',
    headers: { ...qm.headers, 'idempotency-key': `real-${erpPlant}` },
    payload: {
      site,
      kind: 'real',
      scope: { kind: 'erp-batch', plant: erpPlant, material: scopeLot.material, batch: scopeLot.lotId },
      reason: 'supplier reports contaminated resin',
      signature: qm.signature(),
    },
  };
  const first = await stack.api.inject(request);
  expect(first.statusCode).toBe(202);
  const { recallId, workflowId } = first.json<{ recallId: string; workflowId: string }>();
  expect(await doomed.exited).toBe('SIGKILL');
  const atCrash = await pool.query<{ state: string; n: number }>(
    'SELECT state, count(*)::int AS n FROM holdfast.recall_containment WHERE recall_id = $1 GROUP BY state',
    [recallId],
  );
  // Killed with lots still to do.
  expect(atCrash.rows.find((r) => r.state === 'pending')?.n).toBeGreaterThan(0);

  worker = startWorkerProcess(stack, {});
  await worker.ready;
  const handle = stack.client.workflow.getHandle(workflowId);
  const status = (await handle.result()) as RecallStatus;
  expect(status.state).toBe('completed');
  expect(status.stages.map((s) => [s.name, s.state])).toEqual([
    ['trace', 'done'],
    ['classify', 'done'],
    ['reinspect', 'skipped'],
    ['contain', 'done'],
    ['notify', 'done'],
    ['reconcile', 'done'],
    ['report', 'done'],
  ]);
  const batches = Math.ceil(affected.length / 4);
  expect(status.contain).toEqual({
    lots: affected.length,
    batches,
    batchesDone: batches,
    held: affected.length - 2,
    alreadyHeld: 2,
    blocked: affected.length,
    nothingToBlock: 0,
    failed: 0,
    cancelled: 0,
  });
  await expect(handle.query(recallStatusQuery)).resolves.toEqual(status);

  // Holdfast's record: exactly the affected lots, each with the outcome the rule gives it.
  const rows = await pool.query<{
    lot_key: string;
    state: string;
    mes_state: string;
    hold_id: string | null;
    erp_blocks: { quantity: number; materialDocument: string }[];
  }>('SELECT lot_key, state, mes_state, hold_id, erp_blocks FROM holdfast.recall_containment WHERE recall_id = $1', [
    recallId,
  ]);
  const record = new Map(rows.rows.map((r) => [r.lot_key, r]));
  expect([...record.keys()].sort()).toEqual(affected.map(keyOf).sort());
  expect(record.get(keyOf(mesHeld))).toMatchObject({ state: 'already-held', mes_state: 'mes-hold' });
  expect(record.get(keyOf(caseHeld))).toMatchObject({
    state: 'already-held',
    mes_state: 'lot-case',
    hold_id: 'H-CASE',
  });
  // A bought lot the MES does not know is blocked in SAP only.
  if (affected.includes(scopeLot.lotId)) {
    expect(record.get(keyOf(scopeLot.lotId))).toMatchObject({ state: 'held', mes_state: 'no-mes-lot' });
  }

  // The MES's own record: one hold of this recall per affected lot it knows, none on any other lot.
  const recallHolds = (await mesHolds()).filter((h) => h.externalReference.startsWith(`recall:${recallId}:`));
  const expectedHeld = produced.filter((id) => id !== mesHeld && id !== caseHeld).sort();
  expect(recallHolds.map((h) => h.lotId).sort()).toEqual(expectedHeld);
  for (const h of recallHolds) expect(record.get(keyOf(h.lotId))!.hold_id).toBe(h.holdId);
  expect((await mesHolds()).length).toBe(holdsBefore.length + expectedHeld.length);
  expect(own.holdId).toBeDefined();

  // SAP's own record: one 344 per affected batch, for all the stock the plant had of it; no other batch blocked.
  const blocks = await sapBlocks();
  expect(blocks.map((b) => b.Batch).sort()).toEqual([...affected].sort());
  for (const b of blocks) {
    expect([b.Batch, Number(b.QuantityInEntryUnit)]).toEqual([b.Batch, left.get(b.Batch)]);
    expect(record.get(keyOf(b.Batch))!.erp_blocks.map((x) => x.materialDocument)).toEqual([b.MaterialDocument]);
  }

  // Every customer and ship-to that received lots made from the supplier lot: one notice each, with what reached it
  // (the truth's delivery items of every lot reached forward, summed per customer and ship-to).
  const expectedNotices = new Map<string, { quantity: number; items: string[] }>();
  const partyOf = new Map(truth.deliveries.map((d) => [d.delivery, `${d.soldToParty}|${d.shipToParty}`]));
  for (const id of reachedFrom(scopeLot.lotId)) {
    for (const d of byId.get(id)!.deliveries) {
      const to = partyOf.get(d.delivery)!;
      const entry = expectedNotices.get(to) ?? { quantity: 0, items: [] };
      entry.quantity += d.quantity;
      entry.items.push(`${d.delivery}/${d.item}`);
      expectedNotices.set(to, entry);
    }
  }
  expect(expectedNotices.size).toBeGreaterThan(0);
  const noticeRows = await pool.query<{ customer: string; ship_to: string; quantity: string; reference: string }>(
    `SELECT customer, ship_to, quantity::text, reference FROM holdfast.recall_notification
      WHERE recall_id = $1 AND sent_at IS NOT NULL`,
    [recallId],
  );
  expect(new Map(noticeRows.rows.map((r) => [`${r.customer}|${r.ship_to}`, Number(r.quantity)]))).toEqual(
    new Map([...expectedNotices].map(([to, e]) => [to, e.quantity])),
  );
  // The files the customers' desk picks up: one per customer and ship-to, naming each delivery item that reached it.
  const files = readdirSync(NOTICES).filter((f) => !f.startsWith('.'));
  expect(files.sort()).toEqual(noticeRows.rows.map((r) => r.reference).sort());
  for (const r of noticeRows.rows) {
    const notice = JSON.parse(readFileSync(join(NOTICES, r.reference), 'utf8')) as RecallNotice;
    expect([notice.customer, notice.shipTo, notice.deliveries]).toEqual([
      r.customer,
      r.ship_to,
      expectedNotices.get(`${r.customer}|${r.ship_to}`)!.items.sort(),
    ]);
  }

  // Reconciled: every lot made from the supplier lot is shipped, consumed, in process or (read from SAP as it was
  // blocked) in stock; nothing is left over.
  const reconcile = status.stages.find((s) => s.name === 'reconcile')!.counts!;
  expect(reconcile['produced']).toBeGreaterThan(0);
  expect([reconcile['accounted'], reconcile['unreconciledLots']]).toEqual([reconcile['produced'], 0]);

  // The recall report says the same: each affected lot's containment, each customer's notice, the signature.
  const report = (
    await stack.api.inject({ method: 'GET', url: `/v1/recalls/${recallId}/report`, headers: qm.headers })
  ).json<RecallReportDocument>();
  const containedInReport = report.lots.filter((l) => l.containment !== null);
  expect(containedInReport.map((l) => l.lotKey).sort()).toEqual(affected.map(keyOf).sort());
  for (const l of containedInReport) expect(['held', 'already-held']).toContain(l.containment!.state);
  expect(report.customers.map((c) => `${c.customer}|${c.shipTo}`).sort()).toEqual([...expectedNotices.keys()].sort());
  for (const c of report.customers) expect(c.notification).toMatchObject({ sentAt: expect.any(String) });
  expect(report.signatures).toEqual([
    expect.objectContaining({ valid: true, signer: expect.objectContaining({ id: qm.id }) }),
  ]);

  // The same request again: the same recall, not run again, nothing new in either system.
  const { runId } = await handle.describe();
  const again = await stack.api.inject(request);
  expect([again.statusCode, again.json()]).toEqual([202, first.json()]);
  expect((await handle.describe()).runId).toBe(runId);
  expect((await mesHolds()).length).toBe(holdsBefore.length + expectedHeld.length);
  expect((await sapBlocks()).length).toBe(blocks.length);
  expect(readdirSync(NOTICES).filter((f) => !f.startsWith('.'))).toHaveLength(noticeRows.rows.length);

  // What GET /v1/recalls/{id} shows.
  const view = await stack.api.inject({ method: 'GET', url: `/v1/recalls/${recallId}`, headers: qm.headers });
  expect(view.statusCode).toBe(200);
  expect(view.json()).toMatchObject({
    state: 'completed',
    kind: 'real',
    containment: {
      byState: { held: affected.length - 2, 'already-held': 2 },
      blocked: affected.length,
    },
  });
}, 600_000);

test('a cancelled recall places nothing after its cancel, keeps what it placed and reports', async () => {
  // Another supplier lot, contained slowly (a slow MES), cancelled after its first holds.
  const other = [...truth.lots]
    .filter((l) => l.level === 'supplier' && l.lotId !== scopeLot.lotId)
    .sort((a, b) => affectedBy(b.lotId).length - affectedBy(a.lotId).length)[0]!;
  expect(affectedBy(other.lotId).length).toBeGreaterThanOrEqual(9);
  await putJson(`${stack.mesUrl}/__faults`, { latencyMs: 1_000 });
  try {
    const qm = await signerAccount(
      pool,
      { username: `rrc-qm2-${erpPlant.toLowerCase()}`, roles: ['quality-manager'], sites: [site] },
      stack.signingKey,
    );
    const started = await stack.api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...qm.headers, 'idempotency-key': `cancel-${erpPlant}` },
      payload: {
        site,
        kind: 'real',
        scope: { kind: 'erp-batch', plant: erpPlant, material: other.material, batch: other.lotId },
        reason: 'suspected contamination',
        signature: qm.signature(),
      },
    });
    expect(started.statusCode).toBe(202);
    const { recallId, workflowId } = started.json<{ recallId: string; workflowId: string }>();
    const handle = stack.client.workflow.getHandle(workflowId);
    await eventually(
      'a first lot contained',
      async () =>
        (
          await pool.query(`SELECT 1 FROM holdfast.recall_containment WHERE recall_id = $1 AND state <> 'pending'`, [
            recallId,
          ])
        ).rowCount,
      (n) => (n ?? 0) > 0,
      { timeoutMs: 120_000 },
    );
    const engineer = await signerAccount(
      pool,
      { username: `rrc-qe-${erpPlant.toLowerCase()}`, roles: ['quality-engineer'], sites: [site] },
      stack.signingKey,
    );
    const cancel = (headers: Record<string, string>) =>
      stack.api.inject({
        method: 'POST',
        url: `/v1/recalls/${recallId}/cancel`,
        headers,
        payload: { reason: 'the supplier withdrew its report' },
      });
    expect((await cancel(engineer.headers)).statusCode).toBe(403);
    const cancelled = await cancel(qm.headers);
    expect([cancelled.statusCode, cancelled.json()]).toEqual([202, { recallId, workflowId, state: 'cancelling' }]);
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');

    // What it placed is recorded, nothing is placed after the cancel, and the report is written.
    const mine = async () =>
      (await mesHolds()).filter((h) => h.externalReference.startsWith(`recall:${recallId}:`)).length;
    const placed = await mine();
    const blocked = (await sapBlocks()).length;
    await new Promise((r) => setTimeout(r, 3_000));
    expect([await mine(), (await sapBlocks()).length]).toEqual([placed, blocked]);
    const { rows } = await pool.query<{ state: string; cancel_requested_at: Date | null }>(
      'SELECT state, cancel_requested_at, report FROM holdfast.recall WHERE recall_id = $1',
      [recallId],
    );
    expect(rows[0]).toMatchObject({ state: 'cancelled', cancel_requested_at: expect.any(Date) });
    const lots = await pool.query<{ state: string; mes_state: string; hold_id: string | null }>(
      'SELECT state, mes_state, hold_id FROM holdfast.recall_containment WHERE recall_id = $1',
      [recallId],
    );
    expect(lots.rows.filter((r) => r.state === 'pending')).toEqual([]);
    expect(lots.rows.filter((r) => r.state === 'cancelled').length).toBeGreaterThan(0);
    expect(lots.rows.filter((r) => r.mes_state === 'held').length).toBe(placed);
    const audited = await pool.query(
      `SELECT 1 FROM holdfast.audit_record WHERE record_type = 'recall' AND record_id = $1
          AND content::jsonb->>'action' = 'recall.cancel'`,
      [recallId],
    );
    expect(audited.rowCount).toBe(1);
    // Finished: a second cancel is refused.
    expect((await cancel(qm.headers)).statusCode).toBe(409);
  } finally {
    await fetch(`${stack.mesUrl}/__faults`, { method: 'DELETE' });
  }
}, 300_000);
