/**
 * The demo plant both simulators seed at start, so the MES lots and the ERP batches agree: each lot is an SAP batch
 * of the work order's material, in plant 1010, storage location 0001, with its quantity in unrestricted stock.
 * Matches temporal.yaml's site PLANT1 (lines L1–L3).
 */
export interface DemoWorkOrder {
  workOrder: string;
  sku: string;
  line: string;
  plannedQuantity: number;
}

export interface DemoLot {
  lotId: string;
  workOrder: string;
  sku: string;
  quantity: number;
  unit: string;
  /** Purchased lots carry their vendor (return-to-vendor is possible); in-house lots do not. */
  supplier?: string;
  /** The purchase order and item a purchased lot was received on; SAP's return (122) must name them. */
  purchaseOrder?: string;
  purchaseOrderItem?: string;
  erpPlant: string;
  storageLocation: string;
  batch: string;
}

export const DEMO_PLANT = '1010';
export const DEMO_STORAGE_LOCATION = '0001';
export const DEMO_SUPPLIER = '17300001';

export const DEMO_WORK_ORDERS: DemoWorkOrder[] = [
  { workOrder: '1000100', sku: 'BRKT-200', line: 'L1', plannedQuantity: 5000 },
  { workOrder: '1000101', sku: 'HSG-310', line: 'L2', plannedQuantity: 2000 },
  { workOrder: '1000102', sku: 'CVR-120', line: 'L3', plannedQuantity: 3000 },
];

export const DEMO_LOTS: DemoLot[] = DEMO_WORK_ORDERS.flatMap((wo, w) =>
  Array.from({ length: 4 }, (_, i): DemoLot => {
    const n = String(w * 4 + i + 1).padStart(4, '0');
    return {
      lotId: `L-${n}`,
      workOrder: wo.workOrder,
      sku: wo.sku,
      quantity: 500,
      unit: 'PC',
      // Every other lot is bought-in (e.g. castings from a vendor), so all four dispositions can be shown; both bought
      // lots of a material were received on the same purchase order item, one order per material.
      ...(i % 2 === 1
        ? { supplier: DEMO_SUPPLIER, purchaseOrder: String(4500000101 + w), purchaseOrderItem: '00010' }
        : {}),
      erpPlant: DEMO_PLANT,
      storageLocation: DEMO_STORAGE_LOCATION,
      batch: `B${n}`,
    };
  }),
);
