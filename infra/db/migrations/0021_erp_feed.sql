-- The ERP feed (docs/analytics.md#the-erp-feed): per site and interval, the production order confirmations and the
-- cost of quality Holdfast posted to the ERP. Each interval's figures are fixed once, by whichever run gets there
-- first, so a retried or overlapping run posts the same request under the same key; reports and the lag read here.

-- One row per site and interval the feed has taken on. figures_at: when its figures were fixed; posted_at: when its
-- confirmations and its cost-of-quality document were all posted (NULL while pending).
CREATE TABLE holdfast.erp_feed_interval (
  site            text NOT NULL,
  interval_start  timestamptz NOT NULL,
  interval_end    timestamptz NOT NULL CHECK (interval_end > interval_start),
  figures_at      timestamptz NOT NULL DEFAULT now(),
  -- The journal entry posted for the interval's cost of quality (NULL: none was due, or not yet posted).
  cost_document   text,
  posted_at       timestamptz,
  PRIMARY KEY (site, interval_start)
);
CREATE INDEX erp_feed_interval_posted_idx ON holdfast.erp_feed_interval (site, posted_at, interval_end);

-- Per work order and interval: what was confirmed at the line's confirming station. idempotency_key is the business
-- event (site, order, interval); confirmation_group / confirmation_count are the ERP's keys once posted.
CREATE TABLE holdfast.erp_feed_confirmation (
  site                text NOT NULL,
  interval_start      timestamptz NOT NULL,
  work_order          text NOT NULL,
  line                text NOT NULL,
  station             text NOT NULL,
  sku                 text NOT NULL,
  yield_quantity      bigint NOT NULL,
  scrap_quantity      bigint NOT NULL,
  rework_quantity     bigint NOT NULL,
  idempotency_key     text NOT NULL UNIQUE,
  confirmation_group  text,
  confirmation_count  text,
  posted_at           timestamptz,
  PRIMARY KEY (site, interval_start, work_order),
  FOREIGN KEY (site, interval_start) REFERENCES holdfast.erp_feed_interval (site, interval_start)
);

-- Cost of quality per interval, line, SKU, work order and supplier lot (the part's material-lot context; NULL when
-- the part had none). quantity may be fractional: a part made from n supplier lots counts 1/n to each. amount is in
-- the site's currency, rounded to the cent per row.
CREATE TABLE holdfast.cost_of_quality (
  id              bigserial PRIMARY KEY,
  site            text NOT NULL,
  interval_start  timestamptz NOT NULL,
  interval_end    timestamptz NOT NULL,
  category        text NOT NULL CHECK (category IN ('scrap', 'rework', 'inspection', 'external-failure')),
  line            text,
  sku             text,
  work_order      text,
  supplier_lot    text,
  supplier        text,
  recall_id       text,
  quantity        numeric NOT NULL,
  unit_cost       numeric NOT NULL,
  amount          numeric(15, 2) NOT NULL,
  currency        text NOT NULL,
  cost_centre     text NOT NULL,
  gl_account      text NOT NULL,
  FOREIGN KEY (site, interval_start) REFERENCES holdfast.erp_feed_interval (site, interval_start)
);
CREATE INDEX cost_of_quality_period_idx ON holdfast.cost_of_quality (site, interval_start);

-- A real recall's external-failure cost is charged once, in the first interval fixed after it was opened.
CREATE TABLE holdfast.erp_feed_recall_charge (
  recall_id       text PRIMARY KEY REFERENCES holdfast.recall (recall_id),
  site            text NOT NULL,
  interval_start  timestamptz NOT NULL,
  FOREIGN KEY (site, interval_start) REFERENCES holdfast.erp_feed_interval (site, interval_start)
);

-- The feed reads a site's inspections by when Holdfast stored them, so one arriving late is confirmed in the
-- interval it arrived in, never lost.
CREATE INDEX inspection_received_idx ON holdfast.inspection (site, received_at);
