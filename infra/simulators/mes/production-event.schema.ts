import { z } from 'zod';

/**
 * The MES's production-performance event, the source of truth for its shape: one ISA-95 production response with one
 * segment response (B2MML's ProductionPerformance → ProductionResponse → SegmentResponse → MaterialActual), in JSON
 * with camelCase names. Published on the Unified Namespace topic of its line (productionEventTopic) and listed by
 * `GET /api/v1/production-events`. Holdfast's own subscriber defines its own matching schema (it may not import
 * simulator code); docs/vendor-interfaces.md#mes-production-events describes the shape in words.
 */

const Id = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[^\p{Cc}/+#]*$/u, 'printable, without "/", "+" or "#" (they are MQTT topic characters)');

/** B2MML QuantityValue: the amount as a string (decimals exact) and its unit of measure. */
export const QuantityValue = z.strictObject({
  quantityString: z.string().regex(/^\d+(\.\d+)?$/, 'a non-negative decimal, e.g. "12" or "12.5"'),
  unitOfMeasure: z.string().min(1).max(3),
});

/**
 * One material actual. `Consumed`: a lot (or part of it) went into the segment; `Produced`: a lot came out. Produced
 * serialised parts are the lot's sub-lots (`materialSubLotIds`, the part serials). A consumed supplier lot names the
 * supplier's own batch when the MES recorded it at receipt.
 */
export const MaterialActual = z.strictObject({
  materialUse: z.enum(['Consumed', 'Produced']),
  materialDefinitionId: Id,
  materialLotId: Id,
  quantity: QuantityValue,
  materialSubLotIds: z.array(Id).optional(),
  supplierLotId: Id.optional(),
});
export type MaterialActual = z.infer<typeof MaterialActual>;

/** ISA-95 equipment hierarchy: enterprise site → area → production line. */
export const HierarchyScope = z.strictObject({ site: Id, area: Id, line: Id });

const Instant = z.iso.datetime({ offset: true });

/**
 * `production`: a work order's segment consumed component lots and produced one lot. `split`: one lot became several
 * (consumed: the source; produced: the parts). `merge`: several lots became one. Splits and merges carry the work
 * order of the lots they rearrange (the MES books every lot to a work order).
 */
export const ProductionPerformanceEvent = z.strictObject({
  eventId: Id,
  eventType: z.enum(['production', 'split', 'merge']),
  publishedDate: Instant,
  hierarchyScope: HierarchyScope,
  productionRequestId: Id,
  segmentResponse: z.strictObject({
    id: Id,
    processSegmentId: Id,
    actualStartTime: Instant,
    actualEndTime: Instant,
    materialActuals: z.array(MaterialActual).min(1),
  }),
});
export type ProductionPerformanceEvent = z.infer<typeof ProductionPerformanceEvent>;

/** The Unified Namespace topic a line's events are published on (QoS 1). */
export function productionEventTopic(scope: { site: string; area: string; line: string }): string {
  return `plant/${scope.site}/${scope.area}/${scope.line}/production/performance`;
}

/** Every line's production events, for a subscriber or an ACL entry. */
export const PRODUCTION_EVENT_TOPIC_FILTER = 'plant/+/+/+/production/performance';

export const ProductionEventsQuery = z.strictObject({
  /** The `nextCursor` of the previous page; absent: from the first event. */
  after: z
    .string()
    .regex(/^\d{1,18}$/, 'a cursor returned as nextCursor')
    .optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
});

export const ProductionEventsPage = z.strictObject({
  items: z.array(ProductionPerformanceEvent),
  /** Pass as `after` for the next page; equal to `after` when nothing new arrived. */
  nextCursor: z.string().nullable(),
});

export const ProductionEventsLoad = z.strictObject({ events: z.array(ProductionPerformanceEvent).min(1) });
