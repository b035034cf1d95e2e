import { z } from 'zod';

/** Request and response shapes of the holdfast-mes-rest API (documented in README.md beside this file). */

export const LOT_STATUSES = ['RELEASED', 'ON_HOLD', 'REWORK', 'SCRAPPED', 'RETURNED'] as const;
export const LotStatus = z.enum(LOT_STATUSES);
export type LotStatus = z.infer<typeof LotStatus>;

export const HOLD_STATUSES = ['ACTIVE', 'RELEASED'] as const;
export const HoldStatus = z.enum(HOLD_STATUSES);

export const Disposition = z.enum(['use-as-is', 'rework', 'scrap', 'return-to-vendor']);
export type Disposition = z.infer<typeof Disposition>;

export const QualityStatus = z.enum(['OK', 'NONCONFORMING', 'ON_HOLD']);

const Text = (max: number) => z.string().trim().min(1).max(max);
const Quantity = z.number().finite().nonnegative();

export const Hold = z.object({
  holdId: z.string(),
  lotId: z.string(),
  workOrder: z.string(),
  status: HoldStatus,
  reason: z.string(),
  defectClass: z.string(),
  line: z.string(),
  station: z.string(),
  externalReference: z.string(),
  createdAt: z.string(),
  disposition: Disposition.optional(),
  releaseComment: z.string().optional(),
  releaseReference: z.string().optional(),
  releasedAt: z.string().optional(),
});
export type Hold = z.infer<typeof Hold>;

export const Lot = z.object({
  lotId: z.string(),
  sku: z.string(),
  workOrder: z.string(),
  quantity: z.number(),
  unit: z.string(),
  status: LotStatus,
  supplier: z.string().optional(),
  purchaseOrder: z.string().optional(),
  purchaseOrderItem: z.string().optional(),
  erpPlant: z.string(),
  storageLocation: z.string(),
  batch: z.string(),
  activeHolds: z.array(Hold),
});
export type Lot = z.infer<typeof Lot>;

export const WorkOrder = z.object({
  workOrder: z.string(),
  sku: z.string(),
  line: z.string(),
  status: z.string(),
  plannedQuantity: z.number(),
  goodQuantity: z.number(),
  nonconformingQuantity: z.number(),
  scrappedQuantity: z.number(),
  qualityStatus: QualityStatus,
  /** The customer's criticality (0–10, Holdfast's MES extension) and the order's sequence number on its line. */
  customerCriticality: z.number().optional(),
  sequence: z.number().nullable().optional(),
});
export type WorkOrder = z.infer<typeof WorkOrder>;

export const QualityEvent = z.object({
  qualityEventId: z.string(),
  workOrder: z.string(),
  lotId: z.string(),
  partId: z.string(),
  defectClass: z.string(),
  nonconformingQuantity: z.number(),
  externalReference: z.string(),
  recordedAt: z.string(),
});
export type QualityEvent = z.infer<typeof QualityEvent>;

export const QualityEventCreated = QualityEvent.extend({ workOrderQuality: WorkOrder });
export type QualityEventCreated = z.infer<typeof QualityEventCreated>;

export const HoldReleased = Hold.extend({ lotStatus: LotStatus });
export type HoldReleased = z.infer<typeof HoldReleased>;

export const Counts = z.object({ holds: z.number(), activeHolds: z.number(), qualityEvents: z.number() });
export type Counts = z.infer<typeof Counts>;

// ---------------------------------------------------------------------------------------------------------------
// Requests

export const LotParams = z.object({ lotId: Text(64) });
export const HoldParams = z.object({ holdId: Text(64) });
export const WorkOrderParams = z.object({ workOrder: Text(64) });

export const HoldBody = z.object({
  reason: Text(500),
  defectClass: Text(100),
  line: Text(64),
  station: Text(64),
  externalReference: Text(200),
  /** Optional cross-check: when given it must be the lot's work order. */
  workOrder: Text(64).optional(),
});
export type HoldBody = z.infer<typeof HoldBody>;

export const HoldQuery = z.object({
  externalReference: Text(200).optional(),
  lotId: Text(64).optional(),
  status: HoldStatus.optional(),
});
export type HoldQuery = z.infer<typeof HoldQuery>;

export const ReleaseBody = z.object({
  disposition: Disposition,
  comment: z.string().max(2000).default(''),
  externalReference: Text(200),
});
export type ReleaseBody = z.infer<typeof ReleaseBody>;

export const QualityEventBody = z.object({
  externalReference: Text(200),
  lotId: Text(64),
  partId: Text(100),
  defectClass: Text(100),
  nonconformingQuantity: z.number().finite().positive(),
});
export type QualityEventBody = z.infer<typeof QualityEventBody>;

export const QualityEventQuery = z.object({
  externalReference: Text(200).optional(),
  partId: Text(100).optional(),
});
export type QualityEventQuery = z.infer<typeof QualityEventQuery>;

export const SimWorkOrderBody = z.object({
  workOrder: Text(64),
  sku: Text(64),
  line: Text(64),
  plannedQuantity: Quantity,
  goodQuantity: Quantity.default(0),
  status: Text(32).default('IN_PROGRESS'),
});
export type SimWorkOrderBody = z.infer<typeof SimWorkOrderBody>;

export const SimLotBody = z
  .object({
    lotId: Text(64),
    workOrder: Text(64),
    sku: Text(64),
    quantity: Quantity,
    unit: Text(8).default('PC'),
    status: LotStatus.default('RELEASED'),
    supplier: Text(32).optional(),
    /** The purchase order and item a bought lot was received on (ERP numbering: 10 and 5 digits). */
    purchaseOrder: z
      .string()
      .regex(/^\d{1,10}$/, 'expected up to 10 digits')
      .optional(),
    purchaseOrderItem: z
      .string()
      .regex(/^\d{1,5}$/, 'expected up to 5 digits')
      .optional(),
    erpPlant: Text(8).default('1010'),
    storageLocation: Text(8).default('0001'),
    /** Defaults to the lot id. */
    batch: Text(32).optional(),
    /** Used only when the work order does not exist yet. */
    line: Text(64).default('L1'),
    plannedQuantity: Quantity.optional(),
  })
  .refine((lot) => !lot.purchaseOrder || lot.supplier, {
    path: ['supplier'],
    message: 'a lot with a purchase order is bought: name its supplier',
  })
  .refine((lot) => !lot.purchaseOrder === !lot.purchaseOrderItem, {
    path: ['purchaseOrderItem'],
    message: 'purchaseOrder and purchaseOrderItem go together',
  });
export type SimLotBody = z.infer<typeof SimLotBody>;

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number(),
  code: z.string(),
  detail: z.string().optional(),
  errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
});
export type Problem = z.infer<typeof Problem>;
