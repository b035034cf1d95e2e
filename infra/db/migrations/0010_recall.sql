-- Recalls and mock recalls (docs/recall.md): one row per recall, started by the API and completed by the recall
-- workflow's report stage; the lots it reached and its findings in rows of their own, so the workflow's history holds
-- counts only, however far the trace goes.

CREATE TABLE holdfast.recall (
  recall_id        text PRIMARY KEY,
  site             text NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('mock', 'real')),
  scope            jsonb NOT NULL,
  reason           text NOT NULL,
  requested_by     text NOT NULL,
  -- The Idempotency-Key of the request that started it, and the hash of that request's body: the same key with
  -- another body is refused (draft-ietf-httpapi-idempotency-key-header).
  idempotency_key  text NOT NULL,
  request_sha256   text NOT NULL,
  workflow_id      text NOT NULL,
  state            text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'completed', 'failed')),
  -- What the workflow's report stage wrote: stages with timings and counts, the reconciliation, the score.
  report           jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz,
  UNIQUE (site, idempotency_key)
);
CREATE INDEX recall_history_idx ON holdfast.recall (site, kind, created_at DESC, recall_id);

-- Each lot the recall's trace reached, with what the classify stage made of it.
CREATE TABLE holdfast.recall_lot (
  recall_id     text NOT NULL REFERENCES holdfast.recall (recall_id),
  lot_key       text NOT NULL,
  -- 'scope': a lot the scope names; 'forward' / 'backward': reached by that trace (a scope lot is not repeated).
  reached_by    text NOT NULL CHECK (reached_by IN ('scope', 'forward', 'backward')),
  depth         int NOT NULL,
  site          text NOT NULL,
  material      text,
  quantity      numeric,
  unit          text,
  -- Set by classify: shipped, consumed, in-process, scrapped or in-stock (docs/recall.md#classify).
  class         text,
  shipped       numeric NOT NULL DEFAULT 0,
  consumed      numeric NOT NULL DEFAULT 0,
  in_process    numeric NOT NULL DEFAULT 0,
  scrapped      numeric NOT NULL DEFAULT 0,
  deliveries    jsonb NOT NULL DEFAULT '[]'::jsonb,
  PRIMARY KEY (recall_id, lot_key)
);

-- What the recall could not explain: trace gaps on its path, quantities the reconciliation could not account for.
CREATE TABLE holdfast.recall_finding (
  recall_id  text NOT NULL REFERENCES holdfast.recall (recall_id),
  kind       text NOT NULL CHECK (kind IN ('trace-gap', 'unreconciled-quantity', 'over-accounted-quantity',
                                           'cycle', 'trace-truncated')),
  subject    text NOT NULL,
  detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
  PRIMARY KEY (recall_id, kind, subject)
);
