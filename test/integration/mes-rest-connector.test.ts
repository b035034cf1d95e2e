import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { MesPort } from '../../activities/ports';
import type { ConnectorContext, ConnectorInstance } from '../../infra/connectors/define';
import { ExternalSystemError } from '../../infra/connectors/errors';
import mesRestConnector, { MesRestConfig } from '../../infra/connectors/mes-rest/mes-rest.connector';
import type { Counts, Hold, QualityEvent } from '../../infra/simulators/mes/mes.schemas';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { testPool } from '../support/test-env';

// The connector against the reference MES over real HTTP, with the simulator's fault injection in between.
const schema = `mes_conn_test_${randomBytes(5).toString('hex')}`;
const API_KEY = 'connector-test-key';
let pool: Pool;
let sim: FastifyInstance;
let simUrl: string;
let mes: ConnectorInstance<MesPort>;
const opened: ConnectorInstance<MesPort>[] = [];

const quietLog = { info: () => undefined, warn: () => undefined, error: () => undefined };
const ctx = (env: NodeJS.ProcessEnv = {}): ConnectorContext => ({
  name: 'mes-test',
  env,
  log: quietLog,
  dataDir: '/tmp',
});

async function connect(config: Record<string, unknown>, env?: NodeJS.ProcessEnv) {
  const instance = await mesRestConnector.connect(mesRestConnector.configSchema.parse(config), ctx(env));
  opened.push(instance);
  return instance;
}

async function sim_<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(simUrl + path, {
    method,
    headers: { 'x-api-key': API_KEY, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`simulator ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const counts = () => sim_<Counts>('GET', '/__sim/counts');
const faults = (settings: Record<string, unknown>) => sim_('PUT', '/__faults', settings);

let seq = 0;
async function newLot(extra: Record<string, unknown> = {}): Promise<{ lotId: string; workOrder: string }> {
  seq++;
  const lot = { lotId: `C-LOT-${seq}`, workOrder: `C-WO-${seq}`, sku: 'HSG-310', quantity: 25, ...extra };
  await sim_('POST', '/__sim/lots', lot);
  return { lotId: lot.lotId, workOrder: lot.workOrder };
}

const holdRequest = (lotId: string, workOrder: string, idempotencyKey: string) => ({
  idempotencyKey,
  lotId,
  workOrder,
  reason: 'vision: porosity',
  defectClass: 'porosity',
  line: 'L2',
  station: 'S1',
});

/** Runs `attempt` and returns what it threw, failing the test when it did not throw an ExternalSystemError. */
async function externalError(attempt: Promise<unknown>): Promise<ExternalSystemError> {
  const outcome = await attempt.then(
    (value: unknown) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected an ExternalSystemError, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.err).toBeInstanceOf(ExternalSystemError);
  return outcome.err as ExternalSystemError;
}

beforeAll(async () => {
  pool = testPool();
  sim = await buildMesSimulator({ pool, schema, apiKey: API_KEY, seedDemo: true });
  await sim.listen({ port: 0, host: '127.0.0.1' });
  simUrl = `http://127.0.0.1:${(sim.server.address() as AddressInfo).port}`;
  mes = await connect(
    { kind: 'holdfast-mes-rest', baseUrl: simUrl, apiKey: '${env:MES_TEST_API_KEY}' },
    {
      MES_TEST_API_KEY: API_KEY,
    },
  );
});

afterEach(async () => {
  await sim_('DELETE', '/__faults');
});

afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  await sim?.close();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

describe('MES REST connector: reads', () => {
  it('passes its health check and maps a lot to MesLot', async () => {
    await expect(mes.healthCheck()).resolves.toBeUndefined();

    const inHouse = await mes.port.getLot('L-0001');
    const bought = await mes.port.getLot('L-0002');

    expect(mes.port.system).toBe('mes-test');
    expect(inHouse).toEqual({
      lotId: 'L-0001',
      sku: 'BRKT-200',
      workOrder: '1000100',
      quantity: 500,
      unit: 'PC',
      status: 'RELEASED',
      erpPlant: '1010',
      storageLocation: '0001',
      batch: 'B0001',
    });
    expect(bought.supplier).toBe('17300001');
  });
});

describe('MES REST connector: exactly-once creates', () => {
  it('holdLot with the same idempotency key returns the first hold instead of making a second', async () => {
    const { lotId, workOrder } = await newLot();
    const before = await counts();

    const first = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-a:hold'));
    const again = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-a:hold'));

    expect(again).toEqual(first);
    expect((await counts()).holds - before.holds).toBe(1);
    expect((await mes.port.getLot(lotId)).status).toBe('ON_HOLD');
  });

  it('holdLot: a dropped response is transient, and the retry finds the committed hold (exactly one)', async () => {
    const { lotId, workOrder } = await newLot();
    const before = await counts();
    await faults({ dropResponse: { remaining: 1, pathContains: '/holds' } });

    const lost = await externalError(mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-b:hold')));
    const retried = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-b:hold'));

    expect(lost.kind).toBe('transient');
    expect(lost.message).toContain('holdLot');
    const stored = await sim_<{ items: Hold[] }>('GET', '/api/v1/holds?externalReference=evt-b:hold');
    expect(stored.items.map((h) => h.holdId)).toEqual([retried.holdId]);
    expect((await counts()).holds - before.holds).toBe(1);
  });

  it('holdLot refuses an idempotency key already used for another lot', async () => {
    const a = await newLot();
    const b = await newLot();
    await mes.port.holdLot(holdRequest(a.lotId, a.workOrder, 'evt-reuse:hold'));

    const err = await externalError(mes.port.holdLot(holdRequest(b.lotId, b.workOrder, 'evt-reuse:hold')));

    expect(err.kind).toBe('validation');
    expect(err.message).toContain('evt-reuse:hold');
  });

  it('recordQualityEvent returns the order quality and is not applied twice for one key', async () => {
    const { lotId, workOrder } = await newLot();
    const before = await counts();
    const req = {
      idempotencyKey: 'evt-c:quality',
      workOrder,
      lotId,
      partId: 'P-100',
      defectClass: 'porosity',
      nonconformingQuantity: 1,
    };

    const first = await mes.port.recordQualityEvent(req);
    const again = await mes.port.recordQualityEvent(req);

    expect(first).toEqual({
      qualityEventId: expect.stringMatching(/^QE-/),
      workOrder,
      qualityStatus: 'NONCONFORMING',
      nonconformingQuantity: 1,
      goodQuantity: 0,
    });
    expect(again).toEqual(first);
    expect((await counts()).qualityEvents - before.qualityEvents).toBe(1);
  });

  it('recordQualityEvent: a dropped response is transient, and the retry finds the committed event (exactly one)', async () => {
    const { lotId, workOrder } = await newLot();
    const before = await counts();
    const req = {
      idempotencyKey: 'evt-d:quality',
      workOrder,
      lotId,
      partId: 'P-200',
      defectClass: 'crack',
      nonconformingQuantity: 2,
    };
    await faults({ dropResponse: { remaining: 1, pathContains: '/quality-events' } });

    const lost = await externalError(mes.port.recordQualityEvent(req));
    const retried = await mes.port.recordQualityEvent(req);

    expect(lost.kind).toBe('transient');
    const stored = await sim_<{ items: QualityEvent[] }>(
      'GET',
      `/api/v1/work-orders/${workOrder}/quality-events?externalReference=evt-d:quality`,
    );
    expect(stored.items.map((e) => e.qualityEventId)).toEqual([retried.qualityEventId]);
    expect(retried.nonconformingQuantity).toBe(2);
    expect((await counts()).qualityEvents - before.qualityEvents).toBe(1);
  });

  it('releaseHold sets the lot status, answers a repeat from the hold state and refuses another disposition', async () => {
    const { lotId, workOrder } = await newLot();
    const { holdId } = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-e:hold'));
    const release = { idempotencyKey: 'evt-e:release', holdId, lotId, comment: 'MRB: rework' };
    await faults({ dropResponse: { remaining: 1, pathContains: '/release' } });

    const lost = await externalError(mes.port.releaseHold({ ...release, disposition: 'rework' }));
    const retried = await mes.port.releaseHold({ ...release, disposition: 'rework' });
    const changed = await externalError(mes.port.releaseHold({ ...release, disposition: 'scrap' }));

    expect(lost.kind).toBe('transient');
    expect(retried).toEqual({ lotStatus: 'REWORK' });
    expect(changed.kind).toBe('rejected');
    expect((await mes.port.getLot(lotId)).status).toBe('REWORK');
  });

  it('releaseHold with scrap scraps the lot', async () => {
    const { lotId, workOrder } = await newLot();
    const { holdId } = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-f:hold'));

    const result = await mes.port.releaseHold({
      idempotencyKey: 'evt-f:release',
      holdId,
      lotId,
      disposition: 'scrap',
      comment: 'MRB: scrap',
    });

    expect(result).toEqual({ lotStatus: 'SCRAPPED' });
  });
});

describe('MES REST connector: error classification', () => {
  it('an outage is transient and names the system, operation and status', async () => {
    await faults({ outageUntil: new Date(Date.now() + 60_000).toISOString() });

    const err = await externalError(mes.port.getLot('L-0001'));
    const health = await externalError(mes.healthCheck());

    expect(err).toMatchObject({ kind: 'transient', httpStatus: 503, system: 'mes-test' });
    expect(err.message).toMatch(/mes-test getLot: HTTP 503/);
    expect(health.kind).toBe('transient');
  });

  it('a refused connection and a timeout are transient', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer();
      probe.listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const nowhere = await connect({ baseUrl: `http://127.0.0.1:${closedPort}` });
    const impatient = await connect({ baseUrl: simUrl, apiKey: API_KEY, timeoutMs: 200 });
    await faults({ latencyMs: 1000 });

    const refused = await externalError(nowhere.port.getLot('L-0001'));
    const timedOut = await externalError(impatient.port.getLot('L-0001'));

    expect(refused.kind).toBe('transient');
    expect(refused.message).toContain('ECONNREFUSED');
    expect(timedOut.kind).toBe('transient');
    expect(timedOut.message).toContain('no response within 200 ms');
  });

  it('409 LOT_CLOSED is rejected, with the MES code in the message', async () => {
    const { lotId, workOrder } = await newLot();
    const { holdId } = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-g:hold'));
    await mes.port.releaseHold({ idempotencyKey: 'evt-g:rel', holdId, lotId, disposition: 'scrap', comment: '' });

    const err = await externalError(mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-g2:hold')));

    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 409 });
    expect(err.message).toMatch(/mes-test holdLot: HTTP 409 LOT_CLOSED/);
  });

  it('404 is not-found', async () => {
    const lot = await externalError(mes.port.getLot('NO-SUCH-LOT'));
    const hold = await externalError(mes.port.holdLot(holdRequest('NO-SUCH-LOT', '1000100', 'evt-h:hold')));

    expect(lot).toMatchObject({ kind: 'not-found', httpStatus: 404 });
    expect(lot.message).toContain('NOT_FOUND');
    expect(hold.kind).toBe('not-found');
  });

  it('422 from the MES is validation', async () => {
    const err = await externalError(
      mes.port.recordQualityEvent({
        idempotencyKey: 'evt-i:quality',
        workOrder: '1000100',
        lotId: 'L-0009',
        partId: 'P-1',
        defectClass: 'crack',
        nonconformingQuantity: 1,
      }),
    );

    expect(err).toMatchObject({ kind: 'validation', httpStatus: 422 });
    expect(err.message).toContain('LOT_NOT_IN_WORK_ORDER');
  });

  it('a wrong API key is rejected, a missing env variable fails at connect', async () => {
    const wrongKey = await connect({ baseUrl: simUrl, apiKey: 'not-the-key' });

    const err = await externalError(wrongKey.port.getLot('L-0001'));

    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 401 });
    expect(err.message).toContain('UNAUTHORIZED');
    await expect(connect({ baseUrl: simUrl, apiKey: '${env:MES_KEY_THAT_IS_NOT_SET}' }, {})).rejects.toThrow(
      /connectors\.mes-test\.apiKey: environment variable MES_KEY_THAT_IS_NOT_SET is not set/,
    );
  });

  it('fails every call after close()', async () => {
    const closing = await connect({ baseUrl: simUrl, apiKey: API_KEY });
    await closing.port.getLot('L-0001');

    await closing.close();
    const err = await externalError(closing.port.getLot('L-0001'));

    expect(err.kind).toBe('transient');
    expect(err.message).toContain('closed');
  });
});

describe('MES REST connector: malformed responses', () => {
  let server: Server;
  let bogus: ConnectorInstance<MesPort>;
  const answers = new Map<string, string>([
    ['/api/v1/lots/NOT-JSON', '{"lotId": "NOT-JSON", '],
    ['/api/v1/lots/WRONG-SHAPE', JSON.stringify({ lotId: 'WRONG-SHAPE', quantity: 'many' })],
    ['/api/v1/holds', JSON.stringify({ holds: [] })],
  ]);

  beforeAll(async () => {
    server = createServer((req, res) => {
      const body = answers.get((req.url ?? '').split('?')[0] ?? '');
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
      res.end(body ?? '');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    bogus = await connect({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('a 200 whose body is not JSON is validation', async () => {
    const err = await externalError(bogus.port.getLot('NOT-JSON'));

    expect(err).toMatchObject({ kind: 'validation', httpStatus: 200 });
    expect(err.message).toMatch(/mes-test getLot: malformed response .*not JSON/);
  });

  it('a 200 JSON body of the wrong shape is validation naming the fields', async () => {
    const lot = await externalError(bogus.port.getLot('WRONG-SHAPE'));
    const holds = await externalError(bogus.port.holdLot(holdRequest('L-1', '1000100', 'evt-j:hold')));

    expect(lot.kind).toBe('validation');
    expect(lot.message).toContain('quantity');
    expect(holds.kind).toBe('validation');
    expect(holds.message).toContain('items');
  });
});

describe('MES REST connector: configuration', () => {
  it('defaults timeoutMs and refuses unknown keys and non-HTTP URLs', () => {
    expect(MesRestConfig.parse({ baseUrl: 'http://127.0.0.1:4010' })).toEqual({
      baseUrl: 'http://127.0.0.1:4010',
      timeoutMs: 5000,
    });
    expect(MesRestConfig.safeParse({ baseUrl: 'http://127.0.0.1:4010', user: 'x' }).success).toBe(false);
    expect(MesRestConfig.safeParse({ baseUrl: 'ftp://127.0.0.1' }).success).toBe(false);
    expect(MesRestConfig.safeParse({ baseUrl: 'http://127.0.0.1', kind: 'sap-s4-odata' }).success).toBe(false);
    expect(mesRestConnector).toMatchObject({ kind: 'holdfast-mes-rest', role: 'mes' });
  });
});
