-- The dashboard (docs/dashboard.md): live updates on channel holdfast_live, and the indexes its "Now" view reads by.

-- What the dashboard counts as a defect: a failed production inspection (a shadow station's result acts on nothing).
-- Its latest, newest first, per site and per line.
CREATE INDEX inspection_failed_site_idx ON holdfast.inspection (site, inspected_at DESC, event_id DESC)
  WHERE result = 'fail' AND mode = 'production';
CREATE INDEX inspection_failed_line_idx ON holdfast.inspection (site, line, inspected_at DESC, event_id DESC)
  WHERE result = 'fail' AND mode = 'production';
-- The open lot cases of a site, oldest first.
CREATE INDEX lot_case_open_idx ON holdfast.lot_case (site, opened_at) WHERE closed_at IS NULL;
-- What is running now: recalls, drills, and the stations armed by a changeover.
CREATE INDEX recall_running_idx ON holdfast.recall (site) WHERE state = 'running';
CREATE INDEX recall_drill_running_idx ON holdfast.recall_drill (site) WHERE state = 'running';
CREATE INDEX station_assignment_armed_idx ON holdfast.station_assignment (site, line) WHERE state = 'armed';

-- An ISO 8601 instant in UTC with milliseconds, as JavaScript's toISOString() writes it, whatever the session's TimeZone.
CREATE FUNCTION holdfast.iso_instant(t timestamptz) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

-- After each INSERT statement into holdfast.inspection (the rows it inserted: a re-sent event skipped by ON CONFLICT is
-- not among them), one notification per site: how many inspections, how many failed, the lines they were on, and
-- the failed ones themselves, newest first, at most 20. NOTIFY payloads must stay under 8000 bytes: when 20 failed
-- inspections with long identifiers would not fit, fewer are sent (`failed` still counts them all, so a listener
-- knows to read the rest). Delivered at commit, so a rolled-back batch notifies nothing.
CREATE FUNCTION holdfast.inspection_live_notify() RETURNS trigger
  LANGUAGE plpgsql
AS $$
DECLARE
  s        record;
  failures json[];
  lines    json;
  payload  text;
  keep     integer;
BEGIN
  FOR s IN
    SELECT n.site, count(*) AS inspections,
           count(*) FILTER (WHERE n.result = 'fail' AND n.mode = 'production') AS failed,
           array_agg(DISTINCT n.line) AS lines
      FROM new_rows n
     GROUP BY n.site
  LOOP
    SELECT array_agg(f.j ORDER BY f.inspected_at DESC, f.event_id DESC)
      INTO failures
      FROM (SELECT n.inspected_at, n.event_id,
                   json_build_object(
                     'eventId', n.event_id, 'line', n.line, 'station', n.station, 'lotId', n.lot_id,
                     'partId', n.part_id,
                     'defectClasses', ARRAY(SELECT e.d ->> 'class'
                                              FROM jsonb_array_elements(n.defects) WITH ORDINALITY AS e (d, i)
                                             WHERE e.d ->> 'class' IS NOT NULL
                                             GROUP BY 1 ORDER BY min(e.i)),
                     'inspectedAt', holdfast.iso_instant(n.inspected_at)) AS j
              FROM new_rows n
             WHERE n.site = s.site AND n.result = 'fail' AND n.mode = 'production'
             ORDER BY n.inspected_at DESC, n.event_id DESC
             LIMIT 20) f;
    lines := to_json(s.lines);
    keep := COALESCE(cardinality(failures), 0);
    LOOP
      payload := json_build_object(
        'type', 'inspections', 'site', s.site, 'lines', lines, 'inspections', s.inspections, 'failed', s.failed,
        'defects', COALESCE(to_json(failures[1:keep]), '[]'::json))::text;
      EXIT WHEN octet_length(payload) < 7900;
      IF keep > 0 THEN
        keep := keep / 2;
      ELSIF lines::text <> '[]' THEN
        -- Only hundreds of long line names could get here: the lines go, the counts stay.
        lines := '[]'::json;
      ELSE
        EXIT;
      END IF;
    END LOOP;
    IF octet_length(payload) < 7900 THEN
      PERFORM pg_notify('holdfast_live', payload);
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

CREATE TRIGGER inspection_live AFTER INSERT ON holdfast.inspection
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION holdfast.inspection_live_notify();

-- A lot case opened or moved to another stage (the workflow's projection writes each stage it enters).
CREATE FUNCTION holdfast.lot_case_live_notify() RETURNS trigger
  LANGUAGE plpgsql
AS $$
BEGIN
  PERFORM pg_notify('holdfast_live', json_build_object(
    'type', 'lot-case', 'site', NEW.site, 'line', NEW.line, 'lotId', NEW.lot_id, 'stage', NEW.stage)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER lot_case_live_opened AFTER INSERT ON holdfast.lot_case
  FOR EACH ROW EXECUTE FUNCTION holdfast.lot_case_live_notify();
CREATE TRIGGER lot_case_live_staged AFTER UPDATE OF stage ON holdfast.lot_case
  FOR EACH ROW WHEN (OLD.stage IS DISTINCT FROM NEW.stage) EXECUTE FUNCTION holdfast.lot_case_live_notify();
