/**
 * The MES's job-order events pushed on the Unified Namespace (`plant/<site>/<area>/<line>/production/job-orders`,
 * docs/changeover.md#order-events). Delivery is the frame subscriber's: QoS 1, a persistent session under its own
 * clientId, the PUBACK only once the event is recorded in PostgreSQL, so a crash loses nothing and an outage holds the
 * ack and retries. Parsing is the REST pull's own (mes-rest/mes-job-orders.ts), so both paths record the same event.
 */
import type { JobOrderEvent } from '../../../activities/ports';
import { parseJobOrderEvent } from '../mes-rest/mes-job-orders';
import type { FrameMessage, FrameSubscriber } from './frame-subscriber';
import type { VisionBrokerPort } from './mqtt.connector';

export interface JobOrderEventSink {
  /** Resolves once the event is durably recorded; rejects when it could not be (the message is then redelivered). */
  apply(mes: string, event: JobOrderEvent, source: 'mqtt'): Promise<unknown>;
  /** A message acknowledged without being recorded: retrying it would refuse it again. */
  refused(source: 'mqtt', reason: string, detail?: Record<string, unknown>): void;
}

export interface JobOrderHandlerOptions {
  /** The MES connector of each site this worker knows (sites[].mes): events are recorded per MES. */
  mesOfSite: ReadonlyMap<string, string>;
  sink: JobOrderEventSink;
}

/** The subscriber's handler: never rejects for a bad message (logged, counted, acknowledged), only for PostgreSQL. */
export function jobOrderEventHandler(opts: JobOrderHandlerOptions): (msg: FrameMessage) => Promise<void> {
  return async (msg) => {
    let json: unknown;
    try {
      json = JSON.parse(msg.payload.toString('utf8'));
    } catch (err) {
      return opts.sink.refused('mqtt', `not JSON: ${(err as Error).message}`, { topic: msg.topic });
    }
    const parsed = parseJobOrderEvent(json);
    if (!parsed.ok) return opts.sink.refused('mqtt', parsed.reason, { topic: msg.topic });
    const mes = opts.mesOfSite.get(parsed.event.site);
    if (mes === undefined) {
      return opts.sink.refused('mqtt', `unknown site ${parsed.event.site}`, {
        topic: msg.topic,
        eventId: parsed.event.eventId,
      });
    }
    await opts.sink.apply(mes, parsed.event, 'mqtt');
  };
}

/** Subscribes on `broker` as `clientId` to `filter`; the connector's close() closes it too. */
export function openJobOrderSubscriber(
  opts: JobOrderHandlerOptions & { broker: VisionBrokerPort; clientId: string; filter: string },
): Promise<FrameSubscriber> {
  return opts.broker.subscribeTopic({
    filter: opts.filter,
    clientId: opts.clientId,
    role: 'job-order subscriber',
    onMessage: jobOrderEventHandler(opts),
    // One at a time, in arrival order: an order's events then apply in the order the broker delivered them, and
    // the revision check settles the rest.
    maxInFlight: 1,
  });
}
