/**
 * Recipes in PostgreSQL (holdfast.vision_recipe): versions are immutable rows, the active one per station and SKU
 * is the latest activated. The inference worker reads them through a small cache, so a frame costs no query.
 */
import type pg from 'pg';
import type { HoldfastConfig } from '../config/schema';
import type { PixelBox, Recipe } from './contracts';

interface RecipeRow {
  site: string;
  line: string;
  station: string;
  sku: string;
  version: string;
  model_name: string;
  model_version: string;
  thresholds: Record<string, number>;
  roi: PixelBox | null;
  min_defect_area_px: number;
  first_article_parts: number | null;
}

const RECIPE_COLUMNS =
  'site, line, station, sku, version, model_name, model_version, thresholds, roi, min_defect_area_px, first_article_parts';

function toRecipe(row: RecipeRow): Recipe {
  return {
    site: row.site,
    line: row.line,
    station: row.station,
    sku: row.sku,
    version: row.version,
    model: { name: row.model_name, version: row.model_version },
    thresholds: row.thresholds,
    ...(row.roi ? { roi: row.roi } : {}),
    minDefectAreaPx: row.min_defect_area_px,
    ...(row.first_article_parts !== null ? { firstArticleParts: row.first_article_parts } : {}),
  };
}

/** Adds a recipe version and makes it the active one for its station and SKU. An existing version is left as is. */
export async function saveRecipe(db: Pick<pg.Pool, 'query'>, recipe: Recipe, createdBy: string): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO holdfast.vision_recipe (site, line, station, sku, version, model_name, model_version, thresholds, roi,
                                         min_defect_area_px, created_by, first_article_parts, activated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10, $11, $12, now())
     ON CONFLICT (site, line, station, sku, version) DO NOTHING`,
    [
      recipe.site,
      recipe.line,
      recipe.station,
      recipe.sku,
      recipe.version,
      recipe.model.name,
      recipe.model.version,
      JSON.stringify(recipe.thresholds),
      recipe.roi ? JSON.stringify(recipe.roi) : null,
      recipe.minDefectAreaPx,
      createdBy,
      recipe.firstArticleParts ?? null,
    ],
  );
  return (res.rowCount ?? 0) > 0;
}

/** The recipes temporal.yaml declares, one per station and SKU they cover. */
export function seedRecipesFromConfig(config: HoldfastConfig): Recipe[] {
  const recipes: Recipe[] = [];
  for (const seed of config.vision.recipes) {
    const site = config.sites.find((s) => s.id === seed.site);
    if (!site) continue; // the config schema already refused this
    for (const line of site.lines.filter((l) => seed.line === undefined || l.id === seed.line)) {
      // Not external vision systems (Station.vision): their recipes are theirs, switched over OPC 40100.
      const inspected = line.stations.filter((st) => st.vision === undefined);
      for (const station of inspected.filter((st) => seed.station === undefined || st.id === seed.station)) {
        for (const sku of seed.skus) {
          recipes.push({
            site: site.id,
            line: line.id,
            station: station.id,
            sku,
            version: seed.version,
            model: seed.model,
            thresholds: seed.thresholds,
            ...(seed.roi ? { roi: seed.roi } : {}),
            minDefectAreaPx: seed.minDefectAreaPx,
            ...(seed.firstArticleParts !== undefined ? { firstArticleParts: seed.firstArticleParts } : {}),
          });
        }
      }
    }
  }
  return recipes;
}

export async function activeRecipe(
  db: Pick<pg.Pool, 'query'>,
  key: { site: string; line: string; station: string; sku: string },
): Promise<Recipe | undefined> {
  const res = await db.query<RecipeRow>(
    `SELECT ${RECIPE_COLUMNS}
       FROM holdfast.vision_recipe
      WHERE site = $1 AND line = $2 AND station = $3 AND sku = $4 AND activated_at IS NOT NULL
      ORDER BY activated_at DESC, created_at DESC
      LIMIT 1`,
    [key.site, key.line, key.station, key.sku],
  );
  return res.rows[0] ? toRecipe(res.rows[0]) : undefined;
}

/**
 * One recipe version of a station and SKU, activated or not: a changeover names the version it applies, and versions
 * are immutable, so what this returns never changes for a key.
 */
export async function recipeByVersion(
  db: Pick<pg.Pool, 'query'>,
  key: { site: string; line: string; station: string; sku: string; version: string },
): Promise<Recipe | undefined> {
  const res = await db.query<RecipeRow>(
    `SELECT ${RECIPE_COLUMNS}
       FROM holdfast.vision_recipe
      WHERE site = $1 AND line = $2 AND station = $3 AND sku = $4 AND version = $5`,
    [key.site, key.line, key.station, key.sku, key.version],
  );
  return res.rows[0] ? toRecipe(res.rows[0]) : undefined;
}

export interface RecipeCache {
  /** The active recipe, at most `maxAgeMs` old; undefined when the station has none for this SKU. */
  active(key: { site: string; line: string; station: string; sku: string }): Promise<Recipe | undefined>;
}

/**
 * A recipe activated in PostgreSQL reaches the worker within `maxAgeMs`. Concurrent frames of one station share one
 * query; a missing recipe is cached too, so a stream of frames for an unknown SKU does not hammer the database.
 */
export function createRecipeCache(db: Pick<pg.Pool, 'query'>, maxAgeMs = 1000): RecipeCache {
  const entries = new Map<string, { at: number; value: Promise<Recipe | undefined> }>();
  return {
    active(key) {
      const id = `${key.site}\u0000${key.line}\u0000${key.station}\u0000${key.sku}`;
      const now = Date.now();
      const hit = entries.get(id);
      if (hit && now - hit.at < maxAgeMs) return hit.value;
      const value = activeRecipe(db, key);
      entries.set(id, { at: now, value });
      // A failed lookup must not be cached: the next frame asks again.
      value.catch(() => entries.delete(id));
      return value;
    },
  };
}
