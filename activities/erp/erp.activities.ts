import type {
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpMaterialDocument,
  ErpPort,
  ErpQualityNotificationRequest,
  IntentLedger,
} from '../ports';
import { atBoundary, crashPoint } from '../boundary';
import { createOnce } from '../intents';

export interface ErpDeps {
  /** The ERP serving a site, as configured in temporal.yaml. */
  erpFor: (site: string) => ErpPort;
  /** Where every create's intent is recorded before the call (docs/reliability.md#intent-ledger). */
  ledger: IntentLedger;
}

type Sited<T> = T & { site: string };

export const createErpActivities = ({ erpFor, ledger }: ErpDeps) => ({
  async raiseQualityNotification({
    site,
    ...req
  }: Sited<ErpQualityNotificationRequest>): Promise<{ notification: string; item: string }> {
    const created = await atBoundary(`ERP quality notification for batch ${req.batch}`, () => {
      const erp = erpFor(site);
      const intent = { key: req.idempotencyKey, step: 'erp-notification', system: erp.system, request: req };
      return createOnce(ledger, intent, (opts) => erp.raiseQualityNotification(req, opts));
    });
    crashPoint('after-erp-notification');
    return created;
  },

  async addNotificationItem({
    site,
    notification,
    item,
  }: {
    site: string;
    notification: string;
    item: ErpDefectItem;
  }): Promise<{ item: string }> {
    return atBoundary(`ERP defect item on notification ${notification}`, () => {
      const erp = erpFor(site);
      const request = { notification, item };
      const intent = { key: item.idempotencyKey, step: 'erp-defect-item', system: erp.system, request };
      return createOnce(ledger, intent, (opts) => erp.addNotificationItem(notification, item, opts));
    });
  },

  async postGoodsMovement({ site, ...req }: Sited<ErpGoodsMovementRequest>): Promise<ErpMaterialDocument> {
    const doc = await atBoundary(`ERP goods movement ${req.movementType} for batch ${req.batch}`, () => {
      const erp = erpFor(site);
      const intent = { key: req.idempotencyKey, step: 'erp-goods-movement', system: erp.system, request: req };
      return createOnce(ledger, intent, (opts) => erp.postGoodsMovement(req, opts));
    });
    crashPoint('after-erp-goods-movement');
    return doc;
  },

  async completeNotification({ site, notification }: { site: string; notification: string }): Promise<void> {
    await atBoundary(`ERP complete notification ${notification}`, () =>
      erpFor(site).completeNotification(notification),
    );
  },
});

export type ErpActivities = ReturnType<typeof createErpActivities>;
