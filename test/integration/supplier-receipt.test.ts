/**
 * A rejected incoming receipt (docs/analytics.md#supplier-quality) over the real stack: inspections posted at an
 * incoming-inspection station decide the receipt by its acceptance plan; its workflow raises one Q2 complaint, posts
 * one 344 block and sets one purchase order item hold in the SAP simulator — with SAP's answers to the complaint and
 * the hold dropped after commit (the activities retry and look up), and the receipt handed to Temporal a second time.
 */
import { randomUUID } from 'node:crypto';
import type { HoldfastConfig } from '../../infra/config/schema';
import { loadConfig } from '../../infra/config/load';
import {
  SUPPLIER_EVALUATION_SCHEDULE_ID,
  ensureSupplierEvaluationSchedule,
} from '../../infra/supplier/evaluation-schedule';
import { incomingReceiptWorkflowId } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

jest.setTimeout(90_000);

const pool = testPool();
const run = randomUUID().slice(0, 8);
const suffix = `sr${run.replace(/-/g, '')}`;
const material = `MAT-${run}`;
const batch = `RB${run.slice(0, 6)}`.toUpperCase();
const supplier = `V${run.slice(0, 6)}`.toUpperCase();
const purchaseOrder = `45${String(parseInt(run.slice(0, 6), 16))
  .padStart(8, '0')
  .slice(0, 8)}`;
const startedAt = Date.now();
let stack: HoldfastStack;

function withIncomingStation(base: HoldfastConfig): HoldfastConfig {
  const [site, ...rest] = base.sites;
  const [line, ...lines] = site!.lines;
  return {
    ...base,
    // One rejected receipt of one is over the threshold: the first test's rejection requests a SCAR by itself.
    supplierQuality: {
      ...base.supplierQuality,
      scar: { ...base.supplierQuality.scar, minReceipts: 1, lotRejectionRate: 0.5, verifyReceipts: 2 },
    },
    sites: [
      {
        ...site!,
        lines: [
          {
            ...line!,
            stations: [
              ...line!.stations,
              {
                id: 'IN1',
                mode: 'production',
                role: 'incoming-inspection',
                acceptance: { sampleSize: 3, acceptanceNumber: 0, criticalClasses: ['crack'] },
              },
            ],
          },
          ...lines,
        ],
      },
      ...rest,
    ],
  };
}

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config: withIncomingStation(loadConfig()),
    schemaSuffix: suffix,
  });
  const stock = await stack.sap.inject({
    method: 'POST',
    url: '/__sim/stock',
    payload: {
      material,
      plant: '1010',
      storageLocation: '0001',
      batch,
      quantity: 500,
      unit: 'PC',
      receipt: { purchaseOrder, purchaseOrderItem: '00010', supplier },
    },
  });
  expect(stock.statusCode).toBe(204);
  await receivedLot(batch);
}, 120_000);

/** The goods receipt as the genealogy sync would have recorded it. */
async function receivedLot(lot: string) {
  await pool.query(
    `INSERT INTO holdfast.material_lot (lot_key, site, material, quantity, unit, origin, erp_plant, erp_material,
                                        erp_batch, supplier, supplier_batch, purchase_order, purchase_order_item,
                                        goods_receipt)
     VALUES ($1, 'PLANT1', $2, 500, 'PC', 'purchased', '1010', $2, $3, $4, $5, $6, '00010', $7)`,
    [`erp:1010/${material}/${lot}`, material, lot, supplier, `SB-${lot}`, purchaseOrder, `5000${lot}`],
  );
}

afterAll(async () => {
  await stack?.stop();
  await pool.end();
});

const part = (n: number, result: 'pass' | 'fail', defects: { class: string; score: number }[] = []) => ({
  eventId: `in-${run}-${n}`,
  site: 'PLANT1',
  line: 'L1',
  station: 'IN1',
  partId: `${batch}-${n}`,
  sku: material,
  lotId: batch,
  workOrder: `GR-${run}`,
  result,
  defects,
  modelVersion: 'm1',
  recipeVersion: 'r1',
  // In the past: the supplier evaluation's period ends now.
  inspectedAt: new Date(startedAt - 3_600_000 + n * 1000).toISOString(),
});

it('a rejected receipt yields one complaint, one block and one purchase order hold, under retries and a re-send', async () => {
  // SAP commits, then the answer is lost: the complaint's POST, the block's POST and the hold's PATCH, once each.
  const faults = await stack.sap.inject({
    method: 'PUT',
    url: '/__faults',
    payload: { dropResponse: { remaining: 3, methods: ['POST', 'PATCH'] } },
  });
  expect(faults.statusCode).toBeLessThan(300);

  const ingest = await stack.api.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: stack.adminHeaders,
    payload: { results: [part(1, 'pass'), part(2, 'fail', [{ class: 'scratch', score: 0.9 }]), part(3, 'pass')] },
  });
  expect(ingest.statusCode).toBe(202);
  // Incoming parts start no lot case.
  expect(ingest.json<{ results: { workflowId?: string }[] }>().results.every((r) => r.workflowId === undefined)).toBe(
    true,
  );

  const receipt = await eventually(
    'the receipt workflow to record the complaint, block and hold',
    async () => {
      const { rows } = await pool.query<{
        decision: string;
        inspected: number;
        defective: number;
        complaint_notification: string | null;
        block_document: string | null;
        purchase_order_hold: string | null;
      }>(`SELECT * FROM holdfast.incoming_receipt WHERE site = 'PLANT1' AND lot_id = $1`, [batch]);
      const r = rows[0];
      if (!r?.purchase_order_hold) throw new Error(`receipt not completed yet: ${JSON.stringify(r)}`);
      return r;
    },
    { timeoutMs: 60_000 },
  );
  expect(receipt).toMatchObject({ decision: 'rejected', inspected: 3, defective: 1 });
  const dropped = await stack.sap.inject({ method: 'GET', url: '/__faults' });
  expect(dropped.json<{ counters: { responsesDropped: number } }>().counters.responsesDropped).toBe(3);
  expect(receipt.purchase_order_hold).toBe(`${purchaseOrder}/00010:S`);

  // The same receipt handed over again (the relay's row reset, as after a crash before its mark).
  await pool.query(`UPDATE holdfast.incoming_receipt SET dispatched_at = NULL WHERE site = 'PLANT1' AND lot_id = $1`, [
    batch,
  ]);
  await stack.receipts.drainOnce();
  const handle = stack.client.workflow.getHandle(incomingReceiptWorkflowId('PLANT1', batch));
  const result = await handle.result();
  expect(result).toMatchObject({ decision: 'rejected', supplier });
  // Over the threshold: one SCAR, requested by the receipt, running as scar-<supplier>-<id>.
  const scars = await pool.query<{ id: string; workflow_id: string; trigger: string }>(
    `SELECT id::text, workflow_id, trigger FROM holdfast.scar WHERE supplier = $1`,
    [supplier],
  );
  expect(scars.rows).toEqual([
    { id: expect.any(String), workflow_id: `scar-${supplier}-${scars.rows[0]!.id}`, trigger: 'threshold' },
  ]);
  expect(result.scarWorkflowId).toBe(scars.rows[0]!.workflow_id);

  const s = `sap_${suffix}`;
  const complaints = await pool.query<{ notification_type: string; supplier: string; purchasing_document: string }>(
    `SELECT notification_type, supplier, purchasing_document FROM ${s}.quality_notification WHERE batch = $1`,
    [batch],
  );
  expect(complaints.rows).toEqual([{ notification_type: 'Q2', supplier, purchasing_document: purchaseOrder }]);
  const blocks = await pool.query<{ goods_movement_type: string; quantity: string }>(
    `SELECT goods_movement_type, quantity FROM ${s}.material_document_item WHERE batch = $1`,
    [batch],
  );
  expect(blocks.rows).toEqual([{ goods_movement_type: '344', quantity: '500.000' }]);
  const changes = await stack.sap.inject({ method: 'GET', url: '/__sim/purchase-order-changes' });
  const holds = changes
    .json<{ changes: { purchaseOrder: string; newValue: string }[] }>()
    .changes.filter((c) => c.purchaseOrder === purchaseOrder);
  expect(holds).toEqual([expect.objectContaining({ purchaseOrder, purchaseOrderItem: '00010', newValue: 'S' })]);
  // The workflow is findable by Supplier.
  const description = await handle.describe();
  expect(description.searchAttributes.Supplier).toEqual([supplier]);
});

it('an accepted receipt raises nothing', async () => {
  const lot = `${batch}A`;
  const res = await stack.api.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: stack.adminHeaders,
    payload: {
      results: [1, 2, 3].map((n) => ({ ...part(10 + n, 'pass'), lotId: lot, partId: `${lot}-${n}` })),
    },
  });
  expect(res.statusCode).toBe(202);
  const done = await eventually(
    'the accepted receipt handed to its workflow',
    async () => {
      const { rows } = await pool.query<{ decision: string; dispatched_at: Date | null }>(
        `SELECT decision, dispatched_at FROM holdfast.incoming_receipt WHERE site = 'PLANT1' AND lot_id = $1`,
        [lot],
      );
      if (!rows[0]?.dispatched_at) throw new Error('not dispatched yet');
      return rows[0];
    },
    { timeoutMs: 30_000 },
  );
  expect(done.decision).toBe('accepted');
  const result = await stack.client.workflow.getHandle(incomingReceiptWorkflowId('PLANT1', lot)).result();
  expect(result).toEqual({ decision: 'accepted' });
});

interface ScarBody {
  id: string;
  state: string;
  workflowId: string;
  signatures: { valid: boolean; meaning: string }[];
  live?: { stage: string; responses: unknown[]; verification: { receipts: { lotId: string }[] } };
}

it('a SCAR through the API: response, signed acceptance, verification over the next receipts, closed', async () => {
  const { rows } = await pool.query<{ id: string }>(`SELECT id::text FROM holdfast.scar WHERE supplier = $1`, [
    supplier,
  ]);
  const id = rows[0]!.id;
  const get = async () =>
    (await stack.api.inject({ method: 'GET', url: `/v1/scars/${id}`, headers: stack.adminHeaders })).json<ScarBody>();
  await eventually('the SCAR awaiting the response', get, (b) => b.live?.stage === 'awaiting-response');

  // A second request for the supplier while this one is open: refused, naming it.
  const again = await stack.api.inject({
    method: 'POST',
    url: `/v1/suppliers/${supplier}/scars`,
    headers: stack.engineer.headers,
    payload: { reason: 'scratches again', signature: stack.engineer.signature() },
  });
  expect(again.statusCode).toBe(409);

  const response = await stack.api.inject({
    method: 'POST',
    url: `/v1/scars/${id}/response`,
    headers: stack.engineer.headers,
    payload: {
      responseId: `8D-${run}`,
      disciplines: { D4: 'die wear', D5: 'new die', D7: 'die life monitored' },
      rootCause: 'die wear',
      correctiveAction: 'die replaced; life monitored',
    },
  });
  expect(response.statusCode).toBe(202);
  await eventually('the response recorded', get, (b) => b.live?.stage === 'response-received');

  // Unsigned: refused; signed: accepted.
  const unsigned = await stack.api.inject({
    method: 'POST',
    url: `/v1/scars/${id}/accept`,
    headers: stack.engineer.headers,
    payload: { reason: 'root cause found' },
  });
  expect(unsigned.statusCode).toBe(400);
  const accepted = await stack.api.inject({
    method: 'POST',
    url: `/v1/scars/${id}/accept`,
    headers: stack.engineer.headers,
    payload: { reason: 'root cause found', signature: stack.engineer.signature() },
  });
  expect(accepted.statusCode).toBe(202);
  await eventually('verification', get, (b) => b.live?.stage === 'verifying');

  // The supplier's next two receipts pass incoming inspection: the SCAR closes.
  for (const lot of [`${batch}V1`, `${batch}V2`]) {
    await receivedLot(lot);
    const res = await stack.api.inject({
      method: 'POST',
      url: '/v1/inspections',
      headers: stack.adminHeaders,
      payload: {
        results: [1, 2, 3].map((n) => ({
          ...part(n, 'pass'),
          eventId: `in-${run}-${lot}-${n}`,
          lotId: lot,
          partId: `${lot}-${n}`,
        })),
      },
    });
    expect(res.statusCode).toBe(202);
  }
  const closed = await eventually('the SCAR closed', get, (b) => b.state === 'closed', { timeoutMs: 30_000 });
  expect(closed.live?.verification.receipts.map((r) => r.lotId).sort()).toEqual([`${batch}V1`, `${batch}V2`]);
  expect(closed.signatures).toEqual([expect.objectContaining({ valid: true, meaning: 'approval' })]);

  const audit = await pool.query<{ action: string }>(
    `SELECT content::jsonb ->> 'action' AS action FROM holdfast.audit_record
      WHERE record_type = 'scar' AND record_id = $1 ORDER BY seq`,
    [id],
  );
  expect(audit.rows.map((r) => r.action)).toEqual(['scar.request', 'scar.response', 'scar.accept']);
});

it('the supplier evaluation schedule posts the scorecards to SAP, and is removed when disabled', async () => {
  const enabled = {
    ...stack.config,
    supplierQuality: {
      ...stack.config.supplierQuality,
      evaluation: { enabled: true, every: '1d', period: '3650d' },
    },
  };
  expect(await ensureSupplierEvaluationSchedule(stack.client, enabled)).toBe('created, every 1d');
  expect(await ensureSupplierEvaluationSchedule(stack.client, enabled)).toBe('updated, every 1d');
  await stack.client.schedule.getHandle(SUPPLIER_EVALUATION_SCHEDULE_ID).trigger();
  const s = `sap_${suffix}`;
  const posted = await eventually(
    "the supplier's score in SAP",
    async () =>
      (
        await pool.query<{ supplier: string; material: string; criterion: string; score: string }>(
          `SELECT supplier, material, criterion, score FROM ${s}.supplier_eval_score WHERE supplier = $1`,
          [supplier],
        )
      ).rows,
    (rows) => rows.length > 0,
    { timeoutMs: 30_000 },
  );
  // The supplier's receipts: the rejected one and the two that closed the SCAR (the accepted lot without a goods
  // receipt has no supplier); 1 defective part of 9; no production figures. 100 − 100/3 − min(30, ppm / 1000).
  const ppm = (1 / 9) * 1e6;
  const expected = Math.round((100 - 100 / 3 - Math.min(30, ppm / 1000)) * 10) / 10;
  expect(posted).toEqual([{ supplier, material, criterion: 'QUALITY', score: expected.toFixed(2) }]);
  expect(await ensureSupplierEvaluationSchedule(stack.client, stack.config)).toBe('disabled');
});
