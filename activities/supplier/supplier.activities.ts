import type { Pool } from 'pg';
import { ApplicationFailure } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time';
import { ErrorType } from '../../workflows/contracts';
import type {
  EscalationPort,
  ErpMaterialDocument,
  ErpPort,
  ErpPurchaseOrderItemHold,
  ErpStock,
  IntentLedger,
  SupplierScoreSource,
  SupplierNotice,
  SupplierNoticePort,
} from '../ports';
import { atBoundary, configurationFailure } from '../boundary';
import { createOnce } from '../intents';
import type { ReceiptDecision, ScarStage, ScarThreshold } from '../../workflows/contracts';

export interface SupplierDeps {
  pool: Pool;
  ledger: IntentLedger;
  erpFor: (site: string) => ErpPort;
  escalationFor: (site: string) => { target: string; port: EscalationPort };
  /** supplierQuality.scar.channel; absent: notices are recorded in the SCAR's state, not sent. */
  supplierNotice?: { target: string; port: SupplierNoticePort };
  /** Each supplier and material's scorecard figures over a period (infra/supplier/scorecard.ts). */
  supplierScores: SupplierScoreSource;
}

/** A received lot as holdfast.incoming_receipt and the genealogy know it. */
export interface IncomingReceiptView {
  site: string;
  lotId: string;
  material: string;
  plant: string;
  decision: ReceiptDecision | 'open';
  decisionReason: string | null;
  inspected: number;
  defective: number;
  defects: Record<string, number>;
  lotKey: string | null;
  supplier: string | null;
  supplierBatch: string | null;
  purchaseOrder: string | null;
  purchaseOrderItem: string | null;
  goodsReceipt: string | null;
}

interface ReceiptRow {
  site: string;
  lot_id: string;
  material: string;
  decision: ReceiptDecision | 'open';
  decision_reason: string | null;
  inspected: number;
  defective: number;
  defects: Record<string, number>;
  lot_key: string | null;
  supplier: string | null;
  supplier_batch: string | null;
  purchase_order: string | null;
  purchase_order_item: string | null;
  goods_receipt: string | null;
  block_plan: ErpStock[] | null;
}

/** What opens a SCAR: who asked, and the key that makes asking twice open one. */
export interface ScarInputShape {
  supplier: string;
  trigger: 'threshold' | 'engineer';
  requestKey: string;
  reason: string;
  requestedBy?: string;
  material?: string;
  evidence?: unknown;
  /** An engineer's signed request (a SignatureManifest), kept with the row. */
  requestSignature?: unknown;
}

/** The request's SCAR: `start` when it is this request's own (its workflow to start), `created` when made just now. */
export interface OpenedScar {
  scarId: string;
  workflowId: string;
  start: boolean;
  created: boolean;
  reason: string;
  evidence: unknown;
}

const receiptKey = (site: string, lotId: string) => `${site}/${lotId}`;

export const createSupplierActivities = ({
  pool,
  ledger,
  erpFor,
  escalationFor,
  supplierNotice,
  supplierScores,
}: SupplierDeps) => {
  async function receiptRow(site: string, lotId: string): Promise<ReceiptRow> {
    const { rows } = await pool.query<ReceiptRow>(
      `SELECT * FROM holdfast.incoming_receipt WHERE site = $1 AND lot_id = $2`,
      [site, lotId],
    );
    const row = rows[0];
    if (!row) {
      throw ApplicationFailure.create({
        message: `no incoming receipt ${receiptKey(site, lotId)}`,
        type: ErrorType.NotFound,
        nonRetryable: true,
      });
    }
    return row;
  }

  function supplierOf(row: ReceiptRow): { supplier: string; purchaseOrder?: string; purchaseOrderItem?: string } {
    if (!row.supplier) {
      throw ApplicationFailure.create({
        message:
          `receipt ${receiptKey(row.site, row.lot_id)} has no supplier in the genealogy (holdfast.material_lot): ` +
          'the goods receipt has not been synced',
        type: ErrorType.NotFound,
        nonRetryable: true,
      });
    }
    return {
      supplier: row.supplier,
      ...(row.purchase_order ? { purchaseOrder: row.purchase_order } : {}),
      ...(row.purchase_order_item ? { purchaseOrderItem: row.purchase_order_item } : {}),
    };
  }

  return {
    /**
     * The receipt with its supplier, purchase order and goods receipt. A lot whose goods receipt reached the genealogy
     * only after its inspection started is looked up again here and completed.
     */
    async loadIncomingReceipt({ site, lotId, plant }: { site: string; lotId: string; plant: string }) {
      await pool.query(
        `UPDATE holdfast.incoming_receipt r
            SET lot_key = l.lot_key, supplier = l.supplier, supplier_batch = l.supplier_batch,
                purchase_order = l.purchase_order, purchase_order_item = l.purchase_order_item,
                goods_receipt = l.goods_receipt
           FROM holdfast.material_lot l
          WHERE r.site = $1 AND r.lot_id = $2 AND r.supplier IS NULL AND l.origin = 'purchased'
            AND l.erp_plant = $3 AND l.erp_material = r.material AND l.erp_batch = r.lot_id`,
        [site, lotId, plant],
      );
      const r = await receiptRow(site, lotId);
      const view: IncomingReceiptView = {
        site,
        lotId,
        material: r.material,
        plant,
        decision: r.decision,
        decisionReason: r.decision_reason,
        inspected: r.inspected,
        defective: r.defective,
        defects: r.defects,
        lotKey: r.lot_key,
        supplier: r.supplier,
        supplierBatch: r.supplier_batch,
        purchaseOrder: r.purchase_order,
        purchaseOrderItem: r.purchase_order_item,
        goodsReceipt: r.goods_receipt,
      };
      return view;
    },

    /** The complaint against the supplier (SAP Q2), once per receipt. */
    async raiseSupplierComplaint(req: {
      site: string;
      lotId: string;
      plant: string;
      notificationType: string;
      defectCodeGroup: string;
      defectCode: string;
    }): Promise<{ notification: string; item: string }> {
      const row = await receiptRow(req.site, req.lotId);
      const who = supplierOf(row);
      const classes = Object.entries(row.defects)
        .map(([c, n]) => `${c} ×${n}`)
        .join(', ');
      return atBoundary(`supplier complaint for receipt ${receiptKey(req.site, req.lotId)}`, () => {
        const erp = erpFor(req.site);
        const key = `supplier-complaint:${receiptKey(req.site, req.lotId)}`;
        const request = {
          idempotencyKey: key,
          notificationType: req.notificationType,
          text: `Receipt rejected: ${row.defective} of ${row.inspected} defective`,
          material: row.material,
          plant: req.plant,
          batch: req.lotId,
          ...who,
          quantity: Math.max(row.defective, 1),
          unit: 'PC',
          firstItem: {
            idempotencyKey: `${key}:item-1`,
            defectCodeGroup: req.defectCodeGroup,
            defectCode: req.defectCode,
            text: classes || (row.decision_reason ?? 'rejected at incoming inspection'),
          },
        };
        const intent = { key, step: 'erp-notification', system: erp.system, request };
        return createOnce(ledger, intent, (opts) => erp.raiseQualityNotification(request, opts));
      });
    },

    /** The unrestricted stock to block, read once and kept: a retry posts the quantities the first attempt found. */
    async planReceiptBlock({
      site,
      lotId,
      plant,
    }: {
      site: string;
      lotId: string;
      plant: string;
    }): Promise<ErpStock[]> {
      const row = await receiptRow(site, lotId);
      if (row.block_plan) return row.block_plan;
      const stock = await atBoundary(`unrestricted stock of batch ${lotId}`, () =>
        erpFor(site).unrestrictedStock({ material: row.material, plant, batch: lotId }),
      );
      const { rows } = await pool.query<{ block_plan: ErpStock[] }>(
        `UPDATE holdfast.incoming_receipt SET block_plan = COALESCE(block_plan, $3::jsonb)
          WHERE site = $1 AND lot_id = $2 RETURNING block_plan`,
        [site, lotId, JSON.stringify(stock)],
      );
      return rows[0]?.block_plan ?? stock;
    },

    /** Moves one storage location's stock of the received batch to blocked (344), once. */
    async blockReceivedBatch(req: {
      site: string;
      lotId: string;
      plant: string;
      stock: ErpStock;
    }): Promise<ErpMaterialDocument> {
      const row = await receiptRow(req.site, req.lotId);
      const who = supplierOf(row);
      return atBoundary(`block received batch ${req.lotId}`, () => {
        const erp = erpFor(req.site);
        const movement = {
          idempotencyKey: `supplier-block:${receiptKey(req.site, req.lotId)}:${req.stock.storageLocation}`,
          movementType: '344' as const,
          material: row.material,
          plant: req.plant,
          storageLocation: req.stock.storageLocation,
          batch: req.lotId,
          quantity: req.stock.quantity,
          unit: req.stock.unit,
          headerText: 'Receipt rejected',
          supplier: who.supplier,
        };
        const intent = {
          key: movement.idempotencyKey,
          step: 'erp-goods-movement',
          system: erp.system,
          request: movement,
        };
        return createOnce(ledger, intent, (opts) => erp.postGoodsMovement(movement, opts));
      });
    },

    /** The quality hold on the purchase order item the batch was received on; none without one. */
    async holdPurchaseOrder({
      site,
      lotId,
    }: {
      site: string;
      lotId: string;
    }): Promise<ErpPurchaseOrderItemHold | undefined> {
      const row = await receiptRow(site, lotId);
      if (!row.purchase_order || !row.purchase_order_item) return undefined;
      const erp = erpFor(site);
      if (!erp.purchasing) throw configurationFailure(`ERP ${erp.system} offers no purchase order holds`);
      const purchasing = erp.purchasing;
      const ref = { purchaseOrder: row.purchase_order, purchaseOrderItem: row.purchase_order_item };
      return atBoundary(`hold purchase order ${ref.purchaseOrder}/${ref.purchaseOrderItem}`, () => {
        const key = `supplier-po-hold:${receiptKey(site, lotId)}`;
        const intent = { key, step: 'erp-po-hold', system: erp.system, request: ref };
        // A hold is a state: a retry that finds the item blocked sets nothing again.
        return createOnce(ledger, intent, async () => {
          const now = await purchasing.itemHold(ref);
          return now.blocked ? now : purchasing.holdItem(ref, `Receipt ${lotId} rejected at incoming inspection`);
        });
      });
    },

    async recordReceiptOutcome(o: {
      site: string;
      lotId: string;
      complaintNotification?: string;
      blockDocument?: string;
      purchaseOrderHold?: string;
    }): Promise<void> {
      await pool.query(
        `UPDATE holdfast.incoming_receipt
            SET complaint_notification = $3, block_document = $4, purchase_order_hold = $5,
                completed_at = COALESCE(completed_at, now())
          WHERE site = $1 AND lot_id = $2`,
        [o.site, o.lotId, o.complaintNotification ?? null, o.blockDocument ?? null, o.purchaseOrderHold ?? null],
      );
    },

    /** The supplier's open SCAR's workflow, if any. */
    async openScarOf({ supplier }: { supplier: string }): Promise<string | undefined> {
      const { rows } = await pool.query<{ workflow_id: string }>(
        `SELECT workflow_id FROM holdfast.scar WHERE supplier = $1 AND state NOT IN ('closed', 'cancelled')`,
        [supplier],
      );
      return rows[0]?.workflow_id;
    },

    /**
     * Whether the supplier crossed the threshold with this receipt, and if so the SCAR it opens (one per request key,
     * at most one open per supplier). `start`: this request's SCAR, whose workflow the caller starts.
     */
    async requestScarOnThreshold(req: {
      site: string;
      lotId: string;
      supplier: string;
      decidedAt: string;
      threshold: ScarThreshold;
    }): Promise<OpenedScar | undefined> {
      const since = new Date(Date.parse(req.decidedAt) - msToNumber(req.threshold.window)).toISOString();
      const { rows } = await pool.query<{ receipts: number; rejected: number }>(
        `SELECT count(*)::int AS receipts, count(*) FILTER (WHERE decision = 'rejected')::int AS rejected
           FROM holdfast.incoming_receipt
          WHERE supplier = $1 AND decision <> 'open' AND decided_at > $2 AND decided_at <= $3`,
        [req.supplier, since, req.decidedAt],
      );
      const { receipts = 0, rejected = 0 } = rows[0] ?? {};
      if (receipts < req.threshold.minReceipts || rejected / receipts < req.threshold.lotRejectionRate) {
        return undefined;
      }
      const reason =
        `${rejected} of ${receipts} receipts rejected in ${req.threshold.window} ` +
        `(threshold ${req.threshold.lotRejectionRate})`;
      const evidence = {
        receipts,
        rejected,
        window: req.threshold.window,
        lastReceipt: receiptKey(req.site, req.lotId),
      };
      return openScar(pool, {
        supplier: req.supplier,
        trigger: 'threshold',
        requestKey: `threshold:${receiptKey(req.site, req.lotId)}`,
        reason,
        evidence,
      });
    },

    async recordScarState({ scarId, stage, round }: { scarId: string; stage: ScarStage; round: number }) {
      await pool.query(
        `UPDATE holdfast.scar SET state = $2, rounds = $3, updated_at = now(),
                closed_at = CASE WHEN $2 = 'closed' THEN now() ELSE closed_at END
          WHERE id = $1`,
        [scarId, stage, round],
      );
    },

    /** Sends one notice through the configured channel; the same key is never sent twice. */
    async sendSupplierNotice(notice: SupplierNotice): Promise<{ reference: string; sent: boolean }> {
      if (!supplierNotice) return { reference: 'no-channel', sent: false };
      const channel = supplierNotice;
      const intent = { key: notice.idempotencyKey, step: 'supplier-notice', system: channel.target, request: notice };
      const receipt = await atBoundary(`SCAR ${notice.scarId} ${notice.kind} to ${notice.supplier}`, () =>
        createOnce(ledger, intent, () => channel.port.deliver(notice)),
      );
      return { reference: receipt.reference, sent: true };
    },

    async escalateScar(m: {
      site: string;
      scarId: string;
      workflowId: string;
      supplier: string;
      text: string;
      key: string;
    }) {
      const { target, port } = escalationFor(m.site);
      const seen = await pool.query('SELECT 1 FROM holdfast.escalation WHERE idempotency_key = $1', [m.key]);
      if (seen.rowCount) return { sent: false };
      await atBoundary(`escalate SCAR ${m.scarId} to ${target}`, () =>
        port.escalate({
          idempotencyKey: m.key,
          site: m.site,
          line: '-',
          lotId: `scar:${m.scarId}`,
          lotCaseWorkflowId: m.workflowId,
          waitingSince: new Date().toISOString(),
          text: m.text,
        }),
      );
      await pool.query(
        `INSERT INTO holdfast.escalation (idempotency_key, lot_case_id, site, lot_id, target, message)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING`,
        [m.key, m.workflowId, m.site, `scar:${m.scarId}`, target, m.text],
      );
      return { sent: true };
    },

    /**
     * Each supplier and material's score over the period to the ERP's supplier evaluation, once per supplier,
     * material and period (docs/analytics.md#supplier-quality).
     */
    async postSupplierScores({
      site,
      periodStart,
      periodEnd,
    }: {
      site: string;
      periodStart: string;
      periodEnd: string;
    }): Promise<{ posted: number }> {
      const erp = erpFor(site);
      if (!erp.supplierEvaluation) throw configurationFailure(`ERP ${erp.system} offers no supplier evaluation`);
      const evaluation = erp.supplierEvaluation;
      const scores = await supplierScores({ from: periodStart, to: periodEnd });
      let posted = 0;
      for (const s of scores) {
        const score = {
          idempotencyKey: `supplier-score:${s.supplier}/${s.material}/${periodStart}/${periodEnd}`,
          supplier: s.supplier,
          material: s.material,
          periodStart,
          periodEnd,
          qualityScore: s.qualityScore,
          lotRejectionRate: s.lotRejectionRate ?? 0,
          ppm: s.ppm,
        };
        const intent = { key: score.idempotencyKey, step: 'erp-supplier-score', system: erp.system, request: score };
        const { reference } = await atBoundary(`supplier score ${s.supplier}/${s.material}`, () =>
          createOnce(ledger, intent, (opts) => evaluation.postScore(score, opts)),
        );
        await pool.query(
          `INSERT INTO holdfast.supplier_evaluation_post
             (supplier, material, period_start, period_end, idempotency_key, quality_score, reference)
           VALUES ($1, $2, $3::timestamptz::date, $4::timestamptz::date, $5, $6, $7)
           ON CONFLICT DO NOTHING`,
          [s.supplier, s.material, periodStart, periodEnd, score.idempotencyKey, s.qualityScore, reference],
        );
        posted += 1;
      }
      return { posted };
    },
  };
};

/** Opens a SCAR for the request key, or finds the one it opened; an open SCAR of the supplier answers instead. */
export async function openScar(pool: Pick<Pool, 'query'>, req: ScarInputShape): Promise<OpenedScar> {
  const mine = await pool.query<{ id: string; workflow_id: string }>(
    `SELECT id::text, workflow_id FROM holdfast.scar WHERE request_key = $1`,
    [req.requestKey],
  );
  if (mine.rows[0]) {
    return { scarId: mine.rows[0].id, workflowId: mine.rows[0].workflow_id, start: true, created: false, ...pick(req) };
  }
  const open = await pool.query<{ id: string; workflow_id: string }>(
    `SELECT id::text, workflow_id FROM holdfast.scar WHERE supplier = $1 AND state NOT IN ('closed', 'cancelled')`,
    [req.supplier],
  );
  if (open.rows[0]) {
    return {
      scarId: open.rows[0].id,
      workflowId: open.rows[0].workflow_id,
      start: false,
      created: false,
      ...pick(req),
    };
  }
  // The workflow id carries the row's id: take it from the sequence first, then insert with it.
  const { rows } = await pool.query<{ id: string; workflow_id: string }>(
    `WITH next AS (SELECT nextval(pg_get_serial_sequence('holdfast.scar', 'id')) AS id)
     INSERT INTO holdfast.scar (id, supplier, workflow_id, trigger, request_key, reason, requested_by, material,
                                request_signature)
     OVERRIDING SYSTEM VALUE
     SELECT next.id, $1, 'scar-' || $1 || '-' || next.id, $2, $3, $4, $5, $6, $7::jsonb FROM next
     ON CONFLICT DO NOTHING
     RETURNING id::text, workflow_id`,
    [
      req.supplier,
      req.trigger,
      req.requestKey,
      req.reason,
      req.requestedBy ?? null,
      req.material ?? null,
      req.requestSignature === undefined ? null : JSON.stringify(req.requestSignature),
    ],
  );
  if (!rows[0]) return openScar(pool, req);
  return { scarId: rows[0].id, workflowId: rows[0].workflow_id, start: true, created: true, ...pick(req) };
}

const pick = (req: ScarInputShape) => ({ reason: req.reason, evidence: req.evidence });

export type SupplierActivities = ReturnType<typeof createSupplierActivities>;
