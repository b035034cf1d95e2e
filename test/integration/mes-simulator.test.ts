import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type {
  Counts,
  Hold,
  HoldReleased,
  Lot,
  Problem,
  QualityEvent,
  QualityEventCreated,
  WorkOrder,
} from '../../infra/simulators/mes/mes.schemas';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { testPool } from '../support/test-env';

// The reference MES over real HTTP, its state in a schema of its own on the run's PostgreSQL.
const schema = `mes_sim_test_${randomBytes(5).toString('hex')}`;
let pool: Pool;
let app: FastifyInstance;
let baseUrl: string;

/** `T` is what the route documents for success; error answers are read as Problem through `problem()`. */
interface Answer<T> {
  status: number;
  contentType: string;
  body: T;
}

async function call<T = Problem>(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Answer<T>> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    body: (text ? JSON.parse(text) : null) as T,
  };
}

const listen = async (instance: FastifyInstance) => {
  await instance.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(instance.server.address() as AddressInfo).port}`;
};

let seq = 0;
/** A fresh lot in its own work order, so assertions on the order's quality status see only this test. */
async function newLot(extra: Record<string, unknown> = {}): Promise<{ lotId: string; workOrder: string }> {
  seq++;
  const lot = { lotId: `T-LOT-${seq}`, workOrder: `T-WO-${seq}`, sku: 'BRKT-200', quantity: 40, ...extra };
  const res = await call('POST', '/__sim/lots', lot);
  expect(res.status).toBe(201);
  return { lotId: lot.lotId, workOrder: lot.workOrder };
}

const holdBody = (externalReference: string) => ({
  reason: 'vision: scratch on flange',
  defectClass: 'scratch',
  line: 'L1',
  station: 'S2',
  externalReference,
});

async function hold(lotId: string, externalReference = `hold-${lotId}-${++seq}`): Promise<Answer<Hold>> {
  return call<Hold>('POST', `/api/v1/lots/${lotId}/holds`, holdBody(externalReference));
}

beforeAll(async () => {
  pool = testPool();
  app = await buildMesSimulator({ pool, schema, seedDemo: true });
  baseUrl = await listen(app);
});

afterEach(async () => {
  await call('DELETE', '/__faults');
});

afterAll(async () => {
  await app?.close();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

describe('MES simulator: lots and demo data', () => {
  it('answers /health and serves the seeded demo lots with their ERP batch', async () => {
    expect((await call('GET', '/health')).status).toBe(200);

    const inHouse = await call<Lot>('GET', '/api/v1/lots/L-0001');
    expect(inHouse.status).toBe(200);
    expect(inHouse.body).toEqual({
      lotId: 'L-0001',
      sku: 'BRKT-200',
      workOrder: '1000100',
      quantity: 500,
      unit: 'PC',
      status: 'RELEASED',
      erpPlant: '1010',
      storageLocation: '0001',
      batch: 'B0001',
      activeHolds: [],
    });
    // A bought lot names its vendor and the purchase order item it was received on (SAP's return refers to them).
    expect((await call<Lot>('GET', '/api/v1/lots/L-0002')).body).toMatchObject({
      supplier: '17300001',
      purchaseOrder: '4500000101',
      purchaseOrderItem: '00010',
    });
    const wo = await call<WorkOrder>('GET', '/api/v1/work-orders/1000101');
    expect(wo.body).toMatchObject({ workOrder: '1000101', sku: 'HSG-310', line: 'L2', plannedQuantity: 2000 });
  });

  it('keeps existing state when it restarts and seeds again', async () => {
    const held = await hold('L-0005');
    expect(held.status).toBe(201);
    const before = await call<Counts>('GET', '/__sim/counts');

    const restarted = await buildMesSimulator({ pool, schema, seedDemo: true });
    try {
      const restartedUrl = await listen(restarted);
      const lot = (await (await fetch(`${restartedUrl}/api/v1/lots/L-0005`)).json()) as Record<string, unknown>;
      expect(lot).toMatchObject({ status: 'ON_HOLD', activeHolds: [{ holdId: held.body.holdId }] });
      expect(await (await fetch(`${restartedUrl}/__sim/counts`)).json()).toEqual(before.body);
    } finally {
      await restarted.close();
    }
  });
});

describe('MES simulator: holds', () => {
  it('puts the lot ON_HOLD and its work order quality status ON_HOLD', async () => {
    const { lotId, workOrder } = await newLot();
    expect((await call<WorkOrder>('GET', `/api/v1/work-orders/${workOrder}`)).body.qualityStatus).toBe('OK');

    const res = await hold(lotId, 'evt-1:hold');

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ lotId, workOrder, status: 'ACTIVE', externalReference: 'evt-1:hold' });
    expect(res.body.holdId).toMatch(/^H-\d{6,}$/);
    const lot = await call<Lot>('GET', `/api/v1/lots/${lotId}`);
    expect(lot.body.status).toBe('ON_HOLD');
    expect(lot.body.activeHolds.map((h) => h.holdId)).toEqual([res.body.holdId]);
    expect((await call<WorkOrder>('GET', `/api/v1/work-orders/${workOrder}`)).body.qualityStatus).toBe('ON_HOLD');
  });

  it('does not de-duplicate: the same POST twice makes two holds', async () => {
    const { lotId } = await newLot();
    const before = (await call<Counts>('GET', '/__sim/counts')).body;

    const first = await hold(lotId, 'evt-dup:hold');
    const second = await hold(lotId, 'evt-dup:hold');

    expect([first.status, second.status]).toEqual([201, 201]);
    expect(second.body.holdId).not.toBe(first.body.holdId);
    const found = await call<{ items: Hold[] }>('GET', '/api/v1/holds?externalReference=evt-dup:hold');
    expect(found.body.items).toHaveLength(2);
    const after = (await call<Counts>('GET', '/__sim/counts')).body;
    expect(after.holds - before.holds).toBe(2);
    expect(after.activeHolds - before.activeHolds).toBe(2);
  });

  it('filters holds by lot and status', async () => {
    const { lotId } = await newLot();
    const a = await hold(lotId);
    const b = await hold(lotId);
    await call<HoldReleased>('POST', `/api/v1/holds/${a.body.holdId}/release`, {
      disposition: 'use-as-is',
      comment: 'ok',
      externalReference: 'rel-a',
    });

    const active = await call<{ items: Hold[] }>('GET', `/api/v1/holds?lotId=${lotId}&status=ACTIVE`);
    const released = await call<{ items: Hold[] }>('GET', `/api/v1/holds?lotId=${lotId}&status=RELEASED`);

    expect(active.body.items.map((h) => h.holdId)).toEqual([b.body.holdId]);
    expect(released.body.items.map((h) => h.holdId)).toEqual([a.body.holdId]);
    expect((await call<Hold>('GET', `/api/v1/holds/${a.body.holdId}`)).body).toMatchObject({
      status: 'RELEASED',
      disposition: 'use-as-is',
    });
  });

  it.each([
    ['use-as-is', 'RELEASED', 0],
    ['rework', 'REWORK', 0],
    ['scrap', 'SCRAPPED', 40],
    ['return-to-vendor', 'RETURNED', 0],
  ])('release with %s closes the hold and sets the lot %s', async (disposition, lotStatus, scrapped) => {
    const { lotId, workOrder } = await newLot({ supplier: '17300001' });
    const held = await hold(lotId);

    const res = await call<HoldReleased>('POST', `/api/v1/holds/${held.body.holdId}/release`, {
      disposition,
      comment: `MRB decision: ${disposition}`,
      externalReference: `rel-${lotId}`,
    });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      holdId: held.body.holdId,
      status: 'RELEASED',
      disposition,
      releaseComment: `MRB decision: ${disposition}`,
      releaseReference: `rel-${lotId}`,
      lotStatus,
    });
    const lot = await call<Lot>('GET', `/api/v1/lots/${lotId}`);
    expect(lot.body).toMatchObject({ status: lotStatus, activeHolds: [] });
    const wo = await call<WorkOrder>('GET', `/api/v1/work-orders/${workOrder}`);
    expect(wo.body).toMatchObject({ qualityStatus: 'OK', scrappedQuantity: scrapped });
  });

  it('leaves the lot ON_HOLD until its last active hold is released', async () => {
    const { lotId } = await newLot();
    const a = await hold(lotId);
    const b = await hold(lotId);

    const first = await call<HoldReleased>('POST', `/api/v1/holds/${a.body.holdId}/release`, {
      disposition: 'use-as-is',
      externalReference: 'rel-1',
    });
    expect(first.body.lotStatus).toBe('ON_HOLD');
    expect((await call<Lot>('GET', `/api/v1/lots/${lotId}`)).body.status).toBe('ON_HOLD');

    const last = await call<HoldReleased>('POST', `/api/v1/holds/${b.body.holdId}/release`, {
      disposition: 'rework',
      externalReference: 'rel-2',
    });
    expect(last.body.lotStatus).toBe('REWORK');
    expect((await call<Lot>('GET', `/api/v1/lots/${lotId}`)).body.status).toBe('REWORK');
  });

  it('answers a repeated release with the same disposition unchanged and refuses a different one', async () => {
    const { lotId } = await newLot();
    const held = await hold(lotId);
    const path = `/api/v1/holds/${held.body.holdId}/release`;
    const first = await call<HoldReleased>('POST', path, {
      disposition: 'rework',
      comment: 'c',
      externalReference: 'rel-r',
    });

    const repeat = await call<HoldReleased>('POST', path, {
      disposition: 'rework',
      comment: 'c',
      externalReference: 'rel-r',
    });
    const other = await call('POST', path, { disposition: 'scrap', comment: 'c', externalReference: 'rel-s' });

    expect(repeat.status).toBe(200);
    expect(repeat.body).toEqual(first.body);
    expect(other.status).toBe(409);
    expect(other.contentType).toContain('application/problem+json');
    expect(other.body).toMatchObject({ status: 409, code: 'HOLD_ALREADY_RELEASED' });
    expect((await call<Lot>('GET', `/api/v1/lots/${lotId}`)).body.status).toBe('REWORK');
  });

  it('refuses to hold a scrapped lot with 409 LOT_CLOSED', async () => {
    const { lotId } = await newLot();
    const held = await hold(lotId);
    await call<HoldReleased>('POST', `/api/v1/holds/${held.body.holdId}/release`, {
      disposition: 'scrap',
      externalReference: 'r',
    });
    const before = (await call<Counts>('GET', '/__sim/counts')).body;

    const res = await call('POST', `/api/v1/lots/${lotId}/holds`, holdBody('evt-closed:hold'));

    expect(res.status).toBe(409);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 409, code: 'LOT_CLOSED' });
    expect(res.body.detail).toContain(lotId);
    expect((await call<Counts>('GET', '/__sim/counts')).body.holds).toBe(before.holds);
  });

  it('refuses return-to-vendor for a lot made in-house', async () => {
    const { lotId } = await newLot();
    const held = await hold(lotId);

    const res = await call('POST', `/api/v1/holds/${held.body.holdId}/release`, {
      disposition: 'return-to-vendor',
      externalReference: 'r',
    });

    expect(res.status).toBe(409);
    expect(res.body.code).toBe('LOT_NOT_PURCHASED');
    expect((await call<Hold>('GET', `/api/v1/holds/${held.body.holdId}`)).body.status).toBe('ACTIVE');
  });

  it('commits a hold whose response is dropped, while the client sees a socket error', async () => {
    const { lotId } = await newLot();
    await call('PUT', '/__faults', { dropResponse: { remaining: 1, pathContains: '/holds' } });

    const attempt = fetch(`${baseUrl}/api/v1/lots/${lotId}/holds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(holdBody('evt-drop:hold')),
    });

    // fetch reports the destroyed socket as TypeError('fetch failed') with the socket error as its cause.
    const err = (await attempt.then(
      () => undefined,
      (e: unknown) => e,
    )) as Error | undefined;
    expect(err?.message).toBe('fetch failed');
    expect(String(err?.cause)).toMatch(/other side closed|socket hang up|ECONNRESET/i);
    const found = await call<{ items: Hold[] }>('GET', '/api/v1/holds?externalReference=evt-drop:hold');
    expect(found.body.items).toHaveLength(1);
    expect(found.body.items[0]).toMatchObject({ lotId, status: 'ACTIVE' });
    expect((await call<Lot>('GET', `/api/v1/lots/${lotId}`)).body.status).toBe('ON_HOLD');
    expect(
      (await call<{ counters: { responsesDropped: number } }>('GET', '/__faults')).body.counters.responsesDropped,
    ).toBe(1);
  });
});

describe('MES simulator: work orders and quality events', () => {
  it('adds each quality event to the nonconforming quantity and sets the quality status', async () => {
    const { lotId, workOrder } = await newLot();
    const before = (await call<Counts>('GET', '/__sim/counts')).body;
    const event = (partId: string, qty: number) => ({
      externalReference: `evt-${partId}:quality`,
      lotId,
      partId,
      defectClass: 'burr',
      nonconformingQuantity: qty,
    });

    const first = await call<QualityEventCreated>(
      'POST',
      `/api/v1/work-orders/${workOrder}/quality-events`,
      event('P-1', 1),
    );
    const second = await call<QualityEventCreated>(
      'POST',
      `/api/v1/work-orders/${workOrder}/quality-events`,
      event('P-2', 2),
    );

    expect(first.status).toBe(201);
    expect(first.body.qualityEventId).toMatch(/^QE-\d{6,}$/);
    expect(first.body.workOrderQuality).toMatchObject({
      workOrder,
      nonconformingQuantity: 1,
      qualityStatus: 'NONCONFORMING',
    });
    expect(second.body.workOrderQuality.nonconformingQuantity).toBe(3);
    expect(second.body.qualityEventId).not.toBe(first.body.qualityEventId);
    expect((await call<WorkOrder>('GET', `/api/v1/work-orders/${workOrder}`)).body).toMatchObject({
      nonconformingQuantity: 3,
      qualityStatus: 'NONCONFORMING',
    });
    expect((await call<Counts>('GET', '/__sim/counts')).body.qualityEvents - before.qualityEvents).toBe(2);

    const byRef = await call<{ items: QualityEvent[] }>(
      'GET',
      `/api/v1/work-orders/${workOrder}/quality-events?externalReference=evt-P-2:quality`,
    );
    expect(byRef.body.items).toEqual([expect.objectContaining({ partId: 'P-2', nonconformingQuantity: 2 })]);
    const byPart = await call<{ items: QualityEvent[] }>(
      'GET',
      `/api/v1/work-orders/${workOrder}/quality-events?partId=P-1`,
    );
    expect(byPart.body.items.map((e) => e.qualityEventId)).toEqual([first.body.qualityEventId]);
  });

  it('reports ON_HOLD rather than NONCONFORMING while a lot of the order is on hold', async () => {
    const { lotId, workOrder } = await newLot();
    await call<QualityEventCreated>('POST', `/api/v1/work-orders/${workOrder}/quality-events`, {
      externalReference: 'q',
      lotId,
      partId: 'P-9',
      defectClass: 'crack',
      nonconformingQuantity: 1,
    });
    await hold(lotId);

    expect((await call<WorkOrder>('GET', `/api/v1/work-orders/${workOrder}`)).body.qualityStatus).toBe('ON_HOLD');
  });

  it('refuses a quality event for a lot of another work order with 422', async () => {
    const res = await call('POST', '/api/v1/work-orders/1000100/quality-events', {
      externalReference: 'q-wrong',
      lotId: 'L-0009',
      partId: 'P-1',
      defectClass: 'crack',
      nonconformingQuantity: 1,
    });

    expect(res.status).toBe(422);
    expect(res.body.code).toBe('LOT_NOT_IN_WORK_ORDER');
  });
});

describe('MES simulator: errors', () => {
  it.each([
    ['GET', '/api/v1/lots/NO-SUCH-LOT', undefined],
    ['POST', '/api/v1/lots/NO-SUCH-LOT/holds', holdBody('x')],
    ['GET', '/api/v1/holds/H-999999999', undefined],
    ['POST', '/api/v1/holds/H-999999999/release', { disposition: 'scrap', externalReference: 'x' }],
    ['GET', '/api/v1/work-orders/NO-SUCH-WO', undefined],
    ['GET', '/api/v1/work-orders/NO-SUCH-WO/quality-events', undefined],
    [
      'POST',
      '/api/v1/work-orders/NO-SUCH-WO/quality-events',
      { externalReference: 'x', lotId: 'L-0001', partId: 'P', defectClass: 'd', nonconformingQuantity: 1 },
    ],
  ])('%s %s → 404 NOT_FOUND as problem+json', async (method, path, body) => {
    const res = await call(method, path, body);

    expect(res.status).toBe(404);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 404, code: 'NOT_FOUND', title: 'Not Found' });
  });

  it.each([
    ['/api/v1/lots/L-0001/holds', { ...holdBody('x'), reason: undefined }, 'body.reason'],
    ['/api/v1/lots/L-0001/holds', { ...holdBody('x'), station: '' }, 'body.station'],
    [
      '/api/v1/work-orders/1000100/quality-events',
      { externalReference: 'x', lotId: 'L-0001', partId: 'P', defectClass: 'd', nonconformingQuantity: 0 },
      'body.nonconformingQuantity',
    ],
    ['/api/v1/holds/H-000001/release', { disposition: 'destroy', externalReference: 'x' }, 'body.disposition'],
    [
      '/__sim/lots',
      { lotId: 'T-PO-1', workOrder: 'T-WO-PO', sku: 'BRKT-200', quantity: 1, purchaseOrder: '4500000001' },
      'body.supplier',
    ],
    [
      '/__sim/lots',
      { lotId: 'T-PO-2', workOrder: 'T-WO-PO', sku: 'BRKT-200', quantity: 1, supplier: 'V1', purchaseOrder: '45' },
      'body.purchaseOrderItem',
    ],
  ])('POST %s with a bad field → 400 naming it', async (path, body, field) => {
    const res = await call('POST', path, body);

    expect(res.status).toBe(400);
    expect(res.contentType).toContain('application/problem+json');
    expect(res.body.code).toBe('INVALID_REQUEST');
    expect(res.body.detail).toContain(field);
    expect(res.body.errors?.map((e) => e.field)).toContain(field);
  });

  it('answers malformed JSON with 400 problem+json and no stack trace', async () => {
    const res = await fetch(`${baseUrl}/api/v1/lots/L-0001/holds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"reason":',
    });
    const body = (await res.json()) as Record<string, unknown>;

    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(body.code).toBe('INVALID_REQUEST');
    expect(JSON.stringify(body)).not.toMatch(/\bat .+\.(ts|js):\d+/);
  });
});

describe('MES simulator: API key', () => {
  let keyed: FastifyInstance;
  let keyedUrl: string;

  beforeAll(async () => {
    keyed = await buildMesSimulator({ pool, schema, apiKey: 'mes-secret-key' });
    keyedUrl = await listen(keyed);
  });
  afterAll(async () => {
    await keyed?.close();
  });

  it('refuses requests without the right X-API-Key with 401 and keeps /health open', async () => {
    const none = await fetch(`${keyedUrl}/api/v1/lots/L-0001`);
    const wrong = await fetch(`${keyedUrl}/api/v1/lots/L-0001`, { headers: { 'x-api-key': 'mes-secret-kez' } });
    const right = await fetch(`${keyedUrl}/api/v1/lots/L-0001`, { headers: { 'x-api-key': 'mes-secret-key' } });
    const health = await fetch(`${keyedUrl}/health`);

    expect(none.status).toBe(401);
    expect(none.headers.get('content-type')).toContain('application/problem+json');
    expect(((await none.json()) as { code: string }).code).toBe('UNAUTHORIZED');
    expect(wrong.status).toBe(401);
    expect(right.status).toBe(200);
    expect(health.status).toBe(200);
  });

  it('does not apply a hold sent without the key', async () => {
    const before = (await call<Counts>('GET', '/__sim/counts')).body;

    const res = await fetch(`${keyedUrl}/api/v1/lots/L-0003/holds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(holdBody('no-key')),
    });

    expect(res.status).toBe(401);
    expect((await call<Counts>('GET', '/__sim/counts')).body).toEqual(before);
  });
});
