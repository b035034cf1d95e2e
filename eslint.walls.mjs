// @ts-check
/**
 * The walls between Holdfast's top-level folders: who may import whom. Each folder's README.md says why; this file
 * makes lint refuse an import that crosses a wall. test/unit/import-walls.test.ts adds a forbidden import to every
 * folder and checks that lint names the wall.
 *
 * Why typescript-eslint's no-restricted-imports rather than eslint-plugin-boundaries or dependency-cruiser: it is
 * already part of the lint run (no second tool, no import resolver to configure), it tells a type-only import from a
 * value import (`allowTypeImports`, which is exactly the workflows → activities rule), and its message is ours to
 * write. Its limit: it matches the import as written, so every wall below is a pattern over relative paths that climb
 * to a top-level folder (`../../api/app`). Holdfast has no subfolder named like a top-level folder, so a pattern
 * cannot match an import inside a folder; bare package imports are walled separately where it matters (workflows).
 */
import { builtinModules } from 'node:module';

/**
 * A relative import that climbs out to `target`: a top-level folder (or an alternation of them), or a path inside
 * one written as its own pattern (`workflows/(?!contracts$)`), which then needs no folder-end anchor.
 */
const climbsTo = (target) => `^(\\.\\./)+${target}${target.includes('/') ? '' : '(/|$)'}`;

/** @typedef {{ to: string, why: string, typesAllowed?: boolean }} Wall */

/** @type {Record<string, Wall[]>} forbidden imports per folder (a subfolder adds to its parent's list). */
const walls = {
  workflows: [
    { to: 'activities', why: 'workflows import activity code for its types only (import type)', typesAllowed: true },
    { to: '(infra|api|workers|models|bench|test)', why: 'workflows are pure orchestration in the Temporal sandbox' },
  ],
  activities: [
    { to: '(infra|api|workers|models|bench|test)', why: 'activities speak to the world only through their ports' },
    { to: 'workflows/(?!contracts$)', why: 'activities share only workflows/contracts with the workflows' },
  ],
  infra: [
    { to: '(api|workers|bench|test|models)', why: 'infra holds adapters; edges and composition roots import it' },
    { to: 'workflows/(?!contracts$)', why: 'infra shares only workflows/contracts with the workflows' },
  ],
  'infra/simulators': [
    {
      to: '((activities|workflows)(/|$)|infra/(connectors|ingest|inference|outbox|temporal|db)(/|$))',
      why: 'a simulator stands in for a vendor system and must not share code with the Holdfast side it tests',
    },
  ],
  api: [
    { to: '(workers|bench|test|models|activities)', why: 'the API talks to Temporal and Holdfast tables only' },
    {
      to: 'infra/(connectors|simulators|local|inference)(/|$)',
      why: 'the API never calls MES, ERP or plant connectors itself; workflows do',
    },
    { to: 'workflows/(?!contracts$)', why: 'the API shares only workflows/contracts with the workflows' },
  ],
  'api/ui': [
    { to: 'infra', why: 'the dashboard runs in the browser, not in Node' },
    { to: 'workflows', why: 'the dashboard runs in the browser: workflow contracts as types only', typesAllowed: true },
    {
      to: 'schemas',
      why: 'the page shares the API schemas as types only (zod stays on the server)',
      typesAllowed: true,
    },
    {
      to: '(routes|services|repositories|support|app|server|deps)',
      why: 'the page reaches the server over HTTP only',
    },
  ],
  workers: [{ to: '(api|bench|test)', why: 'workers are composition roots of their own process' }],
  models: [
    { to: '(workflows|activities|workers|api|bench|test)', why: 'models/ is model artefacts and their tooling' },
    { to: 'infra/(?!vision(/|$))', why: 'model tooling uses only infra/vision' },
  ],
  bench: [{ to: 'test', why: 'benchmarks run without the test harness' }],
};

/** Node built-ins are not deterministic in Temporal's workflow sandbox; only these three are allowed there. */
const sandboxBuiltins = ['assert', 'url', 'util'];

function wallsOf(folder) {
  const parent = folder.includes('/') ? folder.slice(0, folder.lastIndexOf('/')) : undefined;
  return [...(parent ? wallsOf(parent) : []), ...(walls[folder] ?? [])];
}

function ruleFor(folder) {
  const top = folder.split('/')[0];
  const patterns = wallsOf(folder).map((wall) => ({
    regex: climbsTo(wall.to),
    allowTypeImports: wall.typesAllowed ?? false,
    message: `[wall ${folder}] ${wall.why} (see ${top}/README.md).`,
  }));
  if (top === 'workflows') {
    patterns.push({
      regex: '^@temporalio/(activity|client|worker|testing)$',
      allowTypeImports: false,
      message: `[wall ${folder}] not available in the workflow sandbox (see workflows/README.md).`,
    });
  }
  const paths =
    folder === 'api/ui'
      ? builtinModules
          .flatMap((m) => [m, `node:${m}`])
          .map((name) => ({
            name,
            message: `[wall ${folder}] the dashboard runs in the browser: no Node built-ins (see api/README.md).`,
          }))
      : top === 'workflows'
        ? builtinModules
            .filter((m) => !sandboxBuiltins.includes(m))
            .flatMap((m) => [m, `node:${m}`])
            .map((name) => ({
              name,
              message: `[wall ${folder}] Node built-ins other than ${sandboxBuiltins.join(', ')} are not deterministic in the workflow sandbox.`,
            }))
        : [];
  return ['error', { paths, patterns }];
}

/** Most specific folder last: flat config lets the later block's options replace the earlier one's. */
export const importWalls = Object.keys(walls)
  .sort((a, b) => a.split('/').length - b.split('/').length)
  .map((folder) => ({
    files: [`${folder}/**/*.ts`],
    rules: { '@typescript-eslint/no-restricted-imports': ruleFor(folder) },
  }));
