import type { Pool } from 'pg';
import type { Registry } from 'prom-client';
import type { ChangeoverTrigger, MesPort } from '../activities/ports';
import {
  createJobOrderIntake,
  startJobOrderPolling,
  type JobOrderFeedSource,
  type JobOrderIntake,
} from '../infra/changeover/job-order-intake';
import { parseDurationMs } from '../infra/config/duration';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger } from '../infra/connectors/define';
import type { FrameSubscriber } from '../infra/connectors/mqtt/frame-subscriber';
import { openJobOrderSubscriber } from '../infra/connectors/mqtt/job-order-subscriber';
import { type HealthCheck, HealthCheckError } from '../infra/observability/health-checks';
import { createJobOrderMetrics } from '../infra/observability/job-order-metrics';
import { openConnectors, type ConnectorSet } from './connectors';

/** The worker's intake of the MES's job-order events; the worker owns it and calls close(). */
export interface JobOrderIntakeService {
  intake: JobOrderIntake;
  subscriber?: FrameSubscriber;
  /** For the worker's /health: reported, not required (either path catches up on what the other missed). */
  health: HealthCheck;
  /** Polls every MES and drains pending triggers now, after the tick running (tests; the timer does it otherwise). */
  pollNow(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts the intake (docs/changeover.md#order-events): the MQTT subscription when `changeover.events.broker` names
 * a broker (its own connector block and login, read-only on the job-order topics), and the REST poll of every site's
 * MES that offers a job-order feed, each `changeover.pollInterval`. Started orders go to `trigger` (absent: the order
 * state is kept, and no changeover starts from events). A broker that cannot be reached stops start-up, named.
 */
export async function startJobOrderIntake(opts: {
  config: HoldfastConfig;
  pool: Pool;
  mesFor: (site: string) => MesPort;
  trigger: ChangeoverTrigger | undefined;
  registry: Registry;
  log: ConnectorLogger;
  env?: NodeJS.ProcessEnv;
}): Promise<JobOrderIntakeService> {
  const { config, log } = opts;
  const settings = config.changeover;
  const metrics = createJobOrderMetrics(opts.registry);
  if (settings.startOnOrderEvent && !opts.trigger) {
    log.warn('no changeover trigger in this worker: started orders are recorded, no changeover starts from them');
  }
  const intake = createJobOrderIntake({
    pool: opts.pool,
    ...(opts.trigger ? { trigger: opts.trigger } : {}),
    startOnOrderEvent: settings.startOnOrderEvent,
    metrics,
    log,
  });
  const mesOfSite = new Map(config.sites.map((s) => [s.id, s.mes]));
  const feeds: JobOrderFeedSource[] = [];
  for (const site of config.sites) {
    if (feeds.some((f) => f.mes === site.mes)) continue;
    const feed = opts.mesFor(site.id).jobOrders;
    const sites = new Set(config.sites.filter((s) => s.mes === site.mes).map((s) => s.id));
    if (feed) feeds.push({ mes: site.mes, feed, sites });
  }

  let broker: ConnectorSet | undefined;
  let subscriber: FrameSubscriber | undefined;
  const events = settings.events;
  try {
    if (events?.broker !== undefined) {
      broker = await openConnectors(config, [events.broker], { log, ...(opts.env ? { env: opts.env } : {}) });
      subscriber = await openJobOrderSubscriber({
        broker: broker.port(events.broker, 'vision-broker'),
        clientId: events.clientId,
        filter: events.topicFilter,
        mesOfSite,
        sink: intake,
      });
    }
  } catch (err) {
    await broker?.close();
    throw err;
  }
  const polling = startJobOrderPolling({
    intake,
    feeds,
    intervalMs: parseDurationMs(settings.pollInterval),
    metrics,
    log,
  });

  return {
    intake,
    ...(subscriber ? { subscriber } : {}),
    health: {
      name: 'job-orders',
      required: false,
      async check() {
        const parts: string[] = [];
        if (subscriber && events) {
          if (!subscriber.connected()) throw new HealthCheckError(`not connected to ${events.broker} (reconnecting)`);
          parts.push(`${events.topicFilter} on ${events.broker}: ${subscriber.stats().acknowledged} acknowledged`);
        }
        const failed = [...polling.lastPoll()].filter(([, p]) => p.error !== undefined);
        if (failed.length > 0 && !subscriber) {
          throw new HealthCheckError(`polling failed: ${failed.map(([mes, p]) => `${mes}: ${p.error}`).join('; ')}`);
        }
        if (polling.polling) parts.push(`polling ${feeds.map((f) => f.mes).join(', ') || 'no MES'}`);
        parts.push(`${await intake.pendingTriggers()} trigger(s) pending`);
        return parts.join('; ');
      },
    },
    pollNow: () => polling.tickNow(),
    async close() {
      // The subscriber first (its connector closes it): no message is recorded once the pool is closing, and an
      // unrecorded one stays unacknowledged for the next start.
      await broker?.close();
      await polling.stop();
      await intake.close();
    },
  };
}
