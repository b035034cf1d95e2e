import type {
  ErpDefectItem,
  ErpGoodsMovementRequest,
  ErpMaterialDocument,
  ErpPort,
  ErpQualityNotificationRequest,
} from '../ports';
import { atBoundary, crashPoint } from '../boundary';

export interface ErpDeps {
  /** The ERP serving a site, as configured in temporal.yaml. */
  erpFor: (site: string) => ErpPort;
}

type Sited<T> = T & { site: string };

export const createErpActivities = ({ erpFor }: ErpDeps) => ({
  async raiseQualityNotification({
    site,
    ...req
  }: Sited<ErpQualityNotificationRequest>): Promise<{ notification: string; item: string }> {
    const created = await atBoundary(`ERP quality notification for batch ${req.batch}`, () =>
      erpFor(site).raiseQualityNotification(req),
    );
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
    return atBoundary(`ERP defect item on notification ${notification}`, () =>
      erpFor(site).addNotificationItem(notification, item),
    );
  },

  async postGoodsMovement({ site, ...req }: Sited<ErpGoodsMovementRequest>): Promise<ErpMaterialDocument> {
    const doc = await atBoundary(`ERP goods movement ${req.movementType} for batch ${req.batch}`, () =>
      erpFor(site).postGoodsMovement(req),
    );
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
