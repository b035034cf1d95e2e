import type pg from 'pg';
import { z } from 'zod';
import { entitySetOf, QUALITY_NOTIFICATION_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { checkMasterData } from './master-data';
import type { KeyPredicate } from './odata';
import { filterSql, notFound, pagingSql, requireKey, type Entity, type ServiceContext } from './odata-service';
import {
  checkIfMatch,
  etagOf,
  orderSql,
  parseV4Body,
  SapODataV4Error,
  toEdmDate,
  type ODataV4Service,
  type V4Query,
} from './odata-v4';
import { SapMessages } from './sap-messages';
import { withTransaction } from '../../db/pool';

/**
 * CE_QUALITYNOTIFICATION_0001 (OData V4, RAP): quality notifications with their defect items, as metadata.ts
 * describes them. Items are created with the notification (deep insert) or through its composition; every change of
 * a notification or of its items moves the notification's ChangedDateTime and so its ETag, and a PATCH or the bound
 * action Complete must present that ETag in If-Match. The phase is read-only: Complete sets it.
 */
const ITEMS_NAV = '_QualityNotificationItem';
export const PHASE_COMPLETED = '4';

/** Standard notification types: Q1–Q3 complaints and problem reports, F1–F3 the same with defect recording. */
const NOTIFICATION_TYPES = new Set(['Q1', 'Q2', 'Q3', 'F1', 'F2', 'F3']);

/** A string property with its length from metadata.ts, so the simulator and the metadata cannot disagree. */
function text(entitySet: string, property: string) {
  const { maxLength } = entitySetOf(QUALITY_NOTIFICATION_SERVICE, entitySet).properties[property]!;
  return maxLength === undefined ? z.string() : z.string().max(maxLength);
}
const root = (property: string) => text('QualityNotification', property);
const item = (property: string) => text('QualityNotificationItem', property);

/** Edm.Decimal is a JSON number in RAP's answers and requests unless the client asks for IEEE754Compatible. */
const Quantity = z
  .number({ error: 'expected Edm.Decimal as a JSON number' })
  .nonnegative()
  .max(9_999_999_999.999)
  .refine((n) => Math.abs(n * 1000 - Math.round(n * 1000)) < 1e-6, 'at most 3 decimals');

const ItemInput = z.strictObject({
  NotificationItemText: item('NotificationItemText').default(''),
  DefectCodeCatalog: item('DefectCodeCatalog').default('9'),
  DefectCodeGroup: item('DefectCodeGroup').default(''),
  DefectCode: item('DefectCode').default(''),
  InternalDefectiveQuantity: Quantity.default(0),
  ExternalDefectiveQuantity: Quantity.default(0),
  DefectiveQuantityUnit: item('DefectiveQuantityUnit').default(''),
});

const NotificationInput = z.strictObject({
  NotificationType: root('NotificationType').min(1),
  NotificationText: root('NotificationText').default(''),
  Material: root('Material').default(''),
  Plant: root('Plant').default(''),
  Batch: root('Batch').default(''),
  Supplier: root('Supplier').default(''),
  PurchasingDocument: root('PurchasingDocument').default(''),
  PurchasingDocumentItem: root('PurchasingDocumentItem').default(''),
  [ITEMS_NAV]: z.array(z.record(z.string(), z.unknown())).default([]),
});

const NotificationChange = z.strictObject({ NotificationText: root('NotificationText').optional() });

/** Assigned or derived by SAP: a client that sends them is refused naming the property. */
const READ_ONLY = new Set([
  'QualityNotification',
  'NotificationItem',
  'NotifProcessingPhase',
  'CreatedByUser',
  'CreationDate',
  'NotificationCompletionDate',
  'ChangedDateTime',
]);

interface NotificationRow {
  notification: string;
  notification_type: string;
  notification_text: string;
  material: string;
  plant: string;
  batch: string;
  supplier: string;
  purchasing_document: string;
  purchasing_document_item: string;
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
  internal_defective_quantity: string;
  external_defective_quantity: string;
  defective_quantity_unit: string;
  created_at: Date;
  /** The notification's ChangedDateTime: items carry their notification's ETag, as RAP's ETag master. */
  root_changed_at: Date;
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
  PurchasingDocument: 'purchasing_document',
  PurchasingDocumentItem: 'purchasing_document_item',
  CreatedByUser: 'created_by_user',
};

const ITEM_COLUMNS: Record<string, string> = {
  QualityNotification: 'i.notification',
  NotificationItem: 'i.item',
  NotificationItemText: 'i.item_text',
  DefectCodeCatalog: 'i.defect_code_catalog',
  DefectCodeGroup: 'i.defect_code_group',
  DefectCode: 'i.defect_code',
  DefectiveQuantityUnit: 'i.defective_quantity_unit',
};

/** ChangedDateTime after a change: strictly later than before, so two changes in one millisecond differ in ETag. */
const NEXT_CHANGE = "greatest(date_trunc('milliseconds', clock_timestamp()), changed_at + interval '1 millisecond')";

function itemEntity(r: ItemRow): Entity {
  return {
    '@odata.etag': etagOf(r.root_changed_at),
    QualityNotification: r.notification,
    NotificationItem: r.item,
    NotificationItemText: r.item_text,
    DefectCodeCatalog: r.defect_code_catalog,
    DefectCodeGroup: r.defect_code_group,
    DefectCode: r.defect_code,
    InternalDefectiveQuantity: Number(r.internal_defective_quantity),
    ExternalDefectiveQuantity: Number(r.external_defective_quantity),
    DefectiveQuantityUnit: r.defective_quantity_unit,
    CreationDate: toEdmDate(r.created_at),
  };
}

function notificationEntity(r: NotificationRow, items: ItemRow[] | undefined): Entity {
  return {
    '@odata.etag': etagOf(r.changed_at),
    QualityNotification: r.notification,
    NotificationType: r.notification_type,
    NotificationText: r.notification_text,
    NotifProcessingPhase: r.processing_phase,
    Material: r.material,
    Plant: r.plant,
    Batch: r.batch,
    Supplier: r.supplier,
    PurchasingDocument: r.purchasing_document,
    PurchasingDocumentItem: r.purchasing_document_item,
    CreatedByUser: r.created_by_user,
    CreationDate: toEdmDate(r.created_at),
    NotificationCompletionDate: r.completed_at ? toEdmDate(r.completed_at) : null,
    ChangedDateTime: r.changed_at.toISOString(),
    // V4 leaves a navigation out unless it is expanded.
    ...(items ? { [ITEMS_NAV]: items.map(itemEntity) } : {}),
  };
}

/** The properties the simulator fills, read off the entity builders so that the two cannot drift apart. */
const servedBy = (entity: Entity) => Object.keys(entity).filter((p) => !p.startsWith('@'));
const epoch = new Date(0);
const SERVED_NOTIFICATION = servedBy(
  notificationEntity({ created_at: epoch, changed_at: epoch, completed_at: null } as NotificationRow, undefined),
);
const SERVED_ITEM = servedBy(itemEntity({ created_at: epoch, root_changed_at: epoch } as ItemRow));

const ITEMS_SELECT = (s: string) =>
  `SELECT i.*, n.changed_at AS root_changed_at
     FROM ${s}.quality_notification_item i JOIN ${s}.quality_notification n USING (notification)`;

async function itemsOf(
  db: pg.Pool | pg.PoolClient,
  s: string,
  notifications: string[],
): Promise<Map<string, ItemRow[]>> {
  const byNotification = new Map<string, ItemRow[]>(notifications.map((n) => [n, []]));
  if (notifications.length === 0) return byNotification;
  const { rows } = await db.query<ItemRow>(
    `${ITEMS_SELECT(s)} WHERE i.notification = ANY($1) ORDER BY i.notification, i.item`,
    [notifications],
  );
  for (const row of rows) byNotification.get(row.notification)?.push(row);
  return byNotification;
}

async function withItems(ctx: ServiceContext, rows: NotificationRow[], q: V4Query): Promise<Entity[]> {
  const items = q.expand.includes(ITEMS_NAV)
    ? await itemsOf(
        ctx.pool,
        ctx.s,
        rows.map((r) => r.notification),
      )
    : undefined;
  return rows.map((r) => notificationEntity(r, items?.get(r.notification)));
}

async function lockNotification(client: pg.PoolClient, s: string, notification: string): Promise<NotificationRow> {
  const { rows } = await client.query<NotificationRow>(
    `SELECT * FROM ${s}.quality_notification WHERE notification = $1 FOR UPDATE`,
    [notification],
  );
  if (!rows[0]) throw SapMessages.notificationUnknown(notification);
  return rows[0];
}

async function exists(db: pg.Pool, s: string, notification: string): Promise<boolean> {
  const { rowCount } = await db.query(`SELECT 1 FROM ${s}.quality_notification WHERE notification = $1`, [
    notification,
  ]);
  return rowCount !== 0;
}

async function touch(
  db: pg.Pool | pg.PoolClient,
  s: string,
  notification: string,
): Promise<NotificationRow | undefined> {
  const { rows } = await db.query<NotificationRow>(
    `UPDATE ${s}.quality_notification SET changed_at = ${NEXT_CHANGE} WHERE notification = $1 RETURNING *`,
    [notification],
  );
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
  for (const i of items) {
    next++;
    await client.query(
      `INSERT INTO ${s}.quality_notification_item
         (notification, item, item_text, defect_code_catalog, defect_code_group, defect_code,
          internal_defective_quantity, external_defective_quantity, defective_quantity_unit)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [
        notification,
        String(next).padStart(4, '0'),
        i.NotificationItemText,
        i.DefectCodeCatalog,
        i.DefectCodeGroup,
        i.DefectCode,
        i.InternalDefectiveQuantity,
        i.ExternalDefectiveQuantity,
        i.DefectiveQuantityUnit,
      ],
    );
  }
  await touch(client, s, notification);
  const { rows: inserted } = await client.query<ItemRow>(
    `${ITEMS_SELECT(s)} WHERE i.notification = $1 AND i.item > $2 ORDER BY i.item`,
    [notification, String(next - items.length).padStart(4, '0')],
  );
  return inserted;
}

/** The test controls that make the simulator behave as SAP may, on demand (README, "Test and benchmark controls"). */
export interface QualityNotificationControls {
  /** The next create answers without its items, as SAP may answer a deep insert. */
  omitItemsOnNextCreate(): void;
  /**
   * Changes the notification as a user in SAP would, which moves its ETag: at once, or right after the next read of
   * it by key has been answered (the read's ETag is then stale). False when there is no such notification.
   */
  changeBehindCallersBack(
    db: pg.Pool,
    s: string,
    notification: string,
    when: 'now' | 'after-next-read',
  ): Promise<boolean>;
}

export function createQualityNotificationService(): {
  service: ODataV4Service;
  controls: QualityNotificationControls;
} {
  let omitItems = false;
  const changeAfterRead = new Set<string>();

  async function addItem(
    ctx: ServiceContext,
    key: KeyPredicate,
    body: Entity,
    ifMatch: string | undefined,
  ): Promise<Entity> {
    const notification = requireKey(key, 'QualityNotification');
    const input = parseV4Body(ItemInput, body, READ_ONLY);
    const [row] = await withTransaction(ctx.pool, async (client) => {
      const header = await lockNotification(client, ctx.s, notification);
      // A create through the composition needs no ETag; one that is sent must still be current.
      if (ifMatch !== undefined)
        checkIfMatch(ifMatch, etagOf(header.changed_at), `QualityNotification('${notification}')`);
      if (header.processing_phase === PHASE_COMPLETED) throw SapMessages.notificationCompleted(notification);
      return insertItems(client, ctx.s, notification, [input]);
    });
    return itemEntity(row!);
  }

  /** Locks the notification, checks If-Match, applies `change` (which returns the updated row) and answers it. */
  async function changeNotification(
    ctx: ServiceContext,
    key: KeyPredicate,
    ifMatch: string | undefined,
    change: (client: pg.PoolClient, header: NotificationRow) => Promise<NotificationRow>,
  ): Promise<Entity> {
    const notification = requireKey(key, 'QualityNotification');
    const row = await withTransaction(ctx.pool, async (client) => {
      const header = await lockNotification(client, ctx.s, notification);
      checkIfMatch(ifMatch, etagOf(header.changed_at), `QualityNotification('${notification}')`);
      return change(client, header);
    });
    return notificationEntity(row, undefined);
  }

  const service: ODataV4Service = {
    name: QUALITY_NOTIFICATION_SERVICE,
    entitySets: {
      QualityNotification: {
        served: SERVED_NOTIFICATION,

        async list(ctx, q) {
          const params: unknown[] = [];
          const where = filterSql(q.filter, NOTIFICATION_COLUMNS, params);
          const { rows } = await ctx.pool.query<NotificationRow>(
            `SELECT * FROM ${ctx.s}.quality_notification WHERE ${where}
              ORDER BY ${orderSql(q, NOTIFICATION_COLUMNS, 'notification')}${pagingSql(q, params)}`,
            params,
          );
          return withItems(ctx, rows, q);
        },

        async get(ctx, key, q) {
          const notification = requireKey(key, 'QualityNotification');
          const { rows } = await ctx.pool.query<NotificationRow>(
            `SELECT * FROM ${ctx.s}.quality_notification WHERE notification = $1`,
            [notification],
          );
          if (!rows[0]) throw notFound(`QualityNotification('${notification}')`);
          const [entity] = await withItems(ctx, rows, q);
          if (changeAfterRead.delete(notification)) await touch(ctx.pool, ctx.s, notification);
          return entity!;
        },

        async create(ctx, body) {
          const input = parseV4Body(NotificationInput, body, READ_ONLY);
          const items = input[ITEMS_NAV].map((i) => parseV4Body(ItemInput, i, READ_ONLY));
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
                  purchasing_document, purchasing_document_item, created_by_user)
               VALUES (nextval('${ctx.s}.quality_notification_number')::text, $1, $2, $3, $4, $5, $6, $7, $8, $9)
               RETURNING notification`,
              [
                input.NotificationType,
                input.NotificationText,
                input.Material,
                input.Plant,
                input.Batch,
                input.Supplier,
                input.PurchasingDocument,
                input.PurchasingDocumentItem,
                ctx.user,
              ],
            );
            const notification = rows[0]!.notification;
            const inserted = await insertItems(client, ctx.s, notification, items);
            return { header: await lockNotification(client, ctx.s, notification), inserted };
          });
          const answerItems = omitItems ? undefined : inserted;
          omitItems = false;
          return notificationEntity(header, answerItems);
        },

        update(ctx, key, body, ifMatch) {
          const change = parseV4Body(NotificationChange, body, READ_ONLY);
          return changeNotification(ctx, key, ifMatch, async (client, header) => {
            if (header.processing_phase === PHASE_COMPLETED)
              throw SapMessages.notificationCompleted(header.notification);
            const { rows } = await client.query<NotificationRow>(
              `UPDATE ${ctx.s}.quality_notification SET notification_text = $2, changed_at = ${NEXT_CHANGE}
                WHERE notification = $1 RETURNING *`,
              [header.notification, change.NotificationText ?? header.notification_text],
            );
            return rows[0]!;
          });
        },

        navigations: {
          [ITEMS_NAV]: {
            async list(ctx, key, q) {
              const notification = requireKey(key, 'QualityNotification');
              const params: unknown[] = [notification];
              const where = filterSql(q.filter, ITEM_COLUMNS, params);
              const { rows } = await ctx.pool.query<ItemRow>(
                `${ITEMS_SELECT(ctx.s)} WHERE i.notification = $1 AND ${where}
                  ORDER BY ${orderSql(q, ITEM_COLUMNS, 'i.item')}${pagingSql(q, params)}`,
                params,
              );
              // The items of an unknown notification are a 404, not an empty list: the navigation has no source.
              if (rows.length === 0 && !(await exists(ctx.pool, ctx.s, notification))) {
                throw notFound(`QualityNotification('${notification}')`);
              }
              return rows.map(itemEntity);
            },
            create: addItem,
          },
        },

        actions: {
          // Completing a completed notification changes nothing and answers it as it is (unconfirmed; README).
          Complete: (ctx, key, _body, ifMatch) =>
            changeNotification(ctx, key, ifMatch, async (client, header) => {
              if (header.processing_phase === PHASE_COMPLETED) return header;
              const { rows } = await client.query<NotificationRow>(
                `UPDATE ${ctx.s}.quality_notification
                    SET processing_phase = '${PHASE_COMPLETED}', completed_at = now(), changed_at = ${NEXT_CHANGE}
                  WHERE notification = $1 RETURNING *`,
                [header.notification],
              );
              return rows[0]!;
            }),
        },
      },

      QualityNotificationItem: {
        served: SERVED_ITEM,

        async list(ctx, q) {
          const params: unknown[] = [];
          const where = filterSql(q.filter, ITEM_COLUMNS, params);
          const { rows } = await ctx.pool.query<ItemRow>(
            `${ITEMS_SELECT(ctx.s)} WHERE ${where}
              ORDER BY ${orderSql(q, ITEM_COLUMNS, 'i.notification, i.item')}${pagingSql(q, params)}`,
            params,
          );
          return rows.map(itemEntity);
        },

        async get(ctx, key) {
          const notification = key.named.QualityNotification;
          const item = key.named.NotificationItem;
          if (notification === undefined || item === undefined) {
            throw new SapODataV4Error(
              400,
              '/IWBEP/CM_MGW_RT/004',
              'Both keys are needed: QualityNotification and NotificationItem',
            );
          }
          const { rows } = await ctx.pool.query<ItemRow>(
            `${ITEMS_SELECT(ctx.s)} WHERE i.notification = $1 AND i.item = $2`,
            [notification, item],
          );
          if (!rows[0]) throw notFound(`QualityNotificationItem(QualityNotification='${notification}',…)`);
          return itemEntity(rows[0]);
        },
      },
    },
  };

  return {
    service,
    controls: {
      omitItemsOnNextCreate() {
        omitItems = true;
      },
      async changeBehindCallersBack(db, s, notification, when) {
        if (!(await exists(db, s, notification))) return false;
        if (when === 'now') await touch(db, s, notification);
        else changeAfterRead.add(notification);
        return true;
      },
    },
  };
}
