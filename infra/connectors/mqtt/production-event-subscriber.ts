/**
 * The MES's production-performance events pushed on the Unified Namespace (`plant/<site>/<area>/<line>/production/
 * performance`, docs/traceability.md#from-the-mes) into the genealogy. Delivery is the frame subscriber's: QoS 1, a
 * persistent session, the PUBACK only after the event's page is committed, so a crash loses nothing and a
 * PostgreSQL outage holds the ack and retries. Parsing and mapping are the REST pull's own (mes-genealogy.ts), and
 * the store keys every fact by the event id, so push and pull give the same genealogy whichever comes first, or twice.
 */
import type { GenealogyRecorder, GenealogyScope } from '../../../activities/ports';
import { GenealogyInputError } from '../../genealogy/genealogy-store';
import type { ConnectorLogger } from '../define';
import { ProductionEvent, siteProductionFacts } from '../mes-rest/mes-genealogy';
import type { FrameMessage, FrameSubscriber } from './frame-subscriber';
import type { VisionBrokerPort } from './mqtt.connector';

/** Why a message was acknowledged without being applied. */
export type ProductionEventRefusal = 'bad-payload' | 'unknown-site' | 'bad-facts';

export interface ProductionEventMetrics {
  /** Committed (a replay commits nothing new and still counts). `lagSeconds`: now − the event's actual end time. */
  applied(site: string, lagSeconds: number, applySeconds: number): void;
  refused(reason: ProductionEventRefusal): void;
  /** An attempt that failed for infrastructure (PostgreSQL) and will be retried with the PUBACK held. */
  failed(): void;
}

export interface ProductionEventHandlerOptions {
  /** The sites this worker knows, with the ERP plant their lots belong to. */
  sites: readonly { id: string; erpPlant: string }[];
  /** traceability.sync.production: with `erp`, an event adds only its parts. */
  production: GenealogyScope['production'];
  recorder: Pick<GenealogyRecorder, 'record'>;
  metrics: ProductionEventMetrics;
  log: ConnectorLogger;
}

/** `{ event }`, or the reason naming every bad field; never throws. */
export function parseProductionEvent(
  payload: Buffer,
): { ok: true; event: ProductionEvent } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `not JSON: ${(err as Error).message}` };
  }
  const parsed = ProductionEvent.safeParse(json);
  if (parsed.success) return { ok: true, event: parsed.data };
  return {
    ok: false,
    reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; '),
  };
}

/**
 * The subscriber's handler: resolves once the event is applied, or refused (logged and counted, so a bad message
 * never blocks the stream); rejects only when the store failed, so the subscriber retries with the PUBACK held.
 */
export function productionEventHandler(opts: ProductionEventHandlerOptions): (msg: FrameMessage) => Promise<void> {
  const scopes = new Map(
    opts.sites.map((s): [string, GenealogyScope] => [
      s.id,
      { site: s.id, erpPlant: s.erpPlant, production: opts.production },
    ]),
  );
  const refuse = (reason: ProductionEventRefusal, msg: FrameMessage, detail: Record<string, unknown>) => {
    opts.metrics.refused(reason);
    opts.log.warn('production event refused and acknowledged', { reason, topic: msg.topic, ...detail });
  };
  return async (msg) => {
    const parsed = parseProductionEvent(msg.payload);
    if (!parsed.ok) return refuse('bad-payload', msg, { error: parsed.reason });
    const { event } = parsed;
    const scope = scopes.get(event.hierarchyScope.site);
    if (!scope) return refuse('unknown-site', msg, { eventId: event.eventId, site: event.hierarchyScope.site });
    try {
      await opts.recorder.record(`mes-events:${scope.site}`, siteProductionFacts([event], scope));
    } catch (err) {
      // The store refused the facts themselves: retrying would refuse them again, forever.
      if (err instanceof GenealogyInputError) {
        return refuse('bad-facts', msg, { eventId: event.eventId, error: err.message });
      }
      opts.metrics.failed();
      throw err;
    }
    opts.metrics.applied(
      scope.site,
      (Date.now() - Date.parse(event.segmentResponse.actualEndTime)) / 1000,
      Number(process.hrtime.bigint() - msg.receivedAt) / 1e9,
    );
  };
}

/** Subscribes on `broker` as `clientId` to `filter`; the connector's close() closes it too. */
export function openProductionEventSubscriber(
  opts: ProductionEventHandlerOptions & { broker: VisionBrokerPort; clientId: string; filter: string },
): Promise<FrameSubscriber> {
  return opts.broker.subscribeTopic({
    filter: opts.filter,
    clientId: opts.clientId,
    role: 'production-event subscriber',
    onMessage: productionEventHandler(opts),
    // One at a time, in arrival order, as the REST pull applies its pages: two events about one lot never race in
    // concurrent transactions. The MES publishes one event per segment, far below what one transaction at a time takes.
    maxInFlight: 1,
  });
}
