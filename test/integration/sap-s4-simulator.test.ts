import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { QUALITY_NOTIFICATION_SERVICE, SAP_SERVICES } from '../../infra/vendor-apis/sap-s4/metadata';
import { testPool } from '../support/test-env';

// The SAP S/4HANA simulator over real HTTP, its state in a schema of its own on the run's PostgreSQL.
const schema = `sap_sim_test_${randomBytes(5).toString('hex')}`;
const credentials = { username: 'HOLDFAST_COMM', password: `pw-${randomBytes(6).toString('hex')}` };
const AUTH = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
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
/** The records of a V4 collection (`{ value: [...] }`). */
const values = <T>(collection: unknown): T[] => (collection as { value: T[] }).value;

const odata = (service: string, rest: string) => `/sap/opu/odata/sap/${service}/${rest}`;
/** The quality-notification service (OData V4) lives at a path of its own. */
const QN_ROOT = SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.path;
const qn = (rest: string) => `${QN_ROOT}/${rest}`;

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
    const none = await call('GET', qn('QualityNotification'), { auth: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    const wrong = await call('GET', qn('QualityNotification'), {
      auth: `Basic ${Buffer.from(`${credentials.username}:nope`).toString('base64')}`,
    });
    expect(wrong.status).toBe(401);
  });

  it('hands out a CSRF token with session and anti-XSRF cookies on HEAD, with and without the trailing slash', async () => {
    for (const path of [odata(MD, ''), `/sap/opu/odata/sap/${MD}`, qn(''), QN_ROOT]) {
      const fetched = await fetchCsrf(origin, path);
      expect(fetched.setCookies.map((c) => c.split('=')[0])).toEqual(['SAP_SESSIONID_HFS_100', 'sap-XSRF_HFS_100']);
    }
    const again = await fetchCsrf(origin, qn(''), session.cookie);
    expect(again.token).toBe(session.token);
  });

  it('names the cookies after the sap-client given as query parameter', async () => {
    const fetched = await fetchCsrf(origin, `${qn('')}?sap-client=200`);
    expect(fetched.setCookies.map((c) => c.split('=')[0])).toEqual(['SAP_SESSIONID_HFS_200', 'sap-XSRF_HFS_200']);
  });

  it('refuses a write without the token, or without the cookies, with 403 Required and writes nothing', async () => {
    const before = await counts();
    const body = { NotificationType: 'F3', NotificationText: 'no token' };
    const noToken = await call('POST', qn('QualityNotification'), { body });
    expect(noToken.status).toBe(403);
    expect(noToken.headers.get('x-csrf-token')).toBe('Required');
    expect(noToken.text).toBe('CSRF token validation failed');
    const noCookies = await call('POST', qn('QualityNotification'), {
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
    expect((await call('POST', qn('QualityNotification'), { body, session: own })).status).toBe(201);
    const expired = await call('POST', '/__sim/expire-sessions', { auth: null });
    expect(expired.json.expired).toBeGreaterThanOrEqual(1);
    const stale = await call('POST', qn('QualityNotification'), { body, session: own });
    expect(stale.status).toBe(403);
    expect(stale.headers.get('x-csrf-token')).toBe('Required');
    const fresh = await fetchCsrf(origin, qn(''), own.cookie);
    expect(fresh.token).not.toBe(own.token);
    expect((await call('POST', qn('QualityNotification'), { body, session: fresh })).status).toBe(201);
    session = fresh;
  });

  it('ends idle sessions after sessionTtlMs (second instance on the same schema, which it reuses)', async () => {
    const shortLived = await buildSapS4Simulator({ pool, schema, credentials, sessionTtlMs: 100 });
    try {
      const base = await listen(shortLived);
      const own = await fetchCsrf(base, qn(''));
      await new Promise((r) => setTimeout(r, 250));
      const body = { NotificationType: 'F3', NotificationText: 'idle' };
      const stale = await call('POST', qn('QualityNotification'), { body, session: own, base });
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

  it('serves the service documents and $metadata, and answers unsupported $filter with an SAP error body', async () => {
    const doc = await call('GET', `/sap/opu/odata/sap/${MD}`);
    expect(doc.json.d.EntitySets).toEqual(['A_MaterialDocumentHeader', 'A_MaterialDocumentItem']);
    const metadata = await call('GET', odata(MD, '$metadata'));
    expect(metadata.status).toBe(200);
    expect(metadata.text).toContain('EntitySet Name="A_MaterialDocumentHeader"');
    const bad = await call('GET', odata(MD, `A_MaterialDocumentHeader?$filter=${encodeURIComponent("X ne 'Y'")}`));
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toEqual({ lang: 'en', value: expect.stringContaining('Unsupported $filter') });
    expect(bad.json.error.code).toEqual(expect.any(String));
  });

  it('no longer serves quality notifications over OData V2: the service is unknown, as on S/4HANA', async () => {
    const v2 = await call('GET', odata('API_QUALITYNOTIFICATION', 'QualityNotification'));
    expect(v2.status).toBe(403);
    expect(v2.json.error.code).toBe('/IWFND/MED/170');
  });
});

/** A defect item as Holdfast sends it; the quantity goes on the item, the root has none in V4. */
const defect = (text: string, code = '0001') => ({
  NotificationItemText: text,
  DefectCodeGroup: 'VISUAL',
  DefectCode: code,
  InternalDefectiveQuantity: 3,
  DefectiveQuantityUnit: 'PC',
});

async function raise(b: Batch, items = [defect('scratch')], extra: Record<string, unknown> = {}) {
  const created = await call('POST', qn('QualityNotification'), {
    session,
    body: {
      NotificationType: 'F3',
      NotificationText: 'Scratch on bracket flange',
      Material: b.material,
      Plant: b.plant,
      Batch: b.batch,
      _QualityNotificationItem: items,
      ...extra,
    },
  });
  expect(created.status).toBe(201);
  return created;
}

/** Reads a notification and returns its ETag (the header and the annotation agree). */
async function etagOf(n: string): Promise<string> {
  const read = await call('GET', qn(`QualityNotification('${n}')`));
  expect(read.status).toBe(200);
  expect(read.headers.get('etag')).toBe(read.json['@odata.etag']);
  return read.json['@odata.etag'] as string;
}

const complete = (n: string, ifMatch?: string) =>
  call('POST', qn(`QualityNotification('${n}')/com.sap.gateway.srvd_a2x.api_qualitynotification.v0001.Complete`), {
    session,
    body: {},
    ...(ifMatch ? { headers: { 'if-match': ifMatch } } : {}),
  });

describe('CE_QUALITYNOTIFICATION_0001 (OData V4)', () => {
  it('serves its service document and a $metadata generated from metadata.ts', async () => {
    const doc = await call('GET', QN_ROOT + '/');
    expect(doc.headers.get('odata-version')).toBe('4.0');
    expect(values<{ name: string }>(doc.json).map((s) => s.name)).toEqual([
      'QualityNotification',
      'QualityNotificationItem',
    ]);
    const metadata = await call('GET', qn('$metadata'));
    expect(metadata.text).toContain('<Action Name="Complete" IsBound="true">');
    expect(metadata.text).toContain('<NavigationProperty Name="_QualityNotificationItem"');
  });

  it('creates by deep insert, reads back in V4 JSON, finds by batch, adds an item, completes with If-Match', async () => {
    const b = await newBatch();
    const created = await raise(b, [defect('scratch'), defect('dent', '0002')], { Supplier: '17300001' });
    const n = created.json.QualityNotification as string;
    expect(n).toMatch(/^2000000\d\d$/);
    expect(created.headers.get('location')).toBe(`${origin}${qn(`QualityNotification('${n}')`)}`);
    expect(created.headers.get('etag')).toBe(created.json['@odata.etag']);
    expect(created.json).toMatchObject({
      '@odata.context': '$metadata#QualityNotification/$entity',
      '@odata.etag': expect.stringMatching(/^W\/"\d{14}\.\d{7}"$/),
      NotificationType: 'F3',
      NotifProcessingPhase: '1',
      Supplier: '17300001',
      CreationDate: new Date().toISOString().slice(0, 10),
      ChangedDateTime: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
      NotificationCompletionDate: null,
    });
    expect(created.json.d).toBeUndefined();
    expect(created.json._QualityNotificationItem).toEqual([
      expect.objectContaining({ NotificationItem: '0001', InternalDefectiveQuantity: 3, DefectiveQuantityUnit: 'PC' }),
      expect.objectContaining({ NotificationItem: '0002', DefectCode: '0002' }),
    ]);
    // Every property the simulator answers is one metadata.ts lists.
    const described = SAP_SERVICES[QUALITY_NOTIFICATION_SERVICE]!.entitySets;
    const undescribed = (set: string, entity: Record<string, unknown>) =>
      Object.keys(entity).filter(
        (p) => !p.startsWith('@') && !(p in described[set]!.properties) && !(p in described[set]!.navigations),
      );
    expect(undescribed('QualityNotification', created.json as Record<string, unknown>)).toEqual([]);
    expect(
      undescribed('QualityNotificationItem', (created.json._QualityNotificationItem as Record<string, unknown>[])[0]!),
    ).toEqual([]);

    const plain = await call('GET', qn(`QualityNotification('${n}')`));
    expect(plain.json).not.toHaveProperty('_QualityNotificationItem');
    const filter = encodeURIComponent(
      `Material eq '${b.material}' and Plant eq '${b.plant}' and Batch eq '${b.batch}' and NotificationType eq 'F3'`,
    );
    const found = await call('GET', qn(`QualityNotification?$filter=${filter}&$expand=_QualityNotificationItem`));
    expect(found.json['@odata.context']).toBe('$metadata#QualityNotification(_QualityNotificationItem())');
    expect(found.json.value).toHaveLength(1);
    expect(
      values<{ _QualityNotificationItem: { NotificationItemText: string }[] }>(
        found.json,
      )[0]!._QualityNotificationItem.map((i) => i.NotificationItemText),
    ).toEqual(['scratch', 'dent']);

    // A create through the composition needs no ETag; it moves the notification's.
    const before = await etagOf(n);
    const added = await call('POST', qn(`QualityNotification('${n}')/_QualityNotificationItem`), {
      session,
      body: defect('burr', '0003'),
    });
    expect(added.status).toBe(201);
    expect(added.json.NotificationItem).toBe('0003');
    expect(added.headers.get('location')).toBe(
      `${origin}${qn(`QualityNotificationItem(QualityNotification='${n}',NotificationItem='0003')`)}`,
    );
    const after = await etagOf(n);
    expect(after).not.toBe(before);
    expect(added.json['@odata.etag']).toBe(after);
    const items = await call('GET', qn(`QualityNotification('${n}')/_QualityNotificationItem`));
    expect(values<{ NotificationItem: string }>(items.json).map((i) => i.NotificationItem)).toEqual([
      '0001',
      '0002',
      '0003',
    ]);

    const completed = await complete(n, after);
    expect(completed.status).toBe(200);
    expect(completed.json).toMatchObject({ NotifProcessingPhase: '4', NotificationCompletionDate: expect.any(String) });
    // Completing a completed notification answers it unchanged (the simulator's choice; README).
    const again = await complete(n, completed.json['@odata.etag'] as string);
    expect(again.status).toBe(200);
    expect(again.json['@odata.etag']).toBe(completed.json['@odata.etag']);

    const late = await call('POST', qn(`QualityNotification('${n}')/_QualityNotificationItem`), {
      session,
      body: defect('too late'),
    });
    expect(late.status).toBe(400);
    expect(late.json.error).toMatchObject({ code: 'ZHFS_SIM/010', message: expect.stringContaining(n) });
  });

  it('refuses a change without If-Match (428), then takes it with the ETag of a read; a stale ETag is 412', async () => {
    const n = (await raise(await newBatch())).json.QualityNotification as string;
    const patch = (ifMatch?: string, body: Record<string, unknown> = { NotificationText: 'Scratch, confirmed' }) =>
      call('PATCH', qn(`QualityNotification('${n}')`), {
        session,
        body,
        ...(ifMatch ? { headers: { 'if-match': ifMatch } } : {}),
      });

    const noEtag = await patch();
    expect(noEtag.status).toBe(428);
    expect(noEtag.json.error).toMatchObject({ code: expect.any(String), message: expect.stringContaining('If-Match') });
    const read = await etagOf(n);
    const changed = await patch(read);
    expect(changed.status).toBe(200);
    expect(changed.json.NotificationText).toBe('Scratch, confirmed');
    expect(changed.json['@odata.etag']).not.toBe(read);

    const stale = await patch(read);
    expect(stale.status).toBe(412);
    expect(stale.json.error.message).toContain('ETag');
    expect((await patch('*')).status).toBe(200);

    const phase = await patch(await etagOf(n), { NotifProcessingPhase: '4' });
    expect(phase.status).toBe(400);
    expect(phase.json.error).toMatchObject({
      target: 'NotifProcessingPhase',
      message: expect.stringContaining('read-only'),
    });

    const actionNoEtag = await complete(n);
    expect(actionNoEtag.status).toBe(428);
    const current = await etagOf(n);
    await call('POST', `/__sim/quality-notifications/${n}/change`, { auth: null, body: { when: 'now' } });
    expect((await complete(n, current)).status).toBe(412);
    const completed = await complete(n, await etagOf(n));
    expect(completed.status).toBe(200);
    expect(completed.json.NotifProcessingPhase).toBe('4');
  });

  it("changes a notification behind the caller's back right after its next read, on request", async () => {
    const n = (await raise(await newBatch())).json.QualityNotification as string;
    const armed = await call('POST', `/__sim/quality-notifications/${n}/change`, {
      auth: null,
      body: { when: 'after-next-read' },
    });
    expect(armed.status).toBe(204);
    const read = await etagOf(n);
    expect((await complete(n, read)).status).toBe(412);
    expect((await complete(n, await etagOf(n))).status).toBe(200);
    const unknown = await call('POST', '/__sim/quality-notifications/999999999/change', { auth: null, body: {} });
    expect(unknown.status).toBe(404);
  });

  it('answers the next create without its items, on request, as SAP may answer a deep insert', async () => {
    const b = await newBatch();
    expect((await call('POST', '/__sim/quality-notifications/omit-items-on-next-create', { auth: null })).status).toBe(
      204,
    );
    const bare = await raise(b);
    expect(bare.json).not.toHaveProperty('_QualityNotificationItem');
    const items = await call(
      'GET',
      qn(`QualityNotification('${bare.json.QualityNotification}')/_QualityNotificationItem`),
    );
    expect(items.json.value).toHaveLength(1);
    expect((await raise(b)).json._QualityNotificationItem).toHaveLength(1);
  });

  it('refuses a property metadata.ts does not list, in the body and in every query option, naming it', async () => {
    const before = await counts();
    const b = await newBatch();
    const body = await call('POST', qn('QualityNotification'), {
      session,
      body: { NotificationType: 'F3', Colour: 'red' },
    });
    expect(body.status).toBe(400);
    expect(body.json.error).toMatchObject({ target: 'Colour', message: expect.stringContaining("'Colour'") });
    // V2's names are not the V4 service's.
    const v2Names = await call('POST', qn('QualityNotification'), {
      session,
      body: { NotificationType: 'F3', ExternalReferenceNumber: 'HF1' },
    });
    expect(v2Names.json.error.target).toBe('ExternalReferenceNumber');
    const withItem = (item: Record<string, unknown>) =>
      call('POST', qn('QualityNotification'), {
        session,
        body: { NotificationType: 'F3', Material: b.material, _QualityNotificationItem: [item] },
      });
    const inItem = await withItem({ ...defect('x'), Colour: 'red' });
    expect([inItem.status, inItem.json.error.target]).toEqual([400, 'Colour']);
    const unsimulated = await call('POST', qn('QualityNotification'), {
      session,
      body: { NotificationType: 'F3', NotificationPriority: '1' },
    });
    expect(unsimulated.json.error.message).toBe("Property 'NotificationPriority' is not supported by the simulator");
    const readOnly = await call('POST', qn('QualityNotification'), {
      session,
      body: { NotificationType: 'F3', QualityNotification: '200000999' },
    });
    expect(readOnly.json.error.message).toBe("Property 'QualityNotification' is read-only");
    // Edm.Decimal is a JSON number (no IEEE754Compatible).
    const decimalAsString = await withItem({ ...defect('x'), InternalDefectiveQuantity: '3' });
    expect([decimalAsString.status, decimalAsString.json.error.target]).toEqual([400, 'InternalDefectiveQuantity']);
    const queries: [string, string][] = [
      [`$filter=${encodeURIComponent("Colour eq 'red'")}`, 'Colour'],
      ['$select=QualityNotification,Colour', 'Colour'],
      ['$expand=to_QualityNotificationItem', 'to_QualityNotificationItem'],
      ['$orderby=Colour desc', 'Colour'],
      ['$count=true', '$count'],
      ['$inlinecount=allpages', '$inlinecount'],
      ['colour=red', 'colour'],
    ];
    for (const [query, named] of queries) {
      const res = await call('GET', qn(`QualityNotification?${query}`));
      expect({ query, status: res.status, message: res.json.error.message }).toEqual({
        query,
        status: 400,
        message: expect.stringContaining(named),
      });
    }
    const unsupported = await call('GET', qn(`QualityNotification?$filter=${encodeURIComponent("Material ne 'X'")}`));
    expect(unsupported.status).toBe(400);
    expect(unsupported.json.error.message).toContain('Unsupported $filter');
    expect(await counts()).toEqual(before);
  });

  it('supports $select, $orderby and $top on confirmed properties', async () => {
    const b = await newBatch();
    const first = (await raise(b)).json.QualityNotification as string;
    const second = (await raise(b)).json.QualityNotification as string;
    const filter = encodeURIComponent(`Batch eq '${b.batch}' and Material eq '${b.material}'`);
    const res = await call(
      'GET',
      qn(`QualityNotification?$filter=${filter}&$select=NotificationType&$orderby=QualityNotification desc&$top=1`),
    );
    expect(res.json.value).toEqual([
      { '@odata.etag': expect.any(String), QualityNotification: second, NotificationType: 'F3' },
    ]);
    expect(first).not.toBe(second);
  });

  it('refuses unknown materials, notification types and notifications, and items outside their composition', async () => {
    const before = await counts();
    const material = await call('POST', qn('QualityNotification'), {
      session,
      body: { NotificationType: 'F3', Material: 'NO-SUCH-MATERIAL', Plant: '1010' },
    });
    expect(material.status).toBe(400);
    expect(material.json.error).toMatchObject({ code: 'M3/305', message: expect.stringContaining('NO-SUCH-MATERIAL') });
    const type = await call('POST', qn('QualityNotification'), { session, body: { NotificationType: 'ZZ' } });
    expect(type.status).toBe(400);
    expect((await complete('999999999', '*')).status).toBe(404);
    const orphan = await call('POST', qn("QualityNotification('999999999')/_QualityNotificationItem"), {
      session,
      body: defect('orphan'),
    });
    expect([orphan.status, orphan.json.error.code]).toEqual([404, 'ZHFS_SIM/012']);
    expect((await call('GET', qn("QualityNotification('999999999')/_QualityNotificationItem"))).status).toBe(404);
    const direct = await call('POST', qn('QualityNotificationItem'), { session, body: defect('direct') });
    expect(direct.status).toBe(405);
    expect(await counts()).toEqual(before);
  });

  it('does not de-duplicate: the same POST twice makes two notifications', async () => {
    const before = await counts();
    const b = await newBatch();
    const first = await raise(b);
    const second = await raise(b);
    expect(first.json.QualityNotification).not.toBe(second.json.QualityNotification);
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
