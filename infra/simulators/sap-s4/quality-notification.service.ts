import type pg from 'pg';
import { z } from 'zod';
import { checkMasterData } from './master-data';
import { keyPredicateText, SapODataError, toODataDate, toODataDecimal, type QueryOptions } from './odata';
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

/**
 * API_QUALITYNOTIFICATION (OData V2): quality notifications with defect items. Property names follow the CDS fields
 * (I_QltyNotification, I_QualityNotificationItem); the API's own names for batch, external reference and complaint
 * quantity are not verified (README).
 */
export const QUALITY_NOTIFICATION_SERVICE = 'API_QUALITYNOTIFICATION';
const ITEMS_NAV = 'to_QualityNotificationItem';

/** Standard notification types: Q1–Q3 complaints and problem reports, F1–F3 the same with defect recording. */
const NOTIFICATION_TYPES = new Set(['Q1', 'Q2', 'Q3', 'F1', 'F2', 'F3']);
export const PHASE_COMPLETED = '4';

const Decimal = z.union([z.string().regex(/^\d{1,10}(\.\d{1,3})?$/), z.number().nonnegative()]);
const Metadata = z.unknown().optional();

const ItemInput = z.strictObject({
  __metadata: Metadata,
  QualityNotification: z.string().optional(),
  NotificationItemText: z.string().max(40).default(''),
  DefectCodeCatalog: z.string().max(1).default('9'),
  DefectCodeGroup: z.string().max(8).default(''),
  DefectCode: z.string().max(4).default(''),
});

const NotificationInput = z.strictObject({
  __metadata: Metadata,
  NotificationType: z.string().min(1).max(2),
  NotificationText: z.string().max(40).default(''),
  Material: z.string().max(40).default(''),
  Plant: z.string().max(4).default(''),
  Batch: z.string().max(10).default(''),
  Supplier: z.string().max(10).default(''),
  ExternalReferenceNumber: z.string().max(20).default(''),
  ComplaintQuantity: Decimal.default('0'),
  ComplaintQuantityUnit: z.string().max(3).default(''),
  [ITEMS_NAV]: z.unknown().optional(),
});

const NotificationChange = z.strictObject({
  __metadata: Metadata,
  NotifProcessingPhase: z.enum(['1', '2', '3', '4']).optional(),
  NotificationText: z.string().max(40).optional(),
});

interface NotificationRow {
  notification: string;
  notification_type: string;
  notification_text: string;
  material: string;
  plant: string;
  batch: string;
  supplier: string;
  external_reference: string;
  complaint_quantity: string;
  complaint_quantity_unit: string;
  processing_phase: string;
  created_by_user: string;
  created_at: Date;
  changed_at: Date;
  completed_at: Date | null;
}

interface ItemRow {
  notification: string;
  item: string;
  item_text: string;
  defect_code_catalog: string;
  defect_code_group: string;
  defect_code: string;
  created_at: Date;
}

const NOTIFICATION_COLUMNS: Record<string, string> = {
  QualityNotification: 'notification',
  NotificationType: 'notification_type',
  NotificationText: 'notification_text',
  NotifProcessingPhase: 'processing_phase',
  Material: 'material',
  Plant: 'plant',
  Batch: 'batch',
  Supplier: 'supplier',
  ExternalReferenceNumber: 'external_reference',
  CreatedByUser: 'created_by_user',
};

const ITEM_COLUMNS: Record<string, string> = {
  QualityNotification: 'notification',
  NotificationItem: 'item',
  NotificationItemText: 'item_text',
  DefectCodeCatalog: 'defect_code_catalog',
  DefectCodeGroup: 'defect_code_group',
  DefectCode: 'defect_code',
};

function itemEntity(ctx: ServiceContext, r: ItemRow): Entity {
  const uri = `${ctx.serviceUrl}/QualityNotificationItem${keyPredicateText({
    QualityNotification: r.notification,
    NotificationItem: r.item,
  })}`;
  return {
    __metadata: { id: uri, uri, type: `${QUALITY_NOTIFICATION_SERVICE}.QualityNotificationItemType` },
    QualityNotification: r.notification,
    NotificationItem: r.item,
    NotificationItemText: r.item_text,
    DefectCodeCatalog: r.defect_code_catalog,
    DefectCodeGroup: r.defect_code_group,
    DefectCode: r.defect_code,
    CreationDate: toODataDate(r.created_at),
  };
}

function notificationEntity(ctx: ServiceContext, r: NotificationRow, items: ItemRow[] | undefined): Entity {
  const uri = `${ctx.serviceUrl}/QualityNotification${keyPredicateText({ QualityNotification: r.notification })}`;
  return {
    __metadata: { id: uri, uri, type: `${QUALITY_NOTIFICATION_SERVICE}.QualityNotificationType` },
    QualityNotification: r.notification,
    NotificationType: r.notification_type,
    NotificationText: r.notification_text,
    NotifProcessingPhase: r.processing_phase,
    Material: r.material,
    Plant: r.plant,
    Batch: r.batch,
    Supplier: r.supplier,
    ExternalReferenceNumber: r.external_reference,
    ComplaintQuantity: toODataDecimal(r.complaint_quantity),
    ComplaintQuantityUnit: r.complaint_quantity_unit,
    CreatedByUser: r.created_by_user,
    CreationDate: toODataDate(r.created_at),
    LastChangeDateTime: toODataDate(r.changed_at),
    CompletionDate: r.completed_at ? toODataDate(r.completed_at) : null,
    [ITEMS_NAV]: items
      ? { results: items.map((i) => itemEntity(ctx, i)) }
      : { __deferred: { uri: `${uri}/${ITEMS_NAV}` } },
  };
}

async function itemsOf(
  db: pg.Pool | pg.PoolClient,
  s: string,
  notifications: string[],
): Promise<Map<string, ItemRow[]>> {
  const byNotification = new Map<string, ItemRow[]>(notifications.map((n) => [n, []]));
  if (notifications.length === 0) return byNotification;
  const { rows } = await db.query<ItemRow>(
    `SELECT * FROM ${s}.quality_notification_item WHERE notification = ANY($1) ORDER BY notification, item`,
    [notifications],
  );
  for (const row of rows) byNotification.get(row.notification)?.push(row);
  return byNotification;
}

async function expandNotifications(ctx: ServiceContext, rows: NotificationRow[], q: QueryOptions): Promise<Entity[]> {
  checkExpand(q, [ITEMS_NAV]);
  const items = q.expand.includes(ITEMS_NAV)
    ? await itemsOf(
        ctx.pool,
        ctx.s,
        rows.map((r) => r.notification),
      )
    : undefined;
  return rows.map((r) => notificationEntity(ctx, r, items?.get(r.notification)));
}

async function lockNotification(client: pg.PoolClient, s: string, notification: string): Promise<NotificationRow> {
  const { rows } = await client.query<NotificationRow>(
    `SELECT * FROM ${s}.quality_notification WHERE notification = $1 FOR UPDATE`,
    [notification],
  );
  if (!rows[0]) throw SapMessages.notificationUnknown(notification);
  return rows[0];
}

/** Items are numbered 0001, 0002, … per notification; the caller holds the notification's row lock. */
async function insertItems(
  client: pg.PoolClient,
  s: string,
  notification: string,
  items: z.infer<typeof ItemInput>[],
): Promise<ItemRow[]> {
  const { rows } = await client.query<{ last: string | null }>(
    `SELECT max(item) AS last FROM ${s}.quality_notification_item WHERE notification = $1`,
    [notification],
  );
  let next = Number(rows[0]?.last ?? '0');
  const inserted: ItemRow[] = [];
  for (const item of items) {
    next++;
    const result = await client.query<ItemRow>(
      `INSERT INTO ${s}.quality_notification_item
         (notification, item, item_text, defect_code_catalog, defect_code_group, defect_code)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [
        notification,
        String(next).padStart(4, '0'),
        item.NotificationItemText,
        item.DefectCodeCatalog,
        item.DefectCodeGroup,
        item.DefectCode,
      ],
    );
    inserted.push(result.rows[0]!);
  }
  await client.query(`UPDATE ${s}.quality_notification SET changed_at = now() WHERE notification = $1`, [notification]);
  return inserted;
}

async function addItem(ctx: ServiceContext, notification: string, body: unknown): Promise<Entity> {
  const input = parseBody(ItemInput, body);
  if (input.QualityNotification !== undefined && input.QualityNotification !== notification) {
    throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', 'QualityNotification in body does not match the key');
  }
  const [row] = await withTransaction(ctx.pool, async (client) => {
    const header = await lockNotification(client, ctx.s, notification);
    if (header.processing_phase === PHASE_COMPLETED) throw SapMessages.notificationCompleted(notification);
    return insertItems(client, ctx.s, notification, [input]);
  });
  return itemEntity(ctx, row!);
}

export const qualityNotificationService: ODataService = {
  name: QUALITY_NOTIFICATION_SERVICE,
  entitySets: {
    QualityNotification: {
      async list(ctx, q) {
        const params: unknown[] = [];
        const where = filterSql(q.filter, NOTIFICATION_COLUMNS, params);
        const { rows } = await ctx.pool.query<NotificationRow>(
          `SELECT * FROM ${ctx.s}.quality_notification WHERE ${where} ORDER BY notification${pagingSql(q, params)}`,
          params,
        );
        return expandNotifications(ctx, rows, q);
      },

      async get(ctx, key, q) {
        const notification = requireKey(key, 'QualityNotification');
        const { rows } = await ctx.pool.query<NotificationRow>(
          `SELECT * FROM ${ctx.s}.quality_notification WHERE notification = $1`,
          [notification],
        );
        if (!rows[0]) throw notFound(`QualityNotification('${notification}')`);
        const [entity] = await expandNotifications(ctx, rows, q);
        return entity!;
      },

      async create(ctx, body) {
        const input = parseBody(NotificationInput, body);
        const items = navigationArray(input[ITEMS_NAV]).map((i) => parseBody(ItemInput, i));
        if (!NOTIFICATION_TYPES.has(input.NotificationType)) {
          throw SapMessages.notificationTypeUnknown(input.NotificationType);
        }
        if (input.Material) {
          await checkMasterData(ctx.pool, ctx.s, {
            material: input.Material,
            plant: input.Plant,
            batch: input.Batch,
          });
        }
        const { header, inserted } = await withTransaction(ctx.pool, async (client) => {
          const { rows } = await client.query<NotificationRow>(
            `INSERT INTO ${ctx.s}.quality_notification
               (notification, notification_type, notification_text, material, plant, batch, supplier,
                external_reference, complaint_quantity, complaint_quantity_unit, created_by_user)
             VALUES (nextval('${ctx.s}.quality_notification_number')::text, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING *`,
            [
              input.NotificationType,
              input.NotificationText,
              input.Material,
              input.Plant,
              input.Batch,
              input.Supplier,
              input.ExternalReferenceNumber,
              String(input.ComplaintQuantity),
              input.ComplaintQuantityUnit,
              ctx.user,
            ],
          );
          const header = rows[0]!;
          return { header, inserted: await insertItems(client, ctx.s, header.notification, items) };
        });
        return notificationEntity(ctx, header, inserted);
      },

      async update(ctx, key, body) {
        const notification = requireKey(key, 'QualityNotification');
        const change = parseBody(NotificationChange, body);
        await withTransaction(ctx.pool, async (client) => {
          const header = await lockNotification(client, ctx.s, notification).catch((err: unknown) => {
            throw err instanceof SapODataError && err.httpStatus === 404
              ? notFound(`QualityNotification('${notification}')`)
              : err;
          });
          const phase = change.NotifProcessingPhase ?? header.processing_phase;
          // Completing twice is a no-op, as with SAP's "complete" on a completed notification.
          await client.query(
            `UPDATE ${ctx.s}.quality_notification
                SET processing_phase = $2,
                    notification_text = $3,
                    changed_at = now(),
                    completed_at = CASE WHEN $2 = '${PHASE_COMPLETED}' THEN coalesce(completed_at, now()) ELSE NULL END
              WHERE notification = $1`,
            [notification, phase, change.NotificationText ?? header.notification_text],
          );
        });
      },

      navigations: {
        [ITEMS_NAV]: {
          async list(ctx, key) {
            const notification = requireKey(key, 'QualityNotification');
            const items = await itemsOf(ctx.pool, ctx.s, [notification]);
            return (items.get(notification) ?? []).map((i) => itemEntity(ctx, i));
          },
          create: (ctx, key, body) => addItem(ctx, requireKey(key, 'QualityNotification'), body),
        },
      },
    },

    QualityNotificationItem: {
      async list(ctx, q) {
        checkExpand(q, []);
        const params: unknown[] = [];
        const where = filterSql(q.filter, ITEM_COLUMNS, params);
        const { rows } = await ctx.pool.query<ItemRow>(
          `SELECT * FROM ${ctx.s}.quality_notification_item WHERE ${where}
            ORDER BY notification, item${pagingSql(q, params)}`,
          params,
        );
        return rows.map((r) => itemEntity(ctx, r));
      },

      async get(ctx, key) {
        const notification = requireKey(key, 'QualityNotification');
        const item = key.named.NotificationItem;
        if (item === undefined) throw notFound('QualityNotificationItem');
        const { rows } = await ctx.pool.query<ItemRow>(
          `SELECT * FROM ${ctx.s}.quality_notification_item WHERE notification = $1 AND item = $2`,
          [notification, item],
        );
        if (!rows[0]) throw notFound(`QualityNotificationItem(QualityNotification='${notification}',…)`);
        return itemEntity(ctx, rows[0]);
      },

      async create(ctx, body) {
        const notification = (body as { QualityNotification?: unknown } | null)?.QualityNotification;
        if (typeof notification !== 'string' || notification === '') {
          throw new SapODataError(400, '/IWBEP/CM_MGW_RT/022', "Property 'QualityNotification' is required");
        }
        return addItem(ctx, notification, body);
      },
    },
  },
};
