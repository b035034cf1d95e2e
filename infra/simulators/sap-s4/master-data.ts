import type pg from 'pg';
import { SapMessages } from './sap-messages';

export interface BatchRef {
  material: string;
  plant: string;
  batch: string;
}

/**
 * The simulator keeps no material master: a material, its plant and its batches exist when stock rows exist for them
 * (seeded from the demo plant or set with `POST /__sim/stock`). Returns the material's base unit.
 */
export async function checkMasterData(
  db: pg.Pool | pg.PoolClient,
  s: string,
  ref: Partial<BatchRef> & { material: string },
): Promise<string> {
  const probe = async (where: string, params: string[]) =>
    (await db.query<{ unit: string }>(`SELECT unit FROM ${s}.stock WHERE ${where} LIMIT 1`, params)).rows[0];
  const material = await probe('material = $1', [ref.material]);
  if (!material) throw SapMessages.materialUnknown(ref.material);
  if (!ref.plant) return material.unit;
  const inPlant = await probe('material = $1 AND plant = $2', [ref.material, ref.plant]);
  if (!inPlant) throw SapMessages.materialNotInPlant(ref.material, ref.plant);
  if (!ref.batch) return inPlant.unit;
  const batch = await probe('material = $1 AND plant = $2 AND batch = $3', [ref.material, ref.plant, ref.batch]);
  if (!batch) throw SapMessages.batchUnknown(ref.material, ref.plant, ref.batch);
  return batch.unit;
}
