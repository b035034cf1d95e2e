/**
 * The models a worker can serve: every `<modelsDir>/<dir>/manifest.json`. Models are data, not code, so a model an
 * integrator drops in is found by its manifest with no registration; recipes then name it by name and version.
 *
 * Manifests are read when the catalog opens (cheap, and a broken one is reported at start-up rather than at the first
 * frame); sessions are created on first use and cached by name@version. The catalog owns every session it creates
 * and closes them all in close(); callers must not close a model they got from it.
 */
import { loadModelInThread } from './threaded-model';
import type { Dirent } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModel, modelKey, ModelLoadError, readManifest, type LoadModelOptions, type VisionModel } from './model';

export interface ModelCatalogEntry {
  name: string;
  version: string;
  /** name@version */
  key: string;
  manifestPath: string;
}

export interface RejectedManifest {
  manifestPath: string;
  reason: string;
}

export interface ModelCatalog {
  /** Every valid manifest found, sorted by key. */
  list(): ModelCatalogEntry[];
  /** Manifests found but refused (unreadable or invalid), with the reason: dropped-in models that will not serve. */
  readonly rejected: readonly RejectedManifest[];
  /** The model, loaded on first request and shared afterwards; a failed load is not cached, so a fix can be retried. */
  get(name: string, version: string): Promise<VisionModel>;
  /** Closes every session this catalog created. */
  close(): Promise<void>;
}

export interface ModelCatalogOptions extends LoadModelOptions {
  /** Serve each model from its own worker thread (threaded-model.ts): what a worker doing I/O besides inference wants. */
  inThread?: boolean;
}

export async function openModelCatalog(modelsDir: string, opts: ModelCatalogOptions = {}): Promise<ModelCatalog> {
  const { inThread = false, ...loadOpts } = opts;
  const load = inThread ? loadModelInThread : loadModel;
  let dirs: Dirent[];
  try {
    dirs = await readdir(modelsDir, { withFileTypes: true });
  } catch (err) {
    throw new ModelLoadError(`models directory ${modelsDir} cannot be read: ${(err as Error).message}`, { cause: err });
  }

  const entries = new Map<string, ModelCatalogEntry>();
  const rejected: RejectedManifest[] = [];
  for (const dir of dirs.filter((d) => d.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const manifestPath = join(modelsDir, dir.name, 'manifest.json');
    if (!(await exists(manifestPath))) continue;
    let manifest;
    try {
      manifest = await readManifest(manifestPath);
    } catch (err) {
      rejected.push({ manifestPath, reason: (err as Error).message });
      continue;
    }
    const key = modelKey(manifest.name, manifest.version);
    const other = entries.get(key);
    // Two manifests claiming one identity is ambiguous for every recipe that names it: refuse to open.
    if (other) throw new ModelLoadError(`${key} is declared twice: ${other.manifestPath} and ${manifestPath}`);
    entries.set(key, { name: manifest.name, version: manifest.version, key, manifestPath });
  }

  const loaded = new Map<string, Promise<VisionModel>>();
  let closed = false;

  return {
    rejected,

    list() {
      return [...entries.values()].sort((a, b) => a.key.localeCompare(b.key));
    },

    get(name, version) {
      if (closed) return Promise.reject(new Error('model catalog is closed'));
      const key = modelKey(name, version);
      const cached = loaded.get(key);
      if (cached) return cached;
      const entry = entries.get(key);
      if (!entry) {
        const known = [...entries.keys()].sort().join(', ') || 'none';
        const refused = rejected.length ? `; refused manifests: ${rejected.map((r) => r.manifestPath).join(', ')}` : '';
        return Promise.reject(new ModelLoadError(`no model ${key} in ${modelsDir} (models: ${known}${refused})`));
      }
      const loading = load(entry.manifestPath, loadOpts).then(async (model) => {
        if (model.key !== key) {
          await model.close();
          throw new ModelLoadError(`${entry.manifestPath} now declares ${model.key}, not ${key}; reopen the catalog`);
        }
        return model;
      });
      loaded.set(key, loading);
      loading.catch(() => loaded.delete(key));
      return loading;
    },

    async close() {
      if (closed) return;
      closed = true;
      const settled = await Promise.allSettled([...loaded.values()]);
      loaded.clear();
      const closing = await Promise.allSettled(
        settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.close()] : [])),
      );
      const errors = closing.flatMap((c) => (c.status === 'rejected' ? [c.reason as unknown] : []));
      if (errors.length) throw new AggregateError(errors, `closing ${errors.length} model session(s) failed`);
    },
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
