/**
 * A mock recall over a synced plant history, checked against the history's ground truth: a seeded history goes into
 * the SAP and MES simulators, both genealogy syncs run on a real worker until current, then a mock recall of one
 * supplier lot runs as a real workflow and its rows are compared with what the generator says that lot reached.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { Pool } from 'pg';
import type { RecallReportDocument } from '../../api/routes/recalls/recall-report';
import { CHROMIUM } from '../../api/support/printable';
import { createPool } from '../../infra/db/pool';
import { lotKey } from '../../infra/genealogy/genealogy-keys';
import { generatePlantHistory } from '../../infra/simulators/plant-history/plant-history';
import type { RecallReport } from '../../infra/recall/recall-store';
import { recallStatusQuery, type RecallStatus } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { bearerFor, signerAccount } from '../support/identity';
import type { HoldfastStack } from '../support/stack';
import { startGenealogyStack, stopGenealogyStack, syncGenealogy } from '../support/genealogy-stack';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
let stack: HoldfastStack;
/** A plant and site of their own: this run's lot keys and workflow ids collide with no other test's. */
const erpPlant = randomBytes(2).toString('hex').toUpperCase();
const site = `RCL-${erpPlant}`;
const history = generatePlantHistory({
  seed: 20261207,
  // Delivery numbers of its own: other tests' histories share this genealogy.
  firstDelivery: 81000001,
  parts: 300,
  lots: 40,
  supplierLots: 8,
  days: 10,
  site,
  erpPlant,
  defectRate: 0,
  // One supplier batch consumed but never received: a trace gap a recall of it has to report.
  gaps: { 'batch-never-received': 1 },
});
const truth = history.groundTruth();
const byId = new Map(truth.lots.map((l) => [l.lotId, l]));

beforeAll(async () => {
  stack = await startGenealogyStack(pool, { site, erpPlant, history });
  await syncGenealogy(stack);
}, 240_000);

afterAll(async () => {
  await stopGenealogyStack(stack, site);
  await pool.end();
});

test("a mock recall of a supplier lot reaches the truth's lots and deliveries, reconciles and is scored", async () => {
  // The supplier lot that reaches the most finished lots: a recall worth the name.
  const reach = [...truth.supplierReach].sort((a, b) => b.finishedLots.length - a.finishedLots.length)[0]!;
  expect(reach.finishedLots.length).toBeGreaterThan(0);
  expect(reach.deliveries.length).toBeGreaterThan(0);
  const supplierLot = byId.get(reach.supplierLot)!;
  const qe = await bearerFor({ username: 'qe-recall', roles: ['quality-engineer'], sites: [site] }, stack.signingKey);
  const body = {
    site,
    kind: 'mock',
    scope: { kind: 'erp-batch', plant: erpPlant, material: supplierLot.material, batch: supplierLot.lotId },
    reason: 'quarterly mock recall',
  };
  const post = (payload: object) =>
    stack.api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...qe, 'idempotency-key': `mock-${erpPlant}` },
      payload,
    });
  const first = await post(body);
  expect(first.statusCode).toBe(202);
  const started = first.json<{ recallId: string; workflowId: string }>();
  const status = (await stack.client.workflow.getHandle(started.workflowId).result()) as RecallStatus;
  expect(status.state).toBe('completed');
  expect(status.stages.map((s) => [s.name, s.state])).toEqual([
    ['trace', 'done'],
    ['classify', 'done'],
    ['reinspect', 'skipped'],
    ['contain', 'skipped'],
    ['notify', 'skipped'],
    ['reconcile', 'done'],
    ['report', 'done'],
  ]);
  await expect(stack.client.workflow.getHandle(started.workflowId).query(recallStatusQuery)).resolves.toEqual(status);
  // Found in the Web UI by site, scope, kind and state.
  const query =
    `Site = '${site}' AND RecallKind = 'mock' AND RecallState = 'completed' AND ` +
    `RecallScope = 'erp-batch:${erpPlant}/${supplierLot.material}/${supplierLot.lotId}'`;
  await eventually(
    `the recall listed by ${query}`,
    async () => {
      const ids: string[] = [];
      for await (const w of stack.client.workflow.list({ query })) ids.push(w.workflowId);
      return ids;
    },
    (ids) => ids.length === 1 && ids[0] === started.workflowId,
    { timeoutMs: 30_000 },
  );

  // Every finished lot the truth says the supplier lot reached, and their deliveries.
  const keyOf = (id: string) => lotKey({ erp: { plant: erpPlant, material: byId.get(id)!.material, batch: id } });
  const lots = await pool.query<{
    lot_key: string;
    reached_by: string;
    class: string;
    deliveries: { delivery: string }[];
  }>('SELECT lot_key, reached_by, class, deliveries FROM holdfast.recall_lot WHERE recall_id = $1', [started.recallId]);
  const forward = lots.rows.filter((r) => r.reached_by === 'forward');
  const finished = new Set(truth.lots.filter((l) => l.level === 'finished').map((l) => keyOf(l.lotId)));
  expect(
    forward
      .filter((r) => finished.has(r.lot_key))
      .map((r) => r.lot_key)
      .sort(),
  ).toEqual(reach.finishedLots.map(keyOf).sort());
  expect([...new Set(forward.flatMap((r) => r.deliveries.map((d) => d.delivery)))].sort()).toEqual(
    [...reach.deliveries].sort(),
  );
  expect(lots.rows.filter((r) => r.reached_by === 'scope').map((r) => r.lot_key)).toEqual([keyOf(supplierLot.lotId)]);
  // Classified by the genealogy's edges: a finished lot with deliveries is shipped, every other reached lot went
  // somewhere or is still there.
  for (const r of forward) {
    if (r.deliveries.length > 0) expect(r.class).toBe('shipped');
    expect(['shipped', 'consumed', 'in-process', 'scrapped', 'in-stock']).toContain(r.class);
  }

  // The report: stage timings from workflow time, the reconciliation and the score against the site's targets.
  const { rows } = await pool.query<{ state: string; report: RecallReport }>(
    'SELECT state, report FROM holdfast.recall WHERE recall_id = $1',
    [started.recallId],
  );
  expect(rows[0]!.state).toBe('completed');
  const report = rows[0]!.report;
  for (const s of report.stages.filter(
    (x: { name: string; state: string }) => x.state === 'done' && x.name !== 'report',
  )) {
    expect(s.durationMs).toBeGreaterThanOrEqual(0);
  }
  const reconcile = report.stages.find((s) => s.name === 'reconcile')!.counts!;
  expect(reconcile['produced']).toBeGreaterThan(0);
  expect(report.score.reconciliation).toBeCloseTo(reconcile['accounted']! / reconcile['produced']!, 9);
  expect(report.score).toMatchObject({ traceWithinMs: 8 * 60_000, reconciliationAtLeast: 0.995, traceOnTime: true });
  // Each unreconciled lot is a finding, with its remainder.
  const findings = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM holdfast.recall_finding WHERE recall_id = $1 AND kind = 'unreconciled-quantity'`,
    [started.recallId],
  );
  expect(findings.rows[0]!.n).toBe(reconcile['unreconciledLots']);

  // The same request again: the same recall, nothing new; the same key with another body is refused.
  const again = await post(body);
  expect([again.statusCode, again.json()]).toEqual([202, first.json()]);
  const reused = await post({ ...body, reason: 'another' });
  expect([reused.statusCode, reused.headers['content-type']]).toEqual([422, 'application/problem+json; charset=utf-8']);
  const audited = await pool.query(
    `SELECT 1 FROM holdfast.audit_record WHERE record_type = 'recall' AND record_id = $1 AND content::jsonb->>'action' = 'recall.start'`,
    [started.recallId],
  );
  expect(audited.rowCount).toBe(1);

  // What GET /v1/recalls/{id} shows: the report, the lots by class, the deliveries; and the site's mock history.
  const view = await stack.api.inject({ method: 'GET', url: `/v1/recalls/${started.recallId}`, headers: qe });
  expect(view.statusCode).toBe(200);
  const shown = view.json<{
    state: string;
    score: unknown;
    stages: unknown[];
    lots: { byReach: Record<string, number> };
    deliveries: { delivery: string }[];
  }>();
  expect(shown).toMatchObject({ state: 'completed', score: report.score, stages: report.stages });
  expect(shown.lots.byReach['forward']).toBe(forward.length);
  expect([...new Set(shown.deliveries.map((d) => d.delivery))].sort()).toEqual([...reach.deliveries].sort());
  const history = await stack.api.inject({
    method: 'GET',
    url: `/v1/recalls?site=${site}&kind=mock&limit=1`,
    headers: qe,
  });
  expect(history.statusCode).toBe(200);
  expect(history.json()).toMatchObject({
    recalls: [{ recallId: started.recallId, kind: 'mock', state: 'completed' }],
    next: null,
  });
  const elsewhere = await bearerFor(
    { username: 'qe-elsewhere', roles: ['quality-engineer'], sites: ['PLANT1'] },
    stack.signingKey,
  );
  const hidden = await stack.api.inject({ method: 'GET', url: `/v1/recalls/${started.recallId}`, headers: elsewhere });
  expect(hidden.statusCode).toBe(403);
  const lotsAgain = await pool.query('SELECT count(*)::int AS n FROM holdfast.recall_lot WHERE recall_id = $1', [
    started.recallId,
  ]);
  expect(lotsAgain.rows[0].n).toBe(lots.rows.length);
}, 120_000);

test("a real recall needs its requester's signature; signed, it runs every stage", async () => {
  const qm = await signerAccount(
    pool,
    { username: `rcl-qm-${erpPlant.toLowerCase()}`, roles: ['quality-manager'], sites: [site] },
    stack.signingKey,
  );
  const start = (signature?: object) =>
    stack.api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...qm.headers, 'idempotency-key': `real-${erpPlant}-${String(signature !== undefined)}` },
      payload: {
        site,
        kind: 'real',
        scope: { kind: 'serial', serial: 'none' },
        reason: 'customer complaint',
        ...(signature ? { signature } : {}),
      },
    });
  const unsigned = await start();
  expect([unsigned.statusCode, unsigned.json<{ errors: { field: string }[] }>().errors[0]?.field]).toEqual([
    400,
    'body.signature',
  ]);
  const wrong = await start({ meaning: 'approval', password: 'not-the-password' });
  expect(wrong.statusCode).toBe(401);
  // Nothing was opened for the refused ones.
  const { rowCount } = await pool.query(`SELECT 1 FROM holdfast.recall WHERE site = $1 AND kind = 'real'`, [site]);
  expect(rowCount).toBe(0);

  // Signed, it runs: a scope that reaches nothing contains nothing and notifies no one.
  const signed = await start(qm.signature());
  expect(signed.statusCode).toBe(202);
  const { recallId, workflowId } = signed.json<{ recallId: string; workflowId: string }>();
  const status = (await stack.client.workflow.getHandle(workflowId).result()) as RecallStatus;
  expect(status.stages.map((s) => [s.name, s.state])).toEqual([
    ['trace', 'done'],
    ['classify', 'done'],
    ['reinspect', 'skipped'],
    ['contain', 'done'],
    ['notify', 'done'],
    ['reconcile', 'done'],
    ['report', 'done'],
  ]);
  expect(status.contain).toMatchObject({ lots: 0, batches: 0, held: 0, blocked: 0 });
  expect(status.stages.find((s) => s.name === 'notify')!.counts).toMatchObject({ notifications: 0 });
  const { rows } = await pool.query<{ state: string; report: RecallReport }>(
    'SELECT state, report FROM holdfast.recall WHERE recall_id = $1',
    [recallId],
  );
  expect(rows[0]!.state).toBe('completed');

  // The requester's signature: kept with the recall, verified on every read; a changed reason breaks it.
  const read = async () =>
    (await stack.api.inject({ method: 'GET', url: `/v1/recalls/${recallId}`, headers: qm.headers })).json<{
      signatures: { signer: { id: string }; meaning: string; valid: boolean; problem?: string }[];
    }>().signatures;
  expect(await read()).toEqual([
    expect.objectContaining({ signer: expect.objectContaining({ id: qm.id }), meaning: 'approval', valid: true }),
  ]);
  const report = await stack.api.inject({
    method: 'GET',
    url: `/v1/recalls/${recallId}/report?format=csv`,
    headers: qm.headers,
  });
  expect(report.body).toMatch(/\r\nsignature,[^\r]*signature verified"?\r\n/);
  await pool.query(`UPDATE holdfast.recall SET reason = 'a quieter reason' WHERE recall_id = $1`, [recallId]);
  expect(await read()).toEqual([
    expect.objectContaining({ valid: false, problem: 'the signed record was changed after it was signed' }),
  ]);
  const audited = await pool.query<{ content: string }>(
    `SELECT content FROM holdfast.audit_record WHERE record_type = 'recall' AND record_id = $1`,
    [recallId],
  );
  expect(audited.rows.map((r) => (JSON.parse(r.content) as { new: { signatureId?: string } }).new.signatureId)).toEqual(
    [expect.any(String)],
  );
});

test('a mock recall reports the trace gaps on its path as findings', async () => {
  const unreceived = byId.get(truth.expectedGaps.find((g) => g.kind === 'batch-never-received')!.lotId!)!;
  const qe = await bearerFor({ username: 'qe-recall', roles: ['quality-engineer'], sites: [site] }, stack.signingKey);
  const res = await stack.api.inject({
    method: 'POST',
    url: '/v1/recalls',
    headers: { ...qe, 'idempotency-key': `gap-${erpPlant}` },
    payload: {
      site,
      kind: 'mock',
      scope: { kind: 'erp-batch', plant: erpPlant, material: unreceived.material, batch: unreceived.lotId },
      reason: 'mock recall of an unreceived batch',
    },
  });
  expect(res.statusCode).toBe(202);
  const { recallId, workflowId } = res.json<{ recallId: string; workflowId: string }>();
  await stack.client.workflow.getHandle(workflowId).result();
  const view = await stack.api.inject({ method: 'GET', url: `/v1/recalls/${recallId}`, headers: qe });
  const key = lotKey({ erp: { plant: erpPlant, material: unreceived.material, batch: unreceived.lotId } });
  expect(view.json<{ findings: unknown[] }>().findings).toContainEqual({
    kind: 'trace-gap',
    subject: `lot:${key}`,
    detail: { gap: 'consumption-without-receipt' },
  });
});

test("the recall report and the recall's FSMA 204 sheet match the truth's customers, quantities and deliveries", async () => {
  const reach = [...truth.supplierReach].sort((a, b) => b.finishedLots.length - a.finishedLots.length)[0]!;
  const supplierLot = byId.get(reach.supplierLot)!;
  const qe = await bearerFor({ username: 'qe-recall', roles: ['quality-engineer'], sites: [site] }, stack.signingKey);
  // The first test's request again: the same recall, so this reads what that one recorded.
  const started = await stack.api.inject({
    method: 'POST',
    url: '/v1/recalls',
    headers: { ...qe, 'idempotency-key': `mock-${erpPlant}` },
    payload: {
      site,
      kind: 'mock',
      scope: { kind: 'erp-batch', plant: erpPlant, material: supplierLot.material, batch: supplierLot.lotId },
      reason: 'quarterly mock recall',
    },
  });
  const { recallId, workflowId } = started.json<{ recallId: string; workflowId: string }>();
  await stack.client.workflow.getHandle(workflowId).result();
  const get = (url: string) => stack.api.inject({ method: 'GET', url, headers: qe });

  // What each customer and ship-to received of the finished lots the supplier lot reached, from the truth alone.
  const expected = new Map<string, number>();
  const customerOf = new Map(truth.deliveries.map((d) => [d.delivery, `${d.soldToParty}|${d.shipToParty}`]));
  for (const id of reach.finishedLots) {
    for (const d of byId.get(id)!.deliveries) {
      const who = customerOf.get(d.delivery)!;
      expected.set(who, (expected.get(who) ?? 0) + d.quantity);
    }
  }
  const json = await get(`/v1/recalls/${recallId}/report`);
  expect(json.statusCode).toBe(200);
  const report = json.json<RecallReportDocument>();
  expect(report).toMatchObject({ recallId, kind: 'mock', state: 'completed', site });
  expect(report.timeline.map((s) => s.name)).toEqual([
    'trace',
    'classify',
    'reinspect',
    'contain',
    'notify',
    'reconcile',
    'report',
  ]);
  expect(new Map(report.customers.map((c) => [`${c.customer}|${c.shipTo}`, c.quantity]))).toEqual(expected);
  expect(new Set(report.customers.flatMap((c) => c.deliveries.map((d) => d.delivery)))).toEqual(
    new Set(reach.deliveries),
  );
  const dbLots = await pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM holdfast.recall_lot WHERE recall_id = $1',
    [recallId],
  );
  expect(report.lots).toHaveLength(dbLots.rows[0]!.n);
  expect(report.lots[0]).toMatchObject({
    reachedBy: 'scope',
    lotKey: lotKey({ erp: { plant: erpPlant, material: supplierLot.material, batch: supplierLot.lotId } }),
  });

  const csv = await get(`/v1/recalls/${recallId}/report?format=csv`);
  expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
  const lines = csv.body.split('\r\n').filter(Boolean);
  expect(lines[0]).toBe('section,id,time,class,quantity,detail');
  expect(lines.filter((l) => l.startsWith('lot,'))).toHaveLength(report.lots.length);
  expect(lines.filter((l) => l.startsWith('delivery,'))).toHaveLength(
    report.customers.reduce((n, c) => n + c.deliveries.length, 0),
  );

  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is needed to print the report to PDF: ${CHROMIUM} is missing`);
  const html = await get(`/v1/recalls/${recallId}/report?format=html`);
  expect(html.body).toContain(`Mock recall ${recallId} at ${site}`);
  for (const d of reach.deliveries) expect(html.body).toContain(d);
  const pdf = await get(`/v1/recalls/${recallId}/report?format=pdf`);
  expect([pdf.statusCode, pdf.headers['content-type']]).toEqual([200, 'application/pdf']);
  expect(pdf.rawPayload.toString('latin1')).toContain(`/Title (Recall report ${recallId})`);

  // The sheet of the recall's lots: a shipping event for every delivery item of a reached finished lot, and the
  // supplier lot's own receipt or consumption named.
  const sheet = await get(`/v1/recalls/${recallId}/fsma204`);
  expect(sheet.statusCode).toBe(200);
  const rows = sheet.body.split('\r\n').filter(Boolean);
  const header = rows[0]!.split(',');
  const cell = (row: string, column: string) => row.split(',')[header.indexOf(column)]!;
  const shipping = rows.slice(1).filter((r) => cell(r, 'critical_tracking_event') === 'shipping');
  const truthItems = reach.finishedLots.flatMap((id) => byId.get(id)!.deliveries.map((d) => `${d.delivery}/${d.item}`));
  expect(
    shipping
      .filter((r) => reach.finishedLots.some((id) => cell(r, 'holdfast_lot_key').endsWith(`/${id}`)))
      .map((r) => cell(r, 'reference_document_number'))
      .sort(),
  ).toEqual(truthItems.sort());
  expect(rows.some((r) => r.includes(supplierLot.lotId) || r.includes(supplierLot.supplierBatch ?? '\u0000'))).toBe(
    true,
  );
  const xlsx = await get(`/v1/recalls/${recallId}/fsma204?format=xlsx`);
  expect(xlsx.rawPayload.subarray(0, 2).toString('latin1')).toBe('PK');
  // Another site's engineer sees neither.
  const elsewhere = await bearerFor(
    { username: 'qe-elsewhere', roles: ['quality-engineer'], sites: ['PLANT1'] },
    stack.signingKey,
  );
  for (const url of [`/v1/recalls/${recallId}/report`, `/v1/recalls/${recallId}/fsma204`]) {
    expect((await stack.api.inject({ method: 'GET', url, headers: elsewhere })).statusCode).toBe(403);
  }
  expect((await get('/v1/recalls/RCL-none-0000000000000000/report')).statusCode).toBe(404);
}, 120_000);
