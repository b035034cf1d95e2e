/**
 * The reinspect stage of a model recall (docs/recall.md#model-recall): every part the recalled model version passed in
 * the scope's window is inspected again, from its stored image, by the corrected model, through the inference
 * worker's own steps (preprocessImage, the model catalog's onnxruntime session, applyRecipe). Each part's outcome is a
 * row of holdfast.recall_reinspection; conclude() then says for every lot of the recall whether the contain stage
 * must hold it (holdfast.recall_lot.needs_containment).
 *
 * Where the image is: the inspection's `image_ref`, a reference under one of `vision.imageSources` (Holdfast keeps
 * the reference and the sha256 of the bytes it inspected, not the bytes). A part whose frame carried its image inline,
 * whose image is gone, or whose image changed since is `no-image`: a person re-inspects it.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { ConfigError } from '../../activities/errors';
import type { RecallReinspector, ReinspectionBatch, ReinspectionOutcome } from '../../activities/ports';
import type { RecallScope } from '../../workflows/contracts';
import { parseDurationMs } from '../config/duration';
import type { HoldfastConfig } from '../config/schema';
import { lotKeyOfNode, lotNode } from '../genealogy/genealogy-keys';
import { MAX_DEPTH, walkGenealogy } from '../genealogy/trace-queries';
import type { Recipe } from '../vision/contracts';
import { createImageFetcher, ImageUnavailableError, type ImageFetcher } from '../vision/image-source';
import { openModelCatalog, type ModelCatalog } from '../vision/onnx/model-catalog';
import { preprocessImage } from '../vision/preprocess';
import { applyRecipe, type InspectionDefect } from '../vision/recipe';
import { activeRecipe } from '../vision/recipe.repository';
import { modelsDirOf, parseModelVersion } from './model-versions';

type Db = Pick<pg.Pool, 'query'>;
type ModelScope = Extract<RecallScope, { kind: 'model-version' }>;

export interface ReinspectionDeps {
  db: Db;
  /** The worker's models, opened on first use (a worker that never runs a model recall loads none). */
  models: () => Promise<Pick<ModelCatalog, 'get'>>;
  /** Absent: no image sources configured, so no image can be read and every part is `no-image`. */
  fetchImage?: ImageFetcher;
}

interface PassedPart {
  event_id: string;
  lot_key: string;
  site: string;
  line: string;
  station: string;
  sku: string;
  part_id: string;
  image_ref: string | null;
  frame_sha256: string | null;
  recipe_version: string | null;
}

interface PartResult {
  part: PassedPart;
  outcome: ReinspectionOutcome;
  defects: InspectionDefect[];
  modelVersion: string | null;
  recipeVersion: string | null;
  detail: string | null;
}

export function createReinspector(deps: ReinspectionDeps): RecallReinspector {
  const { db } = deps;

  /** The recipe the corrected model is applied under: the station's region of interest and minimum defect size. */
  async function recipeFor(part: PassedPart, corrected: string | undefined, recalled: string): Promise<Recipe> {
    const key = { site: part.site, line: part.line, station: part.station, sku: part.sku };
    const active = await activeRecipe(db, key);
    if (!corrected) {
      if (!active) {
        throw new ConfigError(
          `no active recipe for ${part.site}/${part.line}/${part.station} SKU ${part.sku} to re-inspect with; ` +
            'name the corrected model (correctedModelVersion)',
        );
      }
      if (`${active.model.name}@${active.model.version}` === recalled) {
        throw new ConfigError(
          `the active recipe of ${part.site}/${part.line}/${part.station} SKU ${part.sku} still uses the recalled ` +
            `model ${recalled}; activate a corrected one or name it (correctedModelVersion)`,
        );
      }
      return active;
    }
    const model = parseModelVersion(corrected);
    if (!model) throw new ConfigError(`corrected model ${corrected} is not name@version`);
    if (active && active.model.name === model.name && active.model.version === model.version) return active;
    // Thresholds are per model: the corrected model's own defaults, not the recalled model's recipe values.
    const base = active ?? (await recipeVersion(db, part));
    return {
      ...key,
      version: base?.version ?? 'reinspection',
      model,
      thresholds: {},
      ...(base?.roi ? { roi: base.roi } : {}),
      minDefectAreaPx: base?.minDefectAreaPx ?? 0,
    };
  }

  async function imageOf(part: PassedPart): Promise<Buffer | string> {
    if (!part.image_ref) return 'no image reference kept: the frame carried its image inline';
    if (!deps.fetchImage) return `image ${part.image_ref}: no image sources configured (vision.imageSources)`;
    let bytes: Buffer;
    try {
      bytes = await deps.fetchImage(part.image_ref);
    } catch (err) {
      // The source down or slow: not a lost image. The activity fails and is retried with it.
      if (err instanceof ImageUnavailableError) throw err;
      return (err as Error).message;
    }
    if (part.frame_sha256 && createHash('sha256').update(bytes).digest('hex') !== part.frame_sha256) {
      return `image ${part.image_ref} is not the one inspected (sha256 differs)`;
    }
    return bytes;
  }

  return {
    async reinspectBatch({ recallId, scope, correctedModelVersion, limit }, progress): Promise<ReinspectionBatch> {
      const parts = await nextParts(db, recallId, scope, limit);
      const models = await deps.models();
      const results: PartResult[] = [];
      // Per model, one inference run for the batch's parts, as the worker batches frames.
      const pending = new Map<string, { recipe: Recipe; part: PassedPart; image: Buffer }[]>();
      for (const part of parts) {
        const image = await imageOf(part);
        if (typeof image === 'string') {
          results.push({
            part,
            outcome: 'no-image',
            defects: [],
            modelVersion: null,
            recipeVersion: null,
            detail: image,
          });
        } else {
          const recipe = await recipeFor(part, correctedModelVersion, scope.modelVersion);
          const key = `${recipe.model.name}@${recipe.model.version}`;
          pending.set(key, [...(pending.get(key) ?? []), { recipe, part, image }]);
        }
        progress(results.length + [...pending.values()].reduce((n, l) => n + l.length, 0));
      }
      for (const [key, items] of pending) {
        const { recipe } = items[0]!;
        const model = await models.get(recipe.model.name, recipe.model.version).catch((err: unknown) => {
          throw new ConfigError(`model ${key} to re-inspect with: ${(err as Error).message}`);
        });
        const prepared = [];
        for (const item of items) {
          try {
            prepared.push({ ...item, pre: await preprocessImage(item.image, model.manifest.input, item.recipe.roi) });
          } catch (err) {
            // Read, but not an image this model can take (undecodable, smaller than the region): a person's to judge.
            const detail = `image ${item.part.image_ref}: ${(err as Error).message}`;
            results.push({
              part: item.part,
              outcome: 'no-image',
              defects: [],
              modelVersion: null,
              recipeVersion: null,
              detail,
            });
          }
        }
        if (prepared.length === 0) continue;
        const candidates = await model.infer(
          prepared.map((p) => ({
            tensor: p.pre.tensor,
            geometry: {
              sourceWidth: p.pre.sourceWidth,
              sourceHeight: p.pre.sourceHeight,
              ...(p.recipe.roi ? { roi: p.recipe.roi } : {}),
            },
          })),
        );
        prepared.forEach((p, n) => {
          const verdict = applyRecipe(candidates[n] ?? [], p.recipe, model.manifest);
          results.push({
            part: p.part,
            outcome: verdict.result === 'fail' ? 'now-fails' : 'still-passes',
            defects: verdict.defects,
            modelVersion: key,
            recipeVersion: p.recipe.version,
            detail: null,
          });
        });
        progress(results.length);
      }
      await db.query(
        `INSERT INTO holdfast.recall_reinspection (recall_id, event_id, lot_key, site, line, station, part_id,
                                                   image_ref, outcome, defects, model_version, recipe_version, detail)
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
                                  $9::text[], $10::jsonb[], $11::text[], $12::text[], $13::text[])
         ON CONFLICT DO NOTHING`,
        [
          recallId,
          results.map((r) => r.part.event_id),
          results.map((r) => r.part.lot_key),
          results.map((r) => r.part.site),
          results.map((r) => r.part.line),
          results.map((r) => r.part.station),
          results.map((r) => r.part.part_id),
          results.map((r) => r.part.image_ref),
          results.map((r) => r.outcome),
          results.map((r) => JSON.stringify(r.defects)),
          results.map((r) => r.modelVersion),
          results.map((r) => r.recipeVersion),
          results.map((r) => r.detail),
        ],
      );
      const counts: Record<ReinspectionOutcome, number> = { 'now-fails': 0, 'still-passes': 0, 'no-image': 0 };
      for (const r of results) counts[r.outcome] += 1;
      return { counts, more: parts.length === limit };
    },

    async conclude(recallId): Promise<Record<string, number>> {
      // The inspected lots first: a failing part holds the lot, a part without an image holds it for a person.
      await db.query(
        `WITH verdict AS (
           SELECT r.lot_key,
                  bool_or(x.outcome = 'now-fails') AS fails,
                  bool_or(x.outcome = 'no-image') AS unseen,
                  count(x.event_id) AS parts
             FROM holdfast.recall_lot r
             LEFT JOIN holdfast.recall_reinspection x ON x.recall_id = r.recall_id AND x.lot_key = r.lot_key
            WHERE r.recall_id = $1 AND r.reached_by = 'scope'
            GROUP BY r.lot_key
         )
         UPDATE holdfast.recall_lot r
            SET needs_containment = coalesce(v.fails OR v.unseen, false),
                contain_reason = CASE WHEN v.fails THEN 'reinspection-failed'
                                      WHEN v.unseen THEN 'manual-reinspection'
                                      WHEN v.parts = 0 THEN 'not-passed-by-model'
                                      ELSE 'reinspection-passed' END
           FROM verdict v
          WHERE r.recall_id = $1 AND r.lot_key = v.lot_key`,
        [recallId],
      );
      // What was made from a held lot is held with it, whatever its own parts showed; what went into the inspected
      // lots is not suspect: a defect the model missed arose in them.
      const held = await db.query<{ lot_key: string; site: string }>(
        `SELECT lot_key, site FROM holdfast.recall_lot
          WHERE recall_id = $1 AND reached_by = 'scope' AND needs_containment`,
        [recallId],
      );
      const downstream = await walkGenealogy(
        db,
        held.rows.map((r) => ({ node: lotNode(r.lot_key), site: r.site })),
        'forward',
        MAX_DEPTH,
      );
      const madeFromHeld = [...downstream.depthOf.keys()]
        .filter((n) => n.startsWith('lot:') && downstream.depthOf.get(n) !== 0)
        .map(lotKeyOfNode);
      await db.query(
        `UPDATE holdfast.recall_lot SET needs_containment = true, contain_reason = 'made-from-held-lot'
          WHERE recall_id = $1 AND lot_key = ANY($2::text[]) AND needs_containment IS DISTINCT FROM true`,
        [recallId, madeFromHeld],
      );
      const res = await db.query<{ reason: string; n: number }>(
        `WITH rest AS (
           UPDATE holdfast.recall_lot
              SET needs_containment = false,
                  contain_reason = CASE WHEN reached_by = 'backward' THEN 'upstream-of-scope'
                                        ELSE 'not-made-from-held-lot' END
            WHERE recall_id = $1 AND contain_reason IS NULL
            RETURNING contain_reason
         )
         SELECT reason, sum(n)::int AS n FROM (
           SELECT contain_reason AS reason, count(*) AS n FROM holdfast.recall_lot
            WHERE recall_id = $1 AND contain_reason IS NOT NULL GROUP BY 1
           UNION ALL
           SELECT contain_reason, count(*) FROM rest GROUP BY 1
         ) c GROUP BY reason`,
        [recallId],
      );
      const counts: Record<string, number> = {};
      for (const r of res.rows) counts[`lots-${r.reason}`] = r.n;
      return counts;
    },
  };
}

/** The next parts the recalled model passed in the window, in the recall's scope lots, not re-inspected yet. */
async function nextParts(db: Db, recallId: string, scope: ModelScope, limit: number): Promise<PassedPart[]> {
  const res = await db.query<PassedPart>(
    `SELECT i.event_id, r.lot_key, i.site, i.line, i.station, i.sku, i.part_id, i.image_ref, i.frame_sha256,
            i.recipe_version
       FROM holdfast.recall_lot r
       JOIN holdfast.material_lot l USING (lot_key)
       JOIN holdfast.inspection i ON i.site = l.mes_site AND i.lot_id = l.mes_lot_id
      WHERE r.recall_id = $1 AND r.reached_by = 'scope'
        AND i.model_version = $2 AND i.result = 'pass' AND i.mode = 'production'
        AND ($3::text IS NULL OR i.site = $3)
        AND ($4::timestamptz IS NULL OR i.inspected_at >= $4)
        AND ($5::timestamptz IS NULL OR i.inspected_at <= $5)
        AND NOT EXISTS (SELECT 1 FROM holdfast.recall_reinspection x
                         WHERE x.recall_id = $1 AND x.event_id = i.event_id)
      ORDER BY i.event_id
      LIMIT $6`,
    [recallId, scope.modelVersion, scope.site ?? null, scope.from ?? null, scope.to ?? null, limit],
  );
  return res.rows;
}

/** The recipe version the recalled model inspected under (its region of interest), when no recipe is active now. */
async function recipeVersion(db: Db, part: PassedPart): Promise<Recipe | undefined> {
  if (!part.recipe_version) return undefined;
  const res = await db.query<{ roi: Recipe['roi'] | null; min_defect_area_px: number }>(
    `SELECT roi, min_defect_area_px FROM holdfast.vision_recipe
      WHERE site = $1 AND line = $2 AND station = $3 AND sku = $4 AND version = $5`,
    [part.site, part.line, part.station, part.sku, part.recipe_version],
  );
  const row = res.rows[0];
  if (!row) return undefined;
  return {
    site: part.site,
    line: part.line,
    station: part.station,
    sku: part.sku,
    version: part.recipe_version,
    model: { name: '', version: '' },
    thresholds: {},
    ...(row.roi ? { roi: row.roi } : {}),
    minDefectAreaPx: row.min_defect_area_px,
  };
}

/**
 * The worker's reinspector: the models directory and image sources of temporal.yaml, the catalog opened on the first
 * model recall and closed by `close`.
 */
export function openReinspector(
  db: Db,
  config: HoldfastConfig,
): { reinspector: RecallReinspector; close(): Promise<void> } {
  let catalog: Promise<ModelCatalog> | undefined;
  const reinspector = createReinspector({
    db,
    models: () => {
      // In a thread of its own, on one core: the quality worker's activities and workflows must not wait behind a
      // batch's inference on this thread.
      catalog ??= openModelCatalog(modelsDirOf(config), { inThread: true, intraOpNumThreads: 1 });
      catalog.catch(() => (catalog = undefined));
      return catalog;
    },
    ...(config.vision.imageSources.length > 0
      ? {
          fetchImage: createImageFetcher({
            sources: config.vision.imageSources,
            timeoutMs: parseDurationMs(config.vision.imageFetchTimeout),
          }),
        }
      : {}),
  });
  return {
    reinspector,
    async close() {
      const open = await catalog?.catch(() => undefined);
      catalog = undefined;
      await open?.close();
    },
  };
}
