/**
 * Turns a decoder's candidates into the station's verdict under its active recipe. Pure: the recipe (per SKU, versioned
 * in PostgreSQL) and the model's manifest carry every number; the same candidates and recipe always give the same
 * verdict, which is what lets a result be stamped with the recipe version and replayed.
 */
import type { DefectCandidate, ModelManifest, Recipe } from './contracts';

/** The threshold a class gets when neither the recipe nor the manifest names it. */
export const FALLBACK_THRESHOLD = 0.5;

export interface InspectionDefect {
  class: string;
  score: number;
  /** Frame pixels, rounded to whole pixels. Absent when the model does not localise (e.g. a classifier without box). */
  bbox?: { x: number; y: number; width: number; height: number };
}

export interface InspectionVerdict {
  result: 'pass' | 'fail';
  /** Most confident first. */
  defects: InspectionDefect[];
}

/** The score a candidate of `cls` must reach: the recipe's value, else the manifest default, else FALLBACK_THRESHOLD. */
export function thresholdFor(cls: string, recipe: Recipe, manifest: ModelManifest): number {
  return recipe.thresholds[cls] ?? manifest.thresholds[cls] ?? FALLBACK_THRESHOLD;
}

export function applyRecipe(candidates: DefectCandidate[], recipe: Recipe, manifest: ModelManifest): InspectionVerdict {
  // Thresholds are per model: applying one model's recipe to another's scores would be silently wrong.
  if (recipe.model.name !== manifest.name || recipe.model.version !== manifest.version) {
    throw new Error(
      `recipe ${recipe.station}/${recipe.sku} v${recipe.version} is for model ${recipe.model.name}@${recipe.model.version}, ` +
        `not ${manifest.name}@${manifest.version}`,
    );
  }
  const defects = candidates
    .filter((c) => c.score >= thresholdFor(c.class, recipe, manifest))
    // A candidate without a box cannot be measured, so it always counts: minDefectAreaPx only ignores small boxes.
    .filter((c) => !c.box || c.box.width * c.box.height >= recipe.minDefectAreaPx)
    .sort((a, b) => b.score - a.score)
    .map((c): InspectionDefect => {
      if (!c.box) return { class: c.class, score: c.score };
      const { x, y, width, height } = c.box;
      return {
        class: c.class,
        score: c.score,
        bbox: { x: Math.round(x), y: Math.round(y), width: Math.round(width), height: Math.round(height) },
      };
    });
  return { result: defects.length ? 'fail' : 'pass', defects };
}
