/**
 * The outbox of decided receipts (docs/analytics.md#supplier-quality): ingest decides a receipt in its transaction;
 * this relay starts the receipt's workflow (incoming-receipt-<site>-<lot>) and marks the row. The workflow id refuses a
 * second start, even after the first run closed, so a row sent twice (a crash between the start and the mark, two
 * relays) runs the workflow once. Woken by NOTIFY on commit; polls every supplierQuality.relayInterval besides. Idle, with neither, where no
 * station of the configuration inspects incoming material.
 */
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { WorkflowIdReusePolicy, type SearchAttributePair } from '@temporalio/common';
import type pg from 'pg';
import { createChannelListener } from '../db/channel-listener';
import { parseDurationMs } from '../config/duration';
import type { HoldfastConfig } from '../config/schema';
import {
  SearchAttributes,
  incomingReceiptWorkflowId,
  type IncomingReceiptInput,
  type ReceiptDecision,
} from '../../workflows/contracts';
import { RECEIPT_CHANNEL } from './incoming.repository';

export interface ReceiptRelay {
  /** Starts the workflows of every decided receipt not yet handed over; resolves to how many were handed over. */
  drainOnce(): Promise<number>;
  stop(): Promise<void>;
}

interface DueRow {
  site: string;
  lot_id: string;
  decision: ReceiptDecision;
  decision_reason: string;
  decided_at: Date;
  supplier: string | null;
  dispatch_attempts: number;
}

const BATCH = 50;
const MAX_BACKOFF_MS = 60_000;

export function receiptWorkflowInput(
  config: HoldfastConfig,
  row: { site: string; lotId: string; decision: ReceiptDecision; reason: string; decidedAt: string },
): IncomingReceiptInput {
  const sq = config.supplierQuality;
  return {
    site: row.site,
    lotId: row.lotId,
    plant: config.sites.find((s) => s.id === row.site)?.erpPlant ?? '',
    decision: row.decision,
    reason: row.reason,
    decidedAt: row.decidedAt,
    erpPost: config.activityPresets.erpPost,
    traceWrite: config.activityPresets.traceWrite,
    notify: config.activityPresets.notify,
    complaint: {
      notificationType: sq.complaintNotificationType,
      defectCodeGroup: sq.defectCodeGroup,
      defectCode: sq.defectCode,
    },
    scarThreshold: {
      auto: sq.scar.auto,
      lotRejectionRate: sq.scar.lotRejectionRate,
      minReceipts: sq.scar.minReceipts,
      window: sq.scar.window,
    },
    scar: scarSettings(config),
    taskQueue: config.taskQueues.quality,
  };
}

export function scarSettings(config: HoldfastConfig): IncomingReceiptInput['scar'] {
  const s = config.supplierQuality.scar;
  return {
    responseDue: s.responseDue,
    remindEvery: s.remindEvery,
    escalateAfter: s.escalateAfter,
    verifyReceipts: s.verifyReceipts,
    ...(s.escalationSite ? { escalationSite: s.escalationSite } : { escalationSite: config.sites[0]!.id }),
  };
}

export function startReceiptRelay(opts: {
  pool: pg.Pool;
  client: Client;
  config: HoldfastConfig;
  log?: { warn(obj: object, msg?: string): void };
}): ReceiptRelay {
  const { pool, client, config } = opts;
  const pollMs = parseDurationMs(config.supplierQuality.relayInterval);
  let stopped = false;
  let chain: Promise<number> = Promise.resolve(0);

  async function startOne(row: DueRow): Promise<void> {
    const workflowId = incomingReceiptWorkflowId(row.site, row.lot_id);
    const searchAttributes: SearchAttributePair[] = [
      { key: SearchAttributes.site, value: row.site },
      { key: SearchAttributes.lot, value: row.lot_id },
      ...(row.supplier ? [{ key: SearchAttributes.supplier, value: row.supplier }] : []),
    ];
    try {
      await client.workflow.start('incomingReceiptWorkflow', {
        workflowId,
        taskQueue: config.taskQueues.quality,
        workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
        typedSearchAttributes: searchAttributes,
        args: [
          receiptWorkflowInput(config, {
            site: row.site,
            lotId: row.lot_id,
            decision: row.decision,
            reason: row.decision_reason,
            decidedAt: row.decided_at.toISOString(),
          }),
        ],
      });
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }

  async function drain(): Promise<number> {
    const { rows } = await pool.query<DueRow>(
      `SELECT site, lot_id, decision, decision_reason, decided_at, supplier, dispatch_attempts
         FROM holdfast.incoming_receipt
        WHERE decision <> 'open' AND dispatched_at IS NULL AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        ORDER BY decided_recorded_at LIMIT $1`,
      [BATCH],
    );
    let handed = 0;
    for (const row of rows) {
      try {
        await startOne(row);
        await pool.query(
          `UPDATE holdfast.incoming_receipt SET dispatched_at = now(), workflow_id = $3, last_error = NULL
            WHERE site = $1 AND lot_id = $2`,
          [row.site, row.lot_id, incomingReceiptWorkflowId(row.site, row.lot_id)],
        );
        handed += 1;
      } catch (err) {
        const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** row.dispatch_attempts);
        opts.log?.warn({ err, site: row.site, lotId: row.lot_id }, 'receipt workflow not started; retrying');
        await pool.query(
          `UPDATE holdfast.incoming_receipt
              SET dispatch_attempts = dispatch_attempts + 1, last_error = $3,
                  next_attempt_at = now() + make_interval(secs => $4::double precision / 1000)
            WHERE site = $1 AND lot_id = $2`,
          [row.site, row.lot_id, String(err).slice(0, 2000), backoff],
        );
      }
    }
    return handed;
  }

  const drainOnce = (): Promise<number> => {
    const next = chain.then(drain, drain);
    chain = next.catch(() => 0);
    return next;
  };
  // A plant without incoming-inspection stations decides no receipts: nothing to listen to or poll for.
  const incoming = config.sites.some((site) =>
    site.lines.some((line) => line.stations.some((station) => station.role === 'incoming-inspection')),
  );
  if (!incoming) return { drainOnce, stop: () => chain.then(() => undefined) };
  const timer = setInterval(() => {
    if (!stopped) drainOnce().catch(() => undefined);
  }, pollMs);
  timer.unref();
  // Every (re)connect drains: receipts decided while no one listened raised notifications nobody heard.
  const listener = createChannelListener({
    connection: pool.options,
    channel: RECEIPT_CHANNEL,
    onNotification: () => void drainOnce().catch(() => undefined),
    onListening: () => void drainOnce().catch(() => undefined),
    onProblem: (problem, error) => opts.log?.warn({ err: error }, `receipt relay LISTEN ${problem}; polling meanwhile`),
  });
  listener.start().catch(() => undefined); // reported through onProblem; the poll runs meanwhile

  return {
    drainOnce,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await listener.close();
      await chain.catch(() => undefined);
    },
  };
}
