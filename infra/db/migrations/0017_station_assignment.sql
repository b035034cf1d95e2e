-- What each Holdfast inference station applies across changeovers (docs/changeover.md#holdfast-stations): one row per
-- assignment a changeover asked of a station (its history: before and after), and per station which one is armed
-- (the model loaded, waiting for the order's first frame) and which one is active.

-- The parts a first article needs for this recipe's SKU; NULL: changeover.firstArticleParts.
ALTER TABLE holdfast.vision_recipe
  ADD COLUMN first_article_parts integer CHECK (first_article_parts IS NULL OR first_article_parts > 0);

-- One row per (station, changeover). The changeover writes what it asks (arm); the inference worker writes what it did:
-- prepared_at and model_sha256 once the model is loaded (the sha256 of the file it loaded, verified against the
-- manifest), activated_at and first_frame_id at the order's first frame. previous_changeover_id is what was active
-- when this one became active (NULL: the station applied each frame's SKU's active recipe), which revert restores.
CREATE TABLE holdfast.station_assignment (
  site                   text NOT NULL,
  line                   text NOT NULL,
  station                text NOT NULL,
  changeover_id          text NOT NULL,
  work_order             text NOT NULL,
  sku                    text NOT NULL,
  recipe_version         text NOT NULL,
  model_name             text NOT NULL,
  model_version          text NOT NULL,
  state                  text NOT NULL DEFAULT 'armed'
                         CHECK (state IN ('armed', 'active', 'superseded', 'reverted')),
  armed_at               timestamptz NOT NULL DEFAULT now(),
  prepared_at            timestamptz,
  -- name@version and sha256 of the model the worker loaded; NULL until it did.
  model_key              text,
  model_sha256           text CHECK (model_sha256 IS NULL OR model_sha256 ~ '^[0-9a-f]{64}$'),
  -- The worker could not prepare it (no such recipe version, model missing or refused); cleared by a new arm.
  prepare_error          text,
  activated_at           timestamptz,
  first_frame_id         text,
  previous_changeover_id text,
  reverted_at            timestamptz,
  PRIMARY KEY (site, line, station, changeover_id),
  CHECK ((prepared_at IS NULL) = (model_sha256 IS NULL)),
  CHECK (state <> 'active' OR activated_at IS NOT NULL)
);
CREATE INDEX station_assignment_changeover_idx ON holdfast.station_assignment (changeover_id);

-- Per station, the assignment armed and the one active; a station without a row (or with both NULL) has never been
-- changed over and inspects each frame under its SKU's active recipe, as before changeovers existed.
CREATE TABLE holdfast.station_control (
  site                 text NOT NULL,
  line                 text NOT NULL,
  station              text NOT NULL,
  armed_changeover_id  text,
  active_changeover_id text,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, line, station),
  FOREIGN KEY (site, line, station, armed_changeover_id)
    REFERENCES holdfast.station_assignment (site, line, station, changeover_id),
  FOREIGN KEY (site, line, station, active_changeover_id)
    REFERENCES holdfast.station_assignment (site, line, station, changeover_id)
);

-- The first article reads a work order's first parts on a line.
CREATE INDEX inspection_line_work_order_idx ON holdfast.inspection (site, line, work_order, inspected_at);
