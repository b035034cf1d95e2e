import type {
  CreateOptions,
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpMaterialDocument,
  ErpMovementType,
  ErpBatchRef,
  ErpPort,
  ErpQualityNotificationRequest,
  ErpStock,
} from '../../../activities/ports';
import { ExternalSystemError } from '../../../activities/errors';
import {
  entitySetOf,
  MATERIAL_STOCK_SERVICE,
  QUALITY_NOTIFICATION_SERVICE as QUALITY_NOTIFICATION,
  SAP_SERVICES,
} from '../../vendor-apis/sap-s4/metadata';
import { odataString, type SapODataClient, type SapODataV4Client } from './client';
import { idempotencyToken, textWithToken } from './idempotency-token';
import {
  MaterialDocumentRecord,
  MaterialStockRecord,
  QualityNotificationItemRecord,
  QualityNotificationRecord,
  type QualityNotificationItemRecord as ItemRecord,
} from './sap-s4.schemas';

const MATERIAL_DOCUMENT = 'API_MATERIAL_DOCUMENT_SRV';
/** The composition from a notification to its defect items (OData V4). */
const ITEMS_NAV = '_QualityNotificationItem';
/** The bound action that completes a notification: the phase is read-only in a RAP service. */
const COMPLETE = `${SAP_SERVICES[QUALITY_NOTIFICATION]!.namespace}.Complete`;
const MATERIAL_DOCUMENT_ITEMS_NAV = 'to_MaterialDocumentItem';

/** QMEL-PHASE: 4 = completed. */
const PHASE_COMPLETED = '4';
/** Catalog 9 holds defect types (QM standard catalogs). */
const DEFECT_CATALOG = '9';
/**
 * GoodsMovementCode (BAPI_GOODSMVT_CREATE GM_CODE) per movement type: 344/343 are transfer postings (04), scrapping
 * from blocked stock is a goods issue (03), a return to the vendor refers to the purchase order (01).
 */
const GOODS_MOVEMENT_CODE: Record<ErpMovementType, string> = { '344': '04', '343': '04', '555': '03', '122': '01' };
/** GoodsMovementRefDocType B: the item refers to a purchase order. */
const PURCHASE_ORDER_REFERENCE = 'B';
/** InventoryStockType 07 = blocked stock (recalled, not verified): 122 returns the lot Holdfast blocked. */
const BLOCKED_STOCK = '07';
/** InventoryStockType 01 = unrestricted-use stock, what a 344 moves to blocked. */
const UNRESTRICTED_STOCK = '01';

const LOOKUP_FIRST: CreateOptions = { lookupFirst: true };

/** Text lengths from metadata.ts, which both the connector and the simulator follow. */
const maxLength = (entitySet: string, property: string) =>
  entitySetOf(QUALITY_NOTIFICATION, entitySet).properties[property]?.maxLength ?? Infinity;
const NOTIFICATION_TEXT_LENGTH = maxLength('QualityNotification', 'NotificationText');
const ITEM_TEXT_LENGTH = maxLength('QualityNotificationItem', 'NotificationItemText');
const DOCUMENT_ITEM_TEXT_LENGTH = 50;

/**
 * ErpPort on SAP S/4HANA: quality notifications over OData V4 (`notifications`), material documents over V2
 * (`client`). A create that may be a retry first looks its idempotency token up and posts only when nothing carries
 * it, so "SAP committed but the response was lost" followed by a retry returns the first document
 * (docs/reliability.md#lookup-before-create). With `lookupFirst: false` (the intent ledger knows of no earlier
 * attempt) it posts at once; the token is written either way, so a later retry can find the document.
 * Where the token lives: defect item → the end of NotificationItemText (a notification is found by its first item's);
 * material document → MaterialDocumentHeaderText (infra/simulators/sap-s4/README.md says why).
 */
export function createSapS4ErpPort(client: SapODataClient, notifications: SapODataV4Client): ErpPort {
  const { system } = client;

  function quantityText(quantity: number, operation: string): string {
    if (!Number.isFinite(quantity) || quantity <= 0) {
      throw new ExternalSystemError(
        system,
        'validation',
        `SAP ${system} ${operation}: quantity ${quantity} is not positive`,
      );
    }
    return quantity.toFixed(3);
  }

  /**
   * The item's reference to another document: a return to the vendor (122) names the purchase order item the batch
   * was received on, from blocked stock; the transfer postings and the scrapping need none.
   */
  function movementReference(req: ErpGoodsMovementRequest, operation: string) {
    if (req.movementType !== '122') return {};
    if (!req.purchaseOrder || !req.purchaseOrderItem) {
      throw new ExternalSystemError(
        system,
        'validation',
        `SAP ${system} ${operation}: batch ${req.batch} of material ${req.material} has no purchase order and item; ` +
          'a return to the vendor must name the purchase order the batch was received on',
      );
    }
    return {
      InventoryStockType: BLOCKED_STOCK,
      GoodsMovementRefDocType: PURCHASE_ORDER_REFERENCE,
      PurchaseOrder: req.purchaseOrder,
      // EBELP is five digits in SAP; an MES may keep the item as "10".
      PurchaseOrderItem: /^\d{1,5}$/.test(req.purchaseOrderItem)
        ? req.purchaseOrderItem.padStart(5, '0')
        : req.purchaseOrderItem,
      ...(req.supplier ? { Supplier: req.supplier } : {}),
    };
  }

  /** V4 sends Edm.Decimal as a JSON number: the quantity checked and rounded like every other Holdfast sends. */
  function defectiveQuantity(quantity: number, operation: string): number {
    return Number(quantityText(quantity, operation));
  }

  const notificationPath = (notification: string) => `QualityNotification(${odataString(notification)})`;

  function itemsOf(notification: string, operation: string): Promise<ItemRecord[]> {
    return notifications.list(
      QUALITY_NOTIFICATION,
      `${notificationPath(notification)}/${ITEMS_NAV}`,
      {},
      QualityNotificationItemRecord,
      operation,
    );
  }

  /**
   * The notification's item that carries `token`. SAP's answer is not trusted to list the items (a deep insert may
   * come back without them, a server may not expand): when it lacks them, they are read back.
   */
  async function itemCarrying(
    notification: QualityNotificationRecord,
    token: string,
    operation: string,
  ): Promise<ItemRecord | undefined> {
    const items =
      notification._QualityNotificationItem ??
      (await itemsOf(notification.QualityNotification, `${operation} (items read back)`));
    return items.find((i) => i.NotificationItemText.endsWith(token));
  }

  function defectItemBody(item: ErpDefectItem) {
    return {
      NotificationItemText: textWithToken(item.text, idempotencyToken(item.idempotencyKey), ITEM_TEXT_LENGTH),
      DefectCodeCatalog: DEFECT_CATALOG,
      DefectCodeGroup: item.defectCodeGroup,
      DefectCode: item.defectCode,
    };
  }

  return {
    system,

    async raiseQualityNotification(req: ErpQualityNotificationRequest, { lookupFirst } = LOOKUP_FIRST) {
      const operation = 'raiseQualityNotification';
      const itemToken = idempotencyToken(req.firstItem.idempotencyKey);
      if (lookupFirst) {
        // The V4 root has no reference field: a batch has few notifications, and the one raised with this key is
        // the one whose first item carries its token.
        const candidates = await notifications.list(
          QUALITY_NOTIFICATION,
          'QualityNotification',
          {
            filter: {
              Material: req.material,
              Plant: req.plant,
              Batch: req.batch,
              NotificationType: req.notificationType,
            },
            expand: [ITEMS_NAV],
          },
          QualityNotificationRecord,
          `${operation} (look-up)`,
        );
        for (const candidate of candidates) {
          const item = await itemCarrying(candidate, itemToken, `${operation} (look-up)`);
          if (item) return { notification: candidate.QualityNotification, item: item.NotificationItem };
        }
      }

      const created = await notifications.create(
        QUALITY_NOTIFICATION,
        'QualityNotification',
        {
          NotificationType: req.notificationType,
          NotificationText: req.text.slice(0, NOTIFICATION_TEXT_LENGTH),
          Material: req.material,
          Plant: req.plant,
          Batch: req.batch,
          ...(req.supplier ? { Supplier: req.supplier } : {}),
          ...(req.purchaseOrder ? { PurchasingDocument: req.purchaseOrder } : {}),
          ...(req.purchaseOrder && req.purchaseOrderItem ? { PurchasingDocumentItem: req.purchaseOrderItem } : {}),
          [ITEMS_NAV]: [
            {
              ...defectItemBody(req.firstItem),
              // Found by Holdfast's own inspection, not reported by a customer or vendor: the internal quantity.
              InternalDefectiveQuantity: defectiveQuantity(req.quantity, operation),
              DefectiveQuantityUnit: req.unit,
            },
          ],
        },
        QualityNotificationRecord,
        operation,
      );
      const item = await itemCarrying(created, itemToken, operation);
      if (!item) {
        throw new ExternalSystemError(
          system,
          'rejected',
          `SAP ${system} ${operation}: notification ${created.QualityNotification} has no defect item carrying ${itemToken}`,
        );
      }
      return { notification: created.QualityNotification, item: item.NotificationItem };
    },

    async addNotificationItem(notification: string, item: ErpDefectItem, { lookupFirst } = LOOKUP_FIRST) {
      const operation = 'addNotificationItem';
      if (lookupFirst) {
        const token = idempotencyToken(item.idempotencyKey);
        const items = await itemsOf(notification, `${operation} (look-up)`);
        const existing = items.find((i) => i.NotificationItemText.endsWith(token));
        if (existing) return { item: existing.NotificationItem };
      }

      // Items of a notification are created through its composition (RAP), which needs no ETag.
      const created = await notifications.create(
        QUALITY_NOTIFICATION,
        `${notificationPath(notification)}/${ITEMS_NAV}`,
        defectItemBody(item),
        QualityNotificationItemRecord,
        operation,
      );
      return { item: created.NotificationItem };
    },

    async postGoodsMovement(
      req: ErpGoodsMovementRequest,
      { lookupFirst } = LOOKUP_FIRST,
    ): Promise<ErpMaterialDocument> {
      const operation = `postGoodsMovement ${req.movementType}`;
      // Checked before any call: a return that cannot name its purchase order would only be refused by SAP.
      const reference = movementReference(req, operation);
      const quantity = quantityText(req.quantity, operation);
      const token = idempotencyToken(req.idempotencyKey);
      if (lookupFirst) {
        const [existing] = await client.list(
          MATERIAL_DOCUMENT,
          'A_MaterialDocumentHeader',
          {
            filter: { MaterialDocumentHeaderText: token },
            top: 1,
            select: ['MaterialDocumentYear', 'MaterialDocument'],
          },
          MaterialDocumentRecord,
          `${operation} (look-up)`,
        );
        if (existing) {
          return { materialDocument: existing.MaterialDocument, materialDocumentYear: existing.MaterialDocumentYear };
        }
      }

      const today = new Date();
      const postingDate = `/Date(${Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate())})/`;
      // Only the header's keys are read from the answer: some systems answer a deep insert with no items in it.
      const created = await client.create(
        MATERIAL_DOCUMENT,
        'A_MaterialDocumentHeader',
        {
          GoodsMovementCode: GOODS_MOVEMENT_CODE[req.movementType],
          PostingDate: postingDate,
          DocumentDate: postingDate,
          MaterialDocumentHeaderText: token,
          [MATERIAL_DOCUMENT_ITEMS_NAV]: [
            {
              Material: req.material,
              Plant: req.plant,
              StorageLocation: req.storageLocation,
              Batch: req.batch,
              GoodsMovementType: req.movementType,
              QuantityInEntryUnit: quantity,
              EntryUnit: req.unit,
              MaterialDocumentItemText: req.headerText.slice(0, DOCUMENT_ITEM_TEXT_LENGTH),
              ...reference,
            },
          ],
        },
        MaterialDocumentRecord,
        operation,
      );
      return { materialDocument: created.MaterialDocument, materialDocumentYear: created.MaterialDocumentYear };
    },

    async unrestrictedStock(ref: ErpBatchRef): Promise<ErpStock[]> {
      const rows = await client.list(
        MATERIAL_STOCK_SERVICE,
        'A_MatlStkInAcctMod',
        {
          filter: {
            Material: ref.material,
            Plant: ref.plant,
            Batch: ref.batch,
            InventoryStockType: UNRESTRICTED_STOCK,
          },
          select: ['StorageLocation', 'MatlWrhsStkQtyInMatlBaseUnit', 'MaterialBaseUnit'],
        },
        MaterialStockRecord,
        'unrestrictedStock',
      );
      // One row per storage location and special stock; Holdfast posts none of the special stocks, so they add up.
      const bySloc = new Map<string, ErpStock>();
      for (const r of rows) {
        const quantity = Number(r.MatlWrhsStkQtyInMatlBaseUnit);
        if (!(quantity > 0)) continue;
        const known = bySloc.get(r.StorageLocation);
        bySloc.set(r.StorageLocation, {
          storageLocation: r.StorageLocation,
          quantity: (known?.quantity ?? 0) + quantity,
          unit: r.MaterialBaseUnit,
        });
      }
      return [...bySloc.values()];
    },

    async completeNotification(notification: string) {
      const operation = 'completeNotification';
      const path = notificationPath(notification);
      // Read first: a completed notification is left alone (idempotent), and the read gives the ETag RAP demands.
      await notifications.changeWithETag(
        QUALITY_NOTIFICATION,
        { method: 'POST', resourcePath: `${path}/${COMPLETE}`, body: {} },
        async () => {
          const { entity, etag } = await notifications.read(
            QUALITY_NOTIFICATION,
            path,
            { select: ['QualityNotification', 'NotifProcessingPhase'] },
            QualityNotificationRecord,
            `${operation} (read)`,
          );
          return entity.NotifProcessingPhase === PHASE_COMPLETED ? 'already-done' : { etag };
        },
        operation,
      );
    },
  };
}
