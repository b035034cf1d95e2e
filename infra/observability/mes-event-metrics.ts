import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ProductionEventMetrics, ProductionEventRefusal } from '../connectors/mqtt/production-event-subscriber';

/** Seconds from an event's arrival to its committed page: one transaction normally, backoff while PostgreSQL is down. */
const APPLY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const REFUSALS: ProductionEventRefusal[] = ['bad-payload', 'unknown-site', 'bad-facts'];

/**
 * The worker's series for the MES's pushed production events. Applied and refused are counters (`rate()` for events
 * per second; any refusal is worth a look at the log line naming it); the lag is how far the genealogy is behind the
 * shop floor, from the last applied event's actual end time.
 */
export function createMesEventMetrics(registry: Registry): ProductionEventMetrics {
  const applied = new Counter({
    name: 'holdfast_mes_events_applied_total',
    help: 'MES production events applied to the genealogy (replays included: they change nothing), by site.',
    labelNames: ['site'],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'holdfast_mes_events_refused_total',
    help: 'MES production events acknowledged without being applied, by reason (bad-payload, unknown-site, bad-facts).',
    labelNames: ['reason'],
    registers: [registry],
  });
  const failed = new Counter({
    name: 'holdfast_mes_events_apply_failures_total',
    help: 'Attempts to apply an event that failed in PostgreSQL; retried with the PUBACK held.',
    registers: [registry],
  });
  const lag = new Gauge({
    name: 'holdfast_mes_events_lag_seconds',
    help: 'Now minus the actual end time of the last applied MES production event, when it was applied.',
    registers: [registry],
  });
  const apply = new Histogram({
    name: 'holdfast_mes_events_apply_seconds',
    help: 'Time from a MES production event arriving to its facts being committed (retries included).',
    buckets: APPLY_BUCKETS,
    registers: [registry],
  });
  for (const reason of REFUSALS) refused.inc({ reason }, 0);
  return {
    applied(site, lagSeconds, applySeconds) {
      applied.inc({ site });
      lag.set(lagSeconds);
      apply.observe(applySeconds);
    },
    refused: (reason) => refused.inc({ reason }),
    failed: () => failed.inc(),
  };
}
