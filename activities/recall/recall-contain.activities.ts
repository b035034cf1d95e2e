import { Context } from '@temporalio/activity';
import { classify, crashPoint } from '../boundary';
import { ConfigError, ExternalSystemError } from '../errors';
import { createOnce } from '../intents';
import type {
  ContainmentCounts,
  ContainmentLot,
  ContainmentUpdate,
  ErpGoodsMovementRequest,
  ErpPort,
  IntentLedger,
  MesHoldRequest,
  MesLot,
  MesPort,
  RecallContainmentStore,
} from '../ports';

export interface RecallContainDeps {
  /** The contain stage's rows (infra/recall); absent in processes that run no recalls. */
  containment?: RecallContainmentStore;
  mesFor: (site: string) => MesPort;
  erpFor: (site: string) => ErpPort;
  ledger: IntentLedger;
}

export interface ContainBatchInput {
  recallId: string;
  /** The recall's site: its ERP blocks the lots' stock. */
  site: string;
  batch: number;
  /** Lots of the batch worked on at once. */
  concurrency: number;
  /** The recall's reason, on each hold. */
  reason: string;
}

export interface ContainBatchResult {
  /** The batch's lots by outcome, as recorded now. */
  counts: ContainmentCounts;
  /** true: the recall was cancelled and the batch left its remaining lots alone. */
  stopped: boolean;
}

/** How often a running batch heartbeats (Temporal sends them on at its own throttled pace). */
const HEARTBEAT_MS = 1_000;
/** MES lot states that have left production: the MES refuses a hold on them. */
const CLOSED_LOT = new Set(['SCRAPPED', 'RETURNED']);

/**
 * A real recall's contain stage (docs/recall.md#contain): each affected lot held in the MES and its unrestricted stock
 * blocked in the ERP, exactly once. Each decision is recorded before its effect (the row says `holding` / `blocking`
 * with the quantities), so an attempt after a crash repeats the same request under the same key, and the intent
 * ledger makes that create look its key up first instead of making a second hold or block.
 */
export const createRecallContainActivities = ({ containment, mesFor, erpFor, ledger }: RecallContainDeps) => {
  const store = (): RecallContainmentStore => {
    if (!containment) throw new ConfigError('this worker has no recall containment store');
    return containment;
  };

  /** One lot, from where its record stands; a transient fault is thrown for the batch's retry to resume. */
  async function containLot(
    recallId: string,
    siteOfRecall: string,
    reason: string,
    lot: ContainmentLot,
    stop: () => Promise<boolean>,
  ) {
    const rows = store();
    const update = async (change: ContainmentUpdate) => {
      Object.assign(lot, change);
      await rows.update(recallId, lot.lotKey, change);
    };
    const keyOf = (step: string) => `recall:${recallId}:${lot.lotKey}:${step}`;
    const permanent = (err: unknown) => err instanceof ExternalSystemError && err.kind !== 'transient';
    const refused = (err: unknown) => (err instanceof Error ? err.message : String(err));

    if (lot.mesState === 'pending' || lot.mesState === 'holding') {
      try {
        await holdInMes(lot, update, keyOf('mes-hold'), reason);
      } catch (err) {
        if (!(permanent(err) || err instanceof ConfigError)) throw err;
        await update({ mesState: 'failed', error: refused(err) });
      }
    }
    // A cancel seen between the two sides leaves the block undone: no new effect after it.
    if ((lot.erpState === 'pending' && !(await stop())) || lot.erpState === 'blocking') {
      try {
        await blockInErp(lot, update, keyOf('erp-block'), siteOfRecall, recallId);
      } catch (err) {
        if (!(permanent(err) || err instanceof ConfigError)) throw err;
        await update({ erpState: 'failed', error: refused(err) });
      }
    }
    await update({ state: outcomeOf(lot) });
  }

  async function holdInMes(
    lot: ContainmentLot,
    update: (change: ContainmentUpdate) => Promise<void>,
    key: string,
    reason: string,
  ) {
    if (!lot.mes) return update({ mesState: 'no-mes-lot' });
    if (lot.mesState === 'pending' && lot.openCaseHold)
      return update({ mesState: 'lot-case', holdId: lot.openCaseHold });
    const mes = mesFor(lot.mes.site);
    let found: MesLot;
    try {
      found = await mes.getLot(lot.mes.lotId);
    } catch (err) {
      if (err instanceof ExternalSystemError && err.kind === 'not-found') return update({ mesState: 'no-mes-lot' });
      throw err;
    }
    if (lot.mesState === 'pending') {
      // Decided on what the MES says now; once `holding` is recorded, a retry goes on with the hold whatever the MES
      // says (the hold may be the one this recall made before a crash).
      if (found.status === 'ON_HOLD') return update({ mesState: 'mes-hold' });
      if (CLOSED_LOT.has(found.status)) return update({ mesState: 'lot-closed' });
      await update({ mesState: 'holding' });
    }
    const req: MesHoldRequest = {
      idempotencyKey: key,
      lotId: lot.mes.lotId,
      workOrder: found.workOrder,
      reason: `Recall: ${reason}`.slice(0, 500),
      defectClass: 'recall',
      line: lot.line ?? 'recall',
      station: 'recall',
    };
    const intent = { key, step: 'mes-hold', system: mes.system, request: req };
    const { holdId } = await createOnce(ledger, intent, (opts) => mes.holdLot(req, opts));
    crashPoint('after-recall-mes-hold');
    await update({ mesState: 'held', holdId });
  }

  async function blockInErp(
    lot: ContainmentLot,
    update: (change: ContainmentUpdate) => Promise<void>,
    key: string,
    site: string,
    recallId: string,
  ) {
    if (!lot.erp) return update({ erpState: 'no-erp-batch' });
    const erp = erpFor(site);
    if (lot.erpState === 'pending') {
      // Only what the ERP has unrestricted now: stock a lot case blocked already stays as it is. The quantities are
      // recorded before any posting, so a retry posts the same request, never a re-read one.
      const stock = await erp.unrestrictedStock(lot.erp);
      if (stock.length === 0) return update({ erpState: 'nothing-to-block' });
      await update({ erpState: 'blocking', erpBlocks: stock.map((s) => ({ ...s })) });
    }
    const blocks = lot.erpBlocks.map((b) => ({ ...b }));
    for (const [i, block] of blocks.entries()) {
      if (block.materialDocument) continue;
      const req: ErpGoodsMovementRequest = {
        idempotencyKey: `${key}:${block.storageLocation}`,
        movementType: '344',
        material: lot.erp.material,
        plant: lot.erp.plant,
        storageLocation: block.storageLocation,
        batch: lot.erp.batch,
        quantity: block.quantity,
        unit: block.unit,
        headerText: `Recall ${recallId}`,
      };
      const intent = { key: req.idempotencyKey, step: 'erp-goods-movement', system: erp.system, request: req };
      const doc = await createOnce(ledger, intent, (opts) => erp.postGoodsMovement(req, opts));
      Object.assign(block, doc);
      // The last document is recorded with the state below.
      if (i < blocks.length - 1) await update({ erpBlocks: blocks });
    }
    await update({ erpState: 'blocked', erpBlocks: blocks });
  }

  return {
    /** Chooses the affected lots and numbers them into batches (idempotent: a retry returns the same plan). */
    async planRecallContainment({
      recallId,
      batchSize,
    }: {
      recallId: string;
      batchSize: number;
    }): Promise<{ lots: number; batches: number }> {
      try {
        return await store().plan(recallId, batchSize);
      } catch (err) {
        throw classify(`containment plan of recall ${recallId}`, err);
      }
    },

    /**
     * Contains one batch: `concurrency` lots at a time, heartbeating its progress. Lots already recorded as done are
     * skipped, so a retry resumes. A lot refused for good is recorded `failed` and the others go on; a transient fault
     * is thrown once the rest of the batch is done, for Temporal to retry the batch. Once the recall is cancelled no
     * lot is started (and no block follows a hold); the lots in hand finish.
     */
    async containRecallBatch({
      recallId,
      site,
      batch,
      concurrency,
      reason,
    }: ContainBatchInput): Promise<ContainBatchResult> {
      const rows = store();
      const operation = `contain batch ${batch} of recall ${recallId}`;
      const ctx = Context.current();
      let cancelled = false;
      let done = 0;
      // Asked before every lot and before every block: a cancel is honoured from the moment it is recorded.
      const stop = async () => (cancelled ||= await rows.cancelRequested(recallId));
      const timer = setInterval(() => ctx.heartbeat({ done }), HEARTBEAT_MS);
      try {
        const lots = (await rows.batch(recallId, batch)).filter((l) => l.state === 'pending');
        let next = 0;
        const transient: unknown[] = [];
        // A lane never rejects: every lane has stopped when the batch answers, so no retry overlaps this attempt.
        const lane = async () => {
          for (;;) {
            if (ctx.cancellationSignal.aborted) return;
            try {
              if (await stop()) return;
            } catch (err) {
              transient.push(err);
              return;
            }
            const lot = lots[next++];
            if (!lot) return;
            try {
              await containLot(recallId, site, reason, lot, stop);
            } catch (err) {
              transient.push(err);
            }
            done++;
          }
        };
        await Promise.all(Array.from({ length: Math.max(1, concurrency) }, lane));
        if (transient.length > 0) throw classify(operation, transient[0]);
        if (!cancelled && ctx.cancellationSignal.aborted)
          throw new Error(`${operation}: ${String(ctx.cancellationSignal.reason)}`);
        return { counts: await rows.counts(recallId, batch), stopped: cancelled };
      } catch (err) {
        throw classify(operation, err);
      } finally {
        clearInterval(timer);
      }
    },

    /** Records a cancel of the recall: batches running see it within a second and start nothing more. */
    async cancelRecallContainment({ recallId }: { recallId: string }): Promise<void> {
      try {
        await store().cancel(recallId);
      } catch (err) {
        throw classify(`cancel of recall ${recallId}`, err);
      }
    },

    /** After the stage: the lots by outcome; after a cancel, the lots never reached are recorded `cancelled` first. */
    async closeRecallContainment({
      recallId,
      cancelled,
    }: {
      recallId: string;
      cancelled: boolean;
    }): Promise<ContainmentCounts> {
      try {
        if (cancelled) await store().abandon(recallId);
        return await store().counts(recallId);
      } catch (err) {
        throw classify(`containment counts of recall ${recallId}`, err);
      }
    },
  };
};

/**
 * A lot's outcome once its sides are settled (docs/recall.md#contain). The ERP side is still pending only when a
 * cancel came between the two: the lot is what its MES side made it, or cancelled.
 */
function outcomeOf(lot: ContainmentLot): ContainmentLot['state'] {
  if (lot.mesState === 'failed' || lot.erpState === 'failed') return 'failed';
  if (lot.mesState === 'lot-case' || lot.mesState === 'mes-hold') return 'already-held';
  if (lot.mesState === 'held' || lot.erpState === 'blocked') return 'held';
  return lot.erpState === 'pending' ? 'cancelled' : 'nothing-to-block';
}

export type RecallContainActivities = ReturnType<typeof createRecallContainActivities>;
