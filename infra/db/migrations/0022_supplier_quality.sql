-- Supplier quality (docs/analytics.md#supplier-quality): incoming inspection of received lots, the complaint each
-- rejected receipt raises in the ERP, supplier corrective action requests (SCAR), and what was sent to the ERP's
-- supplier evaluation. Scorecards read these with holdfast.lot_quality_daily (0020) and holdfast.material_lot (0009).

-- One received lot at an incoming-inspection station (temporal.yaml stations[].role), counted as its inspections are
-- stored, in the same transaction. The acceptance plan is copied from the station when the first part is counted, so
-- a receipt is decided by the plan in force when its inspection began. Decided once: later parts still count, the
-- decision stays.
CREATE TABLE holdfast.incoming_receipt (
  site                 text NOT NULL,
  lot_id               text NOT NULL,
  line                 text NOT NULL,
  station              text NOT NULL,
  material             text NOT NULL,
  -- The genealogy's record of the purchased lot, when known at ingest (or found later by the receipt workflow).
  lot_key              text,
  supplier             text,
  supplier_batch       text,
  purchase_order       text,
  purchase_order_item  text,
  goods_receipt        text,
  sample_size          integer NOT NULL CHECK (sample_size > 0),
  acceptance_number    integer NOT NULL CHECK (acceptance_number >= 0),
  critical_classes     text[] NOT NULL DEFAULT '{}',
  inspected            integer NOT NULL DEFAULT 0,
  defective            integer NOT NULL DEFAULT 0,
  critical             integer NOT NULL DEFAULT 0,
  -- Defects found by class: {"scratch": 2}.
  defects              jsonb NOT NULL DEFAULT '{}'::jsonb,
  first_inspected_at   timestamptz NOT NULL,
  decision             text NOT NULL DEFAULT 'open' CHECK (decision IN ('open', 'accepted', 'rejected')),
  decision_reason      text,
  -- The inspection time of the part that decided the receipt, and when ingest stored it.
  decided_at           timestamptz,
  decided_recorded_at  timestamptz,
  -- Transactional outbox for the receipt workflow (infra/supplier/receipt-relay.ts).
  workflow_id          text,
  dispatched_at        timestamptz,
  dispatch_attempts    integer NOT NULL DEFAULT 0,
  next_attempt_at      timestamptz,
  last_error           text,
  -- What the receipt workflow made in the ERP (a rejected receipt only).
  complaint_notification text,
  block_document       text,
  purchase_order_hold  text,
  -- The unrestricted stock found before blocking, per storage location: a retry posts the same quantities.
  block_plan           jsonb,
  completed_at         timestamptz,
  PRIMARY KEY (site, lot_id),
  CHECK ((decision = 'open') = (decided_at IS NULL))
);
CREATE INDEX incoming_receipt_supplier_idx ON holdfast.incoming_receipt (supplier, decided_at) WHERE decision <> 'open';
CREATE INDEX incoming_receipt_undispatched_idx ON holdfast.incoming_receipt (decided_recorded_at)
  WHERE decision <> 'open' AND dispatched_at IS NULL;

-- Supplier corrective action requests. At most one open per supplier; the workflow (scar-<supplier>-<id>) keeps the
-- row's state as it moves, the workflow's own state is the source of truth for due dates and responses.
CREATE TABLE holdfast.scar (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  supplier        text NOT NULL,
  workflow_id     text NOT NULL UNIQUE,
  trigger         text NOT NULL CHECK (trigger IN ('threshold', 'engineer')),
  -- What requested it, so that the same request twice opens one SCAR: `threshold:<site>/<lot>` or the signature id.
  request_key     text NOT NULL UNIQUE,
  reason          text NOT NULL,
  requested_by    text,
  material        text,
  state           text NOT NULL DEFAULT 'requested'
                  CHECK (state IN ('requested', 'awaiting-response', 'response-received', 'verifying', 'closed',
                                   'cancelled')),
  rounds          integer NOT NULL DEFAULT 1,
  -- The engineer's signed request (SignatureManifest), and each signed decision on a response, oldest first.
  request_signature   jsonb,
  decision_signatures jsonb NOT NULL DEFAULT '[]'::jsonb,
  opened_at       timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  closed_at       timestamptz
);
CREATE UNIQUE INDEX scar_one_open_per_supplier_idx ON holdfast.scar (supplier) WHERE state NOT IN ('closed', 'cancelled');

-- Scores sent to the ERP's supplier evaluation: one row per supplier, material and period, the idempotency key the
-- post carried, and the ERP's reference.
CREATE TABLE holdfast.supplier_evaluation_post (
  supplier        text NOT NULL,
  material        text NOT NULL,
  period_start    date NOT NULL,
  period_end      date NOT NULL,
  idempotency_key text NOT NULL UNIQUE,
  quality_score   numeric NOT NULL,
  reference       text NOT NULL,
  posted_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (supplier, material, period_start, period_end)
);
