/**
 * A real recall's customer notifications in holdfast.recall_notification (docs/recall.md#notify): planned from the
 * deliveries the classify stage found, then marked sent, escalated and acknowledged, each at most once.
 */
import type pg from 'pg';
import type { RecallNoticeLot, RecallNotificationRecord, RecallNotificationStore } from '../../activities/ports';
import { recallNotificationId, recallNotificationWorkflowId } from '../../workflows/contracts';

type Db = Pick<pg.Pool, 'query'>;

export interface RecallNotificationRow {
  recall_id: string;
  site: string;
  reason: string;
  notification_id: string;
  customer: string;
  ship_to: string;
  workflow_id: string;
  lots: RecallNoticeLot[];
  quantity: string;
  target: string | null;
  reference: string | null;
  sent_at: Date | null;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  acknowledgement: { contact: string; channel: string; note?: string } | null;
  escalations: { level: number; at: string }[];
}

/** Every notification of a recall (or the one named), with its recall's site and reason. */
export async function recallNotificationRows(
  db: Db,
  recallId: string,
  notificationId?: string,
): Promise<RecallNotificationRow[]> {
  const { rows } = await db.query<RecallNotificationRow>(
    `SELECT n.*, r.site, r.reason FROM holdfast.recall_notification n JOIN holdfast.recall r USING (recall_id)
      WHERE n.recall_id = $1 AND ($2::text IS NULL OR n.notification_id = $2)
      ORDER BY n.customer, n.ship_to`,
    [recallId, notificationId ?? null],
  );
  return rows;
}

const record = (r: RecallNotificationRow): RecallNotificationRecord => ({
  recallId: r.recall_id,
  site: r.site,
  reason: r.reason,
  notificationId: r.notification_id,
  customer: r.customer,
  shipTo: r.ship_to,
  workflowId: r.workflow_id,
  lots: r.lots.map((l) => ({ ...l, quantity: Number(l.quantity) })),
  quantity: Number(r.quantity),
  sentAt: r.sent_at?.toISOString() ?? null,
});

export function createRecallNotificationStore(db: Db): RecallNotificationStore {
  return {
    async plan(recallId) {
      // A lot's quantity for a ship-to is the sum of its delivery items there; lots reached backward (what went into
      // the scope) are not the customers' concern.
      const groups = await db.query<{ customer: string; ship_to: string; lots: RecallNoticeLot[]; quantity: string }>(
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
           FROM per_lot GROUP BY customer, ship_to`,
        [recallId],
      );
      const ids = groups.rows.map((g) => recallNotificationId(g.customer, g.ship_to));
      await db.query(
        `INSERT INTO holdfast.recall_notification
                (recall_id, notification_id, customer, ship_to, workflow_id, lots, quantity)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::numeric[])
         ON CONFLICT DO NOTHING`,
        [
          recallId,
          ids,
          groups.rows.map((g) => g.customer),
          groups.rows.map((g) => g.ship_to),
          ids.map((id) => recallNotificationWorkflowId(recallId, id)),
          groups.rows.map((g) => JSON.stringify(g.lots)),
          groups.rows.map((g) => g.quantity),
        ],
      );
      return (await recallNotificationRows(db, recallId)).map(record);
    },

    async find(recallId, notificationId) {
      const [row] = await recallNotificationRows(db, recallId, notificationId);
      return row && record(row);
    },

    async markSent(recallId, notificationId, target, reference) {
      const { rows } = await db.query<{ sent_at: Date }>(
        `UPDATE holdfast.recall_notification
            SET sent_at = coalesce(sent_at, now()), target = coalesce(target, $3), reference = coalesce(reference, $4)
          WHERE recall_id = $1 AND notification_id = $2 RETURNING sent_at`,
        [recallId, notificationId, target, reference],
      );
      if (!rows[0]) throw new Error(`recall ${recallId} has no notification ${notificationId}`);
      return rows[0].sent_at.toISOString();
    },

    async recordEscalation(recallId, notificationId, level, at) {
      await db.query(
        `UPDATE holdfast.recall_notification
            SET escalations = escalations || jsonb_build_array(jsonb_build_object('level', $3::int, 'at', $4::text))
          WHERE recall_id = $1 AND notification_id = $2
            AND NOT escalations @> jsonb_build_array(jsonb_build_object('level', $3::int))`,
        [recallId, notificationId, level, at],
      );
    },

    async recordAcknowledgement(recallId, notificationId, ack) {
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
    },
  };
}
