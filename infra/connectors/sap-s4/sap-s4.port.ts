import type {
  CreateOptions,
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpMaterialDocument,
  ErpMovementType,
  ErpPort,
  ErpQualityNotificationRequest,
} from '../../../activities/ports';
import { ExternalSystemError } from '../../../activities/errors';
import { odataString, type SapODataClient } from './client';
import { idempotencyToken, textWithToken } from './idempotency-token';
import {
  MaterialDocumentRecord,
  QualityNotificationItemRecord,
  QualityNotificationRecord,
  type QualityNotificationItemRecord as ItemRecord,
} from './sap-s4.schemas';

const QUALITY_NOTIFICATION = 'API_QUALITYNOTIFICATION';
const MATERIAL_DOCUMENT = 'API_MATERIAL_DOCUMENT_SRV';
const ITEMS_NAV = 'to_QualityNotificationItem';
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

const LOOKUP_FIRST: CreateOptions = { lookupFirst: true };

const NOTIFICATION_TEXT_LENGTH = 40;
const ITEM_TEXT_LENGTH = 40;
const DOCUMENT_ITEM_TEXT_LENGTH = 50;

/**
 * ErpPort on SAP S/4HANA. A create that may be a retry first looks its idempotency token up and posts only when
 * nothing carries it, so "SAP committed but the response was lost" followed by a retry returns the first document
 * (docs/reliability.md#lookup-before-create). With `lookupFirst: false` (the intent ledger knows of no earlier
 * attempt) it posts at once; the token is written either way, so a later retry can find the document.
 * Where the token lives: notification → ExternalReferenceNumber; defect item → the end of NotificationItemText;
 * material document → MaterialDocumentHeaderText (infra/simulators/sap-s4/README.md says why).
 */
export function createSapS4ErpPort(client: SapODataClient): ErpPort {
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

  function itemCarrying(items: ItemRecord[], token: string): ItemRecord | undefined {
    return items.find((i) => i.NotificationItemText.endsWith(token));
  }

  async function notificationItems(notification: QualityNotificationRecord, operation: string): Promise<ItemRecord[]> {
    const nav = notification.to_QualityNotificationItem;
    if (nav && 'results' in nav) return nav.results;
    const expanded = await client.get(
      QUALITY_NOTIFICATION,
      `QualityNotification(${odataString(notification.QualityNotification)})`,
      { expand: [ITEMS_NAV] },
      QualityNotificationRecord,
      operation,
    );
    const again = expanded.to_QualityNotificationItem;
    return again && 'results' in again ? again.results : [];
  }

  async function firstItemOf(notification: QualityNotificationRecord, token: string, operation: string) {
    const items = await notificationItems(notification, operation);
    const item = itemCarrying(items, token) ?? items[0];
    if (!item) {
      throw new ExternalSystemError(
        system,
        'rejected',
        `SAP ${system} ${operation}: notification ${notification.QualityNotification} has no defect item`,
      );
    }
    return { notification: notification.QualityNotification, item: item.NotificationItem };
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
      const token = idempotencyToken(req.idempotencyKey);
      const itemToken = idempotencyToken(req.firstItem.idempotencyKey);
      if (lookupFirst) {
        const [existing] = await client.list(
          QUALITY_NOTIFICATION,
          'QualityNotification',
          { filter: { ExternalReferenceNumber: token }, expand: [ITEMS_NAV], top: 1 },
          QualityNotificationRecord,
          `${operation} (look-up)`,
        );
        if (existing) return firstItemOf(existing, itemToken, `${operation} (look-up)`);
      }

      const created = await client.create(
        QUALITY_NOTIFICATION,
        'QualityNotification',
        {
          NotificationType: req.notificationType,
          NotificationText: req.text.slice(0, NOTIFICATION_TEXT_LENGTH),
          Material: req.material,
          Plant: req.plant,
          Batch: req.batch,
          ...(req.supplier ? { Supplier: req.supplier } : {}),
          ExternalReferenceNumber: token,
          ComplaintQuantity: quantityText(req.quantity, operation),
          ComplaintQuantityUnit: req.unit,
          [ITEMS_NAV]: [defectItemBody(req.firstItem)],
        },
        QualityNotificationRecord,
        operation,
      );
      return firstItemOf(created, itemToken, operation);
    },

    async addNotificationItem(notification: string, item: ErpDefectItem, { lookupFirst } = LOOKUP_FIRST) {
      const operation = 'addNotificationItem';
      if (lookupFirst) {
        const items = await client.list(
          QUALITY_NOTIFICATION,
          'QualityNotificationItem',
          { filter: { QualityNotification: notification } },
          QualityNotificationItemRecord,
          `${operation} (look-up)`,
        );
        const existing = itemCarrying(items, idempotencyToken(item.idempotencyKey));
        if (existing) return { item: existing.NotificationItem };
      }

      const created = await client.create(
        QUALITY_NOTIFICATION,
        'QualityNotificationItem',
        { QualityNotification: notification, ...defectItemBody(item) },
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

    async completeNotification(notification: string) {
      // Setting the phase is idempotent on SAP's side: completing a completed notification changes nothing.
      await client.update(
        QUALITY_NOTIFICATION,
        `QualityNotification(${odataString(notification)})`,
        { NotifProcessingPhase: PHASE_COMPLETED },
        'completeNotification',
      );
    },
  };
}
