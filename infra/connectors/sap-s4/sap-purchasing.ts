import { z } from 'zod';
import type {
  CreateOptions,
  ErpPurchaseOrderItemHold,
  ErpPurchaseOrderItemRef,
  ErpPurchasingPort,
  ErpSupplierEvaluationPort,
  ErpSupplierScore,
} from '../../../activities/ports';
import { PURCHASE_ORDER_SERVICE, SUPPLIER_EVALUATION_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { odataString, type SapODataClient } from './client';

/** EKPO-LOEKZ 'S': the item is blocked (docs/vendor-interfaces.md#sap-purchase-order-hold). */
const BLOCKED = 'S';

const PurchaseOrderItemRecord = z.looseObject({
  PurchaseOrder: z.string(),
  PurchaseOrderItem: z.string(),
  PurchasingDocumentDeletionCode: z.string(),
});

const ExternalScoreRecord = z.looseObject({
  SuplrEvalExternalScoreUUID: z.string(),
  SuplrEvalExternalReference: z.string(),
});

/** EBELP is five digits in SAP; an MES may keep the item as "10". */
const fiveDigits = (item: string) => (/^\d{1,5}$/.test(item) ? item.padStart(5, '0') : item);

export function createSapPurchasing(client: SapODataClient): ErpPurchasingPort {
  const path = (ref: ErpPurchaseOrderItemRef) =>
    `A_PurchaseOrderItem(PurchaseOrder=${odataString(ref.purchaseOrder)},PurchaseOrderItem=${odataString(
      fiveDigits(ref.purchaseOrderItem),
    )})`;
  const itemHold = async (ref: ErpPurchaseOrderItemRef): Promise<ErpPurchaseOrderItemHold> => {
    const r = await client.get(
      PURCHASE_ORDER_SERVICE,
      path(ref),
      {},
      PurchaseOrderItemRecord,
      `read purchase order item ${ref.purchaseOrder}/${ref.purchaseOrderItem}`,
    );
    return {
      purchaseOrder: r.PurchaseOrder,
      purchaseOrderItem: r.PurchaseOrderItem,
      blocked: r.PurchasingDocumentDeletionCode === BLOCKED,
      code: r.PurchasingDocumentDeletionCode,
    };
  };
  return {
    itemHold,
    async holdItem(ref) {
      await client.update(
        PURCHASE_ORDER_SERVICE,
        path(ref),
        { PurchasingDocumentDeletionCode: BLOCKED },
        `block purchase order item ${ref.purchaseOrder}/${ref.purchaseOrderItem}`,
      );
      // Read back: what counts is what SAP holds now, not that the PATCH was answered.
      return itemHold(ref);
    },
  };
}

/** The idempotency key travels as SuplrEvalExternalReference, so a retry finds the score it posted. */
export function createSapSupplierEvaluation(client: SapODataClient): ErpSupplierEvaluationPort {
  return {
    async postScore(score: ErpSupplierScore, opts?: CreateOptions) {
      const operation = `supplier evaluation score ${score.supplier}/${score.material}`;
      if (opts?.lookupFirst !== false) {
        const found = await client.list(
          SUPPLIER_EVALUATION_SERVICE,
          'A_SuplrEvalExternalScore',
          { filter: { SuplrEvalExternalReference: score.idempotencyKey.slice(0, 80) } },
          ExternalScoreRecord,
          `${operation} (look-up)`,
        );
        if (found[0]) return { reference: found[0].SuplrEvalExternalScoreUUID };
      }
      const day = (iso: string) => `/Date(${Date.parse(iso.slice(0, 10))})/`;
      const created = await client.create(
        SUPPLIER_EVALUATION_SERVICE,
        'A_SuplrEvalExternalScore',
        {
          Supplier: score.supplier,
          Material: score.material,
          SuplrEvalCriterion: 'QUALITY',
          SuplrEvalPeriodStartDate: day(score.periodStart),
          SuplrEvalPeriodEndDate: day(score.periodEnd),
          SuplrEvalScore: score.qualityScore.toFixed(2),
          SuplrEvalExternalReference: score.idempotencyKey.slice(0, 80),
        },
        ExternalScoreRecord,
        operation,
      );
      return { reference: created.SuplrEvalExternalScoreUUID };
    },
  };
}
