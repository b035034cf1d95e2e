-- First-pass yield and defect aggregates (docs/analytics.md#first-pass-yield), kept incrementally as inspections are
-- stored, never recomputed from scratch per request. These tables are the interface the metrics routes, the ERP feed,
-- supplier scorecards, escalation rules and bench:analytics read.

-- Each site's shift calendar in its own time zone (sites[].shifts and sites[].timezone in temporal.yaml), replaced
-- from configuration when a process starts. A shift with ends <= starts runs across midnight; its shift date is the
-- local date on which it starts.
CREATE TABLE holdfast.site_shift (
  site       text NOT NULL,
  shift      text NOT NULL,
  starts     time NOT NULL,
  ends       time NOT NULL,
  time_zone  text NOT NULL,
  PRIMARY KEY (site, shift)
);

-- How each stored inspection counts: the part's first inspection at the station, a re-inspection of a part already
-- inspected there, or an inspection after rework. NULL: stored before this migration.
ALTER TABLE holdfast.inspection
  ADD COLUMN inspection_kind text CHECK (inspection_kind IN ('first', 're-inspection', 'after-rework')),
  ADD COLUMN shift_date date,
  ADD COLUMN shift text;

-- Per station, SKU, work order, UTC hour and shift. units: parts whose first inspection at the station fell here
-- (production mode); first_pass_good: those whose first inspection passed. Re-inspections, inspections after rework
-- and shadow-mode results are counted apart and never enter the first-pass figures.
CREATE TABLE holdfast.quality_hourly (
  site                  text NOT NULL,
  line                  text NOT NULL,
  station               text NOT NULL,
  sku                   text NOT NULL,
  work_order            text NOT NULL,
  hour                  timestamptz NOT NULL,
  shift_date            date NOT NULL,
  shift                 text NOT NULL,
  units                 bigint NOT NULL DEFAULT 0,
  first_pass_good       bigint NOT NULL DEFAULT 0,
  reinspections         bigint NOT NULL DEFAULT 0,
  reinspections_passed  bigint NOT NULL DEFAULT 0,
  reworked              bigint NOT NULL DEFAULT 0,
  reworked_passed       bigint NOT NULL DEFAULT 0,
  shadow_inspections    bigint NOT NULL DEFAULT 0,
  shadow_failed         bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site, line, station, sku, work_order, hour, shift_date, shift)
);
CREATE INDEX quality_hourly_time_idx ON holdfast.quality_hourly (site, hour);

-- Defects by class on the same grain (production mode, every inspection kind): parts = inspections with at least one
-- defect of the class, defects = the defects of the class found.
CREATE TABLE holdfast.defect_hourly (
  site          text NOT NULL,
  line          text NOT NULL,
  station       text NOT NULL,
  sku           text NOT NULL,
  work_order    text NOT NULL,
  hour          timestamptz NOT NULL,
  shift_date    date NOT NULL,
  shift         text NOT NULL,
  inspection_kind text NOT NULL,
  defect_class  text NOT NULL,
  parts         bigint NOT NULL DEFAULT 0,
  defects       bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site, line, station, sku, work_order, hour, shift_date, shift, inspection_kind, defect_class)
);
CREATE INDEX defect_hourly_time_idx ON holdfast.defect_hourly (site, hour);

-- First-pass figures by the lots a part was made from (the inspection's material-lot context, 0018), per day and
-- shift: lot_kind 'component' for component_lots, 'supplier' for supplier_lots. Kept when the context is joined at
-- ingest and when it is completed later.
CREATE TABLE holdfast.lot_quality_daily (
  site             text NOT NULL,
  line             text NOT NULL,
  station          text NOT NULL,
  shift_date       date NOT NULL,
  shift            text NOT NULL,
  lot_kind         text NOT NULL CHECK (lot_kind IN ('component', 'supplier')),
  lot_key          text NOT NULL,
  units            bigint NOT NULL DEFAULT 0,
  first_pass_good  bigint NOT NULL DEFAULT 0,
  defects          bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (site, line, station, shift_date, shift, lot_kind, lot_key)
);
CREATE INDEX lot_quality_daily_lot_idx ON holdfast.lot_quality_daily (lot_key, shift_date);
