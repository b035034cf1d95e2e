import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { testPool } from '../support/test-env';

// The SAP S/4HANA simulator over real HTTP, its state in a schema of its own on the run's PostgreSQL.
const schema = `sap_sim_test_${randomBytes(5).toString('hex')}`;
const credentials = { username: 'HOLDFAST_COMM', password: `pw-${randomBytes(6).toString('hex')}` };
const AUTH = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
const QN = 'API_QUALITYNOTIFICATION';
const MD = 'API_MATERIAL_DOCUMENT_SRV';
const STOCK = 'API_MATERIAL_STOCK_SRV';

let pool: Pool;
let app: FastifyInstance;
let origin: string;

interface Session {
  token: string;
  cookie: string;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

async function listen(instance: FastifyInstance): Promise<string> {
  await instance.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(instance.server.address() as AddressInfo).port}`;
}

async function call(
  method: string,
  path: string,
  opts: {
    body?: unknown;
    session?: Session;
    headers?: Record<string, string>;
    auth?: string | null;
    base?: string;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (opts.auth !== null) headers.authorization = opts.auth ?? AUTH;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (opts.session) {
    headers['x-csrf-token'] = opts.session.token;
    headers.cookie = opts.session.cookie;
  }
  const res = await fetch(`${opts.base ?? origin}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** The records of a V2 collection (`{ results: [...] }`), typed for the assertion at hand. */
const results = <T>(collection: unknown): T[] => (collection as { results: T[] }).results;

const odata = (service: string, rest: string) => `/sap/opu/odata/sap/${service}/${rest}`;

async function fetchCsrf(
  base = origin,
  path = odata(MD, ''),
  cookie?: string,
): Promise<Session & { setCookies: string[] }> {
  const res = await fetch(`${base}${path}`, {
    method: 'HEAD',
    headers: { authorization: AUTH, 'x-csrf-token': 'Fetch', ...(cookie ? { cookie } : {}) },
  });
  expect(res.status).toBe(200);
  const token = res.headers.get('x-csrf-token');
  expect(token).toBeTruthy();
  const setCookies = res.headers.getSetCookie();
  return { token: token!, cookie: setCookies.map((c) => c.split(';')[0]).join('; '), setCookies };
}

async function counts(base = origin) {
  const res = await call('GET', '/__sim/counts', { auth: null, base });
  expect(res.status).toBe(200);
  return res.json as { notifications: number; notificationItems: number; materialDocuments: number };
}

let materialSeq = 0;
/**
 * A material and batch of its own with `quantity` unrestricted, so each test's stock assertions are independent;
 * with `receipt`, a batch bought on that purchase order item.
 */
async function newBatch(
  quantity = 100,
  receipt?: { purchaseOrder: string; purchaseOrderItem: string; supplier: string },
) {
  materialSeq++;
  const batch = {
    material: `T-MAT-${materialSeq}`,
    plant: '1010',
    storageLocation: '0001',
    batch: `TB${materialSeq}`,
    quantity,
    unit: 'PC',
  };
  const res = await call('POST', '/__sim/stock', { body: { ...batch, ...(receipt ? { receipt } : {}) }, auth: null });
  expect(res.status).toBe(204);
  return batch;
}

const RECEIPT = { purchaseOrder: '4500000777', purchaseOrderItem: '00010', supplier: '17300001' };
/** What a return to the vendor refers to: the purchase order item the batch was received on. */
const PO_REFERENCE = {
  GoodsMovementRefDocType: 'B',
  PurchaseOrder: RECEIPT.purchaseOrder,
  PurchaseOrderItem: RECEIPT.purchaseOrderItem,
  Supplier: RECEIPT.supplier,
};

type Batch = Awaited<ReturnType<typeof newBatch>>;

async function stockOf(b: Batch): Promise<Record<string, string>> {
  const filter = encodeURIComponent(`Material eq '${b.material}' and Plant eq '${b.plant}' and Batch eq '${b.batch}'`);
  const res = await call('GET', odata(STOCK, `A_MatlStkInAcctMod?$filter=${filter}`));
  expect(res.status).toBe(200);
  const rows = res.json.d.results as { InventoryStockType: string; MatlWrhsStkQtyInMatlBaseUnit: string }[];
  return Object.fromEntries(rows.map((r) => [r.InventoryStockType, r.MatlWrhsStkQtyInMatlBaseUnit]));
}

/** GoodsMovementCode per movement type: transfer postings 04, scrapping a goods issue 03, the return 01. */
const CODE: Record<string, string> = { '344': '04', '343': '04', '555': '03', '122': '01' };

function movement(b: Batch, movementType: string, quantity: string, extra: Record<string, unknown> = {}) {
  return {
    GoodsMovementCode: CODE[movementType] ?? '04',
    MaterialDocumentHeaderText: `T-${movementType}-${randomBytes(3).toString('hex')}`,
    to_MaterialDocumentItem: [
      {
        Material: b.material,
        Plant: b.plant,
        StorageLocation: b.storageLocation,
        Batch: b.batch,
        GoodsMovementType: movementType,
        QuantityInEntryUnit: quantity,
        EntryUnit: 'PC',
        ...extra,
      },
    ],
  };
}

let session: Session;

beforeAll(async () => {
  pool = testPool();
  app = await buildSapS4Simulator({ pool, schema, credentials });
  origin = await listen(app);
  session = await fetchCsrf();
});

afterAll(async () => {
  await app?.close();
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool?.end();
});

describe('transport conventions', () => {
  it('answers 401 with a Basic challenge without credentials or with a wrong password', async () => {
    const none = await call('GET', odata(QN, 'QualityNotification'), { auth: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await call('GET', odata(QN, 'QualityNotification'), {
      auth: `Basic ${Buffer.from(`${credentials.username}:nope`).toString('base64')}`,
    });
    expect(wrong.status).toBe(401);
  });

  it('hands out a CSRF token with session and anti-XSRF cookies on HEAD, with and without the trailing slash', async () => {
    for (const path of [odata(QN, ''), `/sap/opu/odata/sap/${QN}`]) {
      const fetched = await fetchCsrf(origin, path);
      expect(fetched.setCookies.map((c) => c.split('=')[0])).toEqual(['SAP_SESSIONID_HFS_100', 'sap-XSRF_HFS_100']);
    }
    const again = await fetchCsrf(origin, odata(QN, ''), session.cookie);
    expect(again.token).toBe(session.token);
  });

  it('names the cookies after the sap-client given as query parameter', async () => {
    const fetched = await fetchCsrf(origin, `${odata(QN, '')}?sap-client=200`);
    expect(fetched.setCookies.map((c) => c.split('=')[0])).toEqual(['SAP_SESSIONID_HFS_200', 'sap-XSRF_HFS_200']);
  });

  it('refuses a write without the token, or without the cookies, with 403 Required and writes nothing', async () => {
    const before = await counts();
    const body = { NotificationType: 'F3', NotificationText: 'no token' };
    const noToken = await call('POST', odata(QN, 'QualityNotification'), { body });
    expect(noToken.status).toBe(403);
    expect(noToken.headers.get('x-csrf-token')).toBe('Required');
    expect(noToken.text).toBe('CSRF token validation failed');
    const noCookies = await call('POST', odata(QN, 'QualityNotification'), {
      body,
      headers: { 'x-csrf-token': session.token },
    });
    expect(noCookies.status).toBe(403);
    expect(noCookies.headers.get('x-csrf-token')).toBe('Required');
    expect(await counts()).toEqual(before);
  });

  it('kills tokens with their sessions: expire-sessions makes the old token stale until a new fetch', async () => {
    const own = await fetchCsrf();
    const body = { NotificationType: 'F3', NotificationText: 'before expiry' };
    expect((await call('POST', odata(QN, 'QualityNotification'), { body, session: own })).status).toBe(201);
    const expired = await call('POST', '/__sim/expire-sessions', { auth: null });
    expect(expired.json.expired).toBeGreaterThanOrEqual(1);
    const stale = await call('POST', odata(QN, 'QualityNotification'), { body, session: own });
    expect(stale.status).toBe(403);
    expect(stale.headers.get('x-csrf-token')).toBe('Required');
    const fresh = await fetchCsrf(origin, odata(QN, ''), own.cookie);
    expect(fresh.token).not.toBe(own.token);
    expect((await call('POST', odata(QN, 'QualityNotification'), { body, session: fresh })).status).toBe(201);
    session = fresh;
  });

  it('ends idle sessions after sessionTtlMs (second instance on the same schema, which it reuses)', async () => {
    const shortLived = await buildSapS4Simulator({ pool, schema, credentials, sessionTtlMs: 100 });
    try {
      const base = await listen(shortLived);
      const own = await fetchCsrf(base, odata(QN, ''));
      await new Promise((r) => setTimeout(r, 250));
      const body = { NotificationType: 'F3', NotificationText: 'idle' };
      const stale = await call('POST', odata(QN, 'QualityNotification'), { body, session: own, base });
      expect(stale.status).toBe(403);
      expect(stale.headers.get('x-csrf-token')).toBe('Required');
    } finally {
      await shortLived.close();
    }
  });

  it('answers an unknown service 403 /IWFND/MED/170 in the V2 error shape, also to a CSRF fetch; ;v=0002 is taken', async () => {
    const unknown = await call('GET', '/sap/opu/odata/sap/API_NO_SUCH_SRV;v=2/Things');
    expect(unknown.status).toBe(403);
    expect(unknown.json.error).toEqual({
      code: '/IWFND/MED/170',
      message: { lang: 'en', value: "No service found for namespace '/SAP/', name 'API_NO_SUCH_SRV', version '0002'" },
      innererror: expect.objectContaining({
        application: expect.objectContaining({ service_id: 'API_NO_SUCH_SRV', service_version: '0002' }),
        errordetails: [expect.objectContaining({ code: '/IWFND/MED/170', severity: 'error' })],
      }),
    });
    const fetch403 = await fetch(`${origin}/sap/opu/odata/sap/API_NO_SUCH_SRV/`, {
      method: 'HEAD',
      headers: { authorization: AUTH, 'x-csrf-token': 'Fetch' },
    });
    expect(fetch403.status).toBe(403);
    expect(fetch403.headers.get('x-csrf-token')).toBeNull();
    const versioned = await call('GET', `/sap/opu/odata/sap/${MD};v=0002/A_MaterialDocumentHeader?$top=1`);
    expect(versioned.status).toBe(200);
  });

  it('serves the service document and $metadata, and answers unsupported $filter with an SAP error body', async () => {
    const doc = await call('GET', `/sap/opu/odata/sap/${QN}`);
    expect(doc.json.d.EntitySets).toEqual(['QualityNotification', 'QualityNotificationItem']);
    const metadata = await call('GET', odata(MD, '$metadata'));
    expect(metadata.status).toBe(200);
    expect(metadata.text).toContain('EntitySet Name="A_MaterialDocumentHeader"');
    const bad = await call('GET', odata(QN, `QualityNotification?$filter=${encodeURIComponent("Material ne 'X'")}`));
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toEqual({ lang: 'en', value: expect.stringContaining('Unsupported $filter') });
    expect(bad.json.error.code).toEqual(expect.any(String));
  });
});

describe('API_QUALITYNOTIFICATION', () => {
  it('creates a notification with defect items by deep insert, reads it back, adds an item and completes it', async () => {
    const b = await newBatch();
    const reference = `HF${randomBytes(7).toString('hex').toUpperCase()}`.slice(0, 16);
    const created = await call('POST', odata(QN, 'QualityNotification'), {
      session,
      body: {
        NotificationType: 'F3',
        NotificationText: 'Scratch on bracket flange',
        Material: b.material,
        Plant: b.plant,
        Batch: b.batch,
        ExternalReferenceNumber: reference,
        ComplaintQuantity: '3',
        ComplaintQuantityUnit: 'PC',
        to_QualityNotificationItem: [
          { NotificationItemText: 'scratch', DefectCodeGroup: 'VISUAL', DefectCode: '0001' },
          { NotificationItemText: 'dent', DefectCodeGroup: 'VISUAL', DefectCode: '0002' },
        ],
      },
    });
    expect(created.status).toBe(201);
    const n = created.json.d.QualityNotification as string;
    expect(n).toMatch(/^2000000\d\d$/);
    expect(created.headers.get('location')).toBe(`${origin}${odata(QN, `QualityNotification('${n}')`)}`);
    expect(created.json.d).toMatchObject({
      __metadata: { type: 'API_QUALITYNOTIFICATION.QualityNotificationType' },
      NotificationType: 'F3',
      NotifProcessingPhase: '1',
      ComplaintQuantity: '3.000',
      CreationDate: expect.stringMatching(/^\/Date\(\d+\)\/$/),
    });
    expect(
      results<{ NotificationItem: string }>(created.json.d.to_QualityNotificationItem).map((i) => i.NotificationItem),
    ).toEqual(['0001', '0002']);

    const plain = await call('GET', odata(QN, `QualityNotification('${n}')`));
    expect(plain.json.d.to_QualityNotificationItem.__deferred.uri).toContain(
      `QualityNotification('${n}')/to_QualityNotificationItem`,
    );
    const expanded = await call('GET', odata(QN, `QualityNotification('${n}')?$expand=to_QualityNotificationItem`));
    expect(expanded.json.d.to_QualityNotificationItem.results).toEqual([
      expect.objectContaining({ NotificationItem: '0001', NotificationItemText: 'scratch', DefectCodeCatalog: '9' }),
      expect.objectContaining({ NotificationItem: '0002', DefectCode: '0002' }),
    ]);

    const filter = encodeURIComponent(`ExternalReferenceNumber eq '${reference}' and NotificationType eq 'F3'`);
    const found = await call('GET', odata(QN, `QualityNotification?$filter=${filter}&$top=5`));
    expect(results<{ QualityNotification: string }>(found.json.d).map((r) => r.QualityNotification)).toEqual([n]);

    const added = await call('POST', odata(QN, 'QualityNotificationItem'), {
      session,
      body: { QualityNotification: n, NotificationItemText: 'burr', DefectCodeGroup: 'VISUAL', DefectCode: '0003' },
    });
    expect(added.status).toBe(201);
    expect(added.json.d.NotificationItem).toBe('0003');
    const items = await call(
      'GET',
      odata(QN, `QualityNotificationItem?$filter=${encodeURIComponent(`QualityNotification eq '${n}'`)}`),
    );
    expect(items.json.d.results).toHaveLength(3);

    const completed = await call('PATCH', odata(QN, `QualityNotification('${n}')`), {
      session,
      body: { NotifProcessingPhase: '4' },
    });
    expect(completed.status).toBe(204);
    const again = await call('MERGE', odata(QN, `QualityNotification('${n}')`), {
      session,
      body: { NotifProcessingPhase: '4' },
    });
    expect(again.status).toBe(204);
    const after = await call('GET', odata(QN, `QualityNotification('${n}')`));
    expect(after.json.d.NotifProcessingPhase).toBe('4');
    expect(after.json.d.CompletionDate).toMatch(/^\/Date\(\d+\)\/$/);

    const late = await call('POST', odata(QN, 'QualityNotificationItem'), {
      session,
      body: { QualityNotification: n, NotificationItemText: 'too late' },
    });
    expect(late.status).toBe(400);
    expect(late.json.error.code).toBe('ZHFS_SIM/010');
  });

  it('refuses unknown materials, notification types and notifications with SAP errors', async () => {
    const before = await counts();
    const material = await call('POST', odata(QN, 'QualityNotification'), {
      session,
      body: { NotificationType: 'F3', Material: 'NO-SUCH-MATERIAL', Plant: '1010' },
    });
    expect(material.status).toBe(400);
    expect(material.json.error).toMatchObject({ code: 'M3/305', message: { lang: 'en' } });
    const type = await call('POST', odata(QN, 'QualityNotification'), { session, body: { NotificationType: 'ZZ' } });
    expect(type.status).toBe(400);
    const unknownProperty = await call('POST', odata(QN, 'QualityNotification'), {
      session,
      body: { NotificationType: 'F3', Colour: 'red' },
    });
    expect(unknownProperty.status).toBe(400);
    expect(unknownProperty.json.error.message.value).toContain("'Colour'");
    const patch = await call('PATCH', odata(QN, "QualityNotification('999999999')"), {
      session,
      body: { NotifProcessingPhase: '4' },
    });
    expect(patch.status).toBe(404);
    expect(await counts()).toEqual(before);
  });

  it('does not de-duplicate: the same POST twice makes two notifications', async () => {
    const before = await counts();
    const body = { NotificationType: 'F3', ExternalReferenceNumber: 'HFSAMEPOSTTWICE1' };
    const first = await call('POST', odata(QN, 'QualityNotification'), { session, body });
    const second = await call('POST', odata(QN, 'QualityNotification'), { session, body });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(first.json.d.QualityNotification).not.toBe(second.json.d.QualityNotification);
    expect((await counts()).notifications).toBe(before.notifications + 2);
  });
});

describe('API_MATERIAL_DOCUMENT_SRV and API_MATERIAL_STOCK_SRV', () => {
  it('344 moves unrestricted to blocked, and the document reads back by key with its items', async () => {
    const b = await newBatch(100);
    const posted = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
      session,
      body: movement(b, '344', '5'),
    });
    expect(posted.status).toBe(201);
    const { MaterialDocument: doc, MaterialDocumentYear: year } = posted.json.d as Record<string, string>;
    expect(doc).toMatch(/^49000000\d\d$/);
    expect(year).toBe(String(new Date().getUTCFullYear()));
    expect(await stockOf(b)).toEqual({ '01': '95.000', '07': '5.000' });

    const key = `A_MaterialDocumentHeader(MaterialDocumentYear='${year}',MaterialDocument='${doc}')`;
    const read = await call('GET', odata(MD, `${key}?$expand=to_MaterialDocumentItem`));
    expect(read.status).toBe(200);
    expect(read.json.d).toMatchObject({
      __metadata: { type: 'API_MATERIAL_DOCUMENT_SRV.A_MaterialDocumentHeaderType' },
      GoodsMovementCode: '04',
      PostingDate: expect.stringMatching(/^\/Date\(\d+\)\/$/),
    });
    expect(read.json.d.to_MaterialDocumentItem.results).toEqual([
      expect.objectContaining({
        MaterialDocumentItem: '0001',
        Material: b.material,
        Batch: b.batch,
        GoodsMovementType: '344',
        QuantityInEntryUnit: '5.000',
        EntryUnit: 'PC',
      }),
    ]);
  });

  it('343 releases, 555 scraps from blocked and 122 returns blocked stock to the vendor', async () => {
    const b = await newBatch(100, RECEIPT);
    const post = (type: string, qty: string, extra?: Record<string, unknown>) =>
      call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: movement(b, type, qty, extra) });
    expect((await post('344', '10')).status).toBe(201);
    expect((await post('343', '3')).status).toBe(201);
    expect(await stockOf(b)).toEqual({ '01': '93.000', '07': '7.000' });
    expect((await post('555', '2')).status).toBe(201);
    expect(await stockOf(b)).toEqual({ '01': '93.000', '07': '5.000' });
    const before = await counts();
    const returned = await post('122', '5', PO_REFERENCE);
    expect(returned.status).toBe(201);
    expect((await counts()).materialDocuments).toBe(before.materialDocuments + 1);
    expect(await stockOf(b)).toEqual({ '01': '93.000' });
    expect(results<Record<string, string>>(returned.json.d.to_MaterialDocumentItem)).toEqual([
      expect.objectContaining({ GoodsMovementType: '122', InventoryStockType: '07', ...PO_REFERENCE }),
    ]);
  });

  it('refuses a deficit with 014 on top and M7/021 in errordetails, and writes nothing, not even valid items', async () => {
    const b = await newBatch(10);
    const before = await counts();
    const deficit = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
      session,
      body: movement(b, '555', '5'),
    });
    expect(deficit.status).toBe(400);
    expect(deficit.json.error).toEqual({
      code: 'MM_IM_ODATA_API_MDOC/014',
      message: { lang: 'en', value: expect.any(String) },
      innererror: {
        application: {
          component_id: '',
          service_namespace: '/SAP/',
          service_id: MD,
          service_version: '0001',
        },
        transactionid: expect.stringMatching(/^[0-9A-F]{32}$/),
        timestamp: expect.stringMatching(/^\d{14}$/),
        Error_Resolution: expect.any(Object),
        errordetails: [
          {
            code: 'M7/021',
            message: `Deficit of BL Blocked stock 5 PC : ${b.material} 1010 0001 ${b.batch}`,
            propertyref: '',
            severity: 'error',
            target: '',
          },
          expect.objectContaining({ code: '/IWBEP/CX_MGW_BUSI_EXCEPTION', severity: 'info' }),
        ],
      },
    });

    const mixed = movement(b, '344', '4');
    mixed.to_MaterialDocumentItem.push({ ...mixed.to_MaterialDocumentItem[0]!, QuantityInEntryUnit: '7' });
    const partial = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: mixed });
    expect(partial.status).toBe(400);
    expect(partial.json.error.innererror.errordetails[0].message).toContain('Deficit of SL Unrestricted-use 1 PC');
    expect(await stockOf(b)).toEqual({ '01': '10.000' });
    expect(await counts()).toEqual(before);
  });

  it('nests the posting refusals too: unknown material, plant, batch, unit, a movement type with the wrong code', async () => {
    const b = await newBatch(10);
    const before = await counts();
    const cases: [Record<string, unknown>, string][] = [
      [{ Material: 'NO-SUCH-MATERIAL' }, 'M3/305'],
      [{ Plant: '9999' }, 'ZHFS_SIM/001'],
      [{ Batch: 'NOBATCH' }, 'ZHFS_SIM/002'],
      [{ EntryUnit: 'KG' }, 'ZHFS_SIM/003'],
    ];
    const reason = (res: Answer): unknown[] => [
      res.status,
      res.json.error.code,
      res.json.error.innererror.errordetails[0].code,
    ];
    for (const [override, code] of cases) {
      const res = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session,
        body: movement(b, '344', '1', override),
      });
      expect(reason(res)).toEqual([400, 'MM_IM_ODATA_API_MDOC/014', code]);
    }
    const wrongCode = { ...movement(b, '344', '1'), GoodsMovementCode: '01' };
    const res = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: wrongCode });
    expect(reason(res)).toEqual([400, 'MM_IM_ODATA_API_MDOC/014', 'ZHFS_SIM/004']);
    expect(await counts()).toEqual(before);
    expect(await stockOf(b)).toEqual({ '01': '10.000' });
  });

  it('refuses a 122 without its purchase order, and references that do not fit the movement, with 011', async () => {
    const b = await newBatch(20, RECEIPT);
    const block = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: movement(b, '344', '5') });
    expect(block.status).toBe(201);
    const before = await counts();
    const refused = async (type: string, extra: Record<string, unknown>) => {
      const res = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session,
        body: movement(b, type, '1', extra),
      });
      expect([res.status, res.json.error.code]).toEqual([400, 'MM_IM_ODATA_API_MDOC/011']);
      const [detail] = res.json.error.innererror.errordetails as { code: string; propertyref: string }[];
      expect(detail).toMatchObject({ code: 'MM_IM_ODATA_API_MDOC/011', severity: 'error' });
      return { message: res.json.error.message.value as string, property: detail!.propertyref };
    };
    expect(await refused('122', { Supplier: RECEIPT.supplier })).toEqual({
      message: 'Movement type 122 needs property GoodsMovementRefDocType = B',
      property: 'GoodsMovementRefDocType',
    });
    expect((await refused('122', { GoodsMovementRefDocType: 'B', PurchaseOrderItem: '00010' })).property).toBe(
      'PurchaseOrder',
    );
    expect(await refused('344', { PurchaseOrder: RECEIPT.purchaseOrder })).toEqual({
      message: 'Property PurchaseOrder is not allowed for movement type 344',
      property: 'PurchaseOrder',
    });
    expect((await refused('555', { ManufacturingOrder: '1000001' })).property).toBe('ManufacturingOrder');
    expect((await refused('343', { IssuingOrReceivingPlant: '2020' })).property).toBe('IssuingOrReceivingPlant');
    expect(await counts()).toEqual(before);
    expect(await stockOf(b)).toEqual({ '01': '15.000', '07': '5.000' });
  });

  it("refuses a 122 whose purchase order item or supplier is not the batch's receipt", async () => {
    const b = await newBatch(20, RECEIPT);
    const inHouse = await newBatch(20);
    const before = await counts();
    const reasons = [];
    for (const [batch, reference] of [
      [b, { ...PO_REFERENCE, PurchaseOrderItem: '00020' }],
      [b, { ...PO_REFERENCE, Supplier: '17399999' }],
      [inHouse, PO_REFERENCE],
    ] as const) {
      const res = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session,
        body: movement(batch, '122', '1', reference),
      });
      reasons.push([res.status, res.json.error.code, res.json.error.innererror.errordetails[0].code]);
    }
    expect(reasons).toEqual([
      [400, 'MM_IM_ODATA_API_MDOC/014', 'ZHFS_SIM/005'],
      [400, 'MM_IM_ODATA_API_MDOC/014', 'ZHFS_SIM/006'],
      [400, 'MM_IM_ODATA_API_MDOC/014', 'ZHFS_SIM/005'],
    ]);
    expect(await counts()).toEqual(before);
  });

  it('accepts every property the metadata lists, keeps it, and refuses one it does not list, naming it', async () => {
    const b = await newBatch(10);
    const shelfLife = Date.UTC(2027, 5, 30);
    const posted = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
      session,
      body: {
        ...movement(b, '344', '1', {
          IssuingOrReceivingPlant: b.plant,
          IssuingOrReceivingStorageLoc: b.storageLocation,
          ManufactureDate: '2026-01-15T00:00:00',
          ShelfLifeExpirationDate: `/Date(${shelfLife})/`,
          GoodsMovementReasonCode: '0001',
          QuantityInEntryUnit: 1,
        }),
        ReferenceDocument: 'DELIVERY-NOTE-7',
        VersionForPrintingSlip: '0',
      },
    });
    expect(posted.status).toBe(201);
    const { MaterialDocument: doc, MaterialDocumentYear: year } = posted.json.d as Record<string, string>;
    const key = `A_MaterialDocumentHeader(MaterialDocumentYear='${year}',MaterialDocument='${doc}')`;
    const read = await call('GET', odata(MD, `${key}?$expand=to_MaterialDocumentItem`));
    expect(read.json.d).toMatchObject({ ReferenceDocument: 'DELIVERY-NOTE-7', VersionForPrintingSlip: '0' });
    expect(read.json.d.to_MaterialDocumentItem.results[0]).toMatchObject({
      IssuingOrReceivingPlant: b.plant,
      ManufactureDate: `/Date(${Date.UTC(2026, 0, 15)})/`,
      ShelfLifeExpirationDate: `/Date(${shelfLife})/`,
      GoodsMovementReasonCode: '0001',
      QuantityInEntryUnit: '1.000',
    });

    const before = await counts();
    const refusals: [Record<string, unknown>, string, string][] = [
      [{ Colour: 'red' }, '/IWBEP/CM_MGW_RT/020', "Property 'Colour' is invalid"],
      [{ Batch: 'B234567890X' }, '/IWBEP/CM_MGW_RT/022', "Invalid value for property 'Batch': at most 10 characters"],
      [{ QuantityInEntryUnit: '1.2345' }, '/IWBEP/CM_MGW_RT/022', "Invalid value for property 'QuantityInEntryUnit'"],
      [{ IsCompletelyDelivered: 'yes' }, '/IWBEP/CM_MGW_RT/022', "Invalid value for property 'IsCompletelyDelivered'"],
      [{ ManufactureDate: 'last week' }, '/IWBEP/CM_MGW_RT/022', "Invalid value for property 'ManufactureDate'"],
    ];
    for (const [extra, code, text] of refusals) {
      const res = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session,
        body: movement(b, '344', '1', extra),
      });
      expect([res.status, res.json.error.code]).toEqual([400, code]);
      expect(res.json.error.message.value).toContain(text);
    }
    const header = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
      session,
      body: { ...movement(b, '344', '1'), Plant: '1010' },
    });
    expect(header.json.error.message.value).toBe("Property 'Plant' is invalid");
    expect(await counts()).toEqual(before);
  });

  it('answers a create without its items when told to; the document reads back whole', async () => {
    const b = await newBatch(10);
    const armed = await call('POST', '/__sim/material-documents/answer-without-items', { auth: null, body: {} });
    expect(armed.status).toBe(204);
    const bare = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: movement(b, '344', '2') });
    expect(bare.status).toBe(201);
    expect(bare.json.d.to_MaterialDocumentItem).toEqual({ results: [] });
    const { MaterialDocument: doc, MaterialDocumentYear: year } = bare.json.d as Record<string, string>;
    const items = await call(
      'GET',
      odata(
        MD,
        `A_MaterialDocumentHeader(MaterialDocumentYear='${year}',MaterialDocument='${doc}')/to_MaterialDocumentItem`,
      ),
    );
    expect(results<Record<string, string>>(items.json.d)).toEqual([
      expect.objectContaining({ MaterialDocumentItem: '0001', GoodsMovementType: '344', QuantityInEntryUnit: '2.000' }),
    ]);
    const next = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body: movement(b, '344', '1') });
    expect(results(next.json.d.to_MaterialDocumentItem)).toHaveLength(1);
  });

  it('does not de-duplicate: the same POST twice makes two documents and moves the stock twice', async () => {
    const b = await newBatch(100);
    const body = movement(b, '344', '5');
    const first = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body });
    const second = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body });
    expect(first.json.d.MaterialDocument).not.toBe(second.json.d.MaterialDocument);
    const filter = encodeURIComponent(`MaterialDocumentHeaderText eq '${body.MaterialDocumentHeaderText}'`);
    const found = await call('GET', odata(MD, `A_MaterialDocumentHeader?$filter=${filter}`));
    expect(found.json.d.results).toHaveLength(2);
    expect(await stockOf(b)).toEqual({ '01': '90.000', '07': '10.000' });
  });

  it('with dropResponse, commits the document while the client sees the socket close', async () => {
    const b = await newBatch(100);
    const before = await counts();
    const armed = await call('PUT', '/__faults', {
      auth: null,
      body: { dropResponse: { remaining: 1, pathContains: 'A_MaterialDocumentHeader' } },
    });
    expect(armed.status).toBe(200);
    try {
      const body = movement(b, '344', '8');
      const dropped = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), { session, body }).then(
        () => undefined,
        (err: Error & { cause?: { code?: string } }) => err,
      );
      // undici reports the closed socket as "other side closed" (UND_ERR_SOCKET) or a reset.
      expect(dropped?.message).toBe('fetch failed');
      expect(['UND_ERR_SOCKET', 'ECONNRESET']).toContain(dropped?.cause?.code);
      expect((await counts()).materialDocuments).toBe(before.materialDocuments + 1);
      const filter = encodeURIComponent(`MaterialDocumentHeaderText eq '${body.MaterialDocumentHeaderText}'`);
      const found = await call('GET', odata(MD, `A_MaterialDocumentHeader?$filter=${filter}`));
      expect(found.json.d.results).toHaveLength(1);
      expect(await stockOf(b)).toEqual({ '01': '92.000', '07': '8.000' });
    } finally {
      await call('DELETE', '/__faults', { auth: null });
    }
  });
});

describe('demo seeding', () => {
  it('seeds unrestricted stock for every demo lot and does not reset it on restart', async () => {
    const seededSchema = `${schema}_seed`;
    const first = await buildSapS4Simulator({ pool, schema: seededSchema, credentials, seedDemo: true });
    try {
      const base = await listen(first);
      const own = await fetchCsrf(base);
      const lot = {
        material: 'BRKT-200',
        plant: '1010',
        storageLocation: '0001',
        batch: 'B0001',
        quantity: 500,
        unit: 'PC',
      };
      const posted = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session: own,
        base,
        body: movement(lot, '344', '10'),
      });
      expect(posted.status).toBe(201);
      // A bought demo lot comes with the purchase order item it was received on, so it can be returned.
      const bought = { ...lot, batch: 'B0002' };
      const block = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session: own,
        base,
        body: movement(bought, '344', '4'),
      });
      const reference = { ...PO_REFERENCE, PurchaseOrder: '4500000101', PurchaseOrderItem: '00010' };
      const returned = await call('POST', odata(MD, 'A_MaterialDocumentHeader'), {
        session: own,
        base,
        body: movement(bought, '122', '4', reference),
      });
      expect([block.status, returned.status]).toEqual([201, 201]);
    } finally {
      await first.close();
    }
    const restarted = await buildSapS4Simulator({ pool, schema: seededSchema, credentials, seedDemo: true });
    try {
      const base = await listen(restarted);
      const filter = encodeURIComponent("Material eq 'BRKT-200' and Batch eq 'B0001'");
      const rows = await call('GET', odata(STOCK, `A_MatlStkInAcctMod?$filter=${filter}`), { base });
      expect(
        results<Record<string, string>>(rows.json.d).map((r) => [r.InventoryStockType, r.MatlWrhsStkQtyInMatlBaseUnit]),
      ).toEqual([
        ['01', '490.000'],
        ['07', '10.000'],
      ]);
      const all = await call('GET', odata(STOCK, 'A_MatlStkInAcctMod'), { base });
      expect(all.json.d.results).toHaveLength(13);
    } finally {
      await restarted.close();
      await pool.query(`DROP SCHEMA IF EXISTS "${seededSchema}" CASCADE`);
    }
  });
});
