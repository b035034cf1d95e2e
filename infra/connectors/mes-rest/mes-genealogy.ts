/**
 * The MES's production-performance events as genealogy facts (docs/traceability.md#from-the-mes,
 * docs/vendor-interfaces.md#mes-production-events): ISA-95 production responses, each with one segment response
 * whose material actuals say which lots a work order consumed and produced, or which lots a split or merge made.
 * Read with the MES's cursor over REST (`GET /api/v1/production-events`); the same events arrive on the Unified
 * Namespace topic of each line, and either way the facts are keyed by the event, so the two paths agree.
 */
import { z } from 'zod';
import type {
  GenealogyFacts,
  GenealogyFeed,
  GenealogyScope,
  LotInput,
  MovementInput,
  PartInput,
} from '../../../activities/ports';
import { lotKey, lotNode, mesEventKey, workOrderNode } from '../../genealogy/genealogy-keys';
import type { MesRestClient } from './mes-rest.client';

const Id = z.string().min(1);

/** Loose like the connector's other answers: new fields pass; what the mapping needs is checked. */
const MaterialActual = z.object({
  materialUse: z.enum(['Consumed', 'Produced']),
  materialDefinitionId: Id,
  materialLotId: Id,
  quantity: z.object({ quantityString: z.string().regex(/^\d+(\.\d+)?$/), unitOfMeasure: Id }),
  materialSubLotIds: z.array(Id).optional(),
});

export const ProductionEvent = z.object({
  eventId: Id,
  eventType: z.enum(['production', 'split', 'merge']),
  hierarchyScope: z.object({ site: Id, area: Id, line: Id }),
  productionRequestId: Id,
  segmentResponse: z.object({
    actualEndTime: z.iso.datetime({ offset: true }),
    materialActuals: z.array(MaterialActual).min(1),
  }),
});
export type ProductionEvent = z.infer<typeof ProductionEvent>;

const ProductionEventsPage = z.object({ items: z.array(ProductionEvent), nextCursor: z.string().nullable() });

/** Which kind of edge a lot → lot event makes. */
const REARRANGED = { split: 'split', merge: 'merged' } as const;

/**
 * The facts of one event. The MES's lot ids are the ERP's batches at the site's plant, so a lot the MES produced and
 * the ERP received into stock has one key. Edge keys name the event and the material actual's place in it.
 */
export function productionEventFacts(event: ProductionEvent, scope: GenealogyScope): GenealogyFacts {
  const { site, line } = event.hierarchyScope;
  const at = event.segmentResponse.actualEndTime;
  const actuals = event.segmentResponse.materialActuals;
  const keyOf = (a: z.infer<typeof MaterialActual>) =>
    lotKey({ erp: { plant: scope.erpPlant, material: a.materialDefinitionId, batch: a.materialLotId } });
  const amount = (a: z.infer<typeof MaterialActual>) => ({
    quantity: Number(a.quantity.quantityString),
    unit: a.quantity.unitOfMeasure,
  });
  const common = { site, sourceSystem: 'mes' as const, document: event.eventId, occurredAt: at };
  const edge = (i: number, kind: MovementInput['kind'], from: string, to: string, a: z.infer<typeof MaterialActual>) =>
    ({
      ...common,
      // Event ids are unique in one MES; the site keeps two plants' MES systems (or two tests') apart.
      edgeKey: mesEventKey(`${site}/${event.eventId}#${i}`),
      kind,
      from,
      to,
      ...amount(a),
    }) satisfies MovementInput;

  const produced = actuals.filter((a) => a.materialUse === 'Produced');
  const consumed = actuals.filter((a) => a.materialUse === 'Consumed');
  const lots = produced.map((a): LotInput => ({
    ...common,
    lotKey: keyOf(a),
    material: a.materialDefinitionId,
    ...amount(a),
    origin: 'produced',
    mes: { site, lotId: a.materialLotId },
    erp: { plant: scope.erpPlant, material: a.materialDefinitionId, batch: a.materialLotId },
    produced: { workOrder: event.productionRequestId, line },
  }));
  const parts = produced.flatMap((a) =>
    (a.materialSubLotIds ?? []).map((serial): PartInput => ({
      site,
      partId: serial,
      serial,
      lotKey: keyOf(a),
      workOrder: event.productionRequestId,
      line,
      producedAt: at,
      sourceSystem: 'mes',
    })),
  );

  let movements: MovementInput[];
  if (event.eventType === 'production') {
    const order = workOrderNode(site, event.productionRequestId);
    movements = actuals.map((a, i) =>
      a.materialUse === 'Consumed'
        ? edge(i, 'consumed', lotNode(keyOf(a)), order, a)
        : edge(i, 'produced', order, lotNode(keyOf(a)), a),
    );
  } else {
    // A split: one source, each produced lot takes its own quantity; a merge: each source gives its quantity. An
    // event without both sides states no movement (its produced lots are still kept, and their lack of a source is
    // a trace gap the store reports).
    const kind = REARRANGED[event.eventType];
    const [source] = consumed;
    const [target] = produced;
    movements =
      !source || !target
        ? []
        : event.eventType === 'split'
          ? produced.map((a) => edge(actuals.indexOf(a), kind, lotNode(keyOf(source)), lotNode(keyOf(a)), a))
          : consumed.map((a) => edge(actuals.indexOf(a), kind, lotNode(keyOf(a)), lotNode(keyOf(target)), a));
  }
  return { lots, movements, deliveries: [], parts };
}

/**
 * What Holdfast keeps of the site's events in `events` (others are left out), pulled or pushed alike: with the ERP
 * stating production (`scope.production`), the MES adds only the parts (the ERP knows no serials).
 */
export function siteProductionFacts(events: readonly ProductionEvent[], scope: GenealogyScope): GenealogyFacts {
  const facts = events.filter((e) => e.hierarchyScope.site === scope.site).map((e) => productionEventFacts(e, scope));
  const production = scope.production === 'mes';
  return {
    lots: production ? facts.flatMap((f) => f.lots) : [],
    movements: production ? facts.flatMap((f) => f.movements) : [],
    deliveries: [],
    parts: facts.flatMap((f) => f.parts),
  };
}

/** The MES's genealogy feed: pages of production events after the MES's own cursor. */
export function createMesGenealogyFeed(client: MesRestClient): GenealogyFeed {
  return {
    async readGenealogy(scope, after, limit) {
      const page = await client.request({
        operation: 'readProductionEvents',
        method: 'GET',
        path: '/api/v1/production-events',
        query: { ...(after !== undefined ? { after } : {}), limit: String(limit) },
        response: ProductionEventsPage,
      });
      return {
        ...siteProductionFacts(page.items, scope),
        cursor: page.nextCursor ?? after ?? '0',
        documents: page.items.length,
        more: page.items.length === limit,
      };
    },
  };
}
