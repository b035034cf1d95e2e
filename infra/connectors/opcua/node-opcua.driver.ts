import type * as NodeOpcua from 'node-opcua' with { 'resolution-mode': 'import' };

/** The node-opcua module's shape; `import type` only, so no code in this repo loads the driver through `import`. */
export type NodeOpcuaModule = typeof NodeOpcua;
export type { NodeOpcua };

let loaded: NodeOpcuaModule | undefined;

/**
 * Loads node-opcua through Node's own `require`.
 *
 * node-opcua 2.18x is ESM-only. Node 20.19+ loads it with require(esm), but jest's module loader cannot (it would
 * parse `import` statements as CommonJS), and jest also replaces `require('node:module').createRequire`. Going
 * through `process.getBuiltinModule` (Node ≥ 20.16) reaches Node's real loader in every runtime we use: `node
 * --import tsx`, jest and the benchmarks. The module is cached by Node, so this costs the ~1 s load once per process.
 */
export function loadNodeOpcua(): NodeOpcuaModule {
  if (loaded) return loaded;
  const nodeModule = process.getBuiltinModule('node:module');
  const nativeRequire = nodeModule.createRequire(__filename);
  try {
    loaded = nativeRequire('node-opcua') as NodeOpcuaModule;
  } catch (err) {
    throw new Error(`cannot load node-opcua (a dependency in package.json; run npm ci): ${(err as Error).message}`, {
      cause: err,
    });
  }
  return loaded;
}
