-- Vision: inspection recipes per station and SKU, the frame each result came from, shadow-mode results, verdicts
-- to measure a station against, and frames the inference worker refused.

-- A recipe tells a station how to inspect one SKU: which model, per-class thresholds, region of interest, minimum
-- defect size. Versions are immutable; the active one is the latest activated version for (station, sku).
CREATE TABLE holdfast.vision_recipe (
  site               text NOT NULL,
  line               text NOT NULL,
  station            text NOT NULL,
  sku                text NOT NULL,
  version            text NOT NULL,
  model_name         text NOT NULL,
  model_version      text NOT NULL,
  thresholds         jsonb NOT NULL DEFAULT '{}'::jsonb,
  roi                jsonb,
  min_defect_area_px integer NOT NULL DEFAULT 0 CHECK (min_defect_area_px >= 0),
  created_by         text NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  activated_at       timestamptz,
  PRIMARY KEY (site, line, station, sku, version)
);
CREATE INDEX vision_recipe_active_idx ON holdfast.vision_recipe (site, line, station, sku, activated_at DESC)
  WHERE activated_at IS NOT NULL;

-- The frame behind a result (its producer id and the sha256 of its image bytes) and the station's mode when it was
-- inspected: a shadow result is recorded, but nothing is rejected and no MES/ERP action follows.
ALTER TABLE holdfast.inspection
  ADD COLUMN frame_id     text,
  ADD COLUMN frame_sha256 text,
  ADD COLUMN mode         text NOT NULL DEFAULT 'production' CHECK (mode IN ('production', 'shadow'));
CREATE INDEX inspection_frame_idx ON holdfast.inspection (frame_id) WHERE frame_id IS NOT NULL;
CREATE INDEX inspection_station_mode_idx ON holdfast.inspection (site, line, station, mode, inspected_at);

-- What a part really was, from the camera simulator's ground truth or a person's manual check: the reference a
-- station in shadow mode is measured against. Keyed by frame, because that is what both sides know.
CREATE TABLE holdfast.inspection_verdict (
  site          text NOT NULL,
  line          text NOT NULL,
  station       text NOT NULL,
  frame_id      text NOT NULL,
  source        text NOT NULL CHECK (source IN ('ground-truth', 'manual')),
  verdict       text NOT NULL CHECK (verdict IN ('pass', 'fail')),
  defect_class  text,
  decided_by    text NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (site, line, station, frame_id, source)
);

-- Frames the inference worker could not inspect, with the reason: counted and kept, never silently dropped.
CREATE TABLE holdfast.frame_rejection (
  id             bigserial PRIMARY KEY,
  topic          text NOT NULL,
  frame_id       text,
  reason         text NOT NULL,
  payload_sha256 text NOT NULL,
  received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX frame_rejection_received_idx ON holdfast.frame_rejection (received_at);
