import { atBoundary, crashPoint } from '../boundary';
import { ConfigError } from '../errors';
import { createOnce } from '../intents';
import type {
  IntentLedger,
  RecallNotice,
  RecallNoticePort,
  RecallNotificationRecord,
  RecallNotificationStore,
} from '../ports';
import type { PlannedRecallNotification, RecallAcknowledgement, RecallNotifyPolicy } from '../../workflows/contracts';

export interface RecallNotificationDeps {
  ledger: IntentLedger;
  /** The notifications' rows (infra/recall); absent in processes that notify no one. */
  recallNotifications?: RecallNotificationStore;
  /** A site's notification target and policy (sites[].recall.notify); absent in processes that notify no one. */
  recallNoticeFor?: (site: string) => { port: RecallNoticePort; policy: RecallNotifyPolicy };
}

/** The key every attempt at one notification carries: the webhook's Idempotency-Key, the ledger's intent. */
export const recallNoticeKey = (recallId: string, notificationId: string) =>
  `recall:${recallId}:notify:${notificationId}`;

/**
 * A real recall's customer notifications (docs/recall.md#notify): the plan writes one row per customer and ship-to,
 * keyed by the recall, so planning again after a crash adds nothing; the send goes through the site's target exactly
 * once per notification (the intent ledger); escalations and the acknowledgement are recorded once each.
 */
export const createRecallNotificationActivities = ({
  ledger,
  recallNotifications,
  recallNoticeFor,
}: RecallNotificationDeps) => {
  const store = (): RecallNotificationStore => {
    if (!recallNotifications) throw new ConfigError('this worker has no recall notification store');
    return recallNotifications;
  };
  const target = (site: string) => {
    if (!recallNoticeFor) throw new ConfigError('this worker has no recall notification targets');
    return recallNoticeFor(site);
  };
  return {
    async planRecallNotifications({ recallId, site }: { recallId: string; site: string }): Promise<{
      policy: RecallNotifyPolicy;
      notifications: PlannedRecallNotification[];
    }> {
      return atBoundary(`notification plan of recall ${recallId}`, async () => {
        const { policy } = target(site);
        const planned = await store().plan(recallId);
        return {
          policy,
          notifications: planned.map((n) => ({
            notificationId: n.notificationId,
            customer: n.customer,
            shipTo: n.shipTo,
            workflowId: n.workflowId,
            lots: n.lots.length,
            quantity: n.quantity,
            sentAt: n.sentAt,
          })),
        };
      });
    },

    /** Sends one notification through its site's target, exactly once (the intent ledger), and records when. */
    async sendRecallNotification({
      recallId,
      notificationId,
    }: {
      recallId: string;
      notificationId: string;
    }): Promise<{ sentAt: string; reference: string }> {
      return atBoundary(`notification ${notificationId} of recall ${recallId}`, async () => {
        const row = await store().find(recallId, notificationId);
        if (!row) throw new ConfigError(`recall ${recallId} has no notification ${notificationId}`);
        const { port, policy } = target(row.site);
        const notice = recallNotice(row);
        const receipt = await createOnce(
          ledger,
          { key: notice.idempotencyKey, step: 'recall-notice', system: policy.target, request: notice },
          (opts) => port.deliver(notice, opts),
        );
        crashPoint('after-recall-notice-sent');
        const sentAt = await store().markSent(recallId, notificationId, policy.target, receipt.reference);
        return { sentAt, reference: receipt.reference };
      });
    },

    async recordRecallNotificationEscalation(input: {
      recallId: string;
      notificationId: string;
      level: number;
      at: string;
    }): Promise<void> {
      await store().recordEscalation(input.recallId, input.notificationId, input.level, input.at);
    },

    /** The first acknowledgement wins; the API records it too, so either may come first. */
    async recordRecallNotificationAcknowledged(input: {
      recallId: string;
      notificationId: string;
      acknowledgement: RecallAcknowledgement;
    }): Promise<void> {
      await store().recordAcknowledgement(input.recallId, input.notificationId, input.acknowledgement);
    },
  };
};

/** What every target carries for one notification; built from the row alone, so each attempt sends the same. */
export function recallNotice(row: RecallNotificationRecord): RecallNotice {
  const perUnit = new Map<string | null, number>();
  for (const l of row.lots) perUnit.set(l.unit, (perUnit.get(l.unit) ?? 0) + l.quantity);
  return {
    idempotencyKey: recallNoticeKey(row.recallId, row.notificationId),
    recallId: row.recallId,
    site: row.site,
    reason: row.reason,
    notificationId: row.notificationId,
    customer: row.customer,
    shipTo: row.shipTo,
    lots: row.lots,
    deliveries: [...new Set(row.lots.flatMap((l) => l.deliveries.map((d) => `${d.delivery}/${d.item}`)))].sort(),
    quantities: [...perUnit].map(([unit, quantity]) => ({ unit, quantity })),
  };
}

export type RecallNotificationActivities = ReturnType<typeof createRecallNotificationActivities>;
