/**
 * The material-lot context of inspections (docs/changeover.md#material-lot-context): which component lots went into
 * an inspected part's work order and which purchased lots those were made from. Ingest joins it when it stores the
 * inspection (infra/ingest/inspection.repository.ts, one statement per batch); the genealogy store completes it here
 * when a movement or a lot recorded later changes what a work order is made of; the reads below count defects by it.
 * The walk itself is the SQL function holdfast.work_order_material (migration 0018), so every writer joins alike.
 */
import type pg from 'pg';

type Queryable = Pick<pg.PoolClient, 'query'>;

export type MaterialContextState = 'at-ingest' | 'pending' | 'completed-later';

/** How far a change travels forward to the work orders it affects: as far as the walk back reaches (0018). */
export const MATERIAL_CONTEXT_DEPTH = 16;

/** The work orders whose material a change at `nodes` may alter: the nodes forward of them, work orders only. */
const AFFECTED_ORDERS = `
  WITH RECURSIVE fwd (node, depth) AS (
    SELECT n, 0 FROM unnest($1::text[]) AS n
    UNION
    SELECT e.to_node, f.depth + 1
      FROM fwd f JOIN holdfast.genealogy_edge e ON e.from_node = f.node
     WHERE f.depth < ${MATERIAL_CONTEXT_DEPTH} AND e.kind <> 'delivered'
  )
  SELECT DISTINCT node FROM fwd WHERE node LIKE 'wo:%'`;

/**
 * Joins again the inspections of every work order downstream of `nodes` (lot or work-order node ids that a batch of
 * the genealogy just added or described): a pending one, or one whose lots changed, takes the new lots and becomes
 * `completed-later`, stamped now. Inspections whose lots are unchanged are not touched. Returns how many changed.
 */
export async function completeMaterialContext(client: Queryable, nodes: readonly string[]): Promise<number> {
  if (nodes.length === 0) return 0;
  const res = await client.query<{ changed: number }>(
    `WITH orders AS (${AFFECTED_ORDERS}),
     ctx AS (SELECT * FROM holdfast.work_order_material(ARRAY(SELECT node FROM orders), ${MATERIAL_CONTEXT_DEPTH}))
     ${UPDATE_FROM_CTX}`,
    [[...new Set(nodes)]],
  );
  return res.rows[0]?.changed ?? 0;
}

/**
 * The sweep (the genealogy's periodic reconcile): pending inspections whose work order has consumption now. It catches
 * the one race completeMaterialContext cannot see: an inspection stored while the consumption's transaction was
 * still open, each missing the other's uncommitted row.
 */
export async function completePendingMaterialContext(client: Queryable): Promise<number> {
  const res = await client.query<{ changed: number }>(
    `WITH ctx AS (
       SELECT * FROM holdfast.work_order_material(
         ARRAY(SELECT DISTINCT holdfast.work_order_node(site, work_order) FROM holdfast.inspection
                WHERE material_context = 'pending'), ${MATERIAL_CONTEXT_DEPTH}))
     ${UPDATE_FROM_CTX}`,
  );
  return res.rows[0]?.changed ?? 0;
}

// The order is the node's second part, unescaped, so the update finds the order's inspections by its index. The
// work orders it re-joins take their lots in holdfast.work_order_lot (migration 0020, what the lot figures count by):
// the lots they no longer have deleted, the new ones added, in key order like ingest. Returns the inspections changed.
const UPDATE_FROM_CTX = `,
  joined AS (
    UPDATE holdfast.inspection i
       SET component_lots = ctx.component_lots, supplier_lots = ctx.supplier_lots,
           material_context = 'completed-later', material_context_at = now()
      FROM ctx
     WHERE i.work_order = replace(replace(split_part(substr(ctx.wo_node, 4), '/', 2), '%2F', '/'), '%25', '%')
       AND holdfast.work_order_node(i.site, i.work_order) = ctx.wo_node
       AND i.material_context IS NOT NULL
       AND (i.material_context = 'pending'
            OR i.component_lots IS DISTINCT FROM ctx.component_lots
            OR i.supplier_lots IS DISTINCT FROM ctx.supplier_lots)
    RETURNING i.site, i.work_order, ctx.component_lots, ctx.supplier_lots
  ), orders_joined AS (
    SELECT DISTINCT ON (site, work_order) site, work_order, component_lots, supplier_lots FROM joined
  ), lots_gone AS (
    DELETE FROM holdfast.work_order_lot w
     USING orders_joined o
     WHERE w.site = o.site AND w.work_order = o.work_order
       AND NOT COALESCE(CASE w.lot_kind WHEN 'component' THEN w.lot_key = ANY (o.component_lots)
                                        ELSE w.lot_key = ANY (o.supplier_lots) END, false)
  ), lots_added AS (
    INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key)
    SELECT DISTINCT o.site, o.work_order, k.lot_kind, k.lot_key
      FROM orders_joined o
      CROSS JOIN LATERAL (SELECT 'component', u FROM unnest(o.component_lots) AS u
                          UNION ALL
                          SELECT 'supplier', u FROM unnest(o.supplier_lots) AS u) AS k (lot_kind, lot_key)
     ORDER BY 1, 2, 3, 4
    ON CONFLICT DO NOTHING
  )
  SELECT count(*)::int AS changed FROM joined`;

/** A lot of an inspection's context, with what the genealogy knows of it now. */
export interface ContextLot {
  lotKey: string;
  material: string | null;
  origin: string | null;
  supplier: string | null;
  supplierBatch: string | null;
}

export interface MaterialContext {
  state: MaterialContextState | 'not-recorded';
  joinedAt: string | null;
  componentLots: ContextLot[];
  supplierLots: ContextLot[];
}

/** One inspection's context, with each lot's material and supplier as recorded now. */
export async function materialContextOf(db: Queryable, eventId: string): Promise<MaterialContext | undefined> {
  const res = await db.query<{
    material_context: MaterialContextState | null;
    material_context_at: Date | null;
    component_lots: ContextLot[];
    supplier_lots: ContextLot[];
  }>(
    `SELECT i.material_context, i.material_context_at,
            ${lotsJson('i.component_lots')} AS component_lots, ${lotsJson('i.supplier_lots')} AS supplier_lots
       FROM holdfast.inspection i WHERE i.event_id = $1`,
    [eventId],
  );
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    state: r.material_context ?? 'not-recorded',
    joinedAt: r.material_context_at?.toISOString() ?? null,
    componentLots: r.component_lots,
    supplierLots: r.supplier_lots,
  };
}

const lotsJson = (column: string) => `
  COALESCE((SELECT jsonb_agg(jsonb_build_object('lotKey', k.key, 'material', l.material, 'origin', l.origin,
                                                'supplier', l.supplier, 'supplierBatch', l.supplier_batch)
                             ORDER BY k.key)
              FROM unnest(${column}) AS k (key) LEFT JOIN holdfast.material_lot l ON l.lot_key = k.key),
           '[]'::jsonb)`;

export type DefectRateBy = 'component-lot' | 'supplier-lot' | 'supplier';

export interface DefectRateQuery {
  site: string;
  line?: string;
  by: DefectRateBy;
  from: string;
  to: string;
}

export interface DefectRateRow {
  /** The lot key, or the supplier's id for `by=supplier`. */
  key: string;
  material: string | null;
  supplier: string | null;
  supplierBatch: string | null;
  /** Distinct parts inspected in the range whose context names the key; defective: any station failed it. */
  parts: number;
  defective: number;
  rate: number;
}

export interface DefectRates {
  rows: DefectRateRow[];
  /** Parts in the range whose context is still pending (left out of the rows). */
  pendingParts: number;
  /** Parts in the range stored before material context was recorded (left out too). */
  unrecordedParts: number;
}

/**
 * Defect rate by component lot, supplier lot or supplier over a site (and line) and time range: one query over the
 * stored contexts. Shadow-mode results are left out (they decide nothing). A part is counted once per key however
 * many stations inspected it, and is defective when any of them failed it.
 */
export async function defectRates(db: Queryable, q: DefectRateQuery): Promise<DefectRates> {
  const lots = q.by === 'component-lot' ? 'i.component_lots' : 'i.supplier_lots';
  const key = q.by === 'supplier' ? `COALESCE(l.supplier, '(unknown)')` : 'k.key';
  const res = await db.query<{
    key: string;
    material: string | null;
    supplier: string | null;
    supplier_batch: string | null;
    parts: string;
    defective: string;
  }>(
    `WITH parts AS (
       SELECT i.site, i.part_id, bool_or(i.result = 'fail') AS failed, k.key
         FROM holdfast.inspection i CROSS JOIN LATERAL unnest(${lots}) AS k (key)
        WHERE i.site = $1 AND ($2::text IS NULL OR i.line = $2) AND i.inspected_at >= $3 AND i.inspected_at < $4
          AND i.mode = 'production' AND i.material_context IN ('at-ingest', 'completed-later')
        GROUP BY i.site, i.part_id, k.key
     )
     SELECT ${key} AS key,
            ${q.by === 'supplier' ? 'NULL' : 'l.material'} AS material,
            ${q.by === 'supplier' ? `COALESCE(l.supplier, '(unknown)')` : 'l.supplier'} AS supplier,
            ${q.by === 'supplier' ? 'NULL' : 'l.supplier_batch'} AS supplier_batch,
            count(DISTINCT (k.site, k.part_id)) AS parts,
            count(DISTINCT (k.site, k.part_id)) FILTER (WHERE k.failed) AS defective
       FROM parts k LEFT JOIN holdfast.material_lot l ON l.lot_key = k.key
      GROUP BY 1, 2, 3, 4
      ORDER BY count(DISTINCT (k.site, k.part_id)) FILTER (WHERE k.failed)::float8
               / count(DISTINCT (k.site, k.part_id)) DESC, 1`,
    [q.site, q.line ?? null, q.from, q.to],
  );
  const coverage = await db.query<{ pending: string; unrecorded: string }>(
    `SELECT count(DISTINCT part_id) FILTER (WHERE material_context = 'pending') AS pending,
            count(DISTINCT part_id) FILTER (WHERE material_context IS NULL) AS unrecorded
       FROM holdfast.inspection
      WHERE site = $1 AND ($2::text IS NULL OR line = $2) AND inspected_at >= $3 AND inspected_at < $4
        AND mode = 'production'`,
    [q.site, q.line ?? null, q.from, q.to],
  );
  return {
    rows: res.rows.map((r) => {
      const parts = Number(r.parts);
      const defective = Number(r.defective);
      return {
        key: r.key,
        material: r.material,
        supplier: r.supplier,
        supplierBatch: r.supplier_batch,
        parts,
        defective,
        rate: parts === 0 ? 0 : defective / parts,
      };
    }),
    pendingParts: Number(coverage.rows[0]?.pending ?? 0),
    unrecordedParts: Number(coverage.rows[0]?.unrecorded ?? 0),
  };
}
