-- A real recall's customer notifications (docs/recall.md#notify): one row per customer and ship-to that received
-- affected lots, planned by the notify stage from holdfast.recall_lot's deliveries, sent by a child workflow of its
-- own, then acknowledged (or escalated) while that child waits, after the recall itself has reported.

CREATE TABLE holdfast.recall_notification (
  recall_id         text NOT NULL REFERENCES holdfast.recall (recall_id),
  -- The customer and ship-to, escaped so that the pair is one path segment and one workflow id part, reversibly.
  notification_id   text NOT NULL,
  customer          text NOT NULL,
  ship_to           text NOT NULL,
  workflow_id       text NOT NULL,
  -- [{lotKey, material, unit, quantity, deliveries: [{delivery, item, quantity}]}]: the quantity is the sum of the
  -- lot's delivery items to this ship-to.
  lots              jsonb NOT NULL,
  quantity          numeric NOT NULL,
  -- Set once by the send: the connector's name (sites[].recall.notify.target) and what it answered (a Message-ID,
  -- a file name, an HTTP status).
  target            text,
  reference         text,
  sent_at           timestamptz,
  -- Set once, by the first acknowledgement: the Holdfast user who recorded it and who at the customer gave it, how.
  acknowledged_at   timestamptz,
  acknowledged_by   text,
  acknowledgement   jsonb,
  -- [{level, at}]: each escalation of a notification nobody acknowledged in time.
  escalations       jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (recall_id, notification_id),
  UNIQUE (recall_id, customer, ship_to)
);
