/**
 * Model versions as recalls name them (name@version), and which ones the models directory holds: light enough for the
 * API, which must not load onnxruntime to check a recall's corrected model.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { HoldfastConfig } from '../config/schema';

const REPO_ROOT = resolve(__dirname, '../..');

/** name@version (modelKey in infra/vision/onnx/model.ts), split at its last '@'. */
export function parseModelVersion(key: string): { name: string; version: string } | undefined {
  const at = key.lastIndexOf('@');
  return at > 0 && at < key.length - 1 ? { name: key.slice(0, at), version: key.slice(at + 1) } : undefined;
}

/** Resolves a models directory as the inference worker does: relative paths from the repository root. */
export function modelsDirOf(config: HoldfastConfig): string {
  const dir = config.vision.modelsDir;
  return isAbsolute(dir) ? dir : join(REPO_ROOT, dir);
}

/**
 * The model versions (name@version) whose manifests are in the models directory, read without loading a model: what
 * the API checks a recall's corrected model against. The worker's catalog validates each manifest in full when it
 * loads it.
 */
export async function modelVersionsOnDisk(config: HoldfastConfig): Promise<Set<string>> {
  const dir = modelsDirOf(config);
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return new Set();
  }
  const keys = new Set<string>();
  for (const entry of entries.filter((e) => e.isDirectory())) {
    try {
      const manifest = JSON.parse(await readFile(join(dir, entry.name, 'manifest.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (typeof manifest.name === 'string' && typeof manifest.version === 'string') {
        keys.add(`${manifest.name}@${manifest.version}`);
      }
    } catch {
      // Not a model folder, or a broken manifest: the catalog reports those.
    }
  }
  return keys;
}
