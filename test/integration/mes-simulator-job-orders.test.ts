/**
 * The reference MES's job orders over real HTTP and a real broker (aedes, the MES's own account): each change to an
 * order is one event with the next revision, kept once and listed with a cursor, published on its line's job-order
 * topic unless held back; a recorded event can be republished (replay, out of order); production releases, line
 * orders and resequencing requests with their effects.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import type { Pool } from 'pg';
import { findFreePort } from '../../infra/local/managed-process';
import { mesProductionAccount, spawnEmbeddedMqttBroker, type MqttBroker } from '../../infra/local/mqtt-broker';
import {
  JobOrderEvent,
  type LineOrder,
  type ProductionRelease,
  type Resequencing,
} from '../../infra/simulators/mes/job-order.schema';
import type { Lot, Problem, WorkOrder } from '../../infra/simulators/mes/mes.schemas';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { eventually } from '../support/eventually';
import { testPool } from '../support/test-env';

const tag = randomBytes(4).toString('hex');
const schema = `mes_sim_jo_${tag}`;
const site = `S${tag.toUpperCase()}`;
const mesLogin = { username: 'mes', password: randomUUID() };
const watcherLogin = { username: 'watcher', password: randomUUID() };
let pool: Pool;
let broker: MqttBroker;
let app: Awaited<ReturnType<typeof buildMesSimulator>>;
let baseUrl: string;
let watcher: mqtt.MqttClient;
const received: { topic: string; event: JobOrderEvent }[] = [];

async function call<T = Problem>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

let seq = 0;
const newOrder = () => `W-${tag}-${++seq}`;
const newLine = () => `L-${tag}-${++seq}`;
const release = (workOrder: string, line: string, extra: Record<string, unknown> = {}) =>
  call<JobOrderEvent>('POST', '/__sim/job-orders', {
    workOrder,
    sku: 'CVR-120',
    site,
    line,
    plannedQuantity: 120,
    ...extra,
  });
const receivedFor = (workOrder: string) => received.filter((m) => m.event.jobOrder.id === workOrder);

beforeAll(async () => {
  pool = testPool();
  broker = await spawnEmbeddedMqttBroker({
    port: await findFreePort(),
    access: {
      accounts: [mesProductionAccount(mesLogin), { ...watcherLogin, publish: [], subscribe: ['plant/#'] }],
    },
  });
  app = await buildMesSimulator({ pool, schema, productionEventBroker: { url: broker.url, ...mesLogin } });
  baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  watcher = await mqtt.connectAsync(broker.url, { ...watcherLogin, clean: true });
  watcher.on('message', (topic, payload) => {
    received.push({ topic, event: JobOrderEvent.parse(JSON.parse(payload.toString('utf8'))) });
  });
  await watcher.subscribeAsync(`plant/${site}/+/+/production/job-orders`, { qos: 1 });
}, 60_000);

afterAll(async () => {
  await watcher?.endAsync();
  await app?.close();
  await broker?.stop();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

describe('job orders', () => {
  it('release → start → change → complete: one event each, revisions 1…4, published on the line topic', async () => {
    const wo = newOrder();
    const line = newLine();

    const events = [
      await release(wo, line, { customerCriticality: 8, workMasterId: 'WM-CVR' }),
      await call<JobOrderEvent>('POST', `/__sim/job-orders/${wo}/start`, {}),
      await call<JobOrderEvent>('POST', `/__sim/job-orders/${wo}/change`, { plannedQuantity: 150 }),
      await call<JobOrderEvent>('POST', `/__sim/job-orders/${wo}/complete`, {}),
    ];
    await eventually(
      'four messages on the line topic',
      () => receivedFor(wo).length,
      (n) => n === 4,
    );

    expect(events.map((e) => e.status)).toEqual([201, 201, 201, 201]);
    expect(events.map((e) => [e.body.eventType, e.body.jobOrder.revision, e.body.jobOrder.dispatchStatus])).toEqual([
      ['JobOrderReleased', 1, 'AllowedToStart'],
      ['JobOrderStarted', 2, 'Running'],
      ['JobOrderChanged', 3, 'Running'],
      ['JobOrderCompleted', 4, 'Ended'],
    ]);
    expect(events.map((e) => JobOrderEvent.safeParse(e.body).success)).toEqual([true, true, true, true]);
    expect(events[2]!.body.jobOrder).toEqual(
      expect.objectContaining({
        customerCriticality: 8,
        workMasterId: 'WM-CVR',
        materialRequirements: [
          {
            materialUse: 'Produced',
            materialDefinitionId: 'CVR-120',
            quantity: { quantityString: '150', unitOfMeasure: 'PC' },
          },
        ],
      }),
    );
    expect(receivedFor(wo).map((m) => m.topic)).toEqual(
      Array.from({ length: 4 }, () => `plant/${site}/ASSEMBLY/${line}/production/job-orders`),
    );
    expect(receivedFor(wo).map((m) => m.event)).toEqual(events.map((e) => e.body));
  });

  it('lists events with a cursor, each once; held-back events are listed but not published until republished', async () => {
    const start = await call<{ items: JobOrderEvent[]; nextCursor: string | null }>(
      'GET',
      '/api/v1/job-order-events?limit=5000',
    );
    const wo = newOrder();
    const released = await release(wo, newLine(), { publish: false });
    const started = await call<JobOrderEvent>('POST', `/__sim/job-orders/${wo}/start`, { publish: false });

    const page = await call<{ items: JobOrderEvent[]; nextCursor: string }>(
      'GET',
      `/api/v1/job-order-events?after=${start.body.nextCursor ?? ''}`,
    );
    const empty = await call<{ items: JobOrderEvent[]; nextCursor: string }>(
      'GET',
      `/api/v1/job-order-events?after=${page.body.nextCursor}`,
    );
    const heldBack = receivedFor(wo).length;
    // Out of order, then a replay: the start before the release, the release twice.
    await call('POST', `/__sim/job-order-events/${started.body.eventId}/republish`);
    await call('POST', `/__sim/job-order-events/${released.body.eventId}/republish`);
    await call('POST', `/__sim/job-order-events/${released.body.eventId}/republish`);
    await eventually(
      'three republished messages',
      () => receivedFor(wo).length,
      (n) => n === 3,
    );

    expect(page.body.items.map((e) => e.eventId)).toEqual([released.body.eventId, started.body.eventId]);
    expect(empty.body).toEqual({ items: [], nextCursor: page.body.nextCursor });
    expect(heldBack).toBe(0);
    expect(receivedFor(wo).map((m) => m.event.jobOrder.revision)).toEqual([2, 1, 1]);
  });

  it('refuses bad driving requests: 400 naming the field, 404 unknown order, 409 completed order', async () => {
    const wo = newOrder();
    await release(wo, newLine());
    await call('POST', `/__sim/job-orders/${wo}/complete`, {});

    const bad = await call('POST', '/__sim/job-orders', {
      workOrder: newOrder(),
      sku: 'X',
      line: 'L1',
      plannedQuantity: -1,
    });
    const unknown = await call('POST', `/__sim/job-orders/NO-SUCH-${tag}/start`, {});
    const ended = await call('POST', `/__sim/job-orders/${wo}/start`, {});
    const cursor = await call('GET', '/api/v1/job-order-events?after=abc');

    expect([bad.status, unknown.status, ended.status, cursor.status]).toEqual([400, 404, 409, 400]);
    expect(bad.body.detail).toContain('plannedQuantity');
    expect(ended.body.code).toBe('ORDER_ENDED');
    expect(cursor.body.detail).toContain('after');
  });
});

describe('production release', () => {
  it('404 before; 201 once; the same externalReference answers the first (200); the work order shows it', async () => {
    const wo = newOrder();
    const line = newLine();
    await release(wo, line);
    const body = { line, externalReference: `changeover-${wo}:release`, releasedBy: 'changeover-wf', comment: 'FA ok' };

    const before = await call('GET', `/api/v1/work-orders/${wo}/production-release`);
    const first = await call<ProductionRelease>('POST', `/api/v1/work-orders/${wo}/production-release`, body);
    const repeat = await call<ProductionRelease>('POST', `/api/v1/work-orders/${wo}/production-release`, body);
    const read = await call<ProductionRelease>('GET', `/api/v1/work-orders/${wo}/production-release`);
    const otherLine = await call('POST', `/api/v1/work-orders/${wo}/production-release`, {
      ...body,
      line: 'ELSEWHERE',
    });

    expect(before.status).toBe(404);
    expect(before.body.detail).toContain('not released');
    expect([first.status, repeat.status]).toEqual([201, 200]);
    expect(repeat.body).toEqual(first.body);
    expect(read.body).toEqual(first.body);
    expect(first.body).toEqual(expect.objectContaining({ workOrder: wo, line, releasedBy: 'changeover-wf' }));
    expect([otherLine.status, otherLine.body.code]).toEqual([422, 'LINE_MISMATCH']);
  });

  it('another externalReference is kept as another release (not de-duplicated); the read shows the first', async () => {
    const wo = newOrder();
    const line = newLine();
    await release(wo, line);
    const post = (ref: string) =>
      call<ProductionRelease>('POST', `/api/v1/work-orders/${wo}/production-release`, {
        line,
        externalReference: ref,
        releasedBy: 'x',
      });

    const a = await post('a');
    const b = await post('b');
    const read = await call<ProductionRelease>('GET', `/api/v1/work-orders/${wo}/production-release`);

    expect([a.status, b.status]).toEqual([201, 201]);
    expect(read.body.externalReference).toBe('a');
  });
});

describe('line orders and resequencing', () => {
  it('lists open orders in sequence with criticality; the work order shows both', async () => {
    const line = newLine();
    const [a, b, c] = [newOrder(), newOrder(), newOrder()];
    await release(a, line, { customerCriticality: 9 });
    await release(b, line, { customerCriticality: 3 });
    await release(c, line, { customerCriticality: 1 });
    await call('POST', `/__sim/job-orders/${a}/complete`, {});

    const orders = await call<{ items: LineOrder[] }>('GET', `/api/v1/lines/${line}/orders`);
    const wo = await call<WorkOrder>('GET', `/api/v1/work-orders/${c}`);

    expect(orders.body.items.map((o) => [o.workOrder, o.sequence, o.customerCriticality, o.status])).toEqual([
      [b, 1, 3, 'RELEASED'],
      [c, 2, 1, 'RELEASED'],
    ]);
    expect(wo.body).toEqual(expect.objectContaining({ customerCriticality: 1, sequence: 3 }));
  });

  it('use-on-less-critical: ACCEPTED, the named orders move up behind the running one, each move an event', async () => {
    const line = newLine();
    const [running, critical, lenient] = [newOrder(), newOrder(), newOrder()];
    await release(running, line, { customerCriticality: 5 });
    await release(critical, line, { customerCriticality: 9 });
    await release(lenient, line, { customerCriticality: 1 });
    await call('POST', `/__sim/job-orders/${running}/start`, {});
    await call('POST', '/__sim/lots', { lotId: `C-${tag}`, workOrder: running, sku: 'CVR-120', quantity: 10 });
    const before = receivedFor(critical).length + receivedFor(lenient).length;

    const created = await call<Resequencing>('POST', '/api/v1/resequencing-requests', {
      line,
      componentLot: `C-${tag}`,
      action: 'use-on-less-critical',
      orders: [lenient],
      reason: 'lot defect rate 3.9 % (Wilson lower bound above 2 %)',
      externalReference: `advice-${tag}-1`,
    });
    const read = await call<Resequencing>('GET', `/api/v1/resequencing-requests/${created.body.requestId}`);
    const byRef = await call<{ items: Resequencing[] }>(
      'GET',
      `/api/v1/resequencing-requests?externalReference=advice-${tag}-1`,
    );
    const orders = await call<{ items: LineOrder[] }>('GET', `/api/v1/lines/${line}/orders`);
    await eventually(
      'two JobOrderChanged events',
      () => receivedFor(critical).length + receivedFor(lenient).length - before,
      (n) => n === 2,
    );

    expect(created.status).toBe(201);
    expect(created.body).toEqual(
      expect.objectContaining({ status: 'ACCEPTED', requestId: expect.stringMatching(/^RS-/) }),
    );
    expect(read.body).toEqual(created.body);
    expect(byRef.body.items).toEqual([created.body]);
    expect(orders.body.items.map((o) => o.workOrder)).toEqual([running, lenient, critical]);
    expect(receivedFor(lenient).at(-1)?.event).toEqual(
      expect.objectContaining({ eventType: 'JobOrderChanged', jobOrder: expect.objectContaining({ sequence: 2 }) }),
    );
  });

  it('hold-remaining puts the lot on hold; an unknown lot or an order not on the line is REJECTED with the reason', async () => {
    const line = newLine();
    const wo = newOrder();
    await release(wo, line);
    await call('POST', '/__sim/lots', { lotId: `H-${tag}`, workOrder: wo, sku: 'CVR-120', quantity: 10 });
    const ask = (body: Record<string, unknown>) =>
      call<Resequencing>('POST', '/api/v1/resequencing-requests', {
        line,
        reason: 'advice',
        externalReference: `advice-${randomUUID()}`,
        ...body,
      });

    const hold = await ask({ componentLot: `H-${tag}`, action: 'hold-remaining' });
    const lot = await call<Lot>('GET', `/api/v1/lots/H-${tag}`);
    const unknownLot = await ask({ componentLot: `NONE-${tag}`, action: 'hold-remaining' });
    const foreign = await ask({ componentLot: `H-${tag}`, action: 'use-on-less-critical', orders: ['NOT-HERE'] });
    const invalid = await ask({ componentLot: `H-${tag}`, action: 'use-it-up' });

    expect(hold.body.status).toBe('ACCEPTED');
    expect(lot.body.status).toBe('ON_HOLD');
    expect(lot.body.activeHolds.map((h) => h.externalReference)).toEqual([hold.body.externalReference]);
    expect([unknownLot.body.status, unknownLot.body.statusReason]).toEqual([
      'REJECTED',
      expect.stringContaining(`NONE-${tag}`),
    ]);
    expect([foreign.body.status, foreign.body.statusReason]).toEqual(['REJECTED', expect.stringContaining('NOT-HERE')]);
    expect(invalid.status).toBe(400);
  });
});
