/**
 * The MES's job-order events (docs/changeover.md#order-events, docs/vendor-interfaces.md#mes-job-order-events):
 * ISA-95 job orders in JSON, one event per change to a production order, each with the order's revision. Read with
 * the MES's cursor over REST (`GET /api/v1/job-order-events`); the same events arrive on the Unified Namespace topic
 * of each line (`plant/<site>/<area>/<line>/production/job-orders`), and both paths normalise them here, so the
 * intake sees one shape whichever way an event came.
 */
import { z } from 'zod';
import type { JobOrderEvent, JobOrderEventType, JobOrderFeed } from '../../../activities/ports';
import type { MesRestClient } from './mes-rest.client';

const Id = z.string().min(1);

/** Loose like the connector's other answers: new fields pass; what the mapping needs is checked. */
export const MesJobOrderEvent = z.object({
  eventId: Id,
  eventType: z.enum(['JobOrderReleased', 'JobOrderStarted', 'JobOrderChanged', 'JobOrderCompleted']),
  publishedDate: z.iso.datetime({ offset: true }),
  hierarchyScope: z.object({ site: Id, area: Id.optional(), line: Id }),
  jobOrder: z.object({
    id: Id,
    revision: z.number().int().positive(),
    customerCriticality: z.number().int().optional(),
    materialRequirements: z
      .array(
        z.object({
          materialUse: z.string(),
          materialDefinitionId: Id,
          quantity: z.object({ quantityString: z.string().regex(/^\d+(\.\d+)?$/) }).optional(),
        }),
      )
      .refine((m) => m.some((r) => r.materialUse === 'Produced'), 'no Produced material requirement (the SKU)'),
  }),
});
export type MesJobOrderEvent = z.infer<typeof MesJobOrderEvent>;

const EVENT_TYPES: Record<MesJobOrderEvent['eventType'], JobOrderEventType> = {
  JobOrderReleased: 'released',
  JobOrderStarted: 'started',
  JobOrderChanged: 'changed',
  JobOrderCompleted: 'completed',
};

/** The port's shape of one MES event: the SKU and planned quantity are the produced material requirement's. */
export function normaliseJobOrderEvent(event: MesJobOrderEvent): JobOrderEvent {
  const produced = event.jobOrder.materialRequirements.find((m) => m.materialUse === 'Produced')!;
  return {
    eventId: event.eventId,
    eventType: EVENT_TYPES[event.eventType],
    revision: event.jobOrder.revision,
    publishedAt: event.publishedDate,
    site: event.hierarchyScope.site,
    line: event.hierarchyScope.line,
    workOrder: event.jobOrder.id,
    sku: produced.materialDefinitionId,
    ...(produced.quantity ? { plannedQuantity: Number(produced.quantity.quantityString) } : {}),
    ...(event.jobOrder.customerCriticality !== undefined
      ? { customerCriticality: event.jobOrder.customerCriticality }
      : {}),
  };
}

/** `{ event }` normalised, or the reason naming every bad field; never throws (a pushed message may be anything). */
export function parseJobOrderEvent(json: unknown): { ok: true; event: JobOrderEvent } | { ok: false; reason: string } {
  const parsed = MesJobOrderEvent.safeParse(json);
  if (parsed.success) return { ok: true, event: normaliseJobOrderEvent(parsed.data) };
  return {
    ok: false,
    reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; '),
  };
}

/**
 * One bad event in a page is kept out of the page (and reported by `refused`), not allowed to fail the page: the
 * cursor still moves past it, or every later poll would stop at it.
 */
const JobOrderEventsPage = z.object({ items: z.array(z.unknown()), nextCursor: z.string().nullable() });

/** The MES's job-order feed: pages of events after the MES's own cursor. */
export function createMesJobOrderFeed(
  client: MesRestClient,
  refused: (reason: string) => void = () => undefined,
): JobOrderFeed {
  return {
    async read(after, limit) {
      const page = await client.request({
        operation: 'readJobOrderEvents',
        method: 'GET',
        path: '/api/v1/job-order-events',
        query: { ...(after !== undefined ? { after } : {}), limit: String(limit) },
        response: JobOrderEventsPage,
      });
      const items: JobOrderEvent[] = [];
      for (const raw of page.items) {
        const parsed = parseJobOrderEvent(raw);
        if (parsed.ok) items.push(parsed.event);
        else refused(parsed.reason);
      }
      return { items, nextCursor: page.nextCursor };
    },
  };
}
