-- The MES's job-order events as Holdfast received them (docs/changeover.md#order-events): each event once per MES
-- (MQTT redelivery and the REST fallback meet here), what applying it did, and whether the changeover it asks for was
-- started. A `started` event is committed with trigger_state 'pending' before the trigger is called, and stays so until
-- the trigger answered: a process that dies in between calls it again on restart (the trigger is idempotent).
CREATE TABLE holdfast.job_order_event (
  mes_system     text NOT NULL,
  event_id       text NOT NULL,
  site           text NOT NULL,
  line           text NOT NULL,
  work_order     text NOT NULL,
  event_type     text NOT NULL CHECK (event_type IN ('released', 'started', 'changed', 'completed')),
  revision       integer NOT NULL CHECK (revision > 0),
  -- How it arrived first.
  source         text NOT NULL CHECK (source IN ('mqtt', 'rest')),
  -- applied: the order's state took it; stale: its revision was not above the last applied (replayed, out of order).
  outcome        text NOT NULL CHECK (outcome IN ('applied', 'stale')),
  trigger_state  text CHECK (trigger_state IN ('pending', 'started', 'already-running', 'skipped')),
  trigger_error  text,
  payload        jsonb NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now(),
  triggered_at   timestamptz,
  PRIMARY KEY (mes_system, event_id)
);
CREATE INDEX job_order_event_pending_idx ON holdfast.job_order_event (received_at) WHERE trigger_state = 'pending';
CREATE INDEX job_order_event_order_idx ON holdfast.job_order_event (mes_system, work_order, revision);

-- Each order as the last applied event left it; `revision` is what a later event must exceed to apply.
CREATE TABLE holdfast.job_order (
  mes_system            text NOT NULL,
  work_order            text NOT NULL,
  site                  text NOT NULL,
  line                  text NOT NULL,
  sku                   text NOT NULL,
  status                text NOT NULL CHECK (status IN ('released', 'started', 'changed', 'completed')),
  revision              integer NOT NULL,
  planned_quantity      numeric(15,3),
  customer_criticality  integer,
  last_event_id         text NOT NULL,
  updated_at            timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (mes_system, work_order)
);
CREATE INDEX job_order_line_idx ON holdfast.job_order (site, line, status);

-- How far the REST fallback read each MES's job-order events (the MES's own opaque cursor).
CREATE TABLE holdfast.job_order_cursor (
  mes_system  text PRIMARY KEY,
  cursor      text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
