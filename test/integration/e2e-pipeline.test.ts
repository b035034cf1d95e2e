/**
 * The whole path, with nothing mocked: HTTP API → PostgreSQL (inspection + outbox) → dispatcher → Temporal dev
 * server → worker → MES and SAP simulators over HTTP. Assertions read the simulators' own records back.
 */
import { randomUUID } from 'node:crypto';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { STOCK_TYPE } from '../../infra/simulators/sap-s4/sap-s4.schema';
import type { LotCaseState, MaterialDocumentRef } from '../../workflows/contracts';
import type { DefectView } from '../../api/schemas/defect.schema';
import { eventually } from '../support/eventually';
import {
  BOUGHT_LOT_ORDER,
  createLot,
  failedInspection,
  getJson,
  postJson,
  putJson,
  sapAuth,
  sapStock,
  simulatorCounts,
} from '../support/plant';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const pool = testPool();
let stack: HoldfastStack;

beforeAll(async () => {
  installQuietRuntime();
  const env = readTestEnv();
  stack = await startHoldfastStack({ pool, temporalAddress: env.temporalAddress, namespace: env.namespace });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await pool.end();
});

interface LotView {
  cases: { stage: string; holdId?: string; notification?: string; workflowId: string; links: { temporalUi: string } }[];
  live?: LotCaseState;
}

async function ingest(body: unknown) {
  const res = await stack.api.inject({
    headers: stack.adminHeaders,
    method: 'POST',
    url: '/v1/inspections',
    payload: body as object,
  });
  return { status: res.statusCode, body: res.json() };
}

/** What the intent ledger recorded as each key's outcome, in the order of the keys. */
async function intentOutcomes(keys: string[]): Promise<unknown[]> {
  const { rows } = await pool.query<{ idempotency_key: string; outcome: unknown }>(
    'SELECT idempotency_key, outcome FROM holdfast.intent WHERE idempotency_key = ANY($1::text[])',
    [keys],
  );
  return keys.map((key) => rows.find((r) => r.idempotency_key === key)?.outcome);
}

async function awaitingDisposition(lotId: string, parts: number): Promise<LotCaseState> {
  return eventually(`lot ${lotId} awaiting disposition with ${parts} part(s)`, async () => {
    const res = await stack.api.inject({
      headers: stack.adminHeaders,
      method: 'GET',
      url: `/v1/lots/${lotId}?site=PLANT1`,
    });
    if (res.statusCode !== 200) return undefined;
    const live = res.json<LotView>().live;
    return live?.stage === 'awaiting-disposition' && live.parts.length === parts ? live : undefined;
  });
}

test('three defective parts of one lot: one MES hold, one SAP notification with three items, three 344 blocks, then scrap', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  const lot = await createLot(stack, { lotId, quantity: 500 });
  const before = await simulatorCounts(stack);
  const fails = [0, 1, 2].map(() => failedInspection(lotId));
  const pass = { ...failedInspection(lotId), result: 'pass', defects: [] };

  const accepted = await ingest({ results: [...fails, pass] });
  expect(accepted.status).toBe(202);
  expect(accepted.body).toMatchObject({ accepted: 4, duplicates: 0 });

  const live = await awaitingDisposition(lotId, 3);
  expect(live.blockedQuantity).toBe(3);

  // The MES simulator's own records.
  const mesLot = await getJson<{ status: string; activeHolds: unknown[] }>(`${stack.mesUrl}/api/v1/lots/${lotId}`);
  expect(mesLot.status).toBe('ON_HOLD');
  expect(mesLot.activeHolds).toHaveLength(1);
  const wo = await getJson<{ qualityStatus: string }>(`${stack.mesUrl}/api/v1/work-orders/1000100`);
  expect(wo.qualityStatus).toBe('ON_HOLD');
  const after = await simulatorCounts(stack);
  expect(after.holds - before.holds).toBe(1);
  expect(after.qualityEvents - before.qualityEvents).toBe(3);
  // The SAP simulator's own records and stock.
  expect(after.notifications - before.notifications).toBe(1);
  expect(after.notificationItems - before.notificationItems).toBe(3);
  expect(after.materialDocuments - before.materialDocuments).toBe(3);
  expect(await sapStock(stack, lot.sku, lot.batch)).toMatchObject({
    [STOCK_TYPE.unrestricted]: 497,
    [STOCK_TYPE.blocked]: 3,
  });

  // Inspection, pass and fail, is on record; trace rows link each failed part to its documents.
  const stored = await pool.query(
    'SELECT result, count(*)::int AS n FROM holdfast.inspection WHERE lot_id = $1 GROUP BY result',
    [lotId],
  );
  expect(Object.fromEntries(stored.rows.map((r) => [r.result, r.n]))).toEqual({ fail: 3, pass: 1 });
  const items = await pool.query(
    "SELECT from_id FROM holdfast.trace_link WHERE relation = 'defect-item' AND from_id = ANY($1::text[])",
    [fails.map((f) => f.eventId)],
  );
  expect(items.rowCount).toBe(3);
  // Each part is findable: its inspection, its hand-over (recorded by the case) and its part in the lot case.
  const defectView = await stack.api.inject({
    headers: stack.adminHeaders,
    method: 'GET',
    url: `/v1/defects/${fails[0]!.eventId}`,
  });
  expect(defectView.statusCode).toBe(200);
  const defect = defectView.json<DefectView>();
  expect(defect.dispatch).toMatchObject({ state: 'confirmed', redispatches: 0 });
  expect(defect.workflow!.temporalUiUrl).toContain(`/workflows/lot-PLANT1-${lotId}/${defect.lotCase!.runId}`);
  expect(defect.lotCase).toMatchObject({
    stage: 'awaiting-disposition',
    holdId: live.holdId,
    notification: live.notification,
    part: { eventId: fails[0]!.eventId, status: 'contained', workOrderQuality: expect.any(String) },
    failures: [],
  });
  expect(defect.lotCase!.part.materialDocument?.movementType).toBe('344');

  // Disposition through the API: scrap moves the blocked stock out with 555 and closes everything.
  const key = `mrb-${randomUUID()}`;
  const decide = () =>
    stack.api.inject({
      method: 'POST',
      url: `/v1/lots/${lotId}/disposition`,
      headers: { ...stack.engineer.headers, 'idempotency-key': key },
      payload: {
        decision: 'scrap',
        reason: 'Scratches beyond limit (MRB 2026-311)',
        signature: stack.engineer.signature(),
        site: 'PLANT1',
      },
    });
  const first = await decide();
  expect(first.statusCode).toBe(200);
  expect(first.json()).toMatchObject({ decision: 'scrap', status: 'completed', lotStatus: 'SCRAPPED' });
  const retried = await decide();
  expect(retried.statusCode).toBe(200);
  expect(retried.body).toBe(first.body);
  expect(await sapStock(stack, lot.sku, lot.batch)).toMatchObject({ [STOCK_TYPE.unrestricted]: 497 });
  expect((await sapStock(stack, lot.sku, lot.batch))[STOCK_TYPE.blocked] ?? 0).toBe(0);
  expect((await getJson<{ status: string }>(`${stack.mesUrl}/api/v1/lots/${lotId}`)).status).toBe('SCRAPPED');
  expect((await simulatorCounts(stack)).materialDocuments - before.materialDocuments).toBe(4);
});

test('return to vendor: the purchase order goes from the MES lot to one SAP 122 that refers to it', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  const lot = await createLot(stack, { lotId, quantity: 40, supplier: '17300001' });
  expect((await ingest(failedInspection(lotId))).status).toBe(202);
  await awaitingDisposition(lotId, 1);
  const before = await simulatorCounts(stack);

  const res = await stack.api.inject({
    method: 'POST',
    url: `/v1/lots/${lotId}/disposition`,
    headers: { ...stack.engineer.headers, 'idempotency-key': `mrb-${randomUUID()}` },
    payload: {
      decision: 'return-to-vendor',
      reason: 'Porosity (MRB 2026-312)',
      signature: stack.engineer.signature(),
      site: 'PLANT1',
    },
  });
  expect(res.statusCode).toBe(200);
  expect(res.json()).toMatchObject({ status: 'completed', lotStatus: 'RETURNED' });
  expect((await simulatorCounts(stack)).materialDocuments - before.materialDocuments).toBe(1);
  const filter = encodeURIComponent(`Batch eq '${lot.batch}' and GoodsMovementType eq '122'`);
  const items = await getJson<{ d: { results: Record<string, string>[] } }>(
    `${stack.sapUrl}/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${filter}`,
    sapAuth(stack),
  );
  expect(items.d.results).toEqual([
    expect.objectContaining({
      GoodsMovementRefDocType: 'B',
      PurchaseOrder: BOUGHT_LOT_ORDER.purchaseOrder,
      PurchaseOrderItem: BOUGHT_LOT_ORDER.purchaseOrderItem,
      Supplier: '17300001',
      QuantityInEntryUnit: '1.000',
    }),
  ]);
  expect(await sapStock(stack, lot.sku, lot.batch)).toEqual({ [STOCK_TYPE.unrestricted]: 39 });
});

test('replaying the same inspections changes nothing', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  await createLot(stack, { lotId });
  const batch = { results: [failedInspection(lotId), failedInspection(lotId)] };
  expect((await ingest(batch)).status).toBe(202);
  await awaitingDisposition(lotId, 2);
  const before = await simulatorCounts(stack);
  const rowsBefore = await pool.query('SELECT count(*)::int AS n FROM holdfast.outbox');

  const replay = await ingest(batch);
  expect(replay.status).toBe(202);
  expect(replay.body).toMatchObject({ accepted: 0, duplicates: 2 });
  // Give a wrongly started second workflow time to act before checking nothing moved.
  await new Promise((r) => setTimeout(r, 1500));
  expect(await simulatorCounts(stack)).toEqual(before);
  expect((await pool.query('SELECT count(*)::int AS n FROM holdfast.outbox')).rows[0].n).toBe(rowsBefore.rows[0].n);
});

test('a dropped SAP response never yields a second notification or material document', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  await createLot(stack, { lotId });
  // The next two successful POSTs to SAP commit, then lose their response: the notification and the 344 block.
  await putJson(`${stack.sapUrl}/__faults`, { dropResponse: { remaining: 2, methods: ['POST'] } });
  const before = await simulatorCounts(stack);
  try {
    const part = failedInspection(lotId);
    expect((await ingest(part)).status).toBe(202);
    const live = await awaitingDisposition(lotId, 1);
    const faults = await getJson<{ counters: { responsesDropped: number } }>(`${stack.sapUrl}/__faults`);
    expect(faults.counters.responsesDropped).toBe(2);
    const after = await simulatorCounts(stack);
    expect(after.notifications - before.notifications).toBe(1);
    expect(after.materialDocuments - before.materialDocuments).toBe(1);
    expect(after.holds - before.holds).toBe(1);
    // The retries found the intents their first attempts recorded, looked the keys up, and recorded what they found.
    const [{ materialDocument, materialDocumentYear }] = live.materialDocuments as [MaterialDocumentRef];
    expect(await intentOutcomes([`PLANT1:${lotId}:${part.eventId}:qn`, `${part.eventId}:block-344`])).toEqual([
      { notification: live.notification, item: live.parts[0]!.notificationItem },
      { materialDocument, materialDocumentYear },
    ]);
  } finally {
    await fetch(`${stack.sapUrl}/__faults`, { method: 'DELETE' });
  }
});

test('a dropped MES response never yields a second hold', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  await createLot(stack, { lotId });
  await putJson(`${stack.mesUrl}/__faults`, {
    dropResponse: { remaining: 1, methods: ['POST'], pathContains: '/holds' },
  });
  const before = await simulatorCounts(stack);
  try {
    const part = failedInspection(lotId);
    expect((await ingest(part)).status).toBe(202);
    const live = await awaitingDisposition(lotId, 1);
    const after = await simulatorCounts(stack);
    expect(after.holds - before.holds).toBe(1);
    const faults = await getJson<{ counters: { responsesDropped: number } }>(`${stack.mesUrl}/__faults`);
    expect(faults.counters.responsesDropped).toBe(1);
    expect(await intentOutcomes([`PLANT1:${lotId}:${part.eventId}:mes-hold`])).toEqual([{ holdId: live.holdId }]);
  } finally {
    await fetch(`${stack.mesUrl}/__faults`, { method: 'DELETE' });
  }
});

test('bad input is refused with a problem naming the field, and nothing is written', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  const good = failedInspection(lotId);
  const bad = { ...failedInspection(lotId), defects: [{ class: 'scratch', score: 7 }] };
  const res = await stack.api.inject({
    headers: stack.adminHeaders,
    method: 'POST',
    url: '/v1/inspections',
    payload: { results: [good, bad] },
  });
  expect(res.statusCode).toBe(400);
  expect(res.headers['content-type']).toContain('application/problem+json');
  expect(JSON.stringify(res.json())).toContain('results.1.defects.0.score');
  const rows = await pool.query('SELECT 1 FROM holdfast.inspection WHERE lot_id = $1', [lotId]);
  expect(rows.rowCount).toBe(0);
});

test('an ERP refusal parks the lot case in needs-attention; once fixed, POST /retry runs the step again', async () => {
  const lotId = `L-E2E-${randomUUID().slice(0, 8)}`;
  const batch = `B${randomUUID().replace(/-/g, '').slice(0, 9).toUpperCase()}`;
  // The MES counts the lot in pieces, but SAP keeps its batch in kilograms (a unit-of-measure master-data error): the
  // notification is raised, and the 344 block is refused as a validation error that no retry fixes by itself. (With
  // a batch SAP did not know at all, the notification would be refused too, and which of the two parallel steps
  // reported first would be a race.)
  await postJson(`${stack.mesUrl}/__sim/lots`, { lotId, workOrder: '1000100', sku: 'BRKT-200', quantity: 50, batch });
  const sapBatch = (unit: string) =>
    postJson(`${stack.sapUrl}/__sim/stock`, {
      material: 'BRKT-200',
      plant: '1010',
      storageLocation: '0001',
      batch,
      quantity: 50,
      unit,
    });
  await sapBatch('KG');
  expect((await ingest(failedInspection(lotId))).status).toBe(202);

  const parked = await eventually('lot case parked in needs-attention', async () => {
    const res = await stack.api.inject({ headers: stack.adminHeaders, method: 'GET', url: `/v1/lots/${lotId}` });
    const live = res.statusCode === 200 ? (res.json<LotView>().live ?? undefined) : undefined;
    return live?.stage === 'needs-attention' ? live : undefined;
  });
  expect(parked.failures).toEqual([
    expect.objectContaining({ step: 'erp-stock-block', errorType: 'HoldfastValidation' }),
  ]);
  expect(parked.failures![0]!.message).toContain(batch);
  const retry = () =>
    stack.api.inject({
      headers: stack.adminHeaders,
      method: 'POST',
      url: `/v1/lots/${lotId}/retry`,
      payload: { requestedBy: 'erp.admin' },
    });

  await sapBatch('PC');
  const first = await retry();
  expect(first.statusCode).toBe(200);
  expect(first.json()).toEqual({ steps: ['erp-stock-block'] });
  const live = await awaitingDisposition(lotId, 1);
  expect(live.failures).toBeUndefined();
  expect(live.blockedQuantity).toBe(1);

  const again = await retry();
  expect(again.statusCode).toBe(409);
  expect(again.headers['content-type']).toContain('application/problem+json');
});
