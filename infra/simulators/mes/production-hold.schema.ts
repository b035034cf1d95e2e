import { z } from 'zod';

/**
 * Production holds: a whole line stopped, or one work order stopped, until quality releases it (what SAP Digital
 * Manufacturing calls holds on a resource or an order). The simulator's own shapes; Holdfast's connector defines its
 * matching schema in infra/connectors/mes-rest/mes-rest.schemas.ts.
 */
const Text = (max: number) => z.string().trim().min(1).max(max);

export const LineHoldBody = z.strictObject({
  reason: Text(4000),
  externalReference: Text(200),
  station: Text(64).optional(),
  /** The order running when the line was held, for the record. */
  workOrder: Text(64).optional(),
});
export type LineHoldBody = z.infer<typeof LineHoldBody>;

export const OrderHoldBody = z.strictObject({
  reason: Text(4000),
  externalReference: Text(200),
  station: Text(64).optional(),
});
export type OrderHoldBody = z.infer<typeof OrderHoldBody>;

export const ProductionHoldReleaseBody = z.strictObject({
  comment: z.string().max(4000).default(''),
  externalReference: Text(200),
});
export type ProductionHoldReleaseBody = z.infer<typeof ProductionHoldReleaseBody>;

export const ProductionHold = z.strictObject({
  holdId: z.string(),
  scope: z.enum(['LINE', 'WORK_ORDER']),
  line: z.string(),
  workOrder: z.string().optional(),
  station: z.string().optional(),
  status: z.enum(['ACTIVE', 'RELEASED']),
  reason: z.string(),
  externalReference: z.string(),
  createdAt: z.string(),
  releaseComment: z.string().optional(),
  releaseReference: z.string().optional(),
  releasedAt: z.string().optional(),
});
export type ProductionHold = z.infer<typeof ProductionHold>;

export const ProductionHoldParams = z.strictObject({ holdId: Text(64) });
export const HoldLineParams = z.strictObject({ line: Text(64) });
export const HoldOrderParams = z.strictObject({ workOrder: Text(64) });
export const ProductionHoldQuery = z.strictObject({
  externalReference: Text(200).optional(),
  line: Text(64).optional(),
  workOrder: Text(64).optional(),
  status: z.enum(['ACTIVE', 'RELEASED']).optional(),
});
export type ProductionHoldQuery = z.infer<typeof ProductionHoldQuery>;

export const LineStatus = z.strictObject({
  line: z.string(),
  /** ON_HOLD while any line hold of it is active. */
  status: z.enum(['RUNNING', 'ON_HOLD']),
  activeHolds: z.array(ProductionHold),
});

export const ProductionHoldCounts = z.strictObject({
  holds: z.number().int(),
  active: z.number().int(),
  /** Releases that changed a hold (ACTIVE → RELEASED). */
  released: z.number().int(),
  /** Every release request answered 200, repeats included. */
  releaseRequests: z.number().int(),
});
