-- Material-lot context on every inspection (docs/changeover.md#material-lot-context): the component lots its work order
-- consumed and the purchased (supplier) lots those were made from, joined from the genealogy (0009) when the
-- inspection is stored, or later, when the work order's consumption arrives. Lot keys only: supplier, supplier batch
-- and material are read from holdfast.material_lot, so a goods receipt recorded after the join still shows.

-- The work order's node id as infra/genealogy/genealogy-keys.ts spells it (workOrderNode): `wo:<site>/<order>`, each
-- part with '%' → '%25' and '/' → '%2F'. IMMUTABLE: it depends on its arguments only.
CREATE FUNCTION holdfast.work_order_node(site text, work_order text) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
  SELECT 'wo:' || replace(replace(site, '%', '%25'), '/', '%2F') || '/'
               || replace(replace(work_order, '%', '%25'), '/', '%2F')
$$;

-- The material of each work order in `orders` (node ids): the lots consumed into it, and every purchased lot reached
-- by walking back from those through the movements that made them (produced by a work order that consumed ..., split,
-- merged, reworked, repacked), at most `max_depth` edges back. A work order with no consumption yet has no row.
-- Arrays are sorted, so two joins of the same genealogy compare equal. PL/pgSQL rather than SQL: ingest calls it once per
-- batch on pooled connections, and PL/pgSQL keeps the walk's plan per connection instead of planning it every call.
CREATE FUNCTION holdfast.work_order_material(orders text[], max_depth integer DEFAULT 16)
  RETURNS TABLE (wo_node text, component_lots text[], supplier_lots text[])
  LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  WITH RECURSIVE components AS (
    SELECT DISTINCT e.to_node AS wo_node, e.from_node AS lot_node
      FROM holdfast.genealogy_edge e
     WHERE e.to_node = ANY (orders) AND e.kind = 'consumed'
  ), back (wo_node, node, depth) AS (
    SELECT wo_node, lot_node, 0 FROM components
    UNION
    SELECT b.wo_node, e.from_node, b.depth + 1
      FROM back b
      JOIN holdfast.genealogy_edge e ON e.to_node = b.node
     WHERE b.depth < max_depth
       AND e.kind IN ('consumed', 'produced', 'split', 'merged', 'reworked', 'repacked')
  ), suppliers AS (
    -- By the lot's primary key: each reached lot is one index lookup.
    SELECT DISTINCT b.wo_node, l.lot_key
      FROM back b
      JOIN holdfast.material_lot l ON l.lot_key = substr(b.node, 5) AND l.origin = 'purchased'
     WHERE b.node LIKE 'lot:%'
  )
  SELECT c.wo_node AS wo_node,
         array_agg(DISTINCT substr(c.lot_node, 5) ORDER BY substr(c.lot_node, 5)),
         COALESCE((SELECT array_agg(s.lot_key ORDER BY s.lot_key) FROM suppliers s WHERE s.wo_node = c.wo_node),
                  '{}'::text[])
    FROM components c
   GROUP BY c.wo_node;
END
$$;

ALTER TABLE holdfast.inspection
  -- at-ingest: joined when stored; pending: the work order had consumed nothing yet; completed-later: joined (again)
  -- when consumption or a source of its lots arrived after the inspection. NULL: stored before this migration.
  ADD COLUMN material_context text CHECK (material_context IN ('at-ingest', 'pending', 'completed-later')),
  -- When the lots below were joined (NULL while pending).
  ADD COLUMN material_context_at timestamptz,
  -- Lot keys (holdfast.material_lot.lot_key): consumed into the work order, and the purchased lots behind them.
  ADD COLUMN component_lots text[],
  ADD COLUMN supplier_lots text[];

-- Completing the join finds a work order's inspections by the order (inspection_work_order_idx) and the pending ones
-- by this; defect rates by lot read a line's inspections over a time range.
CREATE INDEX inspection_material_pending_idx ON holdfast.inspection (site, work_order)
  WHERE material_context = 'pending';
CREATE INDEX inspection_line_time_idx ON holdfast.inspection (site, line, inspected_at);
