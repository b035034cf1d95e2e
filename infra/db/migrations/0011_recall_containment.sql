-- A real recall's containment (docs/recall.md#contain): one row per affected lot, written by the contain stage before
-- and after each effect, so a worker that dies in the middle resumes from what is recorded, and the API and the report
-- show each lot's hold and block. A cancelled recall keeps what it placed, for disposition.

ALTER TABLE holdfast.recall DROP CONSTRAINT recall_state_check;
ALTER TABLE holdfast.recall ADD CONSTRAINT recall_state_check
  CHECK (state IN ('running', 'completed', 'failed', 'cancelled'));
-- Set by a cancel (the route, or the workflow when it sees one): the contain stage starts no effect after it.
ALTER TABLE holdfast.recall ADD COLUMN cancel_requested_at timestamptz;

CREATE TABLE holdfast.recall_containment (
  recall_id        text NOT NULL,
  lot_key          text NOT NULL,
  -- Lots are contained in batches of the stage's batch size, numbered from 0 in lot-key order.
  batch            int NOT NULL,
  -- Where the lot is known: an MES lot id (held there) and an ERP batch (its unrestricted stock blocked there).
  mes_site         text,
  mes_lot_id       text,
  erp_plant        text,
  erp_material     text,
  erp_batch        text,
  -- The lot's outcome: pending until the stage reached it; held (Holdfast placed a hold or a block); already-held
  -- (an open lot case or another hold in the MES had it; only stock still unrestricted was blocked); nothing-to-block
  -- (no MES lot to hold and no unrestricted stock); failed (an effect refused for good: `error`); cancelled (the
  -- recall was cancelled before the lot was reached).
  state            text NOT NULL DEFAULT 'pending'
                   CHECK (state IN ('pending', 'held', 'already-held', 'nothing-to-block', 'failed', 'cancelled')),
  -- MES side: holding = the hold is decided and its create may have gone out (a retry looks its key up);
  -- lot-case / mes-hold = held already by a lot case (hold_id is the case's) or by another hold in the MES;
  -- no-mes-lot = the MES does not know the lot; lot-closed = the MES has it scrapped or returned.
  mes_state        text NOT NULL DEFAULT 'pending'
                   CHECK (mes_state IN ('pending', 'holding', 'held', 'lot-case', 'mes-hold', 'no-mes-lot',
                                        'lot-closed', 'failed')),
  hold_id          text,
  -- ERP side: blocking = the blocks are decided (erp_blocks without documents yet) and may have gone out.
  erp_state        text NOT NULL DEFAULT 'pending'
                   CHECK (erp_state IN ('pending', 'blocking', 'blocked', 'nothing-to-block', 'no-erp-batch', 'failed')),
  -- One entry per storage location with unrestricted stock: { storageLocation, quantity, unit, materialDocument,
  -- materialDocumentYear }, the quantities as the ERP stated them when the block was decided.
  erp_blocks       jsonb NOT NULL DEFAULT '[]'::jsonb,
  error            text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  contained_at     timestamptz,
  PRIMARY KEY (recall_id, lot_key),
  FOREIGN KEY (recall_id, lot_key) REFERENCES holdfast.recall_lot (recall_id, lot_key)
);
CREATE INDEX recall_containment_batch_idx ON holdfast.recall_containment (recall_id, batch);
