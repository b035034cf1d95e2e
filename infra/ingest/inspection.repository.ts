import type pg from 'pg';
import type { DefectDetection, DetectedDefect, StationMode } from '../../workflows/contracts';

export type InspectionKind = 'first' | 're-inspection' | 'after-rework';

/** A stored inspection: the detection's fields, pass or fail, and the fingerprint that tells a re-send from a conflict. */
export interface InspectionRecord extends DefectDetection {
  result: 'pass' | 'fail';
  payloadSha256: string;
  frameId?: string;
  frameSha256?: string;
  /** The station's mode at ingest (temporal.yaml); shadow results never start MES/ERP actions. */
  mode: StationMode;
  /** What the producer says the inspection is (docs/analytics.md#first-pass-yield); absent: decided by time. */
  inspectionKind?: InspectionKind;
}

export interface StoredInspection extends Omit<InspectionRecord, 'payloadSha256' | 'frameId' | 'frameSha256' | 'mode'> {
  receivedAt: string;
}

type Queryable = Pick<pg.PoolClient, 'query'>;

/** Inserts what is new and returns the event ids it inserted; existing event ids are left untouched. */
export async function insertInspections(db: Queryable, rows: readonly InspectionRecord[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const col = <K extends keyof InspectionRecord>(k: K) => rows.map((r) => r[k] ?? null);
  // The material context is joined in the same statement (docs/changeover.md#material-lot-context): one walk of the
  // genealogy per distinct work order of the batch, none per inspection; a work order with no consumption yet is
  // `pending`, and the genealogy store completes it when the consumption arrives. Shift and inspection kind are stamped
  // here too, as the aggregates' trigger (migration 0020) will classify them, so that it rewrites no row in the ordinary
  // case: the producer's kind when it declared rework or a re-inspection; else a re-inspection when an earlier first of
  // the part is stored or an earlier inspection of it is in this batch; else first. The trigger decides (a batch racing
  // this one is the case where it corrects the reading). The batch's work orders take their joined lots in
  // holdfast.work_order_lot (migration 0020), a few rows per work order, which the lot figures count by.
  const res = await db.query<{ event_id: string }>(
    `WITH t AS (
       SELECT t.*, holdfast.work_order_node(t.site, t.work_order) AS wo_node
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
                     $16::text[], $17::text[], $18::text[], $19::text[])
              WITH ORDINALITY AS t(event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                   model_version, recipe_version, inspected_at, image_ref, payload_sha256,
                                   frame_id, frame_sha256, mode, declared_kind, ord)
     ), ranked AS (
       SELECT t.*, row_number() OVER (
                PARTITION BY t.site, t.line, t.station, t.part_id, t.mode,
                             COALESCE(t.declared_kind IN ('after-rework', 're-inspection'), false)
                ORDER BY t.inspected_at::timestamptz, t.event_id COLLATE "C") AS nth
         FROM t
     ), ctx AS (
       SELECT * FROM holdfast.work_order_material(ARRAY(SELECT DISTINCT wo_node FROM t))
     ), order_lots AS (
       INSERT INTO holdfast.work_order_lot (site, work_order, lot_kind, lot_key)
       SELECT DISTINCT o.site, o.work_order, k.lot_kind, k.lot_key
         FROM (SELECT DISTINCT t.site, t.work_order, t.wo_node FROM t) AS o
         JOIN ctx ON ctx.wo_node = o.wo_node
         CROSS JOIN LATERAL (SELECT 'component', u FROM unnest(ctx.component_lots) AS u
                             UNION ALL
                             SELECT 'supplier', u FROM unnest(ctx.supplier_lots) AS u) AS k (lot_kind, lot_key)
        ORDER BY 1, 2, 3, 4
       ON CONFLICT DO NOTHING
     )
     INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                      model_version, recipe_version, inspected_at, image_ref, payload_sha256,
                                      frame_id, frame_sha256, mode,
                                      material_context, material_context_at, component_lots, supplier_lots,
                                      declared_kind, inspection_kind, shift_date, shift)
     SELECT t.event_id, t.site, t.line, t.station, t.part_id, t.sku, t.lot_id, t.work_order, t.result, t.defects::jsonb,
            t.model_version, t.recipe_version, t.inspected_at::timestamptz, t.image_ref, t.payload_sha256,
            t.frame_id, t.frame_sha256, t.mode,
            CASE WHEN ctx.wo_node IS NULL THEN 'pending' ELSE 'at-ingest' END,
            CASE WHEN ctx.wo_node IS NULL THEN NULL ELSE now() END,
            ctx.component_lots, ctx.supplier_lots,
            t.declared_kind,
            CASE WHEN t.declared_kind IN ('after-rework', 're-inspection') THEN t.declared_kind
                 WHEN t.nth > 1 THEN 're-inspection'
                 WHEN EXISTS (SELECT 1 FROM holdfast.station_part_first f
                               WHERE (f.site, f.line, f.station, f.part_id, f.mode) = (t.site, t.line, t.station, t.part_id, t.mode)
                                 AND (f.inspected_at, f.event_id) < (t.inspected_at::timestamptz, t.event_id COLLATE "C")) THEN 're-inspection'
                 ELSE 'first' END,
            sh.shift_date, sh.shift
       FROM ranked t LEFT JOIN ctx ON ctx.wo_node = t.wo_node
            CROSS JOIN LATERAL holdfast.shift_of(t.site, t.inspected_at::timestamptz) AS sh
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
      col('inspectionKind'),
    ],
  );
  return new Set(res.rows.map((r) => r.event_id));
}

export async function payloadHashes(db: Queryable, eventIds: readonly string[]): Promise<Map<string, string>> {
  if (eventIds.length === 0) return new Map();
  const res = await db.query<{ event_id: string; payload_sha256: string }>(
    `SELECT event_id, payload_sha256 FROM holdfast.inspection WHERE event_id = ANY($1::text[])`,
    [eventIds],
  );
  return new Map(res.rows.map((r) => [r.event_id, r.payload_sha256]));
}

interface InspectionRow {
  event_id: string;
  site: string;
  line: string;
  station: string;
  part_id: string;
  sku: string;
  lot_id: string;
  work_order: string;
  result: 'pass' | 'fail';
  defects: DetectedDefect[];
  model_version: string;
  recipe_version: string;
  inspected_at: Date;
  image_ref: string | null;
  received_at: Date;
}

export async function findInspection(db: Queryable, eventId: string): Promise<StoredInspection | undefined> {
  const res = await db.query<InspectionRow>(`SELECT * FROM holdfast.inspection WHERE event_id = $1`, [eventId]);
  const r = res.rows[0];
  if (!r) return undefined;
  return {
    eventId: r.event_id,
    site: r.site,
    line: r.line,
    station: r.station,
    partId: r.part_id,
    sku: r.sku,
    lotId: r.lot_id,
    workOrder: r.work_order,
    result: r.result,
    defects: r.defects,
    modelVersion: r.model_version,
    recipeVersion: r.recipe_version,
    inspectedAt: r.inspected_at.toISOString(),
    ...(r.image_ref !== null ? { imageRef: r.image_ref } : {}),
    receivedAt: r.received_at.toISOString(),
  };
}

/** Sites where this lot id has been inspected (lot ids are only unique within a site). */
export async function sitesOfLot(db: Queryable, lotId: string): Promise<string[]> {
  const res = await db.query<{ site: string }>(
    `SELECT DISTINCT site FROM holdfast.inspection WHERE lot_id = $1 ORDER BY site`,
    [lotId],
  );
  return res.rows.map((r) => r.site);
}

export async function lotInspectionCounts(
  db: Queryable,
  site: string,
  lotId: string,
): Promise<{ pass: number; fail: number; total: number }> {
  const res = await db.query<{ pass: string; fail: string }>(
    `SELECT count(*) FILTER (WHERE result = 'pass') AS pass, count(*) FILTER (WHERE result = 'fail') AS fail
       FROM holdfast.inspection WHERE site = $1 AND lot_id = $2`,
    [site, lotId],
  );
  const pass = Number(res.rows[0]?.pass ?? 0);
  const fail = Number(res.rows[0]?.fail ?? 0);
  return { pass, fail, total: pass + fail };
}
