/**
 * Line and work-order holds (statistical escalation, docs/analytics.md#statistical-escalation) in the MES simulator and
 * through holdfast-mes-rest, over real HTTP: the simulator does not de-duplicate holds, so the connector's look-up by
 * key is what makes a retry after a lost answer find the hold; a release answers a repeat under its key unchanged and
 * refuses another key; the line's status reads back ON_HOLD while a line hold is active.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { MesPort } from '../../activities/ports';
import mesRestConnector from '../../infra/connectors/mes-rest/mes-rest.connector';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { externalError } from '../contract/contract-support';
import { testPool } from '../support/test-env';

const schema = `mes_holds_${randomBytes(5).toString('hex')}`;
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
let pool: Pool;
let sim: FastifyInstance;
let port: MesPort;
let close: () => Promise<void>;

const sim$ = async <T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => {
  const res = await sim.inject({ method, url, ...(payload ? { payload } : {}) });
  return { status: res.statusCode, body: res.json<T>() };
};

beforeAll(async () => {
  pool = testPool();
  sim = await buildMesSimulator({ pool, schema });
  await sim.listen({ port: 0, host: '127.0.0.1' });
  const { port: p } = sim.server.address() as AddressInfo;
  const connector = await mesRestConnector.connect(
    mesRestConnector.configSchema.parse({ baseUrl: `http://127.0.0.1:${p}` }),
    { name: 'mes-holds', env: {}, log: quiet, dataDir: '/nonexistent' },
  );
  port = connector.port;
  close = () => connector.close();
  await sim$('POST', '/__sim/work-orders', { workOrder: 'WO-H1', sku: 'BRKT-200', line: 'L7', plannedQuantity: 10 });
});

afterAll(async () => {
  await close?.();
  await sim?.close();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

test('the simulator keeps every hold posted, even with the same body', async () => {
  const body = { reason: 'r', externalReference: 'same-key' };
  expect((await sim$('POST', '/api/v1/lines/L9/holds', body)).status).toBe(201);
  expect((await sim$('POST', '/api/v1/lines/L9/holds', body)).status).toBe(201);
  const found = await sim$<{ items: unknown[] }>('GET', '/api/v1/production-holds?externalReference=same-key');
  expect(found.body.items).toHaveLength(2);
});

test('a line hold whose answer was lost is found by its key on retry: one hold, read back ACTIVE', async () => {
  const req = { idempotencyKey: 'esc-1:hold', scope: 'line' as const, line: 'L1', station: 'S1', reason: 'rule nc3' };
  await sim$('PUT', '/__faults', { dropResponse: { remaining: 1, pathContains: '/lines/L1/holds' } });
  const lost = await externalError(port.holdProduction!(req, { lookupFirst: false }));
  expect(lost.kind).toBe('transient');
  const hold = await port.holdProduction!(req, { lookupFirst: true });
  await sim$('DELETE', '/__faults');
  expect(hold).toMatchObject({
    scope: 'line',
    line: 'L1',
    station: 'S1',
    status: 'ACTIVE',
    externalReference: req.idempotencyKey,
  });
  const all = await sim$<{ items: unknown[] }>('GET', '/api/v1/production-holds?externalReference=esc-1%3Ahold');
  expect(all.body.items).toHaveLength(1);
  expect((await sim$('GET', '/api/v1/lines/L1/status')).body).toMatchObject({ status: 'ON_HOLD' });
  expect(await port.getProductionHold!(hold.holdId)).toEqual(hold);

  // The key names a line hold of L1: asking it for another line is a reused key, refused.
  const reused = await externalError(port.holdProduction!({ ...req, line: 'L2' }));
  expect(reused.kind).toBe('validation');

  const release = { idempotencyKey: 'esc-1:release', holdId: hold.holdId, comment: 'signed release' };
  const released = await port.releaseProductionHold!(release);
  expect(released).toMatchObject({
    status: 'RELEASED',
    releaseReference: 'esc-1:release',
    releaseComment: 'signed release',
  });
  // A repeat under the same key answers the release made; under another key it is refused.
  expect(await port.releaseProductionHold!(release)).toEqual(released);
  expect((await externalError(port.releaseProductionHold!({ ...release, idempotencyKey: 'other' }))).kind).toBe(
    'rejected',
  );
  expect((await sim$('GET', '/api/v1/lines/L1/status')).body).toMatchObject({ status: 'RUNNING', activeHolds: [] });
});

test("a work-order hold is on the order's line; an unknown order is not found", async () => {
  const hold = await port.holdProduction!({
    idempotencyKey: 'esc-2:hold',
    scope: 'work-order',
    line: 'L7',
    workOrder: 'WO-H1',
    reason: 'rule fpy',
  });
  expect(hold).toMatchObject({ scope: 'work-order', line: 'L7', workOrder: 'WO-H1', status: 'ACTIVE' });
  // An order hold does not stop the line.
  expect((await sim$('GET', '/api/v1/lines/L7/status')).body).toMatchObject({ status: 'RUNNING' });
  const missing = await externalError(
    port.holdProduction!({
      idempotencyKey: 'esc-3:hold',
      scope: 'work-order',
      line: 'L7',
      workOrder: 'NOPE',
      reason: 'r',
    }),
  );
  expect(missing.kind).toBe('not-found');
});
