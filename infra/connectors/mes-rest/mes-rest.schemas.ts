import { z } from 'zod';

/**
 * What the connector needs from holdfast-mes-rest responses. Loose on purpose: unknown fields and new status
 * values pass, so a newer MES does not break an older connector; missing or mistyped fields are 'validation'.
 */

const Id = z.string().min(1);

export const MesHoldResponse = z.object({
  holdId: Id,
  lotId: Id,
  status: z.string(),
  externalReference: z.string(),
  disposition: z.string().nullish(),
});
export type MesHoldResponse = z.infer<typeof MesHoldResponse>;

export const MesHoldList = z.object({ items: z.array(MesHoldResponse) });

export const MesHoldReleasedResponse = MesHoldResponse.extend({ lotStatus: z.string().min(1) });

export const MesLotResponse = z.object({
  lotId: Id,
  sku: z.string(),
  workOrder: z.string(),
  quantity: z.number(),
  unit: z.string(),
  status: z.string().min(1),
  supplier: z.string().nullish(),
  purchaseOrder: z.string().nullish(),
  purchaseOrderItem: z.string().nullish(),
  erpPlant: z.string(),
  storageLocation: z.string(),
  batch: z.string(),
});

export const MesWorkOrderResponse = z.object({
  workOrder: Id,
  qualityStatus: z.string().min(1),
  nonconformingQuantity: z.number(),
  goodQuantity: z.number(),
});

export const MesQualityEventResponse = z.object({
  qualityEventId: Id,
  workOrder: Id,
  lotId: z.string(),
  partId: z.string(),
  externalReference: z.string(),
});

export const MesQualityEventList = z.object({ items: z.array(MesQualityEventResponse) });

export const MesQualityEventCreatedResponse = MesQualityEventResponse.extend({
  workOrderQuality: MesWorkOrderResponse,
});

export const MesProductionReleaseResponse = z.object({
  workOrder: Id,
  line: Id,
  externalReference: z.string(),
  releasedAt: z.iso.datetime({ offset: true }),
});

export const MesLineOrdersResponse = z.object({
  items: z.array(
    z.object({
      workOrder: Id,
      sku: z.string(),
      line: z.string(),
      status: z.string(),
      sequence: z.number().int(),
      customerCriticality: z.number(),
      plannedQuantity: z.number(),
    }),
  ),
});

export const MesResequencingResponse = z.object({
  requestId: Id,
  line: Id,
  componentLot: Id,
  action: z.enum(['hold-remaining', 'use-on-less-critical']),
  orders: z.array(z.string()).nullish(),
  reason: z.string(),
  externalReference: z.string(),
  status: z.enum(['PENDING', 'ACCEPTED', 'REJECTED']),
  statusReason: z.string().nullish(),
  createdAt: z.string(),
});
export type MesResequencingResponse = z.infer<typeof MesResequencingResponse>;

export const MesResequencingList = z.object({ items: z.array(MesResequencingResponse) });

export const MesProductionHoldResponse = z.object({
  holdId: Id,
  scope: z.enum(['LINE', 'WORK_ORDER']),
  line: z.string(),
  workOrder: z.string().nullish(),
  station: z.string().nullish(),
  status: z.enum(['ACTIVE', 'RELEASED']),
  reason: z.string(),
  externalReference: z.string(),
  createdAt: z.string(),
  releaseComment: z.string().nullish(),
  releaseReference: z.string().nullish(),
  releasedAt: z.string().nullish(),
});
export type MesProductionHoldResponse = z.infer<typeof MesProductionHoldResponse>;

export const MesProductionHoldList = z.object({ items: z.array(MesProductionHoldResponse) });

export const MesHealthResponse = z.unknown();
