/**
 * Relays holdfast.outbox rows to Temporal (transactional outbox, reliability.md §2.5): at least once, in id order,
 * never losing a row. Starting a defect workflow is idempotent (deterministic workflow id, USE_EXISTING +
 * REJECT_DUPLICATE), so a row re-sent after a crash between start and commit finds its workflow already there.
 *
 * Latency comes from LISTEN/NOTIFY on a dedicated connection; a poll every `outbox.pollInterval` is the safety net
 * for notifications lost while that connection was down.
 */
import { parseDurationMs } from '../config/duration';
import pg from 'pg';
import type { HoldfastConfig } from '../config/schema';
import type { WorkflowGateway } from '../temporal/gateway';
import { contextFromTraceparent, inSpan } from '../observability/trace-context';
import {
  OUTBOX_CHANNEL,
  type ClaimedOutboxRow,
  claimDueRows,
  containedEvents,
  markDispatched,
  markFailed,
  tryLockDrain,
} from './outbox.repository';

/** pino-shaped, so a fastify logger can be passed as is. */
export interface Logger {
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
  /** Upper bound on one start call, on top of the gateway's own deadline. */
  startTimeoutMs?: number;
}

export interface OutboxDispatcher {
  stop(): Promise<void>;
  /** Claims and dispatches one batch; resolves to the number of rows marked dispatched. */
  drainOnce(): Promise<number>;
}

const FIRST_BACKOFF_MS = 1_000;
const MAX_ERROR_TEXT = 2_000;
const LISTEN_RECONNECT_MAX_MS = 10_000;

const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

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

  let stopped = false;
  let loopRunning: Promise<void> | undefined;
  let wakeRequested = false;
  let pollTimer: NodeJS.Timeout | undefined;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let listener: pg.Client | undefined;
  let listenFailures = 0;
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
      // A part already contained is not handed to its lot case again (gateway StartDefectOptions.enrol).
      const contained = await containedEvents(
        client,
        rows.map((r) => r.eventId),
      );
      // Order is promised per lot (reliability.md P4), not across lots: lots start side by side, each lot's rows in
      // id order, and a lot stops at its first failed start so its later rows cannot overtake it.
      const outcomes = await Promise.all(
        [...groupByLot(rows).values()].map((lotRows) => dispatchLot(client, lotRows, contained)),
      );
      const dispatched = outcomes.reduce((n, o) => n + o.dispatched, 0);
      const failed = outcomes.some((o) => o.failed);
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

  async function dispatchLot(
    client: pg.PoolClient,
    lotRows: ClaimedOutboxRow[],
    contained: Set<string>,
  ): Promise<{ dispatched: number; failed: boolean }> {
    let dispatched = 0;
    for (const row of lotRows) {
      try {
        // The stored request's trace goes on here: the start (and the workflow, through Temporal's headers) is its child.
        const started = await inSpan(
          'outbox dispatch',
          {
            parent: contextFromTraceparent(row.traceparent),
            attributes: { 'holdfast.outbox.id': row.id, 'holdfast.workflow.id': row.workflowId },
          },
          () =>
            withTimeout(
              gateway.startDefectWorkflow(row.payload, { enrol: !contained.has(row.eventId) }),
              startTimeoutMs,
            ),
        );
        const latencySeconds = await markDispatched(client, row.id, started.runId);
        opts.observer?.dispatched(latencySeconds);
        dispatched += 1;
        log.info(
          { outboxId: row.id, workflowId: started.workflowId, alreadyStarted: started.alreadyStarted },
          'outbox row dispatched',
        );
      } catch (err) {
        // Most failed starts mean Temporal is unreachable; this lot's later rows wait behind this one's backoff.
        await recordFailure(client, row, err);
        return { dispatched, failed: true };
      }
    }
    return { dispatched, failed: false };
  }

  async function recordFailure(client: pg.PoolClient, row: ClaimedOutboxRow, err: unknown): Promise<void> {
    const attempts = row.attempts + 1;
    const backoffMs = backoffForAttempt(attempts, maxBackoffMs);
    const text = describeError(err);
    await markFailed(client, row.id, backoffMs, text);
    opts.observer?.failed();
    log.warn({ outboxId: row.id, workflowId: row.workflowId, attempts, backoffMs, err: text }, 'outbox start failed');
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

  async function listen(): Promise<void> {
    const client = new pg.Client(pool.options);
    client.on('notification', () => wake());
    const onLost = (err?: Error) => {
      if (listener !== client) return;
      listener = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (stopped) return;
      log.warn({ err: err ? describeError(err) : 'connection ended' }, 'outbox LISTEN connection lost; reconnecting');
      scheduleListen();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
      await client.query(`LISTEN ${OUTBOX_CHANNEL}`);
    } catch (err) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      throw err;
    }
    if (stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    listener = client;
    listenFailures = 0;
    // Rows committed while no one was listening raised notifications nobody heard.
    wake();
  }

  function scheduleListen(): void {
    const delay = Math.min(LISTEN_RECONNECT_MAX_MS, 250 * 2 ** listenFailures);
    reconnectTimer = setTimeout(() => {
      listen().catch((err: unknown) => {
        listenFailures += 1;
        log.warn({ err: describeError(err), retryInMs: delay }, 'outbox LISTEN connect failed');
        if (!stopped) scheduleListen();
      });
    }, delay);
  }

  listen().catch((err: unknown) => {
    listenFailures += 1;
    log.warn({ err: describeError(err) }, 'outbox LISTEN connect failed; polling meanwhile');
    if (!stopped) scheduleListen();
  });
  wake();

  return {
    async stop() {
      stopped = true;
      clearTimeout(pollTimer);
      clearTimeout(reconnectTimer);
      const current = listener;
      listener = undefined;
      if (current) {
        current.removeAllListeners('notification');
        await current.end().catch(() => undefined);
      }
      await loopRunning;
      await batchChain;
    },
    async drainOnce() {
      const result = await serialBatch();
      return result.dispatched;
    },
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
