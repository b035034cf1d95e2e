import type pg from 'pg';
import { entitySetOf, MATERIAL_DOCUMENT_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { checkMasterData, checkPurchaseOrderReceipt } from './master-data';
import {
  checkPayload,
  keyPredicateText,
  parseODataDate,
  SapODataError,
  toODataDate,
  toODataDecimal,
  type ODataValue,
  type QueryOptions,
} from './odata';
import {
  checkExpand,
  filterSql,
  navigationArray,
  notFound,
  orderBySql,
  pagingSql,
  type ColumnSpec,
  requireKey,
  type Entity,
  type ODataService,
  type ServiceContext,
} from './odata-service';
import { SapMessages } from './sap-messages';
import { withTransaction } from '../../db/pool';
import { STOCK_TYPE, type StockType } from './sap-s4.schema';

/**
 * API_MATERIAL_DOCUMENT_SRV (OData V2, SAP_COM_0108): goods movements posted as a header with items (deep insert).
 * Each POST writes the document and moves the stock in one transaction; a refusal writes nothing. Like SAP, a repeated
 * POST is a second document: de-duplication is the caller's job. Payloads are checked against the checked-in metadata
 * (infra/vendor-apis/sap-s4/metadata.ts): every declared property is accepted and kept, any other is refused.
 */
const ITEMS_NAV = 'to_MaterialDocumentItem';
/** Rows per answer when the client asks for more (or sets no `$top`); the rest follows `__next`. */
export const MATERIAL_DOCUMENT_PAGE_SIZE = 5000;
const HEADER_SET = entitySetOf(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentHeader');
const ITEM_SET = entitySetOf(MATERIAL_DOCUMENT_SERVICE, 'A_MaterialDocumentItem');

/** What the simulator needs of every item to move batch stock. */
const REQUIRED_ITEM_PROPERTIES = [
  'Material',
  'Plant',
  'StorageLocation',
  'Batch',
  'GoodsMovementType',
  'QuantityInEntryUnit',
  'EntryUnit',
] as const;

/**
 * Properties that refer to another document, account or location. Each movement type takes only those in its rule;
 * the API refuses the others before it posts (MM_IM_ODATA_API_MDOC/011).
 */
const REFERENCE_PROPERTIES = [
  'GoodsMovementRefDocType',
  'PurchaseOrder',
  'PurchaseOrderItem',
  'Supplier',
  'Customer',
  'SalesOrder',
  'SalesOrderItem',
  'SalesOrderScheduleLine',
  'ManufacturingOrder',
  'ManufacturingOrderItem',
  'Delivery',
  'DeliveryItem',
  'Reservation',
  'ReservationItem',
  'CostCenter',
  'WBSElement',
  'GLAccount',
  'IssuingOrReceivingPlant',
  'IssuingOrReceivingStorageLoc',
  'IssgOrRcvgMaterial',
  'IssgOrRcvgBatch',
] as const;

/** A stock-type change stays in place: its receiving side, when sent, is the item's own plant, location, batch. */
const SAME_PLACE: Readonly<Record<string, string>> = {
  IssuingOrReceivingPlant: 'Plant',
  IssuingOrReceivingStorageLoc: 'StorageLocation',
  IssgOrRcvgMaterial: 'Material',
  IssgOrRcvgBatch: 'Batch',
};

interface MovementRule {
  /** The GoodsMovementCode (BAPI_GOODSMVT_CREATE GM_CODE) the movement type is posted with. */
  code: string;
  /** Stock type the quantity leaves. */
  from: StockType;
  /** Stock type it enters; absent when it leaves the plant's stock (scrap, return to vendor). */
  to?: StockType;
  /** Reference properties the movement cannot do without; a value in `fixed` must be exactly that. */
  required: readonly string[];
  fixed?: Readonly<Record<string, string>>;
  /** Further reference properties that fit the movement. */
  fits: readonly string[];
}

/**
 * 344/343 are transfer postings between stock types (04). Scrapping from blocked stock, 555, is a goods issue (03). A
 * return to the vendor, 122, refers to the purchase order the batch was received on (01 with GoodsMovementRefDocType
 * B). Holdfast returns lots it blocked, so 122 takes blocked stock unless the item names another stock type.
 */
const MOVEMENT_RULES: Readonly<Record<string, MovementRule>> = {
  '344': {
    code: '04',
    from: STOCK_TYPE.unrestricted,
    to: STOCK_TYPE.blocked,
    required: [],
    fits: Object.keys(SAME_PLACE),
  },
  '343': {
    code: '04',
    from: STOCK_TYPE.blocked,
    to: STOCK_TYPE.unrestricted,
    required: [],
    fits: Object.keys(SAME_PLACE),
  },
  '555': { code: '03', from: STOCK_TYPE.blocked, required: [], fits: ['CostCenter', 'GLAccount'] },
  '122': {
    code: '01',
    from: STOCK_TYPE.blocked,
    required: ['GoodsMovementRefDocType', 'PurchaseOrder', 'PurchaseOrderItem'],
    fixed: { GoodsMovementRefDocType: 'B' },
    fits: ['Supplier'],
  },
};

const STOCK_LABEL: Record<string, string> = {
  [STOCK_TYPE.unrestricted]: 'SL Unrestricted-use',
  [STOCK_TYPE.blocked]: 'BL Blocked stock',
};

/** The keys SAP assigns on create; values a caller sends for them are ignored. */
const ASSIGNED_KEYS = ['MaterialDocumentYear', 'MaterialDocument', 'MaterialDocumentItem'];

type Properties = Record<string, ODataValue>;

interface ItemInput {
  properties: Properties;
  rule: MovementRule;
  material: string;
  plant: string;
  storageLocation: string;
  batch: string;
  movementType: string;
  quantity: string;
  unit: string;
}

export interface MaterialDocumentControls {
  /** True when the create being answered should come back with `to_MaterialDocumentItem: { results: [] }`. */
  takeAnswerWithoutItems(): boolean;
}

interface HeaderRow {
  document_year: string;
  material_document: string;
  goods_movement_code: string;
  header_text: string;
  reference_document: string;
  posting_date: string;
  document_date: string;
  created_by_user: string;
  created_at: Date;
  properties: Properties;
}

interface ItemRow {
  document_year: string;
  material_document: string;
  item: string;
  material: string;
  plant: string;
  storage_location: string;
  batch: string;
  goods_movement_type: string;
  stock_type: string;
  supplier: string;
  quantity: string;
  unit: string;
  item_text: string;
  purchase_order: string;
  purchase_order_item: string;
  properties: Properties;
}

const HEADER_COLUMNS: Record<string, ColumnSpec> = {
  MaterialDocumentYear: 'document_year',
  MaterialDocument: 'material_document',
  GoodsMovementCode: 'goods_movement_code',
  MaterialDocumentHeaderText: 'header_text',
  ReferenceDocument: 'reference_document',
  CreatedByUser: 'created_by_user',
  PostingDate: { sql: 'posting_date', type: 'date' },
  DocumentDate: { sql: 'document_date', type: 'date' },
  // CreationDate and CreationTime are the UTC parts of one instant: a sync pages by them, or by document number.
  CreationDate: { sql: "(created_at AT TIME ZONE 'UTC')::date", type: 'date' },
  CreationTime: { sql: "(created_at AT TIME ZONE 'UTC')::time", type: 'time' },
};

/** Reference properties read from the posted properties; the two a trace follows most have indexes (schema). */
const fromProperties = (name: string) => `coalesce(properties->>'${name}', '')`;

const ITEM_COLUMNS: Record<string, ColumnSpec> = {
  ManufacturingOrder: fromProperties('ManufacturingOrder'),
  Delivery: fromProperties('Delivery'),
  DeliveryItem: fromProperties('DeliveryItem'),
  IssgOrRcvgBatch: fromProperties('IssgOrRcvgBatch'),
  IssgOrRcvgMaterial: fromProperties('IssgOrRcvgMaterial'),
  GoodsMovementRefDocType: fromProperties('GoodsMovementRefDocType'),
  Customer: fromProperties('Customer'),
  MaterialDocumentYear: 'document_year',
  MaterialDocument: 'material_document',
  MaterialDocumentItem: 'item',
  Material: 'material',
  Plant: 'plant',
  StorageLocation: 'storage_location',
  Batch: 'batch',
  GoodsMovementType: 'goods_movement_type',
  Supplier: 'supplier',
  PurchaseOrder: 'purchase_order',
  PurchaseOrderItem: 'purchase_order_item',
};

/** date columns come back as 'YYYY-MM-DD' (pg type parser left alone) and are midnight UTC in OData. */
function dateOnly(value: string | Date): Date {
  return typeof value === 'string' ? new Date(`${value}T00:00:00Z`) : value;
}

/** What was posted, then what the simulator decided (keys, stock type, quantities in the base unit). */
function itemEntity(ctx: ServiceContext, r: ItemRow): Entity {
  const uri = `${ctx.serviceUrl}/A_MaterialDocumentItem${keyPredicateText({
    MaterialDocumentYear: r.document_year,
    MaterialDocument: r.material_document,
    MaterialDocumentItem: r.item,
  })}`;
  return {
    __metadata: { id: uri, uri, type: `${MATERIAL_DOCUMENT_SERVICE}.A_MaterialDocumentItemType` },
    ...r.properties,
    MaterialDocumentYear: r.document_year,
    MaterialDocument: r.material_document,
    MaterialDocumentItem: r.item,
    Material: r.material,
    Plant: r.plant,
    StorageLocation: r.storage_location,
    Batch: r.batch,
    GoodsMovementType: r.goods_movement_type,
    InventoryStockType: r.stock_type,
    InventorySpecialStockType: '',
    Supplier: r.supplier,
    PurchaseOrder: r.purchase_order,
    PurchaseOrderItem: r.purchase_order_item,
    QuantityInEntryUnit: toODataDecimal(r.quantity),
    EntryUnit: r.unit,
    QuantityInBaseUnit: toODataDecimal(r.quantity),
    MaterialBaseUnit: r.unit,
    MaterialDocumentItemText: r.item_text,
    GoodsMovementIsCancelled: false,
  };
}

function headerEntity(ctx: ServiceContext, r: HeaderRow, items: ItemRow[] | undefined): Entity {
  const uri = `${ctx.serviceUrl}/A_MaterialDocumentHeader${keyPredicateText({
    MaterialDocumentYear: r.document_year,
    MaterialDocument: r.material_document,
  })}`;
  const created = r.created_at;
  return {
    __metadata: { id: uri, uri, type: `${MATERIAL_DOCUMENT_SERVICE}.A_MaterialDocumentHeaderType` },
    ...r.properties,
    MaterialDocumentYear: r.document_year,
    MaterialDocument: r.material_document,
    InventoryTransactionType: '',
    DocumentDate: toODataDate(dateOnly(r.document_date)),
    PostingDate: toODataDate(dateOnly(r.posting_date)),
    CreationDate: toODataDate(
      new Date(Date.UTC(created.getUTCFullYear(), created.getUTCMonth(), created.getUTCDate())),
    ),
    // Edm.Time as an ISO-8601 duration, the V2 JSON form.
    CreationTime: `PT${created.getUTCHours()}H${created.getUTCMinutes()}M${created.getUTCSeconds()}S`,
    CreatedByUser: r.created_by_user,
    MaterialDocumentHeaderText: r.header_text,
    ReferenceDocument: r.reference_document,
    GoodsMovementCode: r.goods_movement_code,
    [ITEMS_NAV]: items
      ? { results: items.map((i) => itemEntity(ctx, i)) }
      : { __deferred: { uri: `${uri}/${ITEMS_NAV}` } },
  };
}

async function itemsOf(
  db: pg.Pool | pg.PoolClient,
  s: string,
  keys: { document_year: string; material_document: string }[],
): Promise<Map<string, ItemRow[]>> {
  const byDocument = new Map<string, ItemRow[]>(keys.map((k) => [`${k.document_year}/${k.material_document}`, []]));
  if (keys.length === 0) return byDocument;
  const { rows } = await db.query<ItemRow>(
    `SELECT * FROM ${s}.material_document_item
      WHERE (document_year, material_document) IN (SELECT * FROM unnest($1::text[], $2::text[]))
      ORDER BY document_year, material_document, item`,
    [keys.map((k) => k.document_year), keys.map((k) => k.material_document)],
  );
  for (const row of rows) byDocument.get(`${row.document_year}/${row.material_document}`)?.push(row);
  return byDocument;
}

async function expandHeaders(ctx: ServiceContext, rows: HeaderRow[], q: QueryOptions): Promise<Entity[]> {
  checkExpand(q, [ITEMS_NAV]);
  const items = q.expand.includes(ITEMS_NAV) ? await itemsOf(ctx.pool, ctx.s, rows) : undefined;
  return rows.map((r) => headerEntity(ctx, r, items?.get(`${r.document_year}/${r.material_document}`)));
}

/** Quantities in thousandths, so stock arithmetic is exact at the 3 decimals SAP keeps. */
function milli(value: string | number): number {
  return Math.round(Number(value) * 1000);
}

function formatMilli(value: number): string {
  return String(value / 1000);
}

const text = (p: Properties, name: string): string => {
  const value = p[name];
  return typeof value === 'string' ? value : '';
};

const withoutAssignedKeys = (p: Properties): Properties =>
  Object.fromEntries(Object.entries(p).filter(([name]) => !ASSIGNED_KEYS.includes(name)));

/**
 * What the API checks before it posts: the item has what the simulator needs, and every reference property fits the
 * movement type (MM_IM_ODATA_API_MDOC/011). A movement type posted with another GoodsMovementCode is refused by the
 * posting itself, so it comes back nested like the posting's other refusals.
 */
function checkItem(goodsMovementCode: string, body: unknown): ItemInput {
  const { properties: p } = checkPayload(ITEM_SET, body);
  for (const name of REQUIRED_ITEM_PROPERTIES) {
    if (!text(p, name)) throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `Property '${name}' is required`);
  }
  const movementType = text(p, 'GoodsMovementType');
  const rule = MOVEMENT_RULES[movementType];
  if (!rule) {
    throw SapMessages.materialDocumentFailed(SapMessages.movementNotSupported(movementType, goodsMovementCode));
  }
  for (const name of REFERENCE_PROPERTIES) {
    if (text(p, name) && !rule.required.includes(name) && !rule.fits.includes(name)) {
      throw SapMessages.propertyNotForMovement(name, movementType);
    }
  }
  for (const name of rule.required) {
    const expected = rule.fixed?.[name];
    if (!text(p, name) || (expected !== undefined && p[name] !== expected)) {
      throw SapMessages.propertyRequiredForMovement(name, movementType, expected);
    }
  }
  for (const [name, own] of Object.entries(SAME_PLACE)) {
    if (text(p, name) && p[name] !== p[own]) {
      throw SapMessages.propertyRequiredForMovement(name, movementType, text(p, own));
    }
  }
  if (rule.code !== goodsMovementCode) {
    throw SapMessages.materialDocumentFailed(SapMessages.movementNotSupported(movementType, goodsMovementCode));
  }
  const quantity = text(p, 'QuantityInEntryUnit');
  if (Number(quantity) <= 0) {
    throw new SapODataError(
      400,
      '/IWBEP/CM_MGW_RT/022',
      "Invalid value for property 'QuantityInEntryUnit': not positive",
    );
  }
  return {
    properties: withoutAssignedKeys(p),
    rule,
    material: text(p, 'Material'),
    plant: text(p, 'Plant'),
    storageLocation: text(p, 'StorageLocation'),
    batch: text(p, 'Batch'),
    movementType,
    quantity,
    unit: text(p, 'EntryUnit'),
  };
}

/** Moves one item's stock; returns the stock type the quantity left. Throws the posting's refusals un-nested. */
async function postItem(client: pg.PoolClient, s: string, item: ItemInput): Promise<string> {
  const { rule, properties: p } = item;
  const baseUnit = await checkMasterData(client, s, item);
  if (item.unit !== baseUnit) throw SapMessages.unitNotAllowed(item.unit, item.material, baseUnit);
  if (rule.required.includes('PurchaseOrder')) {
    await checkPurchaseOrderReceipt(client, s, {
      ...item,
      purchaseOrder: text(p, 'PurchaseOrder'),
      purchaseOrderItem: text(p, 'PurchaseOrderItem'),
      supplier: text(p, 'Supplier'),
    });
  }
  const from = item.movementType === '122' && text(p, 'InventoryStockType') ? text(p, 'InventoryStockType') : rule.from;
  const key = [item.material, item.plant, item.storageLocation, item.batch];
  const { rows } = await client.query<{ quantity: string }>(
    `SELECT quantity FROM ${s}.stock
      WHERE material = $1 AND plant = $2 AND storage_location = $3 AND batch = $4 AND stock_type = $5
      FOR UPDATE`,
    [...key, from],
  );
  const available = milli(rows[0]?.quantity ?? 0);
  const wanted = milli(item.quantity);
  if (available < wanted) {
    const label = STOCK_LABEL[from] ?? `stock type ${from}`;
    throw SapMessages.stockDeficit(label, formatMilli(wanted - available), item.unit, item);
  }
  const quantity = formatMilli(wanted);
  await client.query(
    `UPDATE ${s}.stock SET quantity = quantity - $6
      WHERE material = $1 AND plant = $2 AND storage_location = $3 AND batch = $4 AND stock_type = $5`,
    [...key, from, quantity],
  );
  if (rule.to) {
    await client.query(
      `INSERT INTO ${s}.stock (material, plant, storage_location, batch, stock_type, quantity, unit)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (material, plant, storage_location, batch, stock_type)
       DO UPDATE SET quantity = ${s}.stock.quantity + EXCLUDED.quantity`,
      [...key, rule.to, quantity, baseUnit],
    );
  }
  return from;
}

const HEADER_SELECT = `document_year, material_document, goods_movement_code, header_text, reference_document,
  posting_date::text, document_date::text, created_by_user, created_at, properties`;

async function createDocument(ctx: ServiceContext, body: unknown, controls: MaterialDocumentControls): Promise<Entity> {
  const { properties: header, navigations } = checkPayload(HEADER_SET, body, [ITEMS_NAV]);
  const goodsMovementCode = text(header, 'GoodsMovementCode');
  if (!goodsMovementCode) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', "Property 'GoodsMovementCode' is required");
  }
  const items = navigationArray(navigations[ITEMS_NAV]).map((i) => checkItem(goodsMovementCode, i));
  if (items.length === 0) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `A material document needs at least one ${ITEMS_NAV} item`);
  }
  // checkPayload has turned both into /Date(ms)/.
  const postingDate = header.PostingDate !== undefined ? parseODataDate(header.PostingDate, 'PostingDate') : new Date();
  const documentDate =
    header.DocumentDate !== undefined ? parseODataDate(header.DocumentDate, 'DocumentDate') : postingDate;
  const posted = await withTransaction(ctx.pool, async (client) => {
    const { rows } = await client.query<HeaderRow>(
      `INSERT INTO ${ctx.s}.material_document
         (document_year, material_document, goods_movement_code, header_text, reference_document,
          posting_date, document_date, created_by_user, properties)
       VALUES ($1, nextval('${ctx.s}.material_document_number')::text, $2, $3, $4, $5::date, $6::date, $7, $8)
       RETURNING ${HEADER_SELECT}`,
      [
        String(postingDate.getUTCFullYear()),
        goodsMovementCode,
        text(header, 'MaterialDocumentHeaderText'),
        text(header, 'ReferenceDocument'),
        postingDate.toISOString().slice(0, 10),
        documentDate.toISOString().slice(0, 10),
        ctx.user,
        withoutAssignedKeys(header),
      ],
    );
    const document = rows[0]!;
    const itemRows: ItemRow[] = [];
    for (const [index, item] of items.entries()) {
      const from = await postItem(client, ctx.s, item);
      const inserted = await client.query<ItemRow>(
        `INSERT INTO ${ctx.s}.material_document_item
           (document_year, material_document, item, material, plant, storage_location, batch, goods_movement_type,
            stock_type, supplier, quantity, unit, item_text, purchase_order, purchase_order_item, properties)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING *`,
        [
          document.document_year,
          document.material_document,
          String(index + 1).padStart(4, '0'),
          item.material,
          item.plant,
          item.storageLocation,
          item.batch,
          item.movementType,
          from,
          text(item.properties, 'Supplier'),
          item.quantity,
          item.unit,
          text(item.properties, 'MaterialDocumentItemText'),
          text(item.properties, 'PurchaseOrder'),
          text(item.properties, 'PurchaseOrderItem'),
          item.properties,
        ],
      );
      itemRows.push(inserted.rows[0]!);
    }
    return { document, itemRows };
  }).catch((err: unknown) => {
    throw err instanceof SapODataError ? SapMessages.materialDocumentFailed(err) : err;
  });
  // Some systems answer a deep insert without its items; callers must read back what they need.
  return headerEntity(ctx, posted.document, controls.takeAnswerWithoutItems() ? [] : posted.itemRows);
}

export function createMaterialDocumentService(controls: MaterialDocumentControls): ODataService {
  return {
    name: MATERIAL_DOCUMENT_SERVICE,
    entitySets: {
      A_MaterialDocumentHeader: {
        pageSize: MATERIAL_DOCUMENT_PAGE_SIZE,
        async list(ctx, q) {
          const params: unknown[] = [];
          const where = filterSql(q.filter, HEADER_COLUMNS, params);
          const { rows } = await ctx.pool.query<HeaderRow>(
            `SELECT ${HEADER_SELECT} FROM ${ctx.s}.material_document WHERE ${where}
              ORDER BY ${orderBySql(q, HEADER_COLUMNS, 'document_year, material_document')}${pagingSql(q, params)}`,
            params,
          );
          return expandHeaders(ctx, rows, q);
        },

        async get(ctx, key, q) {
          const year = requireKey(key, 'MaterialDocumentYear');
          const document = key.named.MaterialDocument;
          if (document === undefined) throw notFound('A_MaterialDocumentHeader');
          const { rows } = await ctx.pool.query<HeaderRow>(
            `SELECT ${HEADER_SELECT} FROM ${ctx.s}.material_document
              WHERE document_year = $1 AND material_document = $2`,
            [year, document],
          );
          if (!rows[0]) {
            throw notFound(`A_MaterialDocumentHeader(MaterialDocumentYear='${year}',MaterialDocument='${document}')`);
          }
          const [entity] = await expandHeaders(ctx, rows, q);
          return entity!;
        },

        create: (ctx, body) => createDocument(ctx, body, controls),

        navigations: {
          [ITEMS_NAV]: {
            async list(ctx, key) {
              const year = requireKey(key, 'MaterialDocumentYear');
              const document = key.named.MaterialDocument ?? '';
              const items = await itemsOf(ctx.pool, ctx.s, [{ document_year: year, material_document: document }]);
              return (items.get(`${year}/${document}`) ?? []).map((i) => itemEntity(ctx, i));
            },
          },
        },
      },

      A_MaterialDocumentItem: {
        pageSize: MATERIAL_DOCUMENT_PAGE_SIZE,
        async list(ctx, q) {
          checkExpand(q, []);
          const params: unknown[] = [];
          const where = filterSql(q.filter, ITEM_COLUMNS, params);
          const { rows } = await ctx.pool.query<ItemRow>(
            `SELECT * FROM ${ctx.s}.material_document_item WHERE ${where}
              ORDER BY ${orderBySql(q, ITEM_COLUMNS, 'document_year, material_document, item')}${pagingSql(q, params)}`,
            params,
          );
          return rows.map((r) => itemEntity(ctx, r));
        },
      },
    },
  };
}
