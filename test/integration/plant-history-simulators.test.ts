import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { connectAsync, type MqttClient } from 'mqtt';
import type { Pool } from 'pg';
import { findFreePort } from '../../infra/local/managed-process';
import { mesProductionAccount, startMosquitto, type MosquittoBroker } from '../../infra/local/mqtt-broker';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { ProductionPerformanceEvent } from '../../infra/simulators/mes/production-event.schema';
import { loadIntoSimulators } from '../../infra/simulators/plant-history/load';
import { generatePlantHistory, type GroundTruth } from '../../infra/simulators/plant-history/plant-history';
import { MATERIAL_DOCUMENT_PAGE_SIZE } from '../../infra/simulators/sap-s4/material-document.service';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { sapRequestViolations } from '../support/sap-metadata-check';
import { testPool } from '../support/test-env';

// A generated plant history loaded into the SAP and MES simulators over HTTP, read back the way a genealogy sync
// reads it: SAP documents by OData filters and pages, MES production events by REST cursor and on a real broker.
const suffix = randomBytes(4).toString('hex');
const sapSchema = `sap_ph_${suffix}`;
const mesSchema = `mes_ph_${suffix}`;
const credentials = { username: 'HOLDFAST_COMM', password: `pw-${suffix}` };
const AUTH = `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
const mesLogin = { username: 'mes-sim', password: `mes-${suffix}` };
const watcherLogin = { username: 'uns-watcher', password: `watch-${suffix}` };

// Big enough for more material documents than one server page.
const history = generatePlantHistory({
  seed: 7,
  parts: 6000,
  lots: 2600,
  supplierLots: 200,
  days: 60,
  gaps: { 'lot-without-source': 1, 'batch-never-received': 1 },
  outOfOrderEvents: 5,
  replayedEvents: 4,
});
const truth: GroundTruth = history.groundTruth();
const published = [...history.productionEvents()];

let pool: Pool;
let sap: FastifyInstance;
let mes: FastifyInstance;
let sapUrl: string;
let mesUrl: string;
let broker: MosquittoBroker;
let watcher: MqttClient;
let workDir: string;
const seen: { topic: string; event: unknown }[] = [];
const sent: string[] = [];

async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** Records of a V2 answer, as the assertions read them. */
type Row = Record<string, string>;
interface V2Answer {
  d: Row & { results: Row[]; __next?: string };
  error: { code: string };
}

/** A V2 read; the request is kept for the metadata check at the end. */
async function odata(path: string): Promise<{ status: number; json: V2Answer }> {
  const url = path.startsWith('http') ? path : `${sapUrl}/sap/opu/odata/sap/${path}`;
  sent.push(new URL(url).pathname + new URL(url).search);
  const res = await fetch(url, { headers: { authorization: AUTH, accept: 'application/json' } });
  return { status: res.status, json: (await res.json()) as V2Answer };
}

const q = (text: string) => encodeURIComponent(text);

beforeAll(async () => {
  pool = testPool();
  workDir = await mkdtemp(join(tmpdir(), 'plant-history-'));
  // Mosquitto runs as its own OS user and must be able to enter the directory.
  await chmod(workDir, 0o711);
  broker = await startMosquitto({
    port: await findFreePort(),
    dataDir: join(workDir, 'mosquitto'),
    access: {
      accounts: [mesProductionAccount(mesLogin), { ...watcherLogin, publish: [], subscribe: ['plant/#'] }],
    },
  });
  watcher = await connectAsync(broker.url, { ...watcherLogin, clientId: `watch-${suffix}`, clean: true });
  watcher.on('message', (topic, payload) => seen.push({ topic, event: JSON.parse(payload.toString()) }));
  await watcher.subscribeAsync('plant/+/+/+/production/performance', { qos: 1 });

  sap = await buildSapS4Simulator({ pool, schema: sapSchema, credentials });
  mes = await buildMesSimulator({
    pool,
    schema: mesSchema,
    productionEventBroker: { url: broker.url, ...mesLogin, clientId: `mes-${suffix}` },
  });
  sapUrl = await listen(sap);
  mesUrl = await listen(mes);
  await loadIntoSimulators(history, { sap: { url: sapUrl, ...credentials }, mes: { url: mesUrl }, chunk: 1000 });
}, 120_000);

afterAll(async () => {
  await watcher?.endAsync();
  await mes?.close();
  await sap?.close();
  await broker?.stop();
  await pool?.query(`DROP SCHEMA IF EXISTS "${sapSchema}" CASCADE`);
  await pool?.query(`DROP SCHEMA IF EXISTS "${mesSchema}" CASCADE`);
  await pool?.end();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const lot = (id: string) => truth.lots.find((l) => l.lotId === id)!;

describe('SAP: material documents of the history', () => {
  test('a goods receipt from a purchase order names supplier, order and batch', async () => {
    const received = truth.lots.find(
      (l) => l.level === 'supplier' && !truth.expectedGaps.some((g) => g.lotId === l.lotId),
    )!;
    const { status, json } = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q(`GoodsMovementType eq '101' and Batch eq '${received.lotId}'`)}`,
    );
    expect(status).toBe(200);
    expect(json.d.results).toHaveLength(1);
    expect(json.d.results[0]).toMatchObject({
      Batch: received.lotId,
      Supplier: received.supplier,
      PurchaseOrder: received.purchaseOrder,
      PurchaseOrderItem: '00010',
      QuantityInEntryUnit: `${received.quantity}.000`,
    });
  });

  test('issues to a production order (261) are the lot’s parents; its receipt (101) names the order', async () => {
    const made = truth.lots.find(
      (l) => l.origin === 'production' && l.parents.length > 1 && !truth.expectedGaps.some((g) => g.lotId === l.lotId),
    )!;
    const issued = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q(`ManufacturingOrder eq '${made.workOrder}' and GoodsMovementType eq '261'`)}`,
    );
    const parents = issued.json.d.results.map((i) => ({
      lotId: i.Batch,
      quantity: Number(i.QuantityInEntryUnit),
    }));
    expect(parents).toEqual(made.parents.map((p) => ({ lotId: p.lotId, quantity: p.quantity })));
    const receipt = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q(`ManufacturingOrder eq '${made.workOrder}' and GoodsMovementType eq '101'`)}`,
    );
    expect(receipt.json.d.results.map((i) => i.Batch)).toEqual([made.lotId]);
  });

  test('a batch split is a 309 from the source batch to each new batch', async () => {
    const child = truth.lots.find((l) => l.origin === 'split')!;
    const { json } = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q(`GoodsMovementType eq '309' and IssgOrRcvgBatch eq '${child.lotId}'`)}`,
    );
    expect(json.d.results).toHaveLength(1);
    expect(json.d.results[0]).toMatchObject({ Batch: child.parents[0]!.lotId, IssgOrRcvgBatch: child.lotId });
  });

  test('paging by document number with $orderby and by __next both see every document once', async () => {
    const total = [...history.materialDocuments()].length;
    expect(total).toBeGreaterThan(MATERIAL_DOCUMENT_PAGE_SIZE);
    // Cursor paging, as a sync does: the last number seen is the next page's lower bound.
    const byCursor: string[] = [];
    let after = '0';
    for (;;) {
      const { json } = await odata(
        `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader?$filter=${q(`MaterialDocument gt '${after}'`)}&$orderby=MaterialDocument&$top=2000`,
      );
      const page = json.d.results;
      if (page.length === 0) break;
      byCursor.push(...page.map((d) => d.MaterialDocument!));
      after = page.at(-1)!.MaterialDocument!;
    }
    expect(byCursor).toHaveLength(total);
    expect(new Set(byCursor).size).toBe(total);
    // Server-driven paging: no $top, the answer carries __next until the last page.
    const byNext: string[] = [];
    let next: string | undefined =
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader?$orderby=${q('CreationDate,CreationTime')}`;
    let pages = 0;
    while (next) {
      const { json }: { json: V2Answer } = await odata(next);
      byNext.push(...json.d.results.map((d) => d.MaterialDocument!));
      next = json.d.__next;
      pages++;
    }
    expect(pages).toBe(Math.ceil(total / MATERIAL_DOCUMENT_PAGE_SIZE));
    expect([...byNext].sort()).toEqual([...byCursor].sort());
  });

  test('documents created in a window: CreationDate ranges with datetime literals', async () => {
    const docs = [...history.materialDocuments()];
    const day = docs[Math.floor(docs.length / 2)]!.createdAt.slice(0, 10);
    const expected = docs.filter((d) => d.createdAt.slice(0, 10) === day).length;
    const { json } = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentHeader?$filter=${q(`CreationDate ge datetime'${day}T00:00:00' and CreationDate le datetime'${day}T00:00:00'`)}&$top=5000`,
    );
    expect(json.d.results).toHaveLength(expected);
  });

  test('a filter it cannot evaluate is refused, not ignored', async () => {
    const { status, json } = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q("Batch eq 'A' or Batch eq 'B'")}`,
    );
    expect(status).toBe(400);
    expect(json.error.code).toBe('/IWBEP/CM_MGW_RT/005');
  });
});

describe('SAP: outbound deliveries', () => {
  test('a delivery names sold-to and ship-to, its items the shipped batches; 601 issues name the delivery', async () => {
    const delivery = truth.deliveries.find((d) => d.lots.length > 1) ?? truth.deliveries[0]!;
    const { status, json } = await odata(
      `API_OUTBOUND_DELIVERY_SRV/A_OutbDeliveryHeader('${delivery.delivery}')?$expand=to_DeliveryDocumentItem`,
    );
    expect(status).toBe(200);
    expect(json.d).toMatchObject({
      DeliveryDocument: delivery.delivery,
      SoldToParty: delivery.soldToParty,
      ShipToParty: delivery.shipToParty,
      OverallGoodsMovementStatus: 'C',
    });
    const batches = (
      json.d as unknown as { to_DeliveryDocumentItem: { results: Row[] } }
    ).to_DeliveryDocumentItem.results.map((i) => i.Batch);
    expect([...new Set(batches)]).toEqual(delivery.lots);
    for (const item of (json.d as unknown as { to_DeliveryDocumentItem: { results: Row[] } }).to_DeliveryDocumentItem
      .results) {
      expect(lot(item.Batch!).deliveries.map((d) => d.quantity)).toContain(Number(item.ActualDeliveryQuantity));
    }
    const issues = await odata(
      `API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q(`Delivery eq '${delivery.delivery}' and GoodsMovementType eq '601'`)}`,
    );
    expect(issues.json.d.results.map((i) => i.Batch)).toEqual(batches);
  });

  test('items filter by batch; headers by ship-to party; $metadata lists both sets', async () => {
    const shipped = truth.lots.find((l) => l.deliveries.length > 0)!;
    const items = await odata(
      `API_OUTBOUND_DELIVERY_SRV/A_OutbDeliveryItem?$filter=${q(`Batch eq '${shipped.lotId}'`)}`,
    );
    expect(items.json.d.results.map((i) => i.DeliveryDocument)).toEqual(shipped.deliveries.map((d) => d.delivery));
    const shipTo = truth.deliveries[0]!.shipToParty;
    const headers = await odata(
      `API_OUTBOUND_DELIVERY_SRV/A_OutbDeliveryHeader?$filter=${q(`ShipToParty eq '${shipTo}'`)}`,
    );
    expect(headers.json.d.results.map((d) => d.DeliveryDocument)).toEqual(
      truth.deliveries.filter((d) => d.shipToParty === shipTo).map((d) => d.delivery),
    );
    const res = await fetch(`${sapUrl}/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV/$metadata`, {
      headers: { authorization: AUTH },
    });
    const xml = await res.text();
    expect(xml).toContain('EntitySet Name="A_OutbDeliveryHeader"');
    expect(xml).toContain('EntitySet Name="A_OutbDeliveryItem"');
  });

  test('every request these reads sent names only what metadata.ts lists', () => {
    expect(sent.length).toBeGreaterThan(5);
    expect(sent.flatMap((url) => sapRequestViolations({ method: 'GET', url }))).toEqual([]);
  });
});

describe('SAP: history load refusals', () => {
  test('an issue to production without its order is refused, naming the field, and nothing is written', async () => {
    const res = await fetch(`${sapUrl}/__sim/history`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        materialDocuments: [
          {
            createdAt: '2026-02-01T10:00:00Z',
            header: { GoodsMovementCode: '03' },
            items: [
              {
                Material: 'CMP-0001',
                Plant: '1010',
                StorageLocation: '0001',
                Batch: 'ZZZ',
                GoodsMovementType: '261',
                QuantityInEntryUnit: '1',
                EntryUnit: 'PC',
              },
            ],
          },
        ],
      }),
    });
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { errors: { path: string }[] };
    expect(problem.errors[0]!.path).toBe('materialDocuments[0].items[0].ManufacturingOrder');
    const { json } = await odata(`API_MATERIAL_DOCUMENT_SRV/A_MaterialDocumentItem?$filter=${q("Batch eq 'ZZZ'")}`);
    expect(json.d.results).toEqual([]);
  });
});

describe('MES: production events', () => {
  test('the REST cursor lists every event once, in the order the MES received them', async () => {
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const res = await fetch(`${mesUrl}/api/v1/production-events?limit=700${after ? `&after=${after}` : ''}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { items: { eventId: string }[]; nextCursor: string | null };
      if (page.items.length === 0) {
        expect(page.nextCursor).toBe(after ?? null);
        break;
      }
      ids.push(...page.items.map((e) => e.eventId));
      after = page.nextCursor!;
    }
    const firstArrivals = [...new Set(published.map((e) => e.eventId))];
    expect(ids).toEqual(firstArrivals);
    const bad = await fetch(`${mesUrl}/api/v1/production-events?after=abc`);
    expect(bad.status).toBe(400);
  });

  test('each event reached the line’s UNS topic, replays included, in the schema’s shape', async () => {
    const deadline = Date.now() + 30_000;
    while (seen.length < published.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(seen).toHaveLength(published.length);
    for (const [i, message] of seen.entries()) {
      const event = ProductionPerformanceEvent.parse(message.event);
      const { site, area, line } = event.hierarchyScope;
      expect(message.topic).toBe(`plant/${site}/${area}/${line}/production/performance`);
      expect(event.eventId).toBe(published[i]!.eventId);
    }
  });

  test('the produced lots exist in the MES for holds, booked to their work order', async () => {
    const made = truth.lots.find((l) => l.level === 'finished' && l.origin === 'production')!;
    const res = await fetch(`${mesUrl}/api/v1/lots/${made.lotId}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ lotId: made.lotId, workOrder: made.workOrder, quantity: made.quantity });
  });
});
