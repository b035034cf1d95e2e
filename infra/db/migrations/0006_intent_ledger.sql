-- The intent ledger (docs/reliability.md#intent-ledger): one row per create on the MES or ERP, written before the
-- call. A key with no row has never been attempted, so its create goes out without looking the key up in the MES or
-- ERP first; a key with a row may have reached the system, so its next attempt looks it up there, unless the row
-- already holds the document the create made (outcome).
CREATE TABLE holdfast.intent (
  -- The create's idempotency key, the same the MES or ERP document carries (business event and step).
  idempotency_key  text PRIMARY KEY,
  step             text NOT NULL,
  system           text NOT NULL,
  -- sha256 of the canonical JSON of the request: another request under the same key is refused, never sent.
  request_sha256   text NOT NULL,
  -- What the system answered (the document's id); NULL until the create or a look-up returned it.
  outcome          jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  completed_at     timestamptz
);
