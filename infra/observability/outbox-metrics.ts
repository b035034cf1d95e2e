import type pg from 'pg';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DispatchObserver } from '../outbox/dispatcher';
import { oncePerScrape } from './scrape';

/** Seconds from commit to workflow start: milliseconds when Temporal is up, up to `outbox.maxBackoff` and beyond when not. */
const DISPATCH_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * The outbox as operations watch it: the dispatcher's latency and failed starts, and on every scrape the backlog
 * (rows not dispatched) and the age of the oldest, read from holdfast.outbox (its partial index of pending rows).
 */
export function createOutboxMetrics(registry: Registry, pool: Pick<pg.Pool, 'query'>): DispatchObserver {
  const latency = new Histogram({
    name: 'holdfast_outbox_dispatch_latency_seconds',
    help: 'Time from an outbox row being stored (a failed inspection) to its defect workflow being started.',
    buckets: DISPATCH_BUCKETS,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'holdfast_outbox_dispatch_failures_total',
    help: 'Workflow starts from the outbox that failed (the row is retried after a backoff).',
    registers: [registry],
  });
  const backlog = oncePerScrape(async () => {
    const res = await pool.query<{ rows: number; oldest_s: number }>(
      `SELECT count(*)::int AS rows, COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_s
         FROM holdfast.outbox WHERE dispatched_at IS NULL`,
    );
    return res.rows[0]!;
  });
  new Gauge({
    name: 'holdfast_outbox_backlog',
    help: 'Outbox rows not dispatched yet (workflow starts waiting for the dispatcher or for Temporal).',
    registers: [registry],
    async collect() {
      const read = await backlog();
      if (read) this.set(read.rows);
      else this.reset();
    },
  });
  new Gauge({
    name: 'holdfast_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest outbox row not dispatched yet; 0 when none is waiting.',
    registers: [registry],
    async collect() {
      const read = await backlog();
      if (read) this.set(read.oldest_s);
      else this.reset();
    },
  });
  return {
    dispatched: (latencySeconds) => latency.observe(latencySeconds),
    failed: () => failures.inc(),
  };
}
