/**
 * Holdfast's intake of the MES's job-order events (docs/changeover.md#order-events). Events arrive twice over: pushed
 * on MQTT (QoS 1, so redelivered) and pulled over REST with a cursor (the fallback), and the MES may replay or reorder
 * them. Every event is recorded once per MES (by event id); it applies only when its revision is above the last one
 * applied for its order, so a replayed or out-of-order event changes nothing. An applied `started` event is
 * committed as a pending trigger first, and the changeover trigger is called after the commit and again until it
 * answered: a crash in between starts the changeover on the next drain (the trigger is idempotent by workflow id).
 */
import type { Pool, PoolClient } from 'pg';
import type { ChangeoverTrigger, JobOrderEvent, JobOrderFeed } from '../../activities/ports';
import { withTransaction } from '../db/pool';

export type JobOrderSource = 'mqtt' | 'rest';
/** duplicate: the event id was seen (nothing recorded); stale: recorded, its revision not above the order's. */
export type JobOrderOutcome = 'applied' | 'stale' | 'duplicate';
export type TriggerResult = 'started' | 'already-running' | 'skipped' | 'failed';

export interface JobOrderIntakeMetrics {
  received(source: JobOrderSource, outcome: JobOrderOutcome | 'refused', lagSeconds?: number): void;
  triggered(result: TriggerResult): void;
  pendingTriggers(count: number): void;
  pollFailed(mes: string): void;
}

export interface IntakeLogger {
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}

export interface JobOrderIntakeOptions {
  pool: Pool;
  /** Absent: no changeover starts from events (the order state is still kept). */
  trigger?: ChangeoverTrigger;
  /** changeover.startOnOrderEvent. */
  startOnOrderEvent: boolean;
  metrics: JobOrderIntakeMetrics;
  log: IntakeLogger;
}

/** The order as Holdfast last applied it. */
export interface JobOrderState {
  workOrder: string;
  site: string;
  line: string;
  sku: string;
  status: JobOrderEvent['eventType'];
  revision: number;
  lastEventId: string;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createJobOrderIntake(opts: JobOrderIntakeOptions) {
  const { pool, metrics, log } = opts;
  const triggering = opts.startOnOrderEvent && opts.trigger !== undefined;
  let draining: Promise<number> | undefined;
  let drainAgain = false;
  let closed = false;

  async function record(db: PoolClient, mes: string, event: JobOrderEvent, source: JobOrderSource) {
    // The order's row first and locked: two events of one order (or one event by both paths) apply one at a time.
    await db.query(
      `INSERT INTO holdfast.job_order (mes_system, work_order, site, line, sku, status, revision, last_event_id)
       VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (mes_system, work_order) DO NOTHING`,
      [mes, event.workOrder, event.site, event.line, event.sku, event.eventType, event.eventId],
    );
    const order = await db.query<{ revision: number }>(
      `SELECT revision FROM holdfast.job_order WHERE mes_system = $1 AND work_order = $2 FOR UPDATE`,
      [mes, event.workOrder],
    );
    const seen = await db.query(`SELECT 1 FROM holdfast.job_order_event WHERE mes_system = $1 AND event_id = $2`, [
      mes,
      event.eventId,
    ]);
    if (seen.rowCount !== 0) return 'duplicate' as const;
    const outcome = event.revision > order.rows[0]!.revision ? ('applied' as const) : ('stale' as const);
    const pending = outcome === 'applied' && event.eventType === 'started' && triggering;
    await db.query(
      `INSERT INTO holdfast.job_order_event (mes_system, event_id, site, line, work_order, event_type, revision, source,
         outcome, trigger_state, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        mes,
        event.eventId,
        event.site,
        event.line,
        event.workOrder,
        event.eventType,
        event.revision,
        source,
        outcome,
        pending ? 'pending' : null,
        JSON.stringify(event),
      ],
    );
    if (outcome === 'applied') {
      await db.query(
        `UPDATE holdfast.job_order SET site = $3, line = $4, sku = $5, status = $6, revision = $7,
           planned_quantity = $8, customer_criticality = $9, last_event_id = $10, updated_at = now()
         WHERE mes_system = $1 AND work_order = $2`,
        [
          mes,
          event.workOrder,
          event.site,
          event.line,
          event.sku,
          event.eventType,
          event.revision,
          event.plannedQuantity ?? null,
          event.customerCriticality ?? null,
          event.eventId,
        ],
      );
    }
    return outcome;
  }

  /** Calls the trigger for every pending `started` event, oldest first; failures stay pending for the next drain. */
  async function drainOnce(): Promise<number> {
    const trigger = opts.trigger;
    if (!trigger) return 0;
    const { rows } = await pool.query<{ mes_system: string; event_id: string; payload: JobOrderEvent; status: string }>(
      `SELECT e.mes_system, e.event_id, e.payload, o.status FROM holdfast.job_order_event e
         JOIN holdfast.job_order o ON o.mes_system = e.mes_system AND o.work_order = e.work_order
        WHERE e.trigger_state = 'pending' ORDER BY e.received_at, e.event_id`,
    );
    let done = 0;
    for (const row of rows) {
      if (closed) break;
      let result: Exclude<TriggerResult, 'failed'>;
      let error: string | null = null;
      if (row.status === 'completed') {
        // Both arrived while the trigger was unreachable: a changeover for an order that already ended is no use.
        result = 'skipped';
      } else {
        try {
          result = await trigger.orderStarted(row.payload);
        } catch (err) {
          error = messageOf(err);
          metrics.triggered('failed');
          log.warn('changeover trigger failed; retried on the next drain', {
            mes: row.mes_system,
            eventId: row.event_id,
            workOrder: row.payload.workOrder,
            error,
          });
          await pool.query(
            `UPDATE holdfast.job_order_event SET trigger_error = $3 WHERE mes_system = $1 AND event_id = $2`,
            [row.mes_system, row.event_id, error],
          );
          continue;
        }
      }
      await pool.query(
        `UPDATE holdfast.job_order_event SET trigger_state = $3, trigger_error = NULL, triggered_at = now()
          WHERE mes_system = $1 AND event_id = $2`,
        [row.mes_system, row.event_id, result],
      );
      metrics.triggered(result);
      log.info('changeover trigger answered', { eventId: row.event_id, workOrder: row.payload.workOrder, result });
      done += 1;
    }
    metrics.pendingTriggers(rows.length - done);
    return done;
  }

  /** One drain at a time; a request while one runs makes it run once more, so nothing waits for the next tick. */
  function drainTriggers(): Promise<number> {
    if (draining) {
      drainAgain = true;
      return draining;
    }
    draining = (async () => {
      let total = 0;
      do {
        drainAgain = false;
        total += await drainOnce();
      } while (drainAgain && !closed);
      return total;
    })().finally(() => {
      draining = undefined;
    });
    return draining;
  }

  const kick = () => {
    drainTriggers().catch((err: unknown) =>
      log.error('draining changeover triggers failed; retried on the next tick', { error: messageOf(err) }),
    );
  };

  return {
    /**
     * Records the event durably and applies it when it is new to its order; resolves once committed (an MQTT message
     * may be acknowledged then). Rejects only when PostgreSQL failed.
     */
    async apply(mes: string, event: JobOrderEvent, source: JobOrderSource): Promise<JobOrderOutcome> {
      const outcome = await withTransaction(pool, (db) => record(db, mes, event, source));
      metrics.received(source, outcome, (Date.now() - Date.parse(event.publishedAt)) / 1000);
      if (outcome === 'duplicate') {
        log.info('job-order event already recorded', { mes, eventId: event.eventId, source });
      } else if (outcome === 'stale') {
        log.info('job-order event not applied: its order is at a later revision', {
          mes,
          eventId: event.eventId,
          workOrder: event.workOrder,
          revision: event.revision,
          source,
        });
      }
      if (outcome === 'applied' && event.eventType === 'started' && triggering && !closed) kick();
      return outcome;
    },

    /** A pushed message that is not a job-order event, or names a site this worker does not know. */
    refused(source: JobOrderSource, reason: string, detail: Record<string, unknown> = {}): void {
      metrics.received(source, 'refused');
      log.warn('job-order event refused', { source, reason, ...detail });
    },

    drainTriggers,

    /**
     * Reads `mes`'s feed from its stored cursor to the end, applying each event, and stores the cursor after each
     * page (a crash re-reads at most one page, whose events are then duplicates). With `sites`, events of other sites
     * (an MES serving plants this worker does not) are passed over, counted as refused. Returns the events read.
     */
    async poll(mes: string, feed: JobOrderFeed, limit = 500, sites?: ReadonlySet<string>): Promise<number> {
      const stored = await pool.query<{ cursor: string }>(
        `SELECT cursor FROM holdfast.job_order_cursor WHERE mes_system = $1`,
        [mes],
      );
      let cursor = stored.rows[0]?.cursor;
      let read = 0;
      for (;;) {
        const page = await feed.read(cursor, limit);
        for (const event of page.items) {
          if (sites && !sites.has(event.site)) metrics.received('rest', 'refused');
          else await this.apply(mes, event, 'rest');
        }
        read += page.items.length;
        if (page.nextCursor !== null && page.nextCursor !== cursor) {
          cursor = page.nextCursor;
          await pool.query(
            `INSERT INTO holdfast.job_order_cursor (mes_system, cursor) VALUES ($1, $2)
             ON CONFLICT (mes_system) DO UPDATE SET cursor = $2, updated_at = now()`,
            [mes, cursor],
          );
        }
        if (page.items.length < limit || closed) return read;
      }
    },

    async order(mes: string, workOrder: string): Promise<JobOrderState | undefined> {
      const { rows } = await pool.query<{
        work_order: string;
        site: string;
        line: string;
        sku: string;
        status: JobOrderState['status'];
        revision: number;
        last_event_id: string;
      }>(`SELECT * FROM holdfast.job_order WHERE mes_system = $1 AND work_order = $2`, [mes, workOrder]);
      const r = rows[0];
      if (!r || r.revision === 0) return undefined;
      return {
        workOrder: r.work_order,
        site: r.site,
        line: r.line,
        sku: r.sku,
        status: r.status,
        revision: r.revision,
        lastEventId: r.last_event_id,
      };
    },

    async pendingTriggers(): Promise<number> {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM holdfast.job_order_event WHERE trigger_state = 'pending'`,
      );
      return Number(rows[0]!.n);
    },

    /** Stops starting triggers and waits for the one running. */
    async close(): Promise<void> {
      closed = true;
      await draining?.catch(() => undefined);
    },
  };
}

export type JobOrderIntake = ReturnType<typeof createJobOrderIntake>;

/** Where the REST fallback reads: each MES once, however many sites share it. */
export interface JobOrderFeedSource {
  mes: string;
  feed: JobOrderFeed;
  /** The sites this worker knows that use this MES; events of others are passed over. */
  sites?: ReadonlySet<string>;
}

/**
 * Polls every feed each `intervalMs` and drains pending triggers on the same tick (also when polling is off:
 * `intervalMs` 0 polls never, triggers every `retryMs`). The first tick runs at once: what arrived while the worker
 * was down, and triggers a crash left pending, are taken up at start.
 */
export function startJobOrderPolling(opts: {
  intake: JobOrderIntake;
  feeds: JobOrderFeedSource[];
  intervalMs: number;
  retryMs?: number;
  metrics: Pick<JobOrderIntakeMetrics, 'pollFailed'>;
  log: IntakeLogger;
}) {
  const polling = opts.intervalMs > 0;
  const period = polling ? opts.intervalMs : (opts.retryMs ?? 5_000);
  const lastPoll = new Map<string, { at: Date; error?: string }>();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;

  async function tick(): Promise<void> {
    if (polling) {
      for (const { mes, feed, sites } of opts.feeds) {
        if (stopped) return;
        try {
          await opts.intake.poll(mes, feed, undefined, sites);
          lastPoll.set(mes, { at: new Date() });
        } catch (err) {
          const error = messageOf(err);
          lastPoll.set(mes, { at: new Date(), error });
          opts.metrics.pollFailed(mes);
          opts.log.warn('polling job-order events failed; retried on the next tick', { mes, error });
        }
      }
    }
    try {
      await opts.intake.drainTriggers();
    } catch (err) {
      opts.log.error('draining changeover triggers failed', { error: messageOf(err) });
    }
  }

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(schedule);
    }, period);
  };
  running = tick().finally(schedule);

  return {
    polling,
    /** Per MES: when it was last read and, when that failed, why. */
    lastPoll: () => lastPoll,
    /** Runs a tick now (tests), after the one running. */
    async tickNow(): Promise<void> {
      await running;
      await tick();
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running?.catch(() => undefined);
    },
  };
}

export type JobOrderPolling = ReturnType<typeof startJobOrderPolling>;
