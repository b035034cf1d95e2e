import type { Registry } from 'prom-client';
import type { GenealogyRecorder } from '../activities/ports';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger } from '../infra/connectors/define';
import type { FrameSubscriber } from '../infra/connectors/mqtt/frame-subscriber';
import { openProductionEventSubscriber } from '../infra/connectors/mqtt/production-event-subscriber';
import { type HealthCheck, HealthCheckError } from '../infra/observability/health-checks';
import { createMesEventMetrics } from '../infra/observability/mes-event-metrics';
import { openConnectors } from './connectors';

/** The worker's subscription to the MES's pushed production events; the worker owns it and calls close(). */
export interface MesEventSubscription {
  subscriber: FrameSubscriber;
  /** For the worker's /health: reported, not required (the REST pull catches up on what the push missed). */
  health: HealthCheck;
  close(): Promise<void>;
}

/**
 * Opens `traceability.mesEvents.broker` (its own connector block: the worker logs in with an account that may only
 * read the production topics) and subscribes; undefined when no broker is configured. A broker that cannot be
 * reached stops start-up, named, like any connector that fails at start.
 */
export async function startMesEventSubscription(opts: {
  config: HoldfastConfig;
  recorder: Pick<GenealogyRecorder, 'record'>;
  registry: Registry;
  log: ConnectorLogger;
  env?: NodeJS.ProcessEnv;
}): Promise<MesEventSubscription | undefined> {
  const { config } = opts;
  const settings = config.traceability.mesEvents;
  if (settings?.broker === undefined) return undefined;
  const { broker, clientId, topicFilter } = settings;
  const connectors = await openConnectors(config, [broker], { log: opts.log, env: opts.env });
  try {
    const subscriber = await openProductionEventSubscriber({
      broker: connectors.port(broker, 'vision-broker'),
      clientId,
      filter: topicFilter,
      sites: config.sites,
      production: config.traceability.sync.production,
      recorder: opts.recorder,
      metrics: createMesEventMetrics(opts.registry),
      log: opts.log,
    });
    return {
      subscriber,
      health: {
        name: 'mes-events',
        required: false,
        async check() {
          if (!subscriber.connected()) throw new HealthCheckError(`not connected to ${broker} (reconnecting)`);
          const { acknowledged, inFlight } = subscriber.stats();
          return `${topicFilter} on ${broker}: ${acknowledged} acknowledged, ${inFlight} in flight`;
        },
      },
      close: () => connectors.close(),
    };
  } catch (err) {
    await connectors.close();
    throw err;
  }
}
