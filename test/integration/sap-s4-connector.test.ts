import { randomBytes, randomUUID } from 'node:crypto';
import http, { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import type { ErpGoodsMovementRequest, ErpPort, ErpQualityNotificationRequest } from '../../activities/ports';
import type { ConnectorContext, ConnectorInstance } from '../../infra/connectors/define';
import { ApplicationFailure } from '@temporalio/common';
import { classify } from '../../activities/boundary';
import { ExternalSystemError } from '../../activities/errors';
import { SapHttpSession, SapODataClient } from '../../infra/connectors/sap-s4/client';
import { MaterialDocumentRecord } from '../../infra/connectors/sap-s4/sap-s4.schemas';
import { ErrorType } from '../../workflows/contracts';
import sapS4Connector, { SapS4Config } from '../../infra/connectors/sap-s4/sap-s4.connector';
import { idempotencyToken } from '../../infra/connectors/sap-s4/idempotency-token';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import {
  MATERIAL_DOCUMENT_SERVICE,
  QUALITY_NOTIFICATION_SERVICE,
  SAP_SERVICES,
} from '../../infra/vendor-apis/sap-s4/metadata';
import { watchHttpRequests } from '../contract/contract-support';
import { quietLog } from '../support/quiet-log';
import { sapRequestViolations, type RecordedSapRequest } from '../support/sap-metadata-check';
import { testPool } from '../support/test-env';

// The sap-s4-odata connector against the SAP simulator over real HTTP (state in a schema of its own).
const schema = `sap_conn_test_${randomBytes(5).toString('hex')}`;
const credentials = { username: 'HOLDFAST_COMM', password: `pw-${randomBytes(8).toString('hex')}` };
const env = { SAP_TEST_USER: credentials.username, SAP_TEST_PASSWORD: credentials.password };

let pool: Pool;
let sim: FastifyInstance;
let simUrl: string;
const opened: ConnectorInstance<ErpPort>[] = [];

async function connect(
  overrides: Record<string, unknown> = {},
  name = 'sap-test',
): Promise<ConnectorInstance<ErpPort>> {
  const config = SapS4Config.parse({
    kind: 'sap-s4-odata',
    baseUrl: simUrl,
    sapClient: '100',
    username: '${env:SAP_TEST_USER}',
    password: '${env:SAP_TEST_PASSWORD}',
    ...overrides,
  });
  const ctx: ConnectorContext = { name, env, log: quietLog(), dataDir: '/tmp' };
  const instance = await sapS4Connector.connect(config, ctx);
  opened.push(instance);
  return instance;
}

async function admin(method: string, path: string, body?: unknown) {
  const res = await fetch(simUrl + path, {
    method,
    ...(body !== undefined ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
  });
  expect(res.status).toBeLessThan(300);
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as Record<string, unknown>;
}

/** Arms "commit, then drop the response" for the next POST whose URL contains `pathContains`. */
const dropNextResponse = (pathContains: string) =>
  admin('PUT', '/__faults', { dropResponse: { remaining: 1, pathContains } });

async function rejection(promise: Promise<unknown>): Promise<ExternalSystemError> {
  const err = await promise.then(
    () => {
      throw new Error('expected the call to be refused');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ExternalSystemError);
  return err as ExternalSystemError;
}

/** The quality-notification service (OData V4) at its path from metadata.ts. */
const QN_ROOT = SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.path;
const AUTH = () => `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;

/** Reads a resource from the simulator past the connector (V2 answers come in `d`, V4 ones bare). */
async function readSim<T>(path: string): Promise<T> {
  const res = await fetch(`${simUrl}${path}`, { headers: { authorization: AUTH() } });
  expect(res.status).toBe(200);
  return (await res.json()) as T;
}

interface NotificationReadBack {
  NotifProcessingPhase: string;
  NotificationCompletionDate: string | null;
  _QualityNotificationItem?: {
    NotificationItemText: string;
    InternalDefectiveQuantity: number;
    DefectiveQuantityUnit: string;
  }[];
}

const readNotification = (notification: string) =>
  readSim<NotificationReadBack>(`${QN_ROOT}/QualityNotification('${notification}')?$expand=_QualityNotificationItem`);

let recording = false;
const recorded: RecordedSapRequest[] = [];

let batchSeq = 0;
/** A batch of its own; with `receipt`, bought on that purchase order item. */
async function newBatch(quantity = 100, receipt?: typeof RECEIPT) {
  batchSeq++;
  const b = {
    material: `C-MAT-${batchSeq}`,
    plant: '1010',
    storageLocation: '0001',
    batch: `CB${batchSeq}`,
    unit: 'PC',
  };
  await admin('POST', '/__sim/stock', { ...b, quantity, ...(receipt ? { receipt } : {}) });
  return b;
}

const RECEIPT = { purchaseOrder: '4500000888', purchaseOrderItem: '00010', supplier: '17300001' };

/** A return to the vendor of a bought batch, with the purchase order item it was received on. */
const returnRequest = (b: Awaited<ReturnType<typeof newBatch>>, quantity: number): ErpGoodsMovementRequest => ({
  ...movementRequest(b, '122', quantity),
  supplier: RECEIPT.supplier,
  purchaseOrder: RECEIPT.purchaseOrder,
  purchaseOrderItem: RECEIPT.purchaseOrderItem,
});

/** A material document as SAP has it, read by key with its items. */
async function readDocument(doc: { materialDocument: string; materialDocumentYear: string }) {
  const key = `MaterialDocumentYear='${doc.materialDocumentYear}',MaterialDocument='${doc.materialDocument}'`;
  const res = await fetch(
    `${simUrl}/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader(${key})?$expand=to_MaterialDocumentItem`,
    { headers: { authorization: AUTH() } },
  );
  expect(res.status).toBe(200);
  const body = (await res.json()) as {
    d: { GoodsMovementCode: string; to_MaterialDocumentItem: { results: Record<string, string>[] } };
  };
  return body.d;
}

async function stockOf(b: { material: string; batch: string }): Promise<Record<string, string>> {
  const filter = encodeURIComponent(`Material eq '${b.material}' and Batch eq '${b.batch}'`);
  const res = await fetch(`${simUrl}/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod?$filter=${filter}`, {
    headers: { authorization: AUTH() },
  });
  const body = (await res.json()) as {
    d: { results: { InventoryStockType: string; MatlWrhsStkQtyInMatlBaseUnit: string }[] };
  };
  return Object.fromEntries(body.d.results.map((r) => [r.InventoryStockType, r.MatlWrhsStkQtyInMatlBaseUnit]));
}

function notificationRequest(b: { material: string; plant: string; batch: string }): ErpQualityNotificationRequest {
  const eventId = randomUUID();
  return {
    idempotencyKey: `lot-case:${eventId}:notification`,
    notificationType: 'F3',
    text: 'Vision reject: scratch on flange',
    material: b.material,
    plant: b.plant,
    batch: b.batch,
    quantity: 1,
    unit: 'PC',
    firstItem: {
      idempotencyKey: `defect:${eventId}:item`,
      defectCodeGroup: 'VISUAL',
      defectCode: '0001',
      text: 'scratch, station S1, score 0.97',
    },
  };
}

function movementRequest(
  b: { material: string; plant: string; storageLocation: string; batch: string },
  movementType: ErpGoodsMovementRequest['movementType'],
  quantity: number,
): ErpGoodsMovementRequest {
  return {
    idempotencyKey: `defect:${randomUUID()}:block`,
    movementType,
    material: b.material,
    plant: b.plant,
    storageLocation: b.storageLocation,
    batch: b.batch,
    quantity,
    unit: 'PC',
    headerText: 'Holdfast vision reject',
  };
}

beforeAll(async () => {
  pool = testPool();
  sim = await buildSapS4Simulator({ pool, schema, credentials });
  // What reaches SAP's paths while `recording` is on, for the metadata test.
  sim.addHook('preHandler', async (req) => {
    if (recording && req.url.startsWith('/sap/')) recorded.push({ method: req.method, url: req.url, body: req.body });
  });
  await sim.listen({ port: 0, host: '127.0.0.1' });
  simUrl = `http://127.0.0.1:${(sim.server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  await admin('DELETE', '/__faults');
  jest.restoreAllMocks();
});

afterAll(async () => {
  await Promise.allSettled(opened.map((c) => c.close()));
  await sim?.close();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

describe('configuration', () => {
  it('validates the temporal.yaml block and resolves ${env:NAME} credentials, naming a missing variable', async () => {
    expect(SapS4Config.safeParse({ baseUrl: simUrl, sapClient: '100', username: 'u', password: 'p' }).success).toBe(
      true,
    );
    expect(SapS4Config.safeParse({ baseUrl: simUrl, sapClient: '1', username: 'u', password: 'p' }).success).toBe(
      false,
    );
    expect(
      SapS4Config.safeParse({ baseUrl: 'http://u:p@127.0.0.1', sapClient: '100', username: 'u', password: 'p' })
        .success,
    ).toBe(false);
    expect(
      SapS4Config.safeParse({ baseUrl: simUrl, sapClient: '100', username: 'u', password: 'p', extra: 1 }).success,
    ).toBe(false);
    const config = SapS4Config.parse({
      baseUrl: simUrl,
      sapClient: '100',
      username: '${env:NOPE_USER}',
      password: 'p',
    });
    await expect(
      sapS4Connector.connect(config, { name: 'sap-x', env: {}, log: quietLog(), dataDir: '/tmp' }),
    ).rejects.toThrow('connectors.sap-x.username: environment variable NOPE_USER is not set');
  });

  it('reports wrong credentials as rejected without leaking them', async () => {
    const wrong = await connect({ password: 'definitely-wrong-password' });
    const err = await rejection(wrong.healthCheck());
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 401, system: 'sap-test' });
    expect(err.message).toContain('HTTP 401');
    expect(err.message).not.toContain('definitely-wrong-password');
    expect(err.message).not.toContain(credentials.password);
  });
});

// What every ERP connector must do (idempotency look-up, exactly one document when a response is lost, the error
// kinds, health, close) is the contract's: test/contract/sap-s4.contract.test.ts. Here: what is this connector's.

describe('SAP specifics', () => {
  it('a create whose response was dropped fails as a network error naming the operation', async () => {
    const sap = (await connect()).port;
    await dropNextResponse('/QualityNotification');

    const err = await rejection(sap.raiseQualityNotification(notificationRequest(await newBatch())));

    expect(err.kind).toBe('transient');
    expect(err.message).toMatch(/raiseQualityNotification: network error/);
  });

  it('posts each movement type with its code: 343 and 344 04, 555 03, 122 01 with the purchase order', async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100, RECEIPT);
    const block = await sap.postGoodsMovement(movementRequest(b, '344', 20));
    const release = await sap.postGoodsMovement(movementRequest(b, '343', 5));
    const scrap = await sap.postGoodsMovement(movementRequest(b, '555', 5));
    const before = await admin('GET', '/__sim/counts');
    const returned = await sap.postGoodsMovement({ ...returnRequest(b, 10), purchaseOrderItem: '10' });
    expect((await admin('GET', '/__sim/counts')).materialDocuments).toBe(Number(before.materialDocuments) + 1);
    expect(await stockOf(b)).toEqual({ '01': '85.000' });
    const codes = await Promise.all(
      [block, release, scrap, returned].map(async (d) => (await readDocument(d)).GoodsMovementCode),
    );
    expect(codes).toEqual(['04', '04', '03', '01']);
    expect((await readDocument(returned)).to_MaterialDocumentItem.results).toEqual([
      expect.objectContaining({
        GoodsMovementType: '122',
        GoodsMovementRefDocType: 'B',
        PurchaseOrder: RECEIPT.purchaseOrder,
        PurchaseOrderItem: '00010',
        Supplier: RECEIPT.supplier,
        InventoryStockType: '07',
      }),
    ]);
  });

  it("reads a batch's unrestricted stock, none once it is all blocked, nothing for a batch SAP does not have", async () => {
    const sap = (await connect()).port;
    const b = await newBatch(30);
    expect(await sap.unrestrictedStock(b)).toEqual([{ storageLocation: '0001', quantity: 30, unit: 'PC' }]);
    await sap.postGoodsMovement(movementRequest(b, '344', 12));
    expect(await sap.unrestrictedStock(b)).toEqual([{ storageLocation: '0001', quantity: 18, unit: 'PC' }]);
    await sap.postGoodsMovement(movementRequest(b, '344', 18));
    expect(await sap.unrestrictedStock(b)).toEqual([]);
    expect(await sap.unrestrictedStock({ ...b, batch: 'NOSUCH' })).toEqual([]);
  });

  it('refuses a 122 without a purchase order as validation, naming the batch, before any HTTP call', async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100, RECEIPT);
    const requestSpy = jest.spyOn(http, 'request');
    const { purchaseOrder: _dropped, ...withoutOrder } = returnRequest(b, 1);
    const err = await rejection(sap.postGoodsMovement(withoutOrder));
    expect(err.kind).toBe('validation');
    expect(err.message).toContain(`batch ${b.batch} of material ${b.material} has no purchase order`);
    expect(requestSpy).not.toHaveBeenCalled();
  });

  it('returns the right document when SAP answers the create without its items', async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100);
    await admin('POST', '/__sim/material-documents/answer-without-items', { count: 1 });
    const before = await admin('GET', '/__sim/counts');
    const doc = await sap.postGoodsMovement(movementRequest(b, '344', 3));
    expect((await admin('GET', '/__sim/counts')).materialDocuments).toBe(Number(before.materialDocuments) + 1);
    expect((await readDocument(doc)).to_MaterialDocumentItem.results).toEqual([
      expect.objectContaining({
        Material: b.material,
        Batch: b.batch,
        GoodsMovementType: '344',
        QuantityInEntryUnit: '3.000',
      }),
    ]);
    expect(await stockOf(b)).toEqual({ '01': '97.000', '07': '3.000' });
  });

  it('writes the token where a look-up finds it: item text end, header text; the quantity on the item', async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100);
    const req = notificationRequest(b);
    const raised = await sap.raiseQualityNotification(req);
    const { notification } = raised;
    const second = await sap.addNotificationItem(notification, {
      idempotencyKey: `defect:${randomUUID()}:item`,
      defectCodeGroup: 'VISUAL',
      defectCode: '0002',
      text: 'dent',
    });
    const doc = await sap.postGoodsMovement(movementRequest(b, '344', 1));
    // SAP's numbering, as the simulator hands it out: notifications 2xxxxxxxx, items 0001 up, documents 49xxxxxxxx.
    expect(raised).toEqual({ notification: expect.stringMatching(/^2\d{8}$/), item: '0001' });
    expect(second).toEqual({ item: '0002' });
    expect(doc).toEqual({
      materialDocument: expect.stringMatching(/^49\d{8}$/),
      materialDocumentYear: String(new Date().getUTCFullYear()),
    });
    const n = await readNotification(notification);
    const first = n._QualityNotificationItem![0]!;
    expect(first.NotificationItemText).toMatch(new RegExp(` ${idempotencyToken(req.firstItem.idempotencyKey)}$`));
    expect(first.NotificationItemText.length).toBeLessThanOrEqual(40);
    expect(first).toMatchObject({ InternalDefectiveQuantity: 1, DefectiveQuantityUnit: 'PC' });
    const h = await readSim<{ d: { MaterialDocumentHeaderText: string } }>(
      `/sap/opu/odata/sap/API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader(MaterialDocumentYear='${doc.materialDocumentYear}',MaterialDocument='${doc.materialDocument}')`,
    );
    expect(h.d.MaterialDocumentHeaderText).toMatch(/^HF[A-Z2-7]{14}$/);
  });

  it("finds a notification by its first item among the batch's others, and sends the purchase order when given", async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100);
    const other = await sap.raiseQualityNotification(notificationRequest(b), { lookupFirst: false });
    const req = { ...notificationRequest(b), purchaseOrder: '4500000017', purchaseOrderItem: '00010' };
    const first = await sap.raiseQualityNotification(req, { lookupFirst: false });
    const again = await sap.raiseQualityNotification(req, { lookupFirst: true });
    expect(again).toEqual(first);
    expect(first.notification).not.toBe(other.notification);
    const n = await readSim<Record<string, string>>(`${QN_ROOT}/QualityNotification('${first.notification}')`);
    expect(n).toMatchObject({ PurchasingDocument: '4500000017', PurchasingDocumentItem: '00010' });
  });

  it('reads the items back when SAP answers a create without them, and still returns the right item', async () => {
    const sap = (await connect()).port;
    const b = await newBatch(100);
    await admin('POST', '/__sim/quality-notifications/omit-items-on-next-create');
    const watch = watchHttpRequests(Number(new URL(simUrl).port));
    try {
      const raised = await sap.raiseQualityNotification(notificationRequest(b), { lookupFirst: false });
      expect(raised).toEqual({ notification: expect.stringMatching(/^2\d{8}$/), item: '0001' });
      // The CSRF fetch of a fresh connector aside: the create, then its items read back.
      expect(watch.take().filter((r) => !r.startsWith('HEAD '))).toEqual([
        `POST ${QN_ROOT}/QualityNotification`,
        `GET ${QN_ROOT}/QualityNotification('${raised.notification}')/_QualityNotificationItem`,
      ]);
    } finally {
      watch.stop();
    }
  });
});

describe('ETags (OData V4)', () => {
  it('completes a notification changed behind its back (412): reads again and completes it exactly once', async () => {
    const sap = (await connect()).port;
    const { notification } = await sap.raiseQualityNotification(notificationRequest(await newBatch()));
    const path = `${QN_ROOT}/QualityNotification('${notification}')`;
    await admin('POST', `/__sim/quality-notifications/${notification}/change`, { when: 'after-next-read' });
    const watch = watchHttpRequests(Number(new URL(simUrl).port));
    try {
      await sap.completeNotification(notification);
      const complete = `POST ${path}/com.sap.gateway.srvd_a2x.api_qualitynotification.v0001.Complete`;
      // Read, Complete refused as stale (412), read again, Complete.
      expect(watch.take()).toEqual([`GET ${path}`, complete, `GET ${path}`, complete]);
      expect(await readNotification(notification)).toMatchObject({
        NotifProcessingPhase: '4',
        NotificationCompletionDate: expect.any(String),
      });
      // Completed: the next call reads and sends nothing.
      await sap.completeNotification(notification);
      expect(watch.take()).toEqual([`GET ${path}`]);
    } finally {
      watch.stop();
    }
  });

  it('refuses to add an item to a completed notification as rejected', async () => {
    const sap = (await connect()).port;
    const { notification } = await sap.raiseQualityNotification(notificationRequest(await newBatch()));
    await sap.completeNotification(notification);
    const item = {
      idempotencyKey: `defect:${randomUUID()}:item`,
      defectCodeGroup: 'VISUAL',
      defectCode: '1',
      text: 'x',
    };
    const err = await rejection(sap.addNotificationItem(notification, item));
    expect(err).toMatchObject({ kind: 'rejected', httpStatus: 400 });
    expect(err.message).toContain('ZHFS_SIM/010');
  });
});

describe('CSRF handling', () => {
  it('fetches the token for the health check on the quality-notification service (OData V4)', async () => {
    const instance = await connect({}, 'sap-health');
    const watch = watchHttpRequests(Number(new URL(simUrl).port));
    try {
      await instance.healthCheck();
      expect(watch.take()).toEqual([`HEAD ${QN_ROOT}/`]);
    } finally {
      watch.stop();
    }
  });

  it('re-fetches the token once after the session expired, and the write goes through', async () => {
    const sap = (await connect({}, 'sap-csrf')).port;
    const b = await newBatch(100);
    await sap.postGoodsMovement(movementRequest(b, '344', 1));
    await admin('POST', '/__sim/expire-sessions');

    const requestSpy = jest.spyOn(http, 'request');
    await sap.postGoodsMovement(movementRequest(b, '344', 1));
    const calls = requestSpy.mock.calls.map((args) => {
      const options = args[1];
      return {
        method: options.method ?? 'GET',
        csrf: (options.headers as Record<string, string> | undefined)?.['x-csrf-token'],
      };
    });
    expect(calls.filter((c) => c.csrf === 'Fetch')).toHaveLength(1);
    expect(calls.filter((c) => c.method === 'POST')).toHaveLength(2);
    expect(await stockOf(b)).toEqual({ '01': '98.000', '07': '2.000' });
  });
});

describe('error classification', () => {
  it('names the HTTP status of an outage, and reports a refused connection as transient', async () => {
    const sap = (await connect()).port;
    const b = await newBatch();
    await admin('PUT', '/__faults', {
      outageUntil: new Date(Date.now() + 60_000).toISOString(),
      pathContains: '/sap/opu',
    });
    const outage = await rejection(sap.postGoodsMovement(movementRequest(b, '344', 1)));
    expect(outage).toMatchObject({ kind: 'transient', httpStatus: 503, system: 'sap-test' });
    expect(outage.message).toContain('HTTP 503');

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const nowhere = (await connect({ baseUrl: `http://127.0.0.1:${port}` })).port;
    const refused = await rejection(nowhere.postGoodsMovement(movementRequest(b, '344', 1)));
    expect(refused.kind).toBe('transient');
    expect(refused.message).toContain('ECONNREFUSED');
  });

  it('reports a response slower than timeoutMs as transient', async () => {
    const sap = (await connect({ timeoutMs: 150 })).port;
    await admin('PUT', '/__faults', { latencyMs: 600, pathContains: '/sap/opu' });
    const err = await rejection(sap.postGoodsMovement(movementRequest(await newBatch(), '344', 1)));
    expect(err.kind).toBe('transient');
    expect(err.message).toContain('no response within 150 ms');
  });

  it("classifies by SAP's messages: a deficit inside errordetails rejected and not retried, M3/305 validation", async () => {
    const sap = (await connect()).port;
    const b = await newBatch(3);
    const deficit = await rejection(sap.postGoodsMovement(movementRequest(b, '344', 5)));
    const unknown = await rejection(sap.postGoodsMovement({ ...movementRequest(b, '344', 1), material: 'NO-SUCH' }));
    expect(deficit).toMatchObject({ kind: 'rejected', httpStatus: 400 });
    // The top-level message is the generic 014; the deficit was found in errordetails.
    expect(deficit.message).toContain(
      'postGoodsMovement 344: HTTP 400 M7/021: Deficit of SL Unrestricted-use 2 PC ' +
        `: ${b.material} 1010 0001 ${b.batch} (MM_IM_ODATA_API_MDOC/014: `,
    );
    const parked = classify('ERP goods movement 344', deficit);
    expect(parked).toBeInstanceOf(ApplicationFailure);
    expect(parked).toMatchObject({ type: ErrorType.BusinessRejection, nonRetryable: true });
    expect(unknown).toMatchObject({ kind: 'validation', httpStatus: 400 });
    expect(unknown.message).toContain('M3/305');
  });

  it('names only entity sets, keys, navigations, actions and properties that metadata.ts lists', async () => {
    const sap = (await connect()).port;
    recording = true;
    try {
      const b = await newBatch(50, RECEIPT);
      const raised = await sap.raiseQualityNotification(notificationRequest(b));
      await sap.raiseQualityNotification(notificationRequest(b), { lookupFirst: false });
      const item = {
        idempotencyKey: `defect:${randomUUID()}:item`,
        defectCodeGroup: 'VISUAL',
        defectCode: '0002',
        text: 'dent',
      };
      await sap.addNotificationItem(raised.notification, item);
      await sap.addNotificationItem(
        raised.notification,
        { ...item, idempotencyKey: `${item.idempotencyKey}:2` },
        { lookupFirst: false },
      );
      await sap.postGoodsMovement(movementRequest(b, '344', 10));
      await sap.postGoodsMovement(movementRequest(b, '343', 2), { lookupFirst: false });
      await sap.postGoodsMovement(movementRequest(b, '555', 3));
      await sap.postGoodsMovement(returnRequest(b, 4));
      await sap.completeNotification(raised.notification);
      await sap.completeNotification(raised.notification);
      await sap.unrestrictedStock(b);
    } finally {
      recording = false;
    }
    const used = new Set(
      recorded.map(
        (r) => `${r.method} ${new URL(r.url, simUrl).pathname.split('/').slice(-1)[0]!.replace(/\(.*$/, '')}`,
      ),
    );
    // Every kind of request the port sends was seen: look-ups, deep inserts, item creates, the action.
    expect([...used]).toEqual(
      expect.arrayContaining([
        'GET QualityNotification',
        'POST QualityNotification',
        'POST _QualityNotificationItem',
        'GET A_MaterialDocumentHeader',
        'POST A_MaterialDocumentHeader',
        `POST ${SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.namespace}.Complete`,
        'GET A_MatlStkInAcctMod',
      ]),
    );
    expect(recorded.flatMap(sapRequestViolations)).toEqual([]);
  });

  it('reports a service the system has not activated (403 /IWFND/MED/170) as rejected: not active', async () => {
    const inactive = await buildSapS4Simulator({
      pool,
      schema,
      credentials,
      inactiveServices: [MATERIAL_DOCUMENT_SERVICE],
    });
    const address = await inactive.listen({ port: 0, host: '127.0.0.1' });
    const session = new SapHttpSession({
      system: 'sap-test',
      baseUrl: address,
      sapClient: '100',
      username: credentials.username,
      password: credentials.password,
      timeoutMs: 5_000,
    });
    const client = new SapODataClient(session);
    try {
      const read = await rejection(
        client.list(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentHeader', {}, MaterialDocumentRecord, 'read'),
      );
      const write = await rejection(
        client.create(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentHeader', {}, MaterialDocumentRecord, 'post'),
      );
      for (const err of [read, write]) {
        expect(err).toMatchObject({ kind: 'rejected', httpStatus: 403 });
        expect(err.message).toContain('/IWFND/MED/170: the OData service is not active on this SAP system');
        expect(classify('ERP', err)).toMatchObject({ type: ErrorType.BusinessRejection, nonRetryable: true });
      }
      expect(read.message).toContain(`name '${MATERIAL_DOCUMENT_SERVICE}'`);
      expect(write.message).toContain('post (CSRF fetch)');
    } finally {
      session.close();
      await inactive.close();
    }
  });

  describe('against a misbehaving server', () => {
    let bad: Server;
    let badUrl: string;
    let answer: (req: IncomingMessage, res: ServerResponse) => void;

    beforeAll(async () => {
      bad = createServer((req, res) => answer(req, res));
      await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
      badUrl = `http://127.0.0.1:${(bad.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((r) => bad.close(() => r())));

    const serve = (body: string, status = 200) => {
      answer = (req, res) => {
        if (req.method === 'HEAD') {
          res.writeHead(200, { 'x-csrf-token': 'tok', 'set-cookie': 'SAP_SESSIONID_HFS_100=s; path=/' }).end();
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json' }).end(body);
      };
    };

    it('reports a body that is not JSON as validation', async () => {
      serve('{"d": {"results": [');
      const sap = (await connect({ baseUrl: badUrl })).port;
      const err = await rejection(sap.postGoodsMovement(movementRequest(await newBatch(), '344', 1)));
      expect(err).toMatchObject({ kind: 'validation', httpStatus: 200 });
      expect(err.message).toContain('malformed response');
    });

    it('reports JSON of the wrong shape as validation', async () => {
      serve(JSON.stringify({ value: [{ QualityNotification: 42 }] }));
      const sap = (await connect({ baseUrl: badUrl })).port;
      const err = await rejection(sap.raiseQualityNotification(notificationRequest(await newBatch())));
      expect(err.kind).toBe('validation');
      expect(err.message).toContain('value.0.QualityNotification');
    });

    /**
     * A notification that reads with the next of `etags` (no ETag for undefined), and a Complete answered with the
     * status `statusFor` gives its If-Match. Returns what the server saw: method and If-Match of each request.
     */
    const completeAnswered = (statusFor: (ifMatch: string | undefined) => number, etags: (string | undefined)[]) => {
      const seen: string[] = [];
      answer = (req, res) => {
        const ifMatch = req.headers['if-match'];
        seen.push(`${req.method} ${ifMatch ?? '-'}`);
        if (req.method === 'HEAD') return void res.writeHead(200, { 'x-csrf-token': 'tok' }).end();
        if (req.method === 'GET') {
          const etag = etags.shift();
          const body = { QualityNotification: '200000001', NotifProcessingPhase: '1' };
          return void res.writeHead(200).end(JSON.stringify(etag ? { '@odata.etag': etag, ...body } : body));
        }
        const status = statusFor(ifMatch);
        const error = { error: { code: 'X/1', message: `refused with ${status}` } };
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(status < 300 ? {} : error));
      };
      return seen;
    };

    it('fails transient when the ETag is stale again after a fresh read (412 twice)', async () => {
      const seen = completeAnswered(() => 412, ['W/"1"', 'W/"2"']);
      const sap = (await connect({ baseUrl: badUrl })).port;
      const err = await rejection(sap.completeNotification('200000001'));
      expect(err).toMatchObject({ kind: 'transient', httpStatus: 412 });
      expect(err.message).toContain('changed again since a fresh read');
      expect(seen).toEqual(['GET -', 'HEAD -', 'POST W/"1"', 'GET -', 'POST W/"2"']);
    });

    it('reads again after a 428 and sends the ETag that read carries', async () => {
      const seen = completeAnswered((ifMatch) => (ifMatch ? 200 : 428), [undefined, 'W/"2"']);
      const sap = (await connect({ baseUrl: badUrl })).port;
      await sap.completeNotification('200000001');
      expect(seen).toEqual(['GET -', 'HEAD -', 'POST -', 'GET -', 'POST W/"2"']);
    });

    it('fails validation on a 428 when a fresh read still carries no ETag', async () => {
      const seen = completeAnswered(() => 428, [undefined, undefined]);
      const sap = (await connect({ baseUrl: badUrl })).port;
      const err = await rejection(sap.completeNotification('200000001'));
      expect(err).toMatchObject({ kind: 'validation', httpStatus: 428 });
      expect(err.message).toContain('SAP requires If-Match');
      expect(seen).toEqual(['GET -', 'HEAD -', 'POST -', 'GET -']);
    });

    it('reports a created entity without a number as validation', async () => {
      answer = (req, res) => {
        if (req.method === 'HEAD') return void res.writeHead(200, { 'x-csrf-token': 'tok' }).end();
        if (req.method === 'GET') return void res.writeHead(200).end(JSON.stringify({ d: { results: [] } }));
        res.writeHead(201).end(JSON.stringify({ d: { MaterialDocumentYear: '2026' } }));
      };
      const sap = (await connect({ baseUrl: badUrl })).port;
      const err = await rejection(sap.postGoodsMovement(movementRequest(await newBatch(), '344', 1)));
      expect(err.kind).toBe('validation');
      expect(err.message).toContain('MaterialDocument');
    });
  });
});
