import { Counter, Gauge, type Registry } from 'prom-client';
import type { JobOrderIntakeMetrics } from '../changeover/job-order-intake';

/**
 * The worker's series for the MES's job-order events (docs/changeover.md#order-events). Received counts every event
 * by how it came and what applying it did (duplicate and stale are normal under QoS 1 and the REST fallback; a rise in
 * refused is worth the log line naming it); the trigger series say whether every started order got its changeover.
 */
export function createJobOrderMetrics(registry: Registry): JobOrderIntakeMetrics {
  const received = new Counter({
    name: 'holdfast_job_order_events_total',
    help: 'MES job-order events received, by source (mqtt, rest) and outcome (applied, stale, duplicate, refused).',
    labelNames: ['source', 'outcome'],
    registers: [registry],
  });
  const lag = new Gauge({
    name: 'holdfast_job_order_events_lag_seconds',
    help: 'Now minus the MES publish time of the last job-order event recorded, when it was recorded.',
    registers: [registry],
  });
  const triggered = new Counter({
    name: 'holdfast_job_order_triggers_total',
    help: 'Changeover trigger calls for started orders, by result (started, already-running, skipped, failed).',
    labelNames: ['result'],
    registers: [registry],
  });
  const pending = new Gauge({
    name: 'holdfast_job_order_triggers_pending',
    help: 'Started orders recorded whose changeover trigger has not answered yet (after the last drain).',
    registers: [registry],
  });
  const pollFailures = new Counter({
    name: 'holdfast_job_order_poll_failures_total',
    help: 'REST polls of a MES job-order feed that failed, by MES connector; retried on the next tick.',
    labelNames: ['mes'],
    registers: [registry],
  });
  for (const source of ['mqtt', 'rest']) {
    for (const outcome of ['applied', 'stale', 'duplicate', 'refused']) received.inc({ source, outcome }, 0);
  }
  return {
    received(source, outcome, lagSeconds) {
      received.inc({ source, outcome });
      if (lagSeconds !== undefined) lag.set(lagSeconds);
    },
    triggered: (result) => triggered.inc({ result }),
    pendingTriggers: (count) => pending.set(count),
    pollFailed: (mes) => pollFailures.inc({ mes }),
  };
}
