import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { MesPort } from '../../activities/ports';
import type { ConnectorContext, ConnectorInstance } from '../../infra/connectors/define';
import { externalError } from '../contract/contract-support';
import mesRestConnector, { MesRestConfig } from '../../infra/connectors/mes-rest/mes-rest.connector';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { quietLog } from '../support/quiet-log';
import { testPool } from '../support/test-env';

// The connector against the reference MES over real HTTP, with the simulator's fault injection in between.
const schema = `mes_conn_test_${randomBytes(5).toString('hex')}`;
const API_KEY = 'connector-test-key';
let pool: Pool;
let sim: FastifyInstance;
let simUrl: string;
let mes: ConnectorInstance<MesPort>;
const opened: ConnectorInstance<MesPort>[] = [];

const ctx = (env: NodeJS.ProcessEnv = {}): ConnectorContext => ({
  name: 'mes-test',
  env,
  log: quietLog(),
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

// What every MES connector must do (idempotency look-up, exactly one document when a response is lost, the error
// kinds, health, close) is the contract's: test/contract/mes-rest.contract.test.ts. Here: what is this connector's.

describe('MES REST connector: mapping', () => {
  it('maps a lot to MesLot, with a supplier and its purchase order only for a bought lot', async () => {
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
    expect(bought).toMatchObject({ supplier: '17300001', purchaseOrder: '4500000101', purchaseOrderItem: '00010' });
  });

  it("returns the work order's quality with a quality event, and each disposition's lot status", async () => {
    const { lotId, workOrder } = await newLot();
    const other = await newLot();

    const quality = await mes.port.recordQualityEvent({
      idempotencyKey: 'evt-c:quality',
      workOrder,
      lotId,
      partId: 'P-100',
      defectClass: 'porosity',
      nonconformingQuantity: 1,
    });
    const { holdId } = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-e:hold'));
    const held = await mes.port.getLot(lotId);
    const rework = await mes.port.releaseHold({
      idempotencyKey: 'evt-e:release',
      holdId,
      lotId,
      disposition: 'rework',
      comment: 'MRB: rework',
    });
    const scrap = await mes.port.releaseHold({
      idempotencyKey: 'evt-f:release',
      holdId: (await mes.port.holdLot(holdRequest(other.lotId, other.workOrder, 'evt-f:hold'))).holdId,
      lotId: other.lotId,
      disposition: 'scrap',
      comment: 'MRB: scrap',
    });

    expect(quality).toEqual({
      qualityEventId: expect.stringMatching(/^QE-/),
      workOrder,
      qualityStatus: 'NONCONFORMING',
      nonconformingQuantity: 1,
      goodQuantity: 0,
    });
    expect(held.status).toBe('ON_HOLD');
    expect([rework, scrap]).toEqual([{ lotStatus: 'REWORK' }, { lotStatus: 'SCRAPPED' }]);
  });
});

describe('MES REST connector: errors', () => {
  it('messages name the system, the operation, the HTTP status and the MES code', async () => {
    const { lotId, workOrder } = await newLot();
    const { holdId } = await mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-g:hold'));
    await mes.port.releaseHold({ idempotencyKey: 'evt-g:rel', holdId, lotId, disposition: 'scrap', comment: '' });

    const closed = await externalError(mes.port.holdLot(holdRequest(lotId, workOrder, 'evt-g2:hold')));
    const missing = await externalError(mes.port.getLot('NO-SUCH-LOT'));
    const mismatch = await externalError(
      mes.port.recordQualityEvent({
        idempotencyKey: 'evt-i:quality',
        workOrder: '1000100',
        lotId: 'L-0009',
        partId: 'P-1',
        defectClass: 'crack',
        nonconformingQuantity: 1,
      }),
    );
    await faults({ outageUntil: new Date(Date.now() + 60_000).toISOString() });
    const outage = await externalError(mes.port.getLot('L-0001'));

    expect(closed).toMatchObject({ kind: 'rejected', httpStatus: 409, system: 'mes-test' });
    expect(closed.message).toMatch(/mes-test holdLot: HTTP 409 LOT_CLOSED/);
    expect(missing).toMatchObject({ kind: 'not-found', httpStatus: 404 });
    expect(missing.message).toContain('NOT_FOUND');
    expect(mismatch).toMatchObject({ kind: 'validation', httpStatus: 422 });
    expect(mismatch.message).toContain('LOT_NOT_IN_WORK_ORDER');
    expect(outage).toMatchObject({ kind: 'transient', httpStatus: 503 });
    expect(outage.message).toMatch(/mes-test getLot: HTTP 503/);
  });

  it('a refused connection and a timeout are transient, naming the cause', async () => {
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

  it('a wrong API key is rejected, a missing env variable fails at connect', async () => {
    const wrongKey = await connect({ baseUrl: simUrl, apiKey: 'not-the-key' });

    const err = await externalError(wrongKey.port.getLot('L-0001'));

    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 401 });
    expect(err.message).toContain('UNAUTHORIZED');
    await expect(connect({ baseUrl: simUrl, apiKey: '${env:MES_KEY_THAT_IS_NOT_SET}' }, {})).rejects.toThrow(
      /connectors\.mes-test\.apiKey: environment variable MES_KEY_THAT_IS_NOT_SET is not set/,
    );
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
