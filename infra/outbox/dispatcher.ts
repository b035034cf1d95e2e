/**
 * Relays holdfast.outbox rows to Temporal (transactional outbox, docs/reliability.md#outbox): at least once, in id
 * order per lot, never losing a row. Each failed part goes to its lot's case by signal-with-start, which is
 * idempotent (the lot case drops an event id it has taken), so a row sent again after a crash between the signal and
 * the commit changes nothing.
 *
 * A row is done only when its workflow has recorded the part and confirmed the row (the lot case records parts as they
 * arrive): Temporal's answer alone is not enough, as a dev server that loses its last writes loses acknowledged
 * signals too. The reconciler here sends again every row not confirmed within `outbox.confirmationGrace`.
 *
 * Latency comes from LISTEN/NOTIFY on a dedicated connection; a poll every `outbox.pollInterval` is the safety net
 * for notifications lost while that connection was down.
 */
import { parseDurationMs } from '../config/duration';
import type pg from 'pg';
import { createChannelListener } from '../db/channel-listener';
import type { HoldfastConfig } from '../config/schema';
import type { WorkflowGateway } from '../temporal/gateway';
import { contextFromTraceparent, inSpan } from '../observability/trace-context';
import {
  OUTBOX_CHANNEL,
  type ClaimedOutboxRow,
  claimDueRows,
  markDispatched,
  markFailed,
  resetUnconfirmed,
  tryLockDrain,
} from './outbox.repository';

/** pino-shaped, so a fastify logger can be passed as is. */
export interface Logger {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What the dispatcher reports about each row it hands over (infra/observability/outbox-metrics.ts counts it). */
export interface DispatchObserver {
  /** The row's workflow was started, `latencySeconds` after the row was stored. */
  dispatched(latencySeconds: number): void;
  /** A start failed; the row waits out its backoff. */
  failed(): void;
}

export interface OutboxDispatcherOptions {
  pool: pg.Pool;
  gateway: WorkflowGateway;
  config: HoldfastConfig;
  log?: Logger;
  observer?: DispatchObserver;
  /** Upper bound on one dispatch call, on top of the gateway's own deadline. */
  startTimeoutMs?: number;
}

export interface OutboxDispatcher {
  stop(): Promise<void>;
  /** Claims and dispatches one batch; resolves to the number of rows marked dispatched. */
  drainOnce(): Promise<number>;
  /** Sends again, with the next drain, every row dispatched longer than the grace ago and still unconfirmed. */
  reconcileOnce(): Promise<number>;
}

const FIRST_BACKOFF_MS = 1_000;
const MAX_ERROR_TEXT = 2_000;
const LISTEN_RECONNECT_MAX_MS = 10_000;

const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A row Temporal accepted during a drain; written with the drain's other outcomes. */
interface SentRow {
  row: ClaimedOutboxRow;
  workflowId: string;
  runId: string;
  confirmed: boolean;
  /** performance.now() when Temporal answered. */
  answeredAt: number;
}

interface FailedDispatch {
  row: ClaimedOutboxRow;
  err: unknown;
}

/** A lot's rows in one drain: those sent, in order, and the one that stopped the rest, if any. */
interface LotOutcome {
  sent: SentRow[];
  failure?: FailedDispatch;
}

interface BatchResult {
  claimed: number;
  dispatched: number;
  failed: boolean;
}

export function startOutboxDispatcher(opts: OutboxDispatcherOptions): OutboxDispatcher {
  const { pool, gateway } = opts;
  const log = opts.log ?? silentLogger;
  const pollMs = parseDurationMs(opts.config.outbox.pollInterval);
  const maxBackoffMs = parseDurationMs(opts.config.outbox.maxBackoff);
  const batchSize = opts.config.outbox.batchSize;
  const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
  const graceMs = parseDurationMs(opts.config.outbox.confirmationGrace);

  let stopped = false;
  let loopRunning: Promise<void> | undefined;
  let wakeRequested = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let reconcileTimer: NodeJS.Timeout | undefined;
  let reconciling: Promise<unknown> = Promise.resolve();
  // Batches in this process never overlap; across processes the advisory lock serialises them.
  let batchChain: Promise<unknown> = Promise.resolve();

  const serialBatch = (): Promise<BatchResult> => {
    const next = batchChain.then(dispatchBatch);
    batchChain = next.catch(() => undefined);
    return next;
  };

  async function dispatchBatch(): Promise<BatchResult> {
    const client = await pool.connect();
    let released = false;
    try {
      await client.query('BEGIN');
      if (!(await tryLockDrain(client))) {
        await client.query('ROLLBACK');
        return { claimed: 0, dispatched: 0, failed: false };
      }
      const rows = await claimDueRows(client, batchSize);
      // Order is promised per lot (docs/reliability.md#order-per-lot), not across lots: lots start side by side, each
      // lot's rows in id order, and a lot stops at its first failed start so its later rows cannot overtake it.
      const outcomes = await Promise.all([...groupByLot(rows).values()].map(dispatchLot));
      // One connection runs one statement at a time: the drain's outcomes are written together, once every lot is done.
      await recordOutcomes(
        client,
        outcomes.flatMap((o) => o.sent),
        outcomes.flatMap((o) => (o.failure ? [o.failure] : [])),
      );
      const dispatched = outcomes.reduce((n, o) => n + o.sent.length, 0);
      const failed = outcomes.some((o) => o.failure);
      await client.query('COMMIT');
      return { claimed: rows.length, dispatched, failed };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(err instanceof Error ? err : true);
      released = true;
      throw err;
    } finally {
      if (!released) client.release();
    }
  }

  async function dispatchLot(lotRows: ClaimedOutboxRow[]): Promise<LotOutcome> {
    const sent: SentRow[] = [];
    for (const row of lotRows) {
      try {
        // The stored request's trace goes on here: the dispatch (and the workflow, through Temporal's headers) is
        // its child.
        const started = await inSpan(
          'outbox dispatch',
          {
            parent: contextFromTraceparent(row.traceparent),
            attributes: { 'holdfast.outbox.id': row.id, 'holdfast.workflow.id': row.workflowId },
          },
          () => withTimeout(gateway.dispatchDetection(row.payload), startTimeoutMs),
        );
        sent.push({
          row,
          workflowId: started.workflowId,
          runId: started.runId,
          confirmed: !started.awaitsConfirmation,
          answeredAt: performance.now(),
        });
      } catch (err) {
        // Most failed dispatches mean Temporal is unreachable; this lot's later rows wait behind this one's backoff.
        return { sent, failure: { row, err } };
      }
    }
    return { sent };
  }

  async function recordOutcomes(client: pg.PoolClient, sent: SentRow[], failures: FailedDispatch[]): Promise<void> {
    const now = performance.now();
    const latencies = await markDispatched(
      client,
      sent.map((s) => ({ id: s.row.id, runId: s.runId, confirmed: s.confirmed, answeredMsAgo: now - s.answeredAt })),
    );
    for (const s of sent) {
      opts.observer?.dispatched(latencies.get(s.row.id) ?? 0);
      // One per defect: detail for LOG_LEVEL=debug, not the default output.
      log.debug?.({ outboxId: s.row.id, workflowId: s.workflowId, runId: s.runId }, 'outbox row dispatched');
    }
    const failed = failures.map(({ row, err }) => ({
      row,
      attempts: row.attempts + 1,
      backoffMs: backoffForAttempt(row.attempts + 1, maxBackoffMs),
      error: describeError(err),
    }));
    await markFailed(
      client,
      failed.map((f) => ({ id: f.row.id, backoffMs: f.backoffMs, error: f.error })),
    );
    for (const f of failed) {
      opts.observer?.failed();
      log.warn(
        {
          outboxId: f.row.id,
          workflowId: f.row.workflowId,
          attempts: f.attempts,
          backoffMs: f.backoffMs,
          err: f.error,
        },
        'outbox dispatch failed',
      );
    }
  }

  function wake(): void {
    if (stopped) return;
    if (loopRunning) {
      wakeRequested = true;
      return;
    }
    clearTimeout(pollTimer);
    loopRunning = drainLoop().finally(() => {
      loopRunning = undefined;
      if (stopped) return;
      if (wakeRequested) {
        wakeRequested = false;
        wake();
      } else {
        pollTimer = setTimeout(wake, pollMs);
      }
    });
  }

  async function drainLoop(): Promise<void> {
    try {
      for (;;) {
        wakeRequested = false;
        const result = await serialBatch();
        if (stopped || result.failed || result.claimed < batchSize) return;
      }
    } catch (err) {
      log.error({ err: describeError(err) }, 'outbox drain failed; retrying on the next poll');
    }
  }

  async function reconcile(): Promise<number> {
    const unconfirmed = await resetUnconfirmed(pool, graceMs);
    for (const row of unconfirmed) {
      log.warn(
        { outboxId: row.id, workflowId: row.workflowId, graceMs },
        'outbox row not recorded by its workflow; sending it again',
      );
    }
    if (unconfirmed.length > 0) wake();
    return unconfirmed.length;
  }

  // Checked every half grace, so a lost dispatch is sent again between one and one and a half grace periods later.
  function scheduleReconcile(): void {
    reconcileTimer = setTimeout(
      () => {
        reconciling = reconcile()
          .catch((err: unknown) => log.error({ err: describeError(err) }, 'outbox reconcile failed; retrying later'))
          .finally(() => {
            if (!stopped) scheduleReconcile();
          });
      },
      Math.max(250, graceMs / 2),
    );
  }

  // Every (re)connect wakes the loop: rows committed while no one listened raised notifications nobody heard.
  const listener = createChannelListener({
    connection: pool.options,
    channel: OUTBOX_CHANNEL,
    onNotification: () => wake(),
    onListening: () => wake(),
    onProblem: (problem, error, retryInMs) =>
      log.warn({ err: error, ...(retryInMs !== undefined ? { retryInMs } : {}) }, `outbox LISTEN ${problem}`),
    maxBackoffMs: LISTEN_RECONNECT_MAX_MS,
  });
  listener.start().catch((err: unknown) => {
    log.warn({ err: describeError(err) }, 'outbox LISTEN connect failed; polling meanwhile');
  });
  wake();
  scheduleReconcile();

  return {
    async stop() {
      stopped = true;
      clearTimeout(pollTimer);
      clearTimeout(reconcileTimer);
      await listener.close();
      await loopRunning;
      await batchChain;
      await reconciling;
    },
    async drainOnce() {
      const result = await serialBatch();
      return result.dispatched;
    },
    reconcileOnce: reconcile,
  };
}

/** Exponential: 1 s, 2 s, 4 s, … capped at outbox.maxBackoff (and never above it when the cap is below 1 s). */
function groupByLot(rows: ClaimedOutboxRow[]): Map<string, ClaimedOutboxRow[]> {
  const lots = new Map<string, ClaimedOutboxRow[]>();
  for (const row of rows) {
    const key = `${row.payload.detection.site}/${row.payload.detection.lotId}`;
    lots.set(key, [...(lots.get(key) ?? []), row]);
  }
  return lots;
}

export function backoffForAttempt(attempts: number, maxBackoffMs: number): number {
  const first = Math.min(FIRST_BACKOFF_MS, maxBackoffMs);
  return Math.min(maxBackoffMs, first * 2 ** Math.max(0, attempts - 1));
}

function describeError(err: unknown): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`workflow start did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
