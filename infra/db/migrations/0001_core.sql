-- Holdfast's own records. Simulators keep theirs in separate schemas (sap_sim, mes_sim).
CREATE SCHEMA IF NOT EXISTS holdfast;

-- Every inspection result, pass or fail, stored before ingest answers. event_id is the producer's idempotency key.
CREATE TABLE holdfast.inspection (
  event_id        text PRIMARY KEY,
  site            text NOT NULL,
  line            text NOT NULL,
  station         text NOT NULL,
  part_id         text NOT NULL,
  sku             text NOT NULL,
  lot_id          text NOT NULL,
  work_order      text NOT NULL,
  result          text NOT NULL CHECK (result IN ('pass', 'fail')),
  defects         jsonb NOT NULL DEFAULT '[]'::jsonb,
  model_version   text NOT NULL,
  recipe_version  text NOT NULL,
  inspected_at    timestamptz NOT NULL,
  image_ref       text,
  -- sha256 of the canonical payload: a re-sent eventId with a different body is reported, never applied.
  payload_sha256  text NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inspection_lot_idx ON holdfast.inspection (site, lot_id);
CREATE INDEX inspection_work_order_idx ON holdfast.inspection (work_order);

-- Transactional outbox: written in the same transaction as a failed inspection; a dispatcher starts the workflow.
CREATE TABLE holdfast.outbox (
  id               bigserial PRIMARY KEY,
  event_id         text NOT NULL UNIQUE REFERENCES holdfast.inspection (event_id),
  kind             text NOT NULL,
  workflow_id      text NOT NULL,
  payload          jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  dispatched_at    timestamptz,
  workflow_run_id  text
);
CREATE INDEX outbox_pending_idx ON holdfast.outbox (next_attempt_at, id) WHERE dispatched_at IS NULL;

-- One row per lot case (one hold cycle of a lot): the durable projection of the lot-case workflow.
CREATE TABLE holdfast.lot_case (
  workflow_id   text NOT NULL,
  run_id        text NOT NULL,
  site          text NOT NULL,
  line          text NOT NULL,
  lot_id        text NOT NULL,
  sku           text NOT NULL,
  stage         text NOT NULL,
  hold_id       text,
  notification  text,
  state         jsonb NOT NULL,
  opened_at     timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  closed_at     timestamptz,
  PRIMARY KEY (workflow_id, run_id)
);
CREATE INDEX lot_case_lot_idx ON holdfast.lot_case (lot_id, site);

-- Traceability graph: typed edges between inspections, parts, lots, work orders, workflows and ERP/MES documents.
CREATE TABLE holdfast.trace_link (
  id          bigserial PRIMARY KEY,
  from_kind   text NOT NULL,
  from_id     text NOT NULL,
  relation    text NOT NULL,
  to_kind     text NOT NULL,
  to_id       text NOT NULL,
  system      text,
  attributes  jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (from_kind, from_id, relation, to_kind, to_id)
);
CREATE INDEX trace_link_to_idx ON holdfast.trace_link (to_kind, to_id);

-- HTTP Idempotency-Key records (draft-ietf-httpapi-idempotency-key-header): same key + same body → same answer.
CREATE TABLE holdfast.api_idempotency (
  scope            text NOT NULL,
  key              text NOT NULL,
  request_sha256   text NOT NULL,
  state            text NOT NULL CHECK (state IN ('in-flight', 'done')),
  response_status  integer,
  response_body    jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  PRIMARY KEY (scope, key)
);

-- Escalations sent because a held lot waited too long for a disposition.
CREATE TABLE holdfast.escalation (
  idempotency_key  text PRIMARY KEY,
  lot_case_id      text NOT NULL,
  site             text NOT NULL,
  lot_id           text NOT NULL,
  target           text NOT NULL,
  message          text NOT NULL,
  sent_at          timestamptz NOT NULL DEFAULT now()
);
