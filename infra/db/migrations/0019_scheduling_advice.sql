-- Quality-aware scheduling advice (docs/changeover.md#scheduling-advice): per line, a component lot whose parts fail
-- above the configured rate with enough evidence gets advice to hold what is left of it or use it on less critical
-- orders. A quality engineer accepts or rejects it with an electronic signature; an accepted advice is sent to the
-- MES once (intent ledger) and the MES's read-back kept here.
CREATE TABLE holdfast.scheduling_advice (
  advice_id        text PRIMARY KEY,
  site             text NOT NULL,
  line             text NOT NULL,
  -- Holdfast's lot key (holdfast.material_lot.lot_key) and the lot as the MES names it.
  component_lot    text NOT NULL,
  lot_id           text NOT NULL,
  material         text,
  action           text NOT NULL CHECK (action IN ('hold-remaining', 'use-on-less-critical')),
  orders           text[] NOT NULL DEFAULT '{}',
  current_order    jsonb,
  -- parts, defective, rate, pValue, test, thresholdRate, significance, minParts, window {from, to}.
  evidence         jsonb NOT NULL,
  proposed_by      text NOT NULL,
  state            text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'accepted', 'rejected', 'sent')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  decided_at       timestamptz,
  decided_by       text,
  decision_reason  text,
  -- The decider's signature manifest (infra/identity/e-signature.ts), checked on every read.
  signature        jsonb,
  -- The MES's read-back of the resequencing request, once sent.
  resequencing     jsonb,
  sent_at          timestamptz,
  CHECK ((state = 'open') = (decided_at IS NULL)),
  CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);
-- At most one open advice per lot and line: two evaluations racing store one.
CREATE UNIQUE INDEX scheduling_advice_open_idx ON holdfast.scheduling_advice (site, line, component_lot)
  WHERE state = 'open';
CREATE INDEX scheduling_advice_line_idx ON holdfast.scheduling_advice (site, line, created_at DESC);
CREATE INDEX scheduling_advice_accepted_idx ON holdfast.scheduling_advice (site, line, decided_at)
  WHERE state = 'accepted';
