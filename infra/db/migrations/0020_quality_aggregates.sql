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
  ADD COLUMN shift text,
  -- What the producer said (`inspectionKind` in the detection), as it said it; NULL: nothing. inspection_kind above is
  -- what counts: 'after-rework' and 're-inspection' are taken as said, 'first' is checked by inspection time.
  ADD COLUMN declared_kind text CHECK (declared_kind IN ('first', 're-inspection', 'after-rework'));

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
  -- Defects found (production mode, every inspection kind): what the lot figures below count as a lot's defects.
  defects               bigint NOT NULL DEFAULT 0,
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

-- The lots each work order's parts are made from (the material-lot context, 0018, which is the same for every
-- inspection of a work order): lot_kind 'component' for component_lots, 'supplier' for supplier_lots. Written where
-- the context is joined: at ingest (infra/ingest/inspection.repository.ts) and when the genealogy store completes or
-- changes it (infra/genealogy/material-context.ts, which also deletes the lots a work order no longer has). A few rows
-- per work order, against one row per inspection and lot that per-lot counters would have to move.
CREATE TABLE holdfast.work_order_lot (
  site        text NOT NULL,
  work_order  text NOT NULL,
  lot_kind    text NOT NULL CHECK (lot_kind IN ('component', 'supplier')),
  lot_key     text NOT NULL,
  PRIMARY KEY (site, work_order, lot_kind, lot_key)
);
CREATE INDEX work_order_lot_lot_idx ON holdfast.work_order_lot (lot_key);
INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key)
SELECT DISTINCT i.site, i.work_order, k.lot_kind, k.lot_key
  FROM holdfast.inspection i
  CROSS JOIN LATERAL (SELECT 'component', u FROM unnest(i.component_lots) AS u
                      UNION ALL
                      SELECT 'supplier', u FROM unnest(i.supplier_lots) AS u) AS k (lot_kind, lot_key)
 WHERE i.material_context IN ('at-ingest', 'completed-later');

-- First-pass figures by the lots a part was made from, per day and shift: the work order's figures (quality_hourly)
-- counted for each of its lots. A part counts for its work order's lots whether or not the consumption was known
-- when it was inspected (docs/analytics.md#first-pass-yield).
CREATE VIEW holdfast.lot_quality_daily AS
SELECT q.site, q.line, q.station, q.shift_date, q.shift, w.lot_kind, w.lot_key,
       sum(q.units)::bigint AS units, sum(q.first_pass_good)::bigint AS first_pass_good,
       sum(q.defects)::bigint AS defects
  FROM holdfast.quality_hourly q
  JOIN holdfast.work_order_lot w ON w.site = q.site AND w.work_order = q.work_order
 GROUP BY q.site, q.line, q.station, q.shift_date, q.shift, w.lot_kind, w.lot_key;

-- The shift (and its shift date) of an instant at a site, by the local clock in the site's time zone. A shift with
-- ends <= starts runs across midnight: before `ends` the instant belongs to the shift that started the day before. On
-- the days clocks change, local clock times decide, so such a shift is an hour shorter or longer. A site without a
-- calendar (or an instant no shift covers, which configuration rules out) falls in `all`, dated by UTC. A SQL table
-- function, so the planner inlines it into the statements that call it.
CREATE FUNCTION holdfast.shift_of(p_site text, p_at timestamptz) RETURNS TABLE (shift_date date, shift text)
  LANGUAGE sql STABLE PARALLEL SAFE
AS $$
  SELECT d.shift_date, d.shift
    FROM (SELECT CASE WHEN s.ends <= s.starts AND l.t::time < s.starts THEN l.t::date - 1 ELSE l.t::date END,
                 s.shift, 0
            FROM holdfast.site_shift s
            CROSS JOIN LATERAL (SELECT p_at AT TIME ZONE s.time_zone) AS l (t)
           WHERE s.site = p_site
             AND CASE WHEN s.starts < s.ends THEN l.t::time >= s.starts AND l.t::time < s.ends
                      ELSE l.t::time >= s.starts OR l.t::time < s.ends END
          UNION ALL
          SELECT (p_at AT TIME ZONE 'UTC')::date, 'all', 1) AS d (shift_date, shift, pref)
   ORDER BY d.pref
   LIMIT 1
$$;

-- The first production (or, apart, shadow) inspection of each part at each station, by inspection time then event id.
-- Its primary key is what serialises concurrent batches inspecting the same part: the upsert waits for the other
-- batch's row and then compares with it. previous_event_id: the inspection this one displaced as first (a late
-- arrival that was inspected earlier), NULL when it was first from the start.
-- Byte order ("C"): identifiers, not words; cheaper to compare, and the event-id tie-break means the same everywhere.
CREATE TABLE holdfast.station_part_first (
  site               text COLLATE "C" NOT NULL,
  line               text COLLATE "C" NOT NULL,
  station            text COLLATE "C" NOT NULL,
  part_id            text COLLATE "C" NOT NULL,
  mode               text COLLATE "C" NOT NULL,
  event_id           text COLLATE "C" NOT NULL,
  inspected_at       timestamptz NOT NULL,
  previous_event_id  text,
  PRIMARY KEY (site, line, station, part_id, mode)
);

-- One inspection's share of the aggregates: sign +1 adds it, -1 takes it back (a first that became a re-inspection).
CREATE TYPE holdfast.inspection_count AS (
  site             text,
  line             text,
  station          text,
  sku              text,
  work_order       text,
  hour             timestamptz,
  shift_date       date,
  shift            text,
  kind             text,
  shadow           boolean,
  passed           boolean,
  defects          jsonb,
  sign             integer
);

-- Adds counts to the two aggregates, each upsert in primary-key order so that concurrent batches lock the rows
-- they share in the same order and cannot deadlock.
CREATE FUNCTION holdfast.add_quality_counts(counts holdfast.inspection_count[]) RETURNS void
  LANGUAGE plpgsql
AS $$
BEGIN
  IF counts IS NULL OR cardinality(counts) = 0 THEN
    RETURN;
  END IF;

  INSERT INTO holdfast.quality_hourly AS q
         (site, line, station, sku, work_order, hour, shift_date, shift, units, first_pass_good, reinspections,
          reinspections_passed, reworked, reworked_passed, shadow_inspections, shadow_failed, defects)
  SELECT c.site, c.line, c.station, c.sku, c.work_order, c.hour, c.shift_date, c.shift,
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 'first'), 0),
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 'first' AND c.passed), 0),
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 're-inspection'), 0),
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 're-inspection' AND c.passed), 0),
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 'after-rework'), 0),
         COALESCE(sum(c.sign) FILTER (WHERE NOT c.shadow AND c.kind = 'after-rework' AND c.passed), 0),
         COALESCE(sum(c.sign) FILTER (WHERE c.shadow), 0),
         COALESCE(sum(c.sign) FILTER (WHERE c.shadow AND NOT c.passed), 0),
         COALESCE(sum(c.sign * jsonb_array_length(c.defects)) FILTER (WHERE NOT c.shadow), 0)
    FROM unnest(counts) AS c
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
   ORDER BY 1, 2, 3, 4, 5, 6, 7, 8
  ON CONFLICT (site, line, station, sku, work_order, hour, shift_date, shift) DO UPDATE
     SET units                = q.units + EXCLUDED.units,
         first_pass_good      = q.first_pass_good + EXCLUDED.first_pass_good,
         reinspections        = q.reinspections + EXCLUDED.reinspections,
         reinspections_passed = q.reinspections_passed + EXCLUDED.reinspections_passed,
         reworked             = q.reworked + EXCLUDED.reworked,
         reworked_passed      = q.reworked_passed + EXCLUDED.reworked_passed,
         shadow_inspections   = q.shadow_inspections + EXCLUDED.shadow_inspections,
         shadow_failed        = q.shadow_failed + EXCLUDED.shadow_failed,
         defects              = q.defects + EXCLUDED.defects;

  INSERT INTO holdfast.defect_hourly AS d
         (site, line, station, sku, work_order, hour, shift_date, shift, inspection_kind, defect_class, parts, defects)
  SELECT c.site, c.line, c.station, c.sku, c.work_order, c.hour, c.shift_date, c.shift, c.kind, k.class,
         sum(c.sign), sum(c.sign * k.n)
    FROM unnest(counts) AS c
    CROSS JOIN LATERAL (SELECT e ->> 'class' AS class, count(*) AS n
                          FROM jsonb_array_elements(c.defects) AS e GROUP BY 1) AS k
   WHERE NOT c.shadow AND jsonb_array_length(c.defects) > 0
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
   ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
  ON CONFLICT (site, line, station, sku, work_order, hour, shift_date, shift, inspection_kind, defect_class) DO UPDATE
     SET parts = d.parts + EXCLUDED.parts, defects = d.defects + EXCLUDED.defects;
END
$$;

-- After each INSERT statement into holdfast.inspection, in its transaction, over the rows it inserted (a re-sent event
-- that ON CONFLICT DO NOTHING skipped is not among them): classify each, stamp kind and shift on the rows that do not
-- carry them already, move a displaced first to the re-inspections, and add everything to the aggregates. Set-based:
-- a handful of statements per batch, however large.
CREATE FUNCTION holdfast.inspection_counted() RETURNS trigger
  LANGUAGE plpgsql
AS $$
DECLARE
  displaced  text[];
  counts     holdfast.inspection_count[];
  fix_ids    text[];
  fix_kinds  text[];
  fix_dates  date[];
  fix_shifts text[];
BEGIN
  -- One statement: which candidates are now their part's first at the station (by time, then event id), which
  -- earlier-stored first each displaced, and every new row classified. What the producer declared after rework or a
  -- re-inspection is no candidate; what the writer stamped counts for nothing here.
  WITH candidate AS (
    SELECT DISTINCT ON (n.site, n.line, n.station, n.part_id, n.mode)
           n.site, n.line, n.station, n.part_id, n.mode, n.event_id, n.inspected_at
      FROM new_rows n
     WHERE n.declared_kind IS NULL OR n.declared_kind = 'first'
     ORDER BY n.site, n.line, n.station, n.part_id, n.mode, n.inspected_at, n.event_id COLLATE "C"
  ), upserted AS (
    INSERT INTO holdfast.station_part_first AS f (site, line, station, part_id, mode, event_id, inspected_at)
    SELECT site, line, station, part_id, mode, event_id, inspected_at FROM candidate
     ORDER BY site, line, station, part_id, mode
    ON CONFLICT (site, line, station, part_id, mode) DO UPDATE
       SET previous_event_id = f.event_id, event_id = EXCLUDED.event_id, inspected_at = EXCLUDED.inspected_at
     WHERE (EXCLUDED.inspected_at, EXCLUDED.event_id) < (f.inspected_at, f.event_id)
    RETURNING f.event_id, f.previous_event_id
  ), classified AS (
    SELECT n.event_id, n.inspection_kind AS stored_kind, n.shift_date AS stored_date, n.shift AS stored_shift,
           ROW(n.site, n.line, n.station, n.sku, n.work_order, date_trunc('hour', n.inspected_at, 'UTC'),
               s.shift_date, s.shift,
               CASE WHEN n.declared_kind IN ('after-rework', 're-inspection') THEN n.declared_kind
                    WHEN u.event_id IS NOT NULL THEN 'first'
                    ELSE 're-inspection' END,
               n.mode = 'shadow', n.result = 'pass', n.defects,
               1)::holdfast.inspection_count AS c
      FROM new_rows n
      -- The writer may have stamped the shift already (infra/ingest/inspection.repository.ts): kept, not recomputed.
      CROSS JOIN LATERAL (SELECT n.shift_date, n.shift WHERE n.shift IS NOT NULL AND n.shift_date IS NOT NULL
                          UNION ALL
                          SELECT * FROM holdfast.shift_of(n.site, n.inspected_at) WHERE n.shift IS NULL
                                                                                     OR n.shift_date IS NULL) AS s
      LEFT JOIN upserted u ON u.event_id = n.event_id
  ), judged AS (
    SELECT c, event_id,
           (c).kind IS DISTINCT FROM stored_kind OR (c).shift_date IS DISTINCT FROM stored_date
             OR (c).shift IS DISTINCT FROM stored_shift AS stale
      FROM classified
  )
  SELECT (SELECT array_agg(previous_event_id) FROM upserted WHERE previous_event_id IS NOT NULL),
         array_agg(c), array_agg(event_id) FILTER (WHERE stale), array_agg((c).kind) FILTER (WHERE stale),
         array_agg((c).shift_date) FILTER (WHERE stale), array_agg((c).shift) FILTER (WHERE stale)
    INTO displaced, counts, fix_ids, fix_kinds, fix_dates, fix_shifts
    FROM judged;

  -- Rows inserted without kind and shift (or with a kind the classification overrules): stamp them.
  IF cardinality(fix_ids) > 0 THEN
    UPDATE holdfast.inspection i
       SET inspection_kind = x.kind, shift_date = x.shift_date, shift = x.shift
      FROM unnest(fix_ids, fix_kinds, fix_dates, fix_shifts) AS x (id, kind, shift_date, shift)
     WHERE i.event_id = x.id;
  END IF;

  -- A first displaced by an earlier inspection that arrived later: taken back as first, counted as a re-inspection.
  IF cardinality(displaced) > 0 THEN
    WITH moved AS (
      UPDATE holdfast.inspection i SET inspection_kind = 're-inspection'
       WHERE i.event_id = ANY (displaced) AND i.inspection_kind = 'first'
      RETURNING i.*
    )
    SELECT counts || array_agg(ROW(m.site, m.line, m.station, m.sku, m.work_order,
                                   date_trunc('hour', m.inspected_at, 'UTC'), m.shift_date, m.shift, k.kind,
                                   m.mode = 'shadow', m.result = 'pass', m.defects,
                                   k.sign)::holdfast.inspection_count)
      INTO counts
      FROM moved m CROSS JOIN (VALUES ('first', -1), ('re-inspection', 1)) AS k (kind, sign);
  END IF;

  PERFORM holdfast.add_quality_counts(counts);
  RETURN NULL;
END
$$;

CREATE TRIGGER inspection_counted AFTER INSERT ON holdfast.inspection
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast.inspection_counted();

-- Inspections are records and are not deleted in operation; tests clear theirs. Their counts go with them, and a
-- deleted first leaves its part without one (the next inspection stored for it becomes first).
CREATE FUNCTION holdfast.inspection_uncounted() RETURNS trigger
  LANGUAGE plpgsql
AS $$
DECLARE
  counts holdfast.inspection_count[];
BEGIN
  DELETE FROM holdfast.station_part_first f
   USING old_rows o
   WHERE (f.site, f.line, f.station, f.part_id, f.mode) = (o.site, o.line, o.station, o.part_id, o.mode)
     AND f.event_id = o.event_id;
  SELECT array_agg(ROW(r.site, r.line, r.station, r.sku, r.work_order, date_trunc('hour', r.inspected_at, 'UTC'),
                       r.shift_date, r.shift, r.inspection_kind, r.mode = 'shadow', r.result = 'pass', r.defects,
                       -1)::holdfast.inspection_count)
    INTO counts
    FROM old_rows r
   WHERE r.inspection_kind IS NOT NULL AND r.shift IS NOT NULL AND r.shift_date IS NOT NULL;
  PERFORM holdfast.add_quality_counts(counts);
  RETURN NULL;
END
$$;

CREATE TRIGGER inspection_uncounted AFTER DELETE ON holdfast.inspection
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast.inspection_uncounted();

-- Counts a site again from its stored inspections: kind and shift stamped anew (with the calendar as it is now),
-- station_part_first, the two aggregates and work_order_lot rebuilt. For inspections stored before this migration
-- (call it once the calendars are synced), after a calendar change that should apply to the past, and for bulk loads
-- made with the trigger disabled. Inserts and updates of inspections wait while it runs. Returns the inspections counted.
CREATE FUNCTION holdfast.recount_quality(p_site text) RETURNS bigint
  LANGUAGE plpgsql
AS $$
DECLARE
  counted bigint;
BEGIN
  LOCK TABLE holdfast.inspection IN SHARE ROW EXCLUSIVE MODE;

  WITH classified AS (
    SELECT i.event_id, s.shift_date, s.shift,
           CASE WHEN i.declared_kind IN ('after-rework', 're-inspection') THEN i.declared_kind
                WHEN row_number() OVER (
                       PARTITION BY i.line, i.station, i.part_id, i.mode,
                                    COALESCE(i.declared_kind IN ('after-rework', 're-inspection'), false)
                       ORDER BY i.inspected_at, i.event_id COLLATE "C") = 1 THEN 'first'
                ELSE 're-inspection' END AS kind
      FROM holdfast.inspection i
      CROSS JOIN LATERAL holdfast.shift_of(i.site, i.inspected_at) AS s
     WHERE i.site = p_site
  )
  UPDATE holdfast.inspection i
     SET inspection_kind = c.kind, shift_date = c.shift_date, shift = c.shift
    FROM classified c
   WHERE i.event_id = c.event_id
     AND (i.inspection_kind, i.shift_date, i.shift) IS DISTINCT FROM (c.kind, c.shift_date, c.shift);

  DELETE FROM holdfast.station_part_first WHERE site = p_site;
  INSERT INTO holdfast.station_part_first (site, line, station, part_id, mode, event_id, inspected_at)
  SELECT site, line, station, part_id, mode, event_id, inspected_at
    FROM holdfast.inspection WHERE site = p_site AND inspection_kind = 'first';

  DELETE FROM holdfast.quality_hourly WHERE site = p_site;
  DELETE FROM holdfast.defect_hourly WHERE site = p_site;
  DELETE FROM holdfast.work_order_lot WHERE site = p_site;

  INSERT INTO holdfast.quality_hourly
         (site, line, station, sku, work_order, hour, shift_date, shift, units, first_pass_good, reinspections,
          reinspections_passed, reworked, reworked_passed, shadow_inspections, shadow_failed, defects)
  SELECT site, line, station, sku, work_order, date_trunc('hour', inspected_at, 'UTC'), shift_date, shift,
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 'first'),
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 'first' AND result = 'pass'),
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 're-inspection'),
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 're-inspection' AND result = 'pass'),
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 'after-rework'),
         count(*) FILTER (WHERE mode <> 'shadow' AND inspection_kind = 'after-rework' AND result = 'pass'),
         count(*) FILTER (WHERE mode = 'shadow'),
         count(*) FILTER (WHERE mode = 'shadow' AND result = 'fail'),
         COALESCE(sum(jsonb_array_length(defects)) FILTER (WHERE mode <> 'shadow'), 0)
    FROM holdfast.inspection
   WHERE site = p_site
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8;

  INSERT INTO holdfast.defect_hourly
         (site, line, station, sku, work_order, hour, shift_date, shift, inspection_kind, defect_class, parts, defects)
  SELECT i.site, i.line, i.station, i.sku, i.work_order, date_trunc('hour', i.inspected_at, 'UTC'), i.shift_date,
         i.shift, i.inspection_kind, k.class, count(*), sum(k.n)
    FROM holdfast.inspection i
    CROSS JOIN LATERAL (SELECT e ->> 'class' AS class, count(*) AS n
                          FROM jsonb_array_elements(i.defects) AS e GROUP BY 1) AS k
   WHERE i.site = p_site AND i.mode <> 'shadow'
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;

  INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key)
  SELECT DISTINCT i.site, i.work_order, k.lot_kind, k.lot_key
    FROM holdfast.inspection i
    CROSS JOIN LATERAL (SELECT 'component', u FROM unnest(i.component_lots) AS u
                        UNION ALL
                        SELECT 'supplier', u FROM unnest(i.supplier_lots) AS u) AS k (lot_kind, lot_key)
   WHERE i.site = p_site AND i.material_context IN ('at-ingest', 'completed-later');

  SELECT count(*) INTO counted FROM holdfast.inspection WHERE site = p_site;
  RETURN counted;
END
$$;

-- Sites with inspections stored before this migration: counted once, by syncSiteShifts
-- (infra/analytics/shift-calendar.ts), as soon as their shift calendar is known, then taken off this list.
CREATE TABLE holdfast.quality_recount_pending (site text PRIMARY KEY);
INSERT INTO holdfast.quality_recount_pending (site) SELECT DISTINCT site FROM holdfast.inspection;
