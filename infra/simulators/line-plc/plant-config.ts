import type { HoldfastConfig } from '../../config/schema';
import type { VisionFaults, VisionSystemOptions } from './vision-system.sim';

/**
 * The vision systems a plant config describes: one per station with `vision:`, knowing the external recipe ids its
 * `recipes` map names (a system named by several stations knows the union).
 */
export function visionSystemsFromConfig(
  config: Pick<HoldfastConfig, 'sites'>,
  faults: Record<string, VisionFaults> = {},
): VisionSystemOptions[] {
  const systems = new Map<string, VisionSystemOptions>();
  for (const site of config.sites) {
    for (const line of site.lines) {
      for (const station of line.stations) {
        if (!station.vision) continue;
        const { system, recipes } = station.vision;
        const known = systems.get(system) ?? {
          system,
          site: site.id,
          line: line.id,
          station: station.id,
          recipes: [],
          ...(faults[system] ? { faults: faults[system] } : {}),
        };
        const ids = new Set([...(known.recipes as string[]), ...Object.values(recipes)]);
        systems.set(system, { ...known, recipes: [...ids].sort() });
      }
    }
  }
  return [...systems.values()];
}

/** LINE_PLC_VISION_FAULTS: `{ "<system>": { prepareDelayMs?, refuseWithError?, reportWrongRecipe? } }`. */
export function visionFaultsFromEnv(raw: string | undefined): Record<string, VisionFaults> {
  if (raw === undefined || raw.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new Error(`LINE_PLC_VISION_FAULTS is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('LINE_PLC_VISION_FAULTS must be an object keyed by vision system name');
  }
  const out: Record<string, VisionFaults> = {};
  for (const [system, value] of Object.entries(parsed as Record<string, unknown>)) {
    const f = (value ?? {}) as Record<string, unknown>;
    const faults: VisionFaults = {};
    if (f.prepareDelayMs !== undefined) {
      if (typeof f.prepareDelayMs !== 'number' || f.prepareDelayMs < 0) {
        throw new Error(`LINE_PLC_VISION_FAULTS.${system}.prepareDelayMs must be a number of ms ≥ 0`);
      }
      faults.prepareDelayMs = f.prepareDelayMs;
    }
    if (f.refuseWithError !== undefined) {
      if (!Number.isInteger(f.refuseWithError) || (f.refuseWithError as number) === 0) {
        throw new Error(
          `LINE_PLC_VISION_FAULTS.${system}.refuseWithError must be a non-zero integer (vendor codes < 0)`,
        );
      }
      faults.refuseWithError = f.refuseWithError as number;
    }
    if (f.reportWrongRecipe !== undefined) {
      if (typeof f.reportWrongRecipe !== 'boolean' && typeof f.reportWrongRecipe !== 'string') {
        throw new Error(`LINE_PLC_VISION_FAULTS.${system}.reportWrongRecipe must be true or a recipe's external id`);
      }
      faults.reportWrongRecipe = f.reportWrongRecipe;
    }
    const unknown = Object.keys(f).filter(
      (k) => !['prepareDelayMs', 'refuseWithError', 'reportWrongRecipe'].includes(k),
    );
    if (unknown.length > 0) throw new Error(`LINE_PLC_VISION_FAULTS.${system}: unknown fault ${unknown.join(', ')}`);
    out[system] = faults;
  }
  return out;
}
