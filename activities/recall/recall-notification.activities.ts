import type { Pool } from 'pg';
import { atBoundary, crashPoint } from '../boundary';
import { ConfigError } from '../errors';
import { createOnce } from '../intents';
import type { IntentLedger, RecallNotice, RecallNoticeLot, RecallNoticePort } from '../ports';
import {
  recallNotificationId,
  recallNotificationWorkflowId,
  type PlannedRecallNotification,
  type RecallAcknowledgement,
  type RecallNotifyPolicy,
} from '../../workflows/contracts';

export interface RecallNotificationDeps {
  pool: Pool;
  ledger: IntentLedger;
  /** A site's notification target and policy (sites[].recall.notify); absent in processes that notify no one. */
  recallNoticeFor?: (site: string) => { port: RecallNoticePort; policy: RecallNotifyPolicy };
}

interface NotificationRow {
  notification_id: string;
  customer: string;
  ship_to: string;
  workflow_id: string;
  lots: RecallNoticeLot[];
  quantity: string;
  sent_at: Date | null;
}

/** The key every attempt at one notification carries: the webhook's Idempotency-Key, the ledger's intent. */
export const recallNoticeKey = (recallId: string, notificationId: string) =>
  `recall:${recallId}:notify:${notificationId}`;

/**
 * A real recall's customer notifications (docs/recall.md#notify): the plan groups the deliveries of the scope's and
 * forward lots by customer and ship-to into rows of holdfast.recall_notification, keyed by the recall, so planning
 * again after a crash adds nothing; the send goes through the site's target exactly once per notification.
 */
export const createRecallNotificationActivities = ({ pool, ledger, recallNoticeFor }: RecallNotificationDeps) => {
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
        const groups = await pool.query<{
          customer: string;
          ship_to: string;
          lots: RecallNoticeLot[];
          quantity: string;
        }>(
          `WITH item AS (
             SELECT r.lot_key, r.material, r.unit, x->>'customer' AS customer, x->>'shipTo' AS ship_to,
                    x->>'delivery' AS delivery, x->>'item' AS item, coalesce((x->>'quantity')::numeric, 0) AS quantity
               FROM holdfast.recall_lot r, jsonb_array_elements(r.deliveries) x
              WHERE r.recall_id = $1 AND r.reached_by IN ('scope', 'forward')
           ),
           per_lot AS (
             SELECT customer, ship_to, lot_key, material, unit, sum(quantity) AS quantity,
                    jsonb_agg(jsonb_build_object('delivery', delivery, 'item', item, 'quantity', quantity)
                              ORDER BY delivery, item) AS deliveries
               FROM item GROUP BY customer, ship_to, lot_key, material, unit
           )
           SELECT customer, ship_to, sum(quantity)::text AS quantity,
                  jsonb_agg(jsonb_build_object('lotKey', lot_key, 'material', material, 'unit', unit,
                                               'quantity', quantity, 'deliveries', deliveries) ORDER BY lot_key) AS lots
             FROM per_lot GROUP BY customer, ship_to ORDER BY customer, ship_to`,
          [recallId],
        );
        const planned = groups.rows.map((g) => {
          const notificationId = recallNotificationId(g.customer, g.ship_to);
          return { ...g, notificationId, workflowId: recallNotificationWorkflowId(recallId, notificationId) };
        });
        await pool.query(
          `INSERT INTO holdfast.recall_notification
                  (recall_id, notification_id, customer, ship_to, workflow_id, lots, quantity)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::numeric[])
           ON CONFLICT DO NOTHING`,
          [
            recallId,
            planned.map((p) => p.notificationId),
            planned.map((p) => p.customer),
            planned.map((p) => p.ship_to),
            planned.map((p) => p.workflowId),
            planned.map((p) => JSON.stringify(p.lots)),
            planned.map((p) => p.quantity),
          ],
        );
        const { rows } = await pool.query<NotificationRow>(
          `SELECT * FROM holdfast.recall_notification WHERE recall_id = $1 ORDER BY customer, ship_to`,
          [recallId],
        );
        return {
          policy,
          notifications: rows.map((r) => ({
            notificationId: r.notification_id,
            customer: r.customer,
            shipTo: r.ship_to,
            workflowId: r.workflow_id,
            lots: r.lots.length,
            quantity: Number(r.quantity),
            sentAt: r.sent_at?.toISOString() ?? null,
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
        const { rows } = await pool.query<NotificationRow & { site: string; reason: string }>(
          `SELECT n.*, r.site, r.reason FROM holdfast.recall_notification n JOIN holdfast.recall r USING (recall_id)
            WHERE n.recall_id = $1 AND n.notification_id = $2`,
          [recallId, notificationId],
        );
        const row = rows[0];
        if (!row) throw new ConfigError(`recall ${recallId} has no notification ${notificationId}`);
        const { port, policy } = target(row.site);
        const notice = recallNotice(recallId, row);
        const receipt = await createOnce(
          ledger,
          { key: notice.idempotencyKey, step: 'recall-notice', system: policy.target, request: notice },
          (opts) => port.deliver(notice, opts),
        );
        crashPoint('after-recall-notice-sent');
        const sent = await pool.query<{ sent_at: Date }>(
          `UPDATE holdfast.recall_notification
              SET sent_at = coalesce(sent_at, now()), target = coalesce(target, $3), reference = coalesce(reference, $4)
            WHERE recall_id = $1 AND notification_id = $2 RETURNING sent_at`,
          [recallId, notificationId, policy.target, receipt.reference],
        );
        return { sentAt: sent.rows[0]!.sent_at.toISOString(), reference: receipt.reference };
      });
    },

    async recordRecallNotificationEscalation(input: {
      recallId: string;
      notificationId: string;
      level: number;
      at: string;
    }): Promise<void> {
      // Keyed by level: a retried record appends nothing.
      await pool.query(
        `UPDATE holdfast.recall_notification
            SET escalations = escalations || jsonb_build_array(jsonb_build_object('level', $3::int, 'at', $4::text))
          WHERE recall_id = $1 AND notification_id = $2
            AND NOT escalations @> jsonb_build_array(jsonb_build_object('level', $3::int))`,
        [input.recallId, input.notificationId, input.level, input.at],
      );
    },

    /** The first acknowledgement wins; the API records it too, so either may come first. */
    async recordRecallNotificationAcknowledged(input: {
      recallId: string;
      notificationId: string;
      acknowledgement: RecallAcknowledgement;
    }): Promise<void> {
      await recordAcknowledgement(pool, input.recallId, input.notificationId, input.acknowledgement);
    },
  };
};

/** Records a customer's acknowledgement unless one is recorded; true when this call recorded it. */
export async function recordAcknowledgement(
  db: Pick<Pool, 'query'>,
  recallId: string,
  notificationId: string,
  ack: RecallAcknowledgement,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE holdfast.recall_notification
        SET acknowledged_at = $3, acknowledged_by = $4, acknowledgement = $5
      WHERE recall_id = $1 AND notification_id = $2 AND acknowledged_at IS NULL`,
    [
      recallId,
      notificationId,
      ack.acknowledgedAt,
      ack.recordedBy,
      JSON.stringify({ contact: ack.contact, channel: ack.channel, ...(ack.note ? { note: ack.note } : {}) }),
    ],
  );
  return (rowCount ?? 0) > 0;
}

function recallNotice(recallId: string, row: NotificationRow & { site: string; reason: string }): RecallNotice {
  const lots = row.lots.map((l) => ({ ...l, quantity: Number(l.quantity) }));
  const perUnit = new Map<string | null, number>();
  for (const l of lots) perUnit.set(l.unit, (perUnit.get(l.unit) ?? 0) + l.quantity);
  return {
    idempotencyKey: recallNoticeKey(recallId, row.notification_id),
    recallId,
    site: row.site,
    reason: row.reason,
    notificationId: row.notification_id,
    customer: row.customer,
    shipTo: row.ship_to,
    lots,
    deliveries: [...new Set(lots.flatMap((l) => l.deliveries.map((d) => `${d.delivery}/${d.item}`)))].sort(),
    quantities: [...perUnit].map(([unit, quantity]) => ({ unit, quantity })),
  };
}

export type RecallNotificationActivities = ReturnType<typeof createRecallNotificationActivities>;
