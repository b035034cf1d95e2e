/**
 * The recipes a changeover switches Holdfast stations to: the active recipe per station and SKU
 * (holdfast.vision_recipe) with its model's sha256 from the model's manifest, which the station's read-back must
 * report (docs/changeover.md#the-changeover).
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { ChangeoverRecipeSource } from '../../activities';
import type { HoldfastConfig } from '../config/schema';
import { modelsDirOf } from '../recall/model-versions';
import { activeRecipe } from './recipe.repository';

/** name@version → sha256 of every manifest in the models directory, read when asked (a new model is seen at once). */
async function manifestHashes(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return hashes;
  }
  for (const entry of entries.filter((e) => e.isDirectory())) {
    try {
      const m = JSON.parse(await readFile(join(dir, entry.name, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      if (typeof m.name === 'string' && typeof m.version === 'string' && typeof m.sha256 === 'string') {
        hashes.set(`${m.name}@${m.version}`, m.sha256);
      }
    } catch {
      // Not a model folder, or a broken manifest: the inference worker's catalog reports those.
    }
  }
  return hashes;
}

export function createChangeoverRecipeSource(
  db: Pick<pg.Pool, 'query'>,
  config: HoldfastConfig,
  modelsDir: string = modelsDirOf(config),
): ChangeoverRecipeSource {
  return {
    async active(station, sku) {
      const recipe = await activeRecipe(db, { ...station, sku });
      if (!recipe) return undefined;
      const hashes = await manifestHashes(modelsDir);
      return {
        version: recipe.version,
        model: recipe.model,
        modelSha256: hashes.get(`${recipe.model.name}@${recipe.model.version}`),
        ...(recipe.firstArticleParts !== undefined ? { firstArticleParts: recipe.firstArticleParts } : {}),
      };
    },
  };
}
