/**
 * The baseline of bench:analytics' ingest ratio: ingest's insert as it was before the analytical layer (migration 0020,
 * commit 2191884 of infra/ingest/inspection.repository.ts): the same rows, the material context joined in the same
 * statement, but no shift and no inspection kind stamped. Run with the aggregate triggers disabled, it is ingest
 * without the aggregates.
 */
import type pg from 'pg';
import type { InspectionRecord } from '../infra/ingest/inspection.repository';

type Queryable = Pick<pg.Pool, 'query'>;

export async function insertWithoutAnalytics(db: Queryable, rows: readonly InspectionRecord[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const col = <K extends keyof InspectionRecord>(k: K) => rows.map((r) => r[k] ?? null);
  // The material context is joined in the same statement (docs/changeover.md#material-lot-context): one walk of the
  // genealogy per distinct work order of the batch, none per inspection; a work order with no consumption yet is
  // `pending`, and the genealogy store completes it when the consumption arrives.
  const res = await db.query<{ event_id: string }>(
    `WITH t AS (
       SELECT t.*, holdfast.work_order_node(t.site, t.work_order) AS wo_node
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                     $16::text[], $17::text[], $18::text[])
              WITH ORDINALITY AS t(event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                   model_version, recipe_version, inspected_at, image_ref, payload_sha256,
                                   frame_id, frame_sha256, mode, ord)
     ), ctx AS (
       SELECT * FROM holdfast.work_order_material(ARRAY(SELECT DISTINCT wo_node FROM t))
     )
     INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                      model_version, recipe_version, inspected_at, image_ref, payload_sha256,
                                      frame_id, frame_sha256, mode,
                                      material_context, material_context_at, component_lots, supplier_lots)
     SELECT t.event_id, t.site, t.line, t.station, t.part_id, t.sku, t.lot_id, t.work_order, t.result, t.defects::jsonb,
            t.model_version, t.recipe_version, t.inspected_at::timestamptz, t.image_ref, t.payload_sha256,
            t.frame_id, t.frame_sha256, t.mode,
            CASE WHEN ctx.wo_node IS NULL THEN 'pending' ELSE 'at-ingest' END,
            CASE WHEN ctx.wo_node IS NULL THEN NULL ELSE now() END,
            ctx.component_lots, ctx.supplier_lots
       FROM t LEFT JOIN ctx ON ctx.wo_node = t.wo_node
      ORDER BY t.ord
     ON CONFLICT (event_id) DO NOTHING
     RETURNING event_id`,
    [
      col('eventId'),
      col('site'),
      col('line'),
      col('station'),
      col('partId'),
      col('sku'),
      col('lotId'),
      col('workOrder'),
      col('result'),
      rows.map((r) => JSON.stringify(r.defects)),
      col('modelVersion'),
      col('recipeVersion'),
      col('inspectedAt'),
      col('imageRef'),
      col('payloadSha256'),
      col('frameId'),
      col('frameSha256'),
      col('mode'),
    ],
  );
  return new Set(res.rows.map((r) => r.event_id));
}
