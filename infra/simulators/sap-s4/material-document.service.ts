import type pg from 'pg';
import { z } from 'zod';
import { checkMasterData } from './master-data';
import {
  keyPredicateText,
  parseODataDate,
  SapODataError,
  toODataDate,
  toODataDecimal,
  type QueryOptions,
} from './odata';
import {
  checkExpand,
  filterSql,
  navigationArray,
  notFound,
  pagingSql,
  parseBody,
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
 * Each POST writes the document and moves the stock in one transaction; a deficit writes nothing. Like SAP, a repeated
 * POST is a second document: de-duplication is the caller's job.
 */
export const MATERIAL_DOCUMENT_SERVICE = 'API_MATERIAL_DOCUMENT_SRV';
const ITEMS_NAV = 'to_MaterialDocumentItem';

interface MovementRule {
  /** Stock type the quantity leaves. */
  from: StockType;
  /** Stock type it enters; absent when it leaves the plant's stock (scrap, return to vendor). */
  to?: StockType;
  /** GoodsMovementCode values (BAPI_GOODSMVT_CREATE GM_CODE) accepted for this movement type. */
  codes: string[];
}

/**
 * 344/343 are transfer postings between stock types (GM code 04). 555 (scrap from blocked) is a goods issue in SAP
 * (03, recalled); 122 (return to vendor) normally refers to the purchase order (01, recalled). The reference lists all
 * quality follow-ups as transfer postings (04), which Holdfast's connector sends, so both are accepted (README).
 * Holdfast returns lots it blocked, so 122 takes blocked stock unless the item names unrestricted stock.
 */
const MOVEMENT_RULES: Record<string, MovementRule> = {
  '344': { from: STOCK_TYPE.unrestricted, to: STOCK_TYPE.blocked, codes: ['04'] },
  '343': { from: STOCK_TYPE.blocked, to: STOCK_TYPE.unrestricted, codes: ['04'] },
  '555': { from: STOCK_TYPE.blocked, codes: ['04', '03'] },
  '122': { from: STOCK_TYPE.blocked, codes: ['04', '01'] },
};

const STOCK_LABEL: Record<StockType, string> = {
  [STOCK_TYPE.unrestricted]: 'SL Unrestricted-use',
  [STOCK_TYPE.blocked]: 'BL Blocked stock',
};

const Quantity = z.union([
  z.string().regex(/^\d{1,10}(\.\d{1,3})?$/, 'expected a decimal with up to 3 places'),
  z.number().positive(),
]);

const ItemInput = z.strictObject({
  __metadata: z.unknown().optional(),
  Material: z.string().min(1).max(40),
  Plant: z.string().min(1).max(4),
  StorageLocation: z.string().min(1).max(4),
  Batch: z.string().min(1).max(10),
  GoodsMovementType: z.string().min(3).max(3),
  QuantityInEntryUnit: Quantity,
  EntryUnit: z.string().min(1).max(3),
  MaterialDocumentItemText: z.string().max(50).default(''),
  Supplier: z.string().max(10).default(''),
  InventoryStockType: z.enum([STOCK_TYPE.unrestricted, STOCK_TYPE.blocked]).optional(),
  GoodsMovementRefDocType: z.string().max(1).optional(),
  GoodsMovementReasonCode: z.string().max(4).optional(),
});

const HeaderInput = z.strictObject({
  __metadata: z.unknown().optional(),
  GoodsMovementCode: z.string().min(2).max(2),
  PostingDate: z.unknown().optional(),
  DocumentDate: z.unknown().optional(),
  MaterialDocumentHeaderText: z.string().max(25).default(''),
  ReferenceDocument: z.string().max(16).default(''),
  [ITEMS_NAV]: z.unknown(),
});

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
}

const HEADER_COLUMNS: Record<string, string> = {
  MaterialDocumentYear: 'document_year',
  MaterialDocument: 'material_document',
  GoodsMovementCode: 'goods_movement_code',
  MaterialDocumentHeaderText: 'header_text',
  ReferenceDocument: 'reference_document',
  CreatedByUser: 'created_by_user',
};

const ITEM_COLUMNS: Record<string, string> = {
  MaterialDocumentYear: 'document_year',
  MaterialDocument: 'material_document',
  MaterialDocumentItem: 'item',
  Material: 'material',
  Plant: 'plant',
  StorageLocation: 'storage_location',
  Batch: 'batch',
  GoodsMovementType: 'goods_movement_type',
  Supplier: 'supplier',
};

/** date columns come back as 'YYYY-MM-DD' (pg type parser left alone) and are midnight UTC in OData. */
function dateOnly(value: string | Date): Date {
  return typeof value === 'string' ? new Date(`${value}T00:00:00Z`) : value;
}

function itemEntity(ctx: ServiceContext, r: ItemRow): Entity {
  const uri = `${ctx.serviceUrl}/A_MaterialDocumentItem${keyPredicateText({
    MaterialDocumentYear: r.document_year,
    MaterialDocument: r.material_document,
    MaterialDocumentItem: r.item,
  })}`;
  return {
    __metadata: { id: uri, uri, type: `${MATERIAL_DOCUMENT_SERVICE}.A_MaterialDocumentItemType` },
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

async function postItem(
  client: pg.PoolClient,
  s: string,
  goodsMovementCode: string,
  item: z.infer<typeof ItemInput>,
): Promise<StockType> {
  const rule = MOVEMENT_RULES[item.GoodsMovementType];
  if (!rule || !rule.codes.includes(goodsMovementCode)) {
    throw SapMessages.movementNotSupported(item.GoodsMovementType, goodsMovementCode);
  }
  const baseUnit = await checkMasterData(client, s, {
    material: item.Material,
    plant: item.Plant,
    batch: item.Batch,
  });
  if (item.EntryUnit !== baseUnit) throw SapMessages.unitNotAllowed(item.EntryUnit, item.Material, baseUnit);
  const from = item.GoodsMovementType === '122' && item.InventoryStockType ? item.InventoryStockType : rule.from;
  const key = [item.Material, item.Plant, item.StorageLocation, item.Batch];
  const { rows } = await client.query<{ quantity: string }>(
    `SELECT quantity FROM ${s}.stock
      WHERE material = $1 AND plant = $2 AND storage_location = $3 AND batch = $4 AND stock_type = $5
      FOR UPDATE`,
    [...key, from],
  );
  const available = milli(rows[0]?.quantity ?? 0);
  const wanted = milli(item.QuantityInEntryUnit);
  if (available < wanted) {
    throw SapMessages.stockDeficit(STOCK_LABEL[from], formatMilli(wanted - available), item.EntryUnit, {
      material: item.Material,
      plant: item.Plant,
      storageLocation: item.StorageLocation,
      batch: item.Batch,
    });
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

async function createDocument(ctx: ServiceContext, body: unknown): Promise<Entity> {
  const input = parseBody(HeaderInput, body);
  const items = navigationArray(input[ITEMS_NAV]).map((i) => parseBody(ItemInput, i));
  if (items.length === 0) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', `A material document needs at least one ${ITEMS_NAV} item`);
  }
  const today = new Date();
  const postingDate = input.PostingDate !== undefined ? parseODataDate(input.PostingDate, 'PostingDate') : today;
  const documentDate =
    input.DocumentDate !== undefined ? parseODataDate(input.DocumentDate, 'DocumentDate') : postingDate;
  const { header, itemRows } = await withTransaction(ctx.pool, async (client) => {
    const { rows } = await client.query<HeaderRow>(
      `INSERT INTO ${ctx.s}.material_document
         (document_year, material_document, goods_movement_code, header_text, reference_document,
          posting_date, document_date, created_by_user)
       VALUES ($1, nextval('${ctx.s}.material_document_number')::text, $2, $3, $4, $5::date, $6::date, $7)
       RETURNING document_year, material_document, goods_movement_code, header_text, reference_document,
                 posting_date::text, document_date::text, created_by_user, created_at`,
      [
        String(postingDate.getUTCFullYear()),
        input.GoodsMovementCode,
        input.MaterialDocumentHeaderText,
        input.ReferenceDocument,
        postingDate.toISOString().slice(0, 10),
        documentDate.toISOString().slice(0, 10),
        ctx.user,
      ],
    );
    const header = rows[0]!;
    const itemRows: ItemRow[] = [];
    for (const [index, item] of items.entries()) {
      const from = await postItem(client, ctx.s, input.GoodsMovementCode, item);
      const inserted = await client.query<ItemRow>(
        `INSERT INTO ${ctx.s}.material_document_item
           (document_year, material_document, item, material, plant, storage_location, batch, goods_movement_type,
            stock_type, supplier, quantity, unit, item_text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [
          header.document_year,
          header.material_document,
          String(index + 1).padStart(4, '0'),
          item.Material,
          item.Plant,
          item.StorageLocation,
          item.Batch,
          item.GoodsMovementType,
          from,
          item.Supplier,
          String(item.QuantityInEntryUnit),
          item.EntryUnit,
          item.MaterialDocumentItemText,
        ],
      );
      itemRows.push(inserted.rows[0]!);
    }
    return { header, itemRows };
  });
  return headerEntity(ctx, header, itemRows);
}

const HEADER_SELECT = `document_year, material_document, goods_movement_code, header_text, reference_document,
  posting_date::text, document_date::text, created_by_user, created_at`;

export const materialDocumentService: ODataService = {
  name: MATERIAL_DOCUMENT_SERVICE,
  entitySets: {
    A_MaterialDocumentHeader: {
      async list(ctx, q) {
        const params: unknown[] = [];
        const where = filterSql(q.filter, HEADER_COLUMNS, params);
        const { rows } = await ctx.pool.query<HeaderRow>(
          `SELECT ${HEADER_SELECT} FROM ${ctx.s}.material_document WHERE ${where}
            ORDER BY document_year, material_document${pagingSql(q, params)}`,
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

      create: (ctx, body) => createDocument(ctx, body),

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
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(q.filter, ITEM_COLUMNS, params);
        const { rows } = await ctx.pool.query<ItemRow>(
          `SELECT * FROM ${ctx.s}.material_document_item WHERE ${where}
            ORDER BY document_year, material_document, item${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => itemEntity(ctx, r));
      },
    },
  },
};
