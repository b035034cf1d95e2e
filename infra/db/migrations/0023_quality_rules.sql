-- Statistical escalation (docs/analytics.md#statistical-escalation): rules per line or station, versioned; each line's
-- evaluator cursor and the rules' evaluation state; the escalations tripped rules start.

-- Every version of every rule. A change (definition, activation, limits) is a new version; none is ever updated. The
-- current version of a rule is its highest.
CREATE TABLE holdfast.quality_rule (
  site        text NOT NULL,
  rule_id     text NOT NULL,
  version     integer NOT NULL CHECK (version > 0),
  line        text NOT NULL,
  -- NULL: every station of the line.
  station     text,
  kind        text NOT NULL CHECK (kind IN ('consecutive-nc', 'defect-class-window', 'fpy-below', 'p-chart', 'u-chart')),
  -- The rule as activities/quality-rules/rules.ts reads it (RuleDefinition).
  definition  jsonb NOT NULL,
  -- Charts: the centre line and the baseline it came from (ChartLimits); NULL until computed.
  limits      jsonb,
  active      boolean NOT NULL DEFAULT true,
  changed_by  text NOT NULL,
  reason      text NOT NULL,
  changed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, rule_id, version)
);
CREATE INDEX quality_rule_line_idx ON holdfast.quality_rule (site, line);

-- The transaction that stored each inspection, so an evaluator can read a line's inspections in the order they became
-- visible without missing one that committed late: rows below the oldest running transaction are final. NULL:
-- stored before this migration (never evaluated). Added without a default first, so existing rows are not rewritten.
ALTER TABLE holdfast.inspection ADD COLUMN stored_xid xid8;
ALTER TABLE holdfast.inspection ALTER COLUMN stored_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX inspection_rule_feed_idx ON holdfast.inspection (site, line, stored_xid, inspected_at, event_id)
  WHERE stored_xid IS NOT NULL;

-- Each line's evaluator: the last inspection it read, as (stored_xid, inspected_at, event_id).
CREATE TABLE holdfast.quality_rule_cursor (
  site            text NOT NULL,
  line            text NOT NULL,
  xid             xid8 NOT NULL,
  inspected_at    timestamptz NOT NULL,
  event_id        text NOT NULL,
  parts           bigint NOT NULL DEFAULT 0,
  evaluated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, line)
);

-- A rule version's evaluation state (RuleState), written in the transaction that moves its line's cursor.
CREATE TABLE holdfast.quality_rule_state (
  site        text NOT NULL,
  rule_id     text NOT NULL,
  version     integer NOT NULL,
  state       jsonb NOT NULL,
  parts       bigint NOT NULL DEFAULT 0,
  trips       integer NOT NULL DEFAULT 0,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, rule_id, version),
  FOREIGN KEY (site, rule_id, version) REFERENCES holdfast.quality_rule (site, rule_id, version)
);

-- One row per trip: its evidence, the site's policy when it tripped, the MES hold and its release.
CREATE TABLE holdfast.quality_escalation (
  escalation_id    text PRIMARY KEY,
  site             text NOT NULL,
  line             text NOT NULL,
  station          text,
  rule_id          text NOT NULL,
  version          integer NOT NULL,
  kind             text NOT NULL,
  first_point      text NOT NULL,
  tripped_by       text NOT NULL,
  tripped_at       timestamptz NOT NULL,
  summary          text NOT NULL,
  -- TripEvidence: the points or subgroups, and the limits.
  evidence         jsonb NOT NULL,
  work_order       text NOT NULL,
  lot_id           text NOT NULL,
  policy           text NOT NULL CHECK (policy IN ('alert', 'hold-line', 'hold-order')),
  state            text NOT NULL DEFAULT 'tripped'
                   CHECK (state IN ('tripped', 'alerted', 'held', 'release-decided', 'released')),
  workflow_id      text NOT NULL,
  started_at       timestamptz,
  alerted_at       timestamptz,
  alert_target     text,
  -- The MES's read-back of the hold once placed, and of its release.
  hold             jsonb,
  held_at          timestamptz,
  decided_at       timestamptz,
  decided_by       text,
  decision_reason  text,
  signature        jsonb,
  release          jsonb,
  released_at      timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (site, rule_id, version, first_point),
  FOREIGN KEY (site, rule_id, version) REFERENCES holdfast.quality_rule (site, rule_id, version)
);
CREATE INDEX quality_escalation_site_idx ON holdfast.quality_escalation (site, created_at DESC);
CREATE INDEX quality_escalation_unstarted_idx ON holdfast.quality_escalation (site, line) WHERE started_at IS NULL;
