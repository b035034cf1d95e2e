import { z } from 'zod';
import { HierarchyScope, QuantityValue } from './production-event.schema';

/**
 * The MES's job-order event, the source of truth for its shape: what happened to one production order (an ISA-95 job
 * order, B2MML's JobOrder inside a ProcessJobOrder-style notification), in JSON with camelCase names. Published on the
 * Unified Namespace topic of its line (jobOrderTopic) and listed by `GET /api/v1/job-order-events`. Holdfast's
 * connector defines its own matching schema (it may not import simulator code); docs/vendor-interfaces.md#mes-job-order-events
 * describes the shape in words.
 */

const Id = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[^\p{Cc}/+#]*$/u, 'printable, without "/", "+" or "#" (they are MQTT topic characters)');

const Instant = z.iso.datetime({ offset: true });

/**
 * What happened: `JobOrderReleased` (planning released it to its line), `JobOrderStarted` (the line began it: the
 * changeover trigger), `JobOrderChanged` (quantity, sequence, priority or criticality), `JobOrderCompleted`.
 */
export const JobOrderEventType = z.enum([
  'JobOrderReleased',
  'JobOrderStarted',
  'JobOrderChanged',
  'JobOrderCompleted',
]);
export type JobOrderEventType = z.infer<typeof JobOrderEventType>;

/**
 * The job order's top-level state after the event, named as OPC UA for ISA-95 Job Control (OPC 10031-4) names the
 * job order state machine's states.
 */
export const DispatchStatus = z.enum(['AllowedToStart', 'Running', 'Ended']);
export type DispatchStatus = z.infer<typeof DispatchStatus>;

/** B2MML MaterialRequirement: the material the order produces (its SKU and planned quantity) or consumes. */
export const MaterialRequirement = z.strictObject({
  materialUse: z.enum(['Produced', 'Consumed']),
  materialDefinitionId: Id,
  quantity: QuantityValue,
});

export const JobOrder = z.strictObject({
  /** The work order number. */
  id: Id,
  /** The work master (routing / recipe) the order follows, when the MES names one. */
  workMasterId: Id.optional(),
  /** ISA-95 priority: higher numbers first. */
  priority: z.number().int().min(-32768).max(32767).optional(),
  /** Position in its line's sequence, 1 first; absent once it left the sequence (ended). */
  sequence: z.number().int().positive().optional(),
  dispatchStatus: DispatchStatus,
  /**
   * Holdfast extension, not B2MML: the order's customer criticality in the MES (0 = least, 10 = most critical),
   * what scheduling advice weighs when it proposes to use a suspect lot on less critical orders.
   */
  customerCriticality: z.number().int().min(0).max(10),
  /** Holdfast extension, not B2MML: the order's revision, +1 with every event about it. */
  revision: z.number().int().positive(),
  materialRequirements: z.array(MaterialRequirement).min(1),
});
export type JobOrder = z.infer<typeof JobOrder>;

export const JobOrderEvent = z.strictObject({
  eventId: Id,
  eventType: JobOrderEventType,
  publishedDate: Instant,
  hierarchyScope: HierarchyScope,
  jobOrder: JobOrder,
});
export type JobOrderEvent = z.infer<typeof JobOrderEvent>;

/** The Unified Namespace topic a line's job-order events are published on (QoS 1, not retained). */
export function jobOrderTopic(scope: { site: string; area: string; line: string }): string {
  return `plant/${scope.site}/${scope.area}/${scope.line}/production/job-orders`;
}

/** Every line's job-order events, for a subscriber or an ACL entry. */
export const JOB_ORDER_TOPIC_FILTER = 'plant/+/+/+/production/job-orders';

export const JobOrderEventsQuery = z.strictObject({
  after: z
    .string()
    .regex(/^\d{1,18}$/, 'a cursor returned as nextCursor')
    .optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
});

export const JobOrderEventsPage = z.strictObject({
  items: z.array(JobOrderEvent),
  nextCursor: z.string().nullable(),
});

const Text = (max: number) => z.string().trim().min(1).max(max);

/** Whether the event also goes out on MQTT now (false: recorded for the REST cursor only, republished later). */
const Publish = z.boolean().default(true);

export const SimJobOrderRelease = z.strictObject({
  workOrder: Id,
  sku: Id,
  site: Id.default('PLANT1'),
  area: Id.default('ASSEMBLY'),
  line: Id,
  plannedQuantity: z.number().finite().positive(),
  unit: z.string().min(1).max(3).default('PC'),
  customerCriticality: z.number().int().min(0).max(10).default(5),
  /** Default: after the line's last open order. */
  sequence: z.number().int().positive().optional(),
  priority: z.number().int().min(-32768).max(32767).optional(),
  workMasterId: Id.optional(),
  publish: Publish,
});
export type SimJobOrderRelease = z.infer<typeof SimJobOrderRelease>;

export const SimJobOrderStart = z.strictObject({
  /** Start it on another line than the one it was released to. */
  line: Id.optional(),
  publish: Publish,
});

export const SimJobOrderChange = z
  .strictObject({
    plannedQuantity: z.number().finite().positive().optional(),
    customerCriticality: z.number().int().min(0).max(10).optional(),
    sequence: z.number().int().positive().optional(),
    priority: z.number().int().min(-32768).max(32767).optional(),
    publish: Publish,
  })
  .refine((b) => Object.keys(b).some((k) => k !== 'publish'), { message: 'name at least one field to change' });

export const SimJobOrderComplete = z.strictObject({ publish: Publish });

export const WorkOrderParams = z.strictObject({ workOrder: Text(64) });
export const EventParams = z.strictObject({ eventId: Text(120) });
export const LineParams = z.strictObject({ line: Text(64) });

export const Republished = z.strictObject({ event: JobOrderEvent, published: z.boolean() });

// Production release -------------------------------------------------------------------------------------------

export const ProductionReleaseBody = z.strictObject({
  line: Text(64),
  externalReference: Text(200),
  releasedBy: Text(200),
  comment: z.string().max(2000).default(''),
});
export type ProductionReleaseBody = z.infer<typeof ProductionReleaseBody>;

export const ProductionRelease = z.strictObject({
  workOrder: z.string(),
  line: z.string(),
  externalReference: z.string(),
  releasedBy: z.string(),
  comment: z.string(),
  releasedAt: z.string(),
});
export type ProductionRelease = z.infer<typeof ProductionRelease>;

// Line orders ------------------------------------------------------------------------------------------------

export const LineOrder = z.strictObject({
  workOrder: z.string(),
  sku: z.string(),
  line: z.string(),
  status: z.string(),
  sequence: z.number().int().positive(),
  customerCriticality: z.number().int(),
  plannedQuantity: z.number(),
});
export type LineOrder = z.infer<typeof LineOrder>;

export const LineOrders = z.strictObject({ items: z.array(LineOrder) });

// Resequencing requests --------------------------------------------------------------------------------------

export const ResequencingAction = z.enum(['hold-remaining', 'use-on-less-critical']);

export const ResequencingBody = z.strictObject({
  line: Text(64),
  componentLot: Text(64),
  action: ResequencingAction,
  orders: z.array(Text(64)).max(500).optional(),
  reason: Text(4000),
  externalReference: Text(200),
});
export type ResequencingBody = z.infer<typeof ResequencingBody>;

export const Resequencing = z.strictObject({
  requestId: z.string(),
  line: z.string(),
  componentLot: z.string(),
  action: ResequencingAction,
  orders: z.array(z.string()).optional(),
  reason: z.string(),
  externalReference: z.string(),
  status: z.enum(['PENDING', 'ACCEPTED', 'REJECTED']),
  /** Why the MES refused it (REJECTED only). */
  statusReason: z.string().optional(),
  createdAt: z.string(),
});
export type Resequencing = z.infer<typeof Resequencing>;

export const ResequencingParams = z.strictObject({ requestId: Text(64) });
export const ResequencingQuery = z.strictObject({ externalReference: Text(200).optional() });
