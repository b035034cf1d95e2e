/**
 * The traceability view and the MRB console in a real browser: Debian's Chromium driven by playwright-core against
 * the dashboard rig (test/support/dashboard-rig.ts: the API on a real port, local accounts per role signed in through
 * the page's form) with a real Temporal worker running the lot case (fake MES and ERP behind it, as
 * api-workflows.test.ts), and a genealogy written through the genealogy store as the syncs write it. The expected
 * supplier lots, customers and signers are this file's own seed, never read back from the code under test.
 */
import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Worker } from '@temporalio/worker';
import type { Page } from 'playwright-core';
import type { z } from 'zod';
import type { LotViewSchema } from '../../api/schemas/lot.schema';
import type { RecallViewSchema } from '../../api/schemas/recall.schema';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import type { HoldfastConfig } from '../../infra/config/schema';
import { lotKey, lotNode, mesEventKey, workOrderNode } from '../../infra/genealogy/genealogy-keys';
import { type LotInput, type MovementInput, createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { type OutboxDispatcher, startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import { createRecallStore } from '../../infra/recall/recall-store';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { type ApiClient, apiClient } from '../support/api-client';
import {
  type DashboardRig,
  type RigRole,
  screenshot,
  seriousAccessibilityViolations,
  startDashboardRig,
} from '../support/dashboard-rig';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

type LotView = z.infer<typeof LotViewSchema>;
type RecallView = z.infer<typeof RecallViewSchema>;
const SITE = 'PLANT1';
const run = randomUUID().slice(0, 8);
const lotId = `MRB-${run}`;
const order = `WO-${run}`;
const batch = `B-${run}`;

// The seeded genealogy: two supplier lots went into the work order that made the held lot; two customers got it.
const SUPPLIER_LOTS = [
  { supplier: 'V100', supplierBatch: `VB-STEEL-${run}`, material: 'STEEL', erpBatch: `S1-${run}` },
  { supplier: 'V200', supplierBatch: `VB-PAINT-${run}`, material: 'PAINT', erpBatch: `S2-${run}` },
];
const CUSTOMERS = [
  { customer: `ACME-${run}`, delivery: `81${run.slice(0, 6)}`, item: '000010' },
  { customer: `GLOBEX-${run}`, delivery: `82${run.slice(0, 6)}`, item: '000010' },
];

/** A 1×1 PNG: what the camera's image store holds for each frame. */
const FRAME_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);
/** An image store the API is not configured to read from (nothing listens there). */
const OTHER_STORE = 'http://127.0.0.1:9';

/** The camera's image store: serves the frame at any /frames/ path and counts the requests it answered. */
async function startImageStore(): Promise<{ server: Server; origin: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? '');
    if (!req.url?.startsWith('/frames/')) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': FRAME_PNG.length }).end(FRAME_PNG);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

const harness = new WorkflowHarness();
let imageStore: Awaited<ReturnType<typeof startImageStore>>;
let worker: Worker;
let running: Promise<void>;
let rig: DashboardRig;
let dispatcher: OutboxDispatcher;
const http: ApiClient = apiClient(() => rig.baseUrl);

async function seedGenealogy(): Promise<void> {
  const store = createGenealogyStore(createAuditTrail(harness.pool));
  const source = { source: `dashboard-mrb-${run}` };
  const productKey = lotKey({ erp: { plant: '1010', material: 'BRKT-200', batch } });
  const suppliers: LotInput[] = SUPPLIER_LOTS.map((s) => ({
    lotKey: lotKey({ erp: { plant: '1010', material: s.material, batch: s.erpBatch } }),
    site: SITE,
    material: s.material,
    quantity: 500,
    unit: 'KG',
    origin: 'purchased',
    erp: { plant: '1010', material: s.material, batch: s.erpBatch },
    purchased: { supplier: s.supplier, supplierBatch: s.supplierBatch, purchaseOrder: '4500000001' },
    sourceSystem: 'erp',
    document: `gr-${s.erpBatch}`,
  }));
  const product: LotInput = {
    lotKey: productKey,
    site: SITE,
    material: 'BRKT-200',
    quantity: 50,
    unit: 'PC',
    origin: 'produced',
    mes: { site: SITE, lotId },
    erp: { plant: '1010', material: 'BRKT-200', batch },
    produced: { workOrder: order, line: 'L1' },
    sourceSystem: 'mes',
    document: `lot-${lotId}`,
  };
  let seq = 0;
  const move = (kind: MovementInput['kind'], from: string, to: string, quantity: number): MovementInput => ({
    edgeKey: mesEventKey(`${run}-${++seq}`),
    kind,
    from,
    to,
    quantity,
    unit: 'PC',
    occurredAt: '2026-11-02T08:00:00Z',
    site: SITE,
    sourceSystem: 'mes',
    document: `event-${run}-${seq}`,
  });
  const wo = workOrderNode(SITE, order);
  await store.recordLots(source, [...suppliers, product]);
  await store.recordMovements(source, [
    ...suppliers.map((s) => move('consumed', lotNode(s.lotKey), wo, 100)),
    move('produced', wo, lotNode(productKey), 50),
  ]);
  await store.recordDeliveries(
    source,
    CUSTOMERS.map((c) => ({
      delivery: c.delivery,
      item: c.item,
      site: SITE,
      customer: c.customer,
      shipTo: `${c.customer}-DOCK`,
      material: 'BRKT-200',
      lotKey: productKey,
      quantity: 10,
      unit: 'PC',
      shippedAt: '2026-11-03T08:00:00Z',
      sourceSystem: 'erp',
    })),
  );
}

beforeAll(async () => {
  await harness.setUp();
  const mes = new FakeMes();
  mes.addLot({ lotId, quantity: 50, workOrder: order });
  const started = await harness.worker({
    mes,
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
    recalls: createRecallStore(harness.pool),
  });
  worker = started.worker;
  running = worker.run();
  imageStore = await startImageStore();
  const config: HoldfastConfig = {
    ...harness.config,
    taskQueues: { ...harness.config.taskQueues, quality: started.taskQueue },
    outbox: { ...harness.config.outbox, pollInterval: '200ms' },
    api: {
      ...harness.config.api,
      dashboard: { ...harness.config.api.dashboard, imageOrigins: [imageStore.origin] },
    },
  };
  const gateway = createTemporalWorkflowGateway(harness.client, { taskQueue: started.taskQueue });
  rig = await startDashboardRig({ gateway, config });
  dispatcher = startOutboxDispatcher({ pool: harness.pool, gateway, config });
  await seedGenealogy();

  // A camera fails two parts of the lot: the lot case holds it and waits for its disposition. The first frame is in
  // the image store the API may read; the second names a store it may not (its reference is shown instead).
  for (const [n, imageRef] of [
    [1, `${imageStore.origin}/frames/${run}-1.png`],
    [2, `${OTHER_STORE}/frames/${run}-2.png`],
  ] as const) {
    const ingest = await http('POST', '/v1/inspections', {
      eventId: `${run}-evt-${n}`,
      site: SITE,
      line: 'L1',
      station: 'S2',
      partId: `P-${run}-${n}`,
      sku: 'BRKT-200',
      lotId,
      workOrder: order,
      result: 'fail',
      defects: [{ class: 'scratch', score: 0.93 }],
      modelVersion: 'vision-1.0.0',
      recipeVersion: 'BRKT-200@3',
      imageRef,
      inspectedAt: new Date().toISOString(),
    });
    expect(ingest.status).toBe(202);
  }
  await eventually(
    `lot ${lotId} awaiting its disposition`,
    async () => (await http('GET', `/v1/lots/${lotId}`)).json<LotView>(),
    (view) => view.live?.stage === 'awaiting-disposition',
  );
}, 120_000);

afterAll(async () => {
  await new Promise((resolve) => (imageStore ? imageStore.server.close(resolve) : resolve(undefined)));
  await dispatcher?.stop();
  await rig?.close();
  if (worker) {
    worker.shutdown();
    await running;
  }
  await harness.tearDown();
}, 60_000);

/** The rig's person for a role: their local account id (as signatures name it) and password. */
const person = (role: RigRole) => ({ ...rig.users[role], id: `local:${rig.users[role].username}` });

/**
 * What went wrong in the browser: script errors, refusals by the page's content security policy and failed answers,
 * but the one each test provokes (a wrong signature password, 401).
 */
const pageProblems: string[] = [];

/** A page signed in through the form (its own tab: the token lives in the tab's sessionStorage), then at `path`. */
async function signedIn(role: RigRole, path: string): Promise<Page> {
  const page = await rig.signedInPage(role);
  page.on('pageerror', (error) => pageProblems.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      pageProblems.push(message.text());
    }
  });
  page.on('response', (response) => {
    const refusedSignature = response.status() === 401 && response.url().endsWith('/disposition');
    if (response.status() >= 400 && !refusedSignature) pageProblems.push(`${response.url()}: ${response.status()}`);
  });
  await page.goto(`${rig.baseUrl}${path}`);
  return page;
}

afterEach(() => {
  expect(pageProblems.splice(0)).toEqual([]);
});

/** The serious and critical violations, one line each (an empty list reads best in a failure). */
async function accessibilityViolations(page: Page): Promise<string[]> {
  return (await seriousAccessibilityViolations(page)).map((v) => `${v.impact} ${v.id}: ${v.targets.join(' ')}`);
}

/** A bearer token from POST /v1/auth/token, as any client of the API gets one. */
async function tokenOf(role: RigRole): Promise<{ authorization: string }> {
  const res = await http('POST', '/v1/auth/token', {
    username: rig.users[role].username,
    password: rig.users[role].password,
  });
  expect(res.status).toBe(200);
  return { authorization: `Bearer ${res.json<{ access_token: string }>().access_token}` };
}

test('a lot is traced from the search box to its supplier lots and customers, and a mock recall runs from there', async () => {
  const page = await signedIn('quality-engineer', `/ui/trace?site=${SITE}`);
  await page.getByLabel('Search by').selectOption('lot');
  await page.getByLabel('MES lot id').fill(lotId);
  await page.getByRole('button', { name: 'Trace' }).click();

  const sources = page.locator('#trace-sources');
  await sources.getByText(SUPPLIER_LOTS[0]!.supplierBatch).waitFor({ timeout: 20_000 });
  const sourceText = await sources.innerText();
  for (const s of SUPPLIER_LOTS) {
    expect(sourceText).toContain(s.supplierBatch);
    expect(sourceText).toContain(s.supplier);
  }
  const deliveries = await page.locator('#trace-deliveries').innerText();
  for (const c of CUSTOMERS) {
    expect(deliveries).toContain(c.customer);
    expect(deliveries).toContain(`${c.delivery} / ${c.item}`);
  }
  // The cameras' finding is on the lot: one failed inspection, its class.
  expect(await page.locator('#trace-start').innerText()).toMatch(/2 failed of 2 \(scratch 2\)/);
  // The graph is drawn and says what it holds: the lot, two supplier lots; the work order; two deliveries.
  expect(await page.locator('#trace-graph-chart').getAttribute('aria-label')).toMatch(
    /3 lots, 1 work orders, 2 deliveries/,
  );
  expect(await page.locator('#trace-graph-chart canvas').count()).toBeGreaterThan(0);
  expect(new URL(page.url()).searchParams.get('q')).toBe(lotId);
  expect(await accessibilityViolations(page)).toEqual([]);
  await screenshot(page, 'trace');

  // The lot links to its page.
  await page.locator('#trace-start').getByRole('link', { name: lotId }).click();
  await page.locator('#disposition').waitFor();
  expect(new URL(page.url()).pathname).toBe(`/ui/lots/${lotId}`);
  await page.goBack();

  // A mock recall of the same lot, started here; its stages appear when it is done.
  await page.getByLabel('Reason').fill(`drill ${run}`);
  await page.getByRole('button', { name: 'Start mock recall' }).click();
  await page.locator('#recall-state[data-state="completed"]').waitFor({ timeout: 45_000 });
  const recallId = new URL(page.url()).searchParams.get('recall');
  expect(recallId).toBeTruthy();
  const recall = (await http('GET', `/v1/recalls/${recallId}`)).json<RecallView>();
  expect(recall).toMatchObject({ kind: 'mock', state: 'completed', requestedBy: person('quality-engineer').id });
  const stages = await page.locator('#recall-stages').innerText();
  for (const s of recall.stages) expect(stages).toContain(s.name);
  expect(recall.stages.map((s) => s.name)).toContain('trace');

  // From a supplier's batch (two fields), forward: the lot made of it and the customers who got that lot.
  await page.locator('#trace-by').selectOption('supplier-lot');
  await page.locator('#trace-q').fill(SUPPLIER_LOTS[1]!.supplier);
  await page.locator('#trace-q2').fill(SUPPLIER_LOTS[1]!.supplierBatch);
  await page.getByRole('button', { name: 'Trace' }).click();
  await page.locator('#trace-made-into').getByRole('link', { name: lotId }).waitFor({ timeout: 20_000 });
  const reached = await page.locator('#trace-deliveries').innerText();
  for (const c of CUSTOMERS) expect(reached).toContain(c.customer);
  expect(new URL(page.url()).searchParams.get('q2')).toBe(SUPPLIER_LOTS[1]!.supplierBatch);
  await page.close();
}, 90_000);

test('an operator sees the held lot but no decision form, and the API refuses their disposition', async () => {
  const page = await signedIn('operator', `/ui/lots/${lotId}?site=${SITE}`);
  await page.locator('#decision-not-allowed').waitFor({ timeout: 20_000 });
  expect(await page.locator('#decision-form').count()).toBe(0);
  expect(await page.locator('#decision-not-allowed').innerText()).toMatch(/Quality engineers and quality managers/);
  expect(await page.locator('[data-figure="lot-stage"]').innerText()).toBe('awaiting-disposition');
  // The cameras' frames: the readable one fetched through the API with the page's token and shown from a blob: URL,
  // the other one's reference shown as text.
  const frame = page.getByRole('img', { name: new RegExp(`Frame of Part P-${run}-1 at L1/S2`) });
  await frame.waitFor({ timeout: 20_000 });
  expect(await frame.getAttribute('src')).toMatch(/^blob:/);
  expect(await frame.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth)).toBe(1);
  expect(imageStore.requests).toContain(`/frames/${run}-1.png`);
  const unread = page.locator(`[data-event-id="${run}-evt-2"]`);
  expect(await unread.innerText()).toContain(`Frame stored at ${OTHER_STORE}/frames/${run}-2.png`);
  expect(await unread.locator('img').count()).toBe(0);
  // The lot's genealogy on its page: its supplier batches (each a link to its own trace) and its customers.
  const genealogy = page.locator('#lot-genealogy');
  for (const l of SUPPLIER_LOTS)
    await genealogy.getByRole('link', { name: `${l.supplier} / ${l.supplierBatch}` }).waitFor();
  for (const c of CUSTOMERS) expect(await genealogy.innerText()).toContain(c.customer);
  expect(await accessibilityViolations(page)).toEqual([]);
  await page.close();

  const refused = await http(
    'POST',
    `/v1/lots/${lotId}/disposition`,
    {
      decision: 'scrap',
      reason: 'operator tries',
      signature: { meaning: 'approval', password: person('operator').password },
    },
    { ...(await tokenOf('operator')), 'Idempotency-Key': `${run}-operator` },
  );
  expect(refused.status).toBe(403);
}, 60_000);

test('a quality engineer signs a use-as-is in the console; a quality manager countersigns it there', async () => {
  const reason = `MRB ${run}: cosmetic only, customer deviation D-12`;
  const engineer = await signedIn('quality-engineer', `/ui/lots/${lotId}?site=${SITE}`);
  await engineer.locator('#decision-form').waitFor({ timeout: 20_000 });
  await engineer.getByLabel('Decision').selectOption('use-as-is');
  await engineer.getByLabel('Reason').fill(reason);
  await engineer.getByLabel('Meaning of your signature').selectOption('responsibility');
  // A wrong password signs nothing: the API's problem is shown as an alert, and the form stays.
  await engineer.getByLabel(/re-entered to sign/).fill('not-my-password');
  await engineer.getByRole('button', { name: 'Sign disposition' }).click();
  await engineer.locator('#decision-error [role="alert"]').waitFor();
  expect(await engineer.locator('#decision-error').innerText()).toMatch(/HTTP 401/);
  // A refused signature password is not a signed-out session: the person and the form stay.
  expect(await engineer.locator('#user-name').textContent()).toBe(rig.users['quality-engineer'].displayName);
  await engineer.getByLabel(/re-entered to sign/).fill(person('quality-engineer').password);
  await engineer.getByRole('button', { name: 'Sign disposition' }).click();

  const required = engineer.locator('#second-signature-required');
  await required.waitFor({ timeout: 20_000 });
  expect(await required.innerText()).toContain(person('quality-engineer').id);
  expect(await required.innerText()).toMatch(/quality manager other than the first signer must countersign/);
  expect(await engineer.locator('#countersign-not-allowed').innerText()).toMatch(
    /You signed this decision: the second signature must be another quality manager/,
  );
  expect(await accessibilityViolations(engineer)).toEqual([]);
  await engineer.close();

  const waiting = (await http('GET', `/v1/lots/${lotId}`)).json<LotView>();
  expect(waiting.live).toMatchObject({
    stage: 'awaiting-second-signature',
    decision: { decision: 'use-as-is', reason },
  });

  const manager = await signedIn('quality-manager', `/ui/lots/${lotId}?site=${SITE}`);
  await manager.locator('#countersign-form').waitFor({ timeout: 20_000 });
  expect(await manager.locator('#lot-signatures').innerText()).toContain(person('quality-engineer').id);
  expect(await accessibilityViolations(manager)).toEqual([]);
  await screenshot(manager, 'mrb-console');
  await manager.getByLabel('Meaning of your signature').selectOption('approval');
  await manager.getByLabel(/re-entered to sign/).fill(person('quality-manager').password);
  await manager.getByRole('button', { name: 'Countersign' }).click();
  await manager.getByText(/Countersigned: use-as-is/).waitFor({ timeout: 30_000 });
  await manager.close();

  // The case's record holds both signatures, each by its signer, with its meaning, each verifying.
  const closed = await eventually(
    'the countersigned case closed',
    async () => (await http('GET', `/v1/lots/${lotId}`)).json<LotView>(),
    (view) => view.cases[0]?.stage === 'closed',
  );
  expect(closed.cases[0]!.disposition!.signatures.map((s) => [s.signer.id, s.meaning, s.valid])).toEqual([
    [person('quality-engineer').id, 'responsibility', true],
    [person('quality-manager').id, 'approval', true],
  ]);
}, 90_000);
