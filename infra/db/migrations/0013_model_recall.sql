-- Model recalls and the recall scopes with time windows (docs/recall.md#model-recall): the corrected model a model
-- recall re-inspects with, each re-inspected part, and per recalled lot whether it still needs containment.

-- The corrected model (name@version) the request named; NULL: each station's active recipe's model.
ALTER TABLE holdfast.recall ADD COLUMN corrected_model_version text;

-- Set by the reinspect stage of a model recall, for every lot of the recall: false for a lot whose parts all still
-- pass under the corrected model (and what was made only from such lots, and what went into them). The contain stage
-- holds the lots where it is true or NULL (NULL: no stage decided, as for every other scope), never where it is false.
ALTER TABLE holdfast.recall_lot
  ADD COLUMN needs_containment boolean,
  ADD COLUMN contain_reason    text CHECK (contain_reason IN (
    -- needs_containment true
    'reinspection-failed',      -- a part of it fails under the corrected model
    'manual-reinspection',      -- no part fails, but some part's image is gone: a person must look at it
    'made-from-held-lot',       -- reached forward from a lot held for one of the two reasons above
    -- needs_containment false
    'reinspection-passed',      -- every part the recalled model passed still passes
    'not-passed-by-model',      -- the recalled model passed none of its parts (what it failed was held back then)
    'not-made-from-held-lot',   -- reached forward only from lots that passed
    'upstream-of-scope'         -- material that went into the inspected lots: a missed defect is not in it
  )),
  ADD CONSTRAINT recall_lot_contain_reason_chk CHECK ((needs_containment IS NULL) = (contain_reason IS NULL));

-- One row per part the recalled model passed in the window, re-inspected (or not: no image) with the corrected model.
CREATE TABLE holdfast.recall_reinspection (
  recall_id        text NOT NULL REFERENCES holdfast.recall (recall_id),
  -- The recalled model's inspection (holdfast.inspection.event_id).
  event_id         text NOT NULL,
  lot_key          text NOT NULL,
  site             text NOT NULL,
  line             text NOT NULL,
  station          text NOT NULL,
  part_id          text NOT NULL,
  image_ref        text,
  outcome          text NOT NULL CHECK (outcome IN ('now-fails', 'still-passes', 'no-image')),
  -- now-fails: what the corrected model found (class, score, box), most confident first.
  defects          jsonb NOT NULL DEFAULT '[]'::jsonb,
  -- The corrected model (name@version) and recipe version the verdict came from; NULL for no-image.
  model_version    text,
  recipe_version   text,
  -- no-image: why (no reference kept, not found, changed since it was inspected).
  detail           text,
  reinspected_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (recall_id, event_id)
);
CREATE INDEX recall_reinspection_lot_idx ON holdfast.recall_reinspection (recall_id, lot_key, outcome);

-- The SKU and date range scope: a material's lots by the time they were made or received.
CREATE INDEX material_lot_material_idx ON holdfast.material_lot (material, occurred_at);
-- The model-version scope's window.
CREATE INDEX inspection_model_time_idx ON holdfast.inspection (model_version, inspected_at);
