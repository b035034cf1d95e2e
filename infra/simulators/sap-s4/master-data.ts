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

export interface PurchaseOrderReference extends BatchRef {
  purchaseOrder: string;
  purchaseOrderItem: string;
  /** When given, it must be the order's vendor. */
  supplier?: string;
}

/** A return to the vendor must name the purchase order item the batch was received on, and that order's vendor. */
export async function checkPurchaseOrderReceipt(
  db: pg.Pool | pg.PoolClient,
  s: string,
  ref: PurchaseOrderReference,
): Promise<void> {
  const { rows } = await db.query<{ purchase_order: string; purchase_order_item: string; supplier: string }>(
    `SELECT purchase_order, purchase_order_item, supplier FROM ${s}.batch_receipt
      WHERE material = $1 AND plant = $2 AND batch = $3`,
    [ref.material, ref.plant, ref.batch],
  );
  const receipt = rows[0];
  if (receipt?.purchase_order !== ref.purchaseOrder || receipt.purchase_order_item !== ref.purchaseOrderItem) {
    throw SapMessages.batchNotFromPurchaseOrder(ref.batch, ref.material, ref.purchaseOrder, ref.purchaseOrderItem);
  }
  if (ref.supplier && ref.supplier !== receipt.supplier) {
    throw SapMessages.supplierNotOfPurchaseOrder(ref.supplier, ref.purchaseOrder);
  }
}
