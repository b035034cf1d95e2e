import type pg from 'pg';
import { OUTBOUND_DELIVERY_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { keyPredicateText, toODataDate, toODataDecimal } from './odata';
import {
  checkExpand,
  filterSql,
  notFound,
  orderBySql,
  pagingSql,
  requireKey,
  type ColumnSpec,
  type Entity,
  type ODataService,
  type ServiceContext,
} from './odata-service';

/**
 * API_OUTBOUND_DELIVERY_SRV (OData V2), read side only: deliveries to customers with their items (material, batch,
 * quantity), as a genealogy sync reads them to know which batch went to which ship-to party. The simulator does not
 * create, pick or post deliveries through the API: they arrive as history (`POST /__sim/history`, history.ts), and
 * their goods issue is the 601 material document that names the delivery.
 */
const ITEMS_NAV = 'to_DeliveryDocumentItem';
/** Rows per answer when the client asks for more (or sets no `$top`); the rest follows `__next`. */
export const OUTBOUND_DELIVERY_PAGE_SIZE = 5000;

interface DeliveryRow {
  delivery_document: string;
  sold_to_party: string;
  ship_to_party: string;
  shipping_point: string;
  delivery_date: string;
  goods_movement_date: string | null;
  created_by_user: string;
  created_at: Date;
  properties: Record<string, unknown>;
}

interface DeliveryItemRow {
  delivery_document: string;
  delivery_item: string;
  material: string;
  plant: string;
  storage_location: string;
  batch: string;
  quantity: string;
  unit: string;
  properties: Record<string, unknown>;
}

const utc = (sql: string, type: 'date' | 'time'): ColumnSpec => ({ sql: `(${sql} AT TIME ZONE 'UTC')::${type}`, type });

const HEADER_COLUMNS: Record<string, ColumnSpec> = {
  DeliveryDocument: 'delivery_document',
  SoldToParty: 'sold_to_party',
  ShipToParty: 'ship_to_party',
  ShippingPoint: 'shipping_point',
  DeliveryDate: { sql: 'delivery_date', type: 'date' },
  ActualGoodsMovementDate: { sql: 'goods_movement_date', type: 'date' },
  CreationDate: utc('created_at', 'date'),
  CreationTime: utc('created_at', 'time'),
  OverallGoodsMovementStatus: "CASE WHEN goods_movement_date IS NULL THEN 'A' ELSE 'C' END",
};

const ITEM_COLUMNS: Record<string, ColumnSpec> = {
  DeliveryDocument: 'delivery_document',
  DeliveryDocumentItem: 'delivery_item',
  Material: 'material',
  Plant: 'plant',
  StorageLocation: 'storage_location',
  Batch: 'batch',
  ReferenceSDDocument: "coalesce(properties->>'ReferenceSDDocument', '')",
};

const HEADER_SELECT = `delivery_document, sold_to_party, ship_to_party, shipping_point, delivery_date::text,
  goods_movement_date::text, created_by_user, created_at, properties`;

const midnightUtc = (date: string) => toODataDate(new Date(`${date}T00:00:00Z`));

function itemEntity(ctx: ServiceContext, r: DeliveryItemRow): Entity {
  const uri = `${ctx.serviceUrl}/A_OutbDeliveryItem${keyPredicateText({
    DeliveryDocument: r.delivery_document,
    DeliveryDocumentItem: r.delivery_item,
  })}`;
  return {
    __metadata: { id: uri, uri, type: `${OUTBOUND_DELIVERY_SERVICE}.A_OutbDeliveryItemType` },
    ...r.properties,
    DeliveryDocument: r.delivery_document,
    DeliveryDocumentItem: r.delivery_item,
    Material: r.material,
    Plant: r.plant,
    StorageLocation: r.storage_location,
    Batch: r.batch,
    ActualDeliveryQuantity: toODataDecimal(r.quantity),
    DeliveryQuantityUnit: r.unit,
    ActualDeliveredQtyInBaseUnit: toODataDecimal(r.quantity),
    BaseUnit: r.unit,
  };
}

function headerEntity(ctx: ServiceContext, r: DeliveryRow, items: DeliveryItemRow[] | undefined): Entity {
  const uri = `${ctx.serviceUrl}/A_OutbDeliveryHeader${keyPredicateText({ DeliveryDocument: r.delivery_document })}`;
  const created = r.created_at;
  return {
    __metadata: { id: uri, uri, type: `${OUTBOUND_DELIVERY_SERVICE}.A_OutbDeliveryHeaderType` },
    DeliveryDocumentType: 'LF',
    ...r.properties,
    DeliveryDocument: r.delivery_document,
    SoldToParty: r.sold_to_party,
    ShipToParty: r.ship_to_party,
    ShippingPoint: r.shipping_point,
    DeliveryDate: midnightUtc(r.delivery_date),
    ActualGoodsMovementDate: r.goods_movement_date ? midnightUtc(r.goods_movement_date) : null,
    CreationDate: toODataDate(
      new Date(Date.UTC(created.getUTCFullYear(), created.getUTCMonth(), created.getUTCDate())),
    ),
    CreationTime: `PT${created.getUTCHours()}H${created.getUTCMinutes()}M${created.getUTCSeconds()}S`,
    CreatedByUser: r.created_by_user,
    // A: not yet started, C: completely processed (goods issue posted).
    OverallGoodsMovementStatus: r.goods_movement_date ? 'C' : 'A',
    [ITEMS_NAV]: items
      ? { results: items.map((i) => itemEntity(ctx, i)) }
      : { __deferred: { uri: `${uri}/${ITEMS_NAV}` } },
  };
}

async function itemsOf(db: pg.Pool, s: string, deliveries: string[]): Promise<Map<string, DeliveryItemRow[]>> {
  const byDelivery = new Map<string, DeliveryItemRow[]>(deliveries.map((d) => [d, []]));
  if (deliveries.length === 0) return byDelivery;
  const { rows } = await db.query<DeliveryItemRow>(
    `SELECT * FROM ${s}.outbound_delivery_item WHERE delivery_document = ANY($1::text[])
      ORDER BY delivery_document, delivery_item`,
    [deliveries],
  );
  for (const row of rows) byDelivery.get(row.delivery_document)?.push(row);
  return byDelivery;
}

async function expandHeaders(ctx: ServiceContext, rows: DeliveryRow[], expand: string[]): Promise<Entity[]> {
  const items = expand.includes(ITEMS_NAV)
    ? await itemsOf(
        ctx.pool,
        ctx.s,
        rows.map((r) => r.delivery_document),
      )
    : undefined;
  return rows.map((r) => headerEntity(ctx, r, items?.get(r.delivery_document)));
}

export const outboundDeliveryService: ODataService = {
  name: OUTBOUND_DELIVERY_SERVICE,
  entitySets: {
    A_OutbDeliveryHeader: {
      pageSize: OUTBOUND_DELIVERY_PAGE_SIZE,
      async list(ctx, q) {
        checkExpand(q, [ITEMS_NAV]);
        const params: unknown[] = [];
        const where = filterSql(q.filter, HEADER_COLUMNS, params);
        const { rows } = await ctx.pool.query<DeliveryRow>(
          `SELECT ${HEADER_SELECT} FROM ${ctx.s}.outbound_delivery WHERE ${where}
            ORDER BY ${orderBySql(q, HEADER_COLUMNS, 'delivery_document')}${pagingSql(q, params)}`,
          params,
        );
        return expandHeaders(ctx, rows, q.expand);
      },

      async get(ctx, key, q) {
        checkExpand(q, [ITEMS_NAV]);
        const delivery = requireKey(key, 'DeliveryDocument');
        const { rows } = await ctx.pool.query<DeliveryRow>(
          `SELECT ${HEADER_SELECT} FROM ${ctx.s}.outbound_delivery WHERE delivery_document = $1`,
          [delivery],
        );
        if (!rows[0]) throw notFound(`A_OutbDeliveryHeader('${delivery}')`);
        const [entity] = await expandHeaders(ctx, rows, q.expand);
        return entity!;
      },

      navigations: {
        [ITEMS_NAV]: {
          async list(ctx, key) {
            const delivery = requireKey(key, 'DeliveryDocument');
            const items = await itemsOf(ctx.pool, ctx.s, [delivery]);
            return (items.get(delivery) ?? []).map((i) => itemEntity(ctx, i));
          },
        },
      },
    },

    A_OutbDeliveryItem: {
      pageSize: OUTBOUND_DELIVERY_PAGE_SIZE,
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(q.filter, ITEM_COLUMNS, params);
        const { rows } = await ctx.pool.query<DeliveryItemRow>(
          `SELECT * FROM ${ctx.s}.outbound_delivery_item WHERE ${where}
            ORDER BY ${orderBySql(q, ITEM_COLUMNS, 'delivery_document, delivery_item')}${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => itemEntity(ctx, r));
      },

      async get(ctx, key) {
        const delivery = requireKey(key, 'DeliveryDocument');
        const item = key.named.DeliveryDocumentItem ?? '';
        const { rows } = await ctx.pool.query<DeliveryItemRow>(
          `SELECT * FROM ${ctx.s}.outbound_delivery_item WHERE delivery_document = $1 AND delivery_item = $2`,
          [delivery, item],
        );
        if (!rows[0]) {
          throw notFound(`A_OutbDeliveryItem(DeliveryDocument='${delivery}',DeliveryDocumentItem='${item}')`);
        }
        return itemEntity(ctx, rows[0]);
      },
    },
  },
};
