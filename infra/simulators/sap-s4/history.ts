import type pg from 'pg';
import { z } from 'zod';
import { withTransaction } from '../../db/pool';
import { entitySetOf, MATERIAL_DOCUMENT_SERVICE, OUTBOUND_DELIVERY_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { checkPayload, parseODataDate, SapODataError, type ODataValue } from './odata';
import { quoteSchema, STOCK_TYPE } from './sap-s4.schema';

/**
 * Loads a plant's past into the simulator in bulk (the plant history generator's documents): material documents as
 * they were posted (goods receipts, issues to and receipts from production orders, batch transfers, goods issues for
 * deliveries), outbound deliveries and the stock left at the end. History is recorded, not replayed: no stock moves
 * per item, the final stock is given instead. Every property is checked against the service metadata, as a POST is.
 * Thousands of rows go in per statement (unnest), so a few hundred thousand documents load in seconds.
 */

const HEADER_SET = entitySetOf(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentHeader');
const ITEM_SET = entitySetOf(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentItem');
const DELIVERY_SET = entitySetOf(OUTBOUND_DELIVERY_SERVICE, 'A_OutbDeliveryHeader');
const DELIVERY_ITEM_SET = entitySetOf(OUTBOUND_DELIVERY_SERVICE, 'A_OutbDeliveryItem');

const Properties = z.record(z.string(), z.unknown());
const Instant = z.iso.datetime({ offset: true });

/** One posted document: its creation instant (CreationDate/CreationTime) and the properties SAP would return. */
export const HistoryMaterialDocument = z.strictObject({
  createdAt: Instant,
  header: Properties,
  items: z.array(Properties).min(1),
});
export type HistoryMaterialDocument = z.infer<typeof HistoryMaterialDocument>;

export const HistoryOutboundDelivery = z.strictObject({
  createdAt: Instant,
  header: Properties,
  items: z.array(Properties).min(1),
});
export type HistoryOutboundDelivery = z.infer<typeof HistoryOutboundDelivery>;

/** Unrestricted stock of a batch at the end of the history; a received batch names its purchase order item. */
export const HistoryStock = z.strictObject({
  material: z.string().min(1).max(40),
  plant: z.string().min(1).max(4),
  storageLocation: z.string().min(1).max(4),
  batch: z.string().min(1).max(10),
  quantity: z.number().nonnegative(),
  unit: z.string().min(1).max(3),
  receipt: z
    .strictObject({
      purchaseOrder: z.string().min(1).max(10),
      purchaseOrderItem: z.string().regex(/^\d{5}$/, 'five digits, e.g. 00010'),
      supplier: z.string().min(1).max(10),
    })
    .optional(),
});
export type HistoryStock = z.infer<typeof HistoryStock>;

export const HistoryLoad = z.strictObject({
  materialDocuments: z.array(HistoryMaterialDocument).default([]),
  outboundDeliveries: z.array(HistoryOutboundDelivery).default([]),
  stock: z.array(HistoryStock).default([]),
});
export type HistoryLoad = z.input<typeof HistoryLoad>;

/** A document the load refuses; `field` names it (`materialDocuments[3].items[0].ManufacturingOrder`). */
export class HistoryLoadError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * What each movement type of a history must name, so a genealogy can follow it: a receipt its purchase order or
 * production order, an issue to production its order, a batch transfer its receiving batch, a goods issue for a
 * delivery the delivery. Movement types not listed here are refused.
 */
const HISTORY_REFERENCES: Readonly<Record<string, readonly (readonly string[])[]>> = {
  // Goods receipt: from a purchase order (with its item) or from a production order.
  '101': [['PurchaseOrder', 'PurchaseOrderItem'], ['ManufacturingOrder']],
  '261': [['ManufacturingOrder']],
  // Transfer posting batch to batch (a split or merge of lots); 311 between storage locations.
  '309': [['IssgOrRcvgBatch']],
  '311': [['IssuingOrReceivingStorageLoc']],
  '601': [['Delivery', 'DeliveryItem']],
  '344': [[]],
  '343': [[]],
  '555': [[]],
  '122': [['PurchaseOrder', 'PurchaseOrderItem']],
};

const REQUIRED_ITEM_PROPERTIES = [
  'Material',
  'Plant',
  'StorageLocation',
  'Batch',
  'GoodsMovementType',
  'QuantityInEntryUnit',
  'EntryUnit',
] as const;

const ROWS_PER_STATEMENT = 2000;

const text = (p: Record<string, ODataValue>, name: string): string => {
  const value = p[name];
  return typeof value === 'string' ? value : '';
};

/** checkPayload with the refusal turned into a HistoryLoadError naming the field. */
function checked(set: Parameters<typeof checkPayload>[0], body: unknown, where: string): Record<string, ODataValue> {
  try {
    return checkPayload(set, body).properties;
  } catch (err) {
    if (!(err instanceof SapODataError)) throw err;
    const property = /Property '([^']+)'/.exec(err.message)?.[1];
    throw new HistoryLoadError(property ? `${where}.${property}` : where, err.message);
  }
}

const isoDate = (value: ODataValue | undefined, fallback: Date, where: string): string => {
  if (value === undefined) return fallback.toISOString().slice(0, 10);
  try {
    return parseODataDate(value, where).toISOString().slice(0, 10);
  } catch {
    throw new HistoryLoadError(where, 'expected Edm.DateTime');
  }
};

interface PreparedDocument {
  createdAt: string;
  header: Record<string, ODataValue>;
  postingDate: string;
  documentDate: string;
  items: Record<string, ODataValue>[];
}

function prepareDocument(doc: HistoryMaterialDocument, where: string): PreparedDocument {
  const header = checked(HEADER_SET, doc.header, `${where}.header`);
  if (!text(header, 'GoodsMovementCode')) {
    throw new HistoryLoadError(`${where}.header.GoodsMovementCode`, 'is required');
  }
  const createdAt = new Date(doc.createdAt);
  const postingDate = isoDate(header.PostingDate, createdAt, `${where}.header.PostingDate`);
  const documentDate = isoDate(
    header.DocumentDate,
    new Date(`${postingDate}T00:00:00Z`),
    `${where}.header.DocumentDate`,
  );
  const items = doc.items.map((raw, i) => {
    const at = `${where}.items[${i}]`;
    const item = checked(ITEM_SET, raw, at);
    for (const name of REQUIRED_ITEM_PROPERTIES) {
      if (!text(item, name)) throw new HistoryLoadError(`${at}.${name}`, 'is required');
    }
    const movementType = text(item, 'GoodsMovementType');
    const alternatives = HISTORY_REFERENCES[movementType];
    if (!alternatives) {
      throw new HistoryLoadError(`${at}.GoodsMovementType`, `movement type ${movementType} is not simulated`);
    }
    if (!alternatives.some((names) => names.every((name) => text(item, name)))) {
      const wanted = alternatives.map((names) => names.join(' and ')).join(' or ');
      throw new HistoryLoadError(`${at}.${alternatives[0]![0]}`, `movement type ${movementType} needs ${wanted}`);
    }
    if (Number(text(item, 'QuantityInEntryUnit')) <= 0) {
      throw new HistoryLoadError(`${at}.QuantityInEntryUnit`, 'must be positive');
    }
    return item;
  });
  return { createdAt: createdAt.toISOString(), header, postingDate, documentDate, items };
}

function chunks<T>(values: T[], size = ROWS_PER_STATEMENT): T[][] {
  const result: T[][] = [];
  for (let i = 0; i < values.length; i += size) result.push(values.slice(i, i + size));
  return result;
}

export interface LoadedHistory {
  /** The numbers the simulator gave the material documents, in the order they were given. */
  materialDocuments: { year: string; number: string }[];
  outboundDeliveries: number;
  stock: number;
}

/**
 * Loads `history` in one transaction: all of it or, on a refusal, nothing. Material documents are numbered from the
 * simulator's sequence in the order given, so a history loaded in posting order pages by number as by time.
 */
export async function loadHistory(
  pool: pg.Pool,
  schema: string,
  history: HistoryLoad,
  user = 'HISTORY',
): Promise<LoadedHistory> {
  const s = quoteSchema(schema);
  const parsed = HistoryLoad.parse(history);
  const documents = parsed.materialDocuments.map((doc, i) => prepareDocument(doc, `materialDocuments[${i}]`));
  const deliveries = parsed.outboundDeliveries.map((delivery, i) => {
    const where = `outboundDeliveries[${i}]`;
    const header = checked(DELIVERY_SET, delivery.header, `${where}.header`);
    for (const name of ['DeliveryDocument', 'SoldToParty', 'ShipToParty', 'DeliveryDate']) {
      if (header[name] === undefined || header[name] === '') {
        throw new HistoryLoadError(`${where}.header.${name}`, 'is required');
      }
    }
    const items = delivery.items.map((raw, j) => {
      const item = checked(DELIVERY_ITEM_SET, raw, `${where}.items[${j}]`);
      for (const name of [
        'DeliveryDocumentItem',
        'Material',
        'Plant',
        'ActualDeliveryQuantity',
        'DeliveryQuantityUnit',
      ]) {
        if (!text(item, name)) throw new HistoryLoadError(`${where}.items[${j}].${name}`, 'is required');
      }
      return item;
    });
    return { createdAt: new Date(delivery.createdAt).toISOString(), header, items, where };
  });

  return withTransaction(pool, async (client) => {
    const numbers: { year: string; number: string }[] = [];
    for (const batch of chunks(documents)) numbers.push(...(await insertDocuments(client, s, batch, user)));
    for (const batch of chunks(deliveries)) await insertDeliveries(client, s, batch, user);
    for (const batch of chunks(parsed.stock)) await upsertStock(client, s, batch);
    return { materialDocuments: numbers, outboundDeliveries: deliveries.length, stock: parsed.stock.length };
  });
}

const ASSIGNED_KEYS = ['MaterialDocumentYear', 'MaterialDocument', 'MaterialDocumentItem'];
const withoutKeys = (p: Record<string, ODataValue>) =>
  Object.fromEntries(Object.entries(p).filter(([name]) => !ASSIGNED_KEYS.includes(name)));

async function insertDocuments(
  client: pg.PoolClient,
  s: string,
  documents: PreparedDocument[],
  user: string,
): Promise<{ year: string; number: string }[]> {
  const { rows } = await client.query<{ n: string }>(
    `SELECT nextval('${s}.material_document_number')::text AS n FROM generate_series(1, $1::int)`,
    [documents.length],
  );
  const numbered = documents.map((doc, i) => ({ ...doc, year: doc.postingDate.slice(0, 4), number: rows[i]!.n }));
  await client.query(
    `INSERT INTO ${s}.material_document
       (document_year, material_document, goods_movement_code, header_text, reference_document,
        posting_date, document_date, created_by_user, created_at, properties)
     SELECT y, n, c, t, r, p::date, d::date, $9, a::timestamptz, props::jsonb
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                   $10::text[]) AS u(y, n, c, t, r, p, d, a, props)`,
    [
      numbered.map((d) => d.year),
      numbered.map((d) => d.number),
      numbered.map((d) => text(d.header, 'GoodsMovementCode')),
      numbered.map((d) => text(d.header, 'MaterialDocumentHeaderText')),
      numbered.map((d) => text(d.header, 'ReferenceDocument')),
      numbered.map((d) => d.postingDate),
      numbered.map((d) => d.documentDate),
      numbered.map((d) => d.createdAt),
      user,
      numbered.map((d) => JSON.stringify(withoutKeys(d.header))),
    ],
  );
  const items = numbered.flatMap((d) =>
    d.items.map((item, i) => ({ year: d.year, number: d.number, item: String(i + 1).padStart(4, '0'), p: item })),
  );
  for (const batch of chunks(items, ROWS_PER_STATEMENT * 2)) {
    const column = (name: string) => batch.map((i) => text(i.p, name));
    await client.query(
      `INSERT INTO ${s}.material_document_item
         (document_year, material_document, item, material, plant, storage_location, batch, goods_movement_type,
          stock_type, supplier, quantity, unit, item_text, purchase_order, purchase_order_item, properties)
       SELECT y, n, i, m, pl, sl, b, mt, $16, su, q::numeric, un, tx, po, poi, props::jsonb
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
           AS u(y, n, i, m, pl, sl, b, mt, su, q, un, tx, po, poi, props)`,
      [
        batch.map((i) => i.year),
        batch.map((i) => i.number),
        batch.map((i) => i.item),
        column('Material'),
        column('Plant'),
        column('StorageLocation'),
        column('Batch'),
        column('GoodsMovementType'),
        column('Supplier'),
        column('QuantityInEntryUnit'),
        column('EntryUnit'),
        column('MaterialDocumentItemText'),
        column('PurchaseOrder'),
        column('PurchaseOrderItem'),
        batch.map((i) => JSON.stringify(withoutKeys(i.p))),
        STOCK_TYPE.unrestricted,
      ],
    );
  }
  return numbered.map((d) => ({ year: d.year, number: d.number }));
}

const DELIVERY_COLUMNS = ['DeliveryDocument', 'SoldToParty', 'ShipToParty', 'ShippingPoint', 'DeliveryDate'];
const DELIVERY_ITEM_COLUMNS = [
  'DeliveryDocument',
  'DeliveryDocumentItem',
  'Material',
  'Plant',
  'StorageLocation',
  'Batch',
  'ActualDeliveryQuantity',
  'DeliveryQuantityUnit',
  'ActualDeliveredQtyInBaseUnit',
  'BaseUnit',
];
/** Properties the simulator derives (status, creation) rather than keeps as sent. */
const DERIVED = [
  'OverallGoodsMovementStatus',
  'CreationDate',
  'CreationTime',
  'CreatedByUser',
  'ActualGoodsMovementDate',
];

const omit = (p: Record<string, ODataValue>, names: string[]) =>
  Object.fromEntries(Object.entries(p).filter(([name]) => !names.includes(name)));

async function insertDeliveries(
  client: pg.PoolClient,
  s: string,
  deliveries: { createdAt: string; header: Record<string, ODataValue>; items: Record<string, ODataValue>[] }[],
  user: string,
): Promise<void> {
  const date = (v: ODataValue | undefined) =>
    v === undefined ? null : parseODataDate(v, 'date').toISOString().slice(0, 10);
  await client.query(
    `INSERT INTO ${s}.outbound_delivery
       (delivery_document, sold_to_party, ship_to_party, shipping_point, delivery_date, goods_movement_date,
        created_by_user, created_at, properties)
     SELECT d, so, sh, sp, dd::date, gm::date, $9, a::timestamptz, props::jsonb
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
         AS u(d, so, sh, sp, dd, gm, a, props)`,
    [
      deliveries.map((d) => text(d.header, 'DeliveryDocument')),
      deliveries.map((d) => text(d.header, 'SoldToParty')),
      deliveries.map((d) => text(d.header, 'ShipToParty')),
      deliveries.map((d) => text(d.header, 'ShippingPoint')),
      deliveries.map((d) => date(d.header.DeliveryDate)),
      deliveries.map((d) => date(d.header.ActualGoodsMovementDate)),
      deliveries.map((d) => d.createdAt),
      deliveries.map((d) => JSON.stringify(omit(d.header, [...DELIVERY_COLUMNS, ...DERIVED]))),
      user,
    ],
  );
  const items = deliveries.flatMap((d) =>
    d.items.map((item) => ({ ...item, DeliveryDocument: text(d.header, 'DeliveryDocument') })),
  );
  const column = (name: string) => items.map((i) => text(i, name));
  await client.query(
    `INSERT INTO ${s}.outbound_delivery_item
       (delivery_document, delivery_item, material, plant, storage_location, batch, quantity, unit, properties)
     SELECT d, i, m, p, sl, b, q::numeric, un, props::jsonb
       FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                   $9::text[]) AS u(d, i, m, p, sl, b, q, un, props)`,
    [
      column('DeliveryDocument'),
      column('DeliveryDocumentItem'),
      column('Material'),
      column('Plant'),
      column('StorageLocation'),
      column('Batch'),
      column('ActualDeliveryQuantity'),
      column('DeliveryQuantityUnit'),
      items.map((i) => JSON.stringify(omit(i, DELIVERY_ITEM_COLUMNS))),
    ],
  );
}

async function upsertStock(client: pg.PoolClient, s: string, rows: HistoryStock[]): Promise<void> {
  const column = <K extends keyof HistoryStock>(name: K) => rows.map((r) => r[name]);
  await client.query(
    `INSERT INTO ${s}.stock (material, plant, storage_location, batch, stock_type, quantity, unit)
     SELECT m, p, sl, b, $7, q, u FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::text[])
       AS x(m, p, sl, b, q, u)
     ON CONFLICT (material, plant, storage_location, batch, stock_type)
     DO UPDATE SET quantity = EXCLUDED.quantity, unit = EXCLUDED.unit`,
    [
      column('material'),
      column('plant'),
      column('storageLocation'),
      column('batch'),
      column('quantity'),
      column('unit'),
      STOCK_TYPE.unrestricted,
    ],
  );
  const received = rows.filter((r) => r.receipt);
  if (received.length === 0) return;
  await client.query(
    `INSERT INTO ${s}.batch_receipt (material, plant, batch, purchase_order, purchase_order_item, supplier)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
     ON CONFLICT (material, plant, batch) DO UPDATE SET purchase_order = EXCLUDED.purchase_order,
       purchase_order_item = EXCLUDED.purchase_order_item, supplier = EXCLUDED.supplier`,
    [
      received.map((r) => r.material),
      received.map((r) => r.plant),
      received.map((r) => r.batch),
      received.map((r) => r.receipt!.purchaseOrder),
      received.map((r) => r.receipt!.purchaseOrderItem),
      received.map((r) => r.receipt!.supplier),
    ],
  );
}
