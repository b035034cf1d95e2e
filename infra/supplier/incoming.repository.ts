/**
 * Incoming inspection (docs/analytics.md#supplier-quality): each stored inspection at an incoming-inspection station
 * counts towards its received lot's receipt in the ingest transaction, and decides it by the station's acceptance plan.
 * A decided receipt is the outbox row of its workflow (receipt-relay.ts), so a decision stored is a workflow started.
 */
import type pg from 'pg';
import type { HoldfastConfig } from '../config/schema';

type Queryable = Pick<pg.PoolClient, 'query'>;

export const RECEIPT_CHANNEL = 'holdfast_supplier_receipt';

/** What ingest hands over of one stored inspection. */
export interface IncomingInspection {
  site: string;
  line: string;
  station: string;
  lotId: string;
  sku: string;
  result: 'pass' | 'fail';
  defects: readonly { class: string }[];
  inspectedAt: string;
  mode: 'production' | 'shadow';
}

export interface AcceptancePlan {
  sampleSize: number;
  acceptanceNumber: number;
  criticalClasses: string[];
}

const DEFAULT_PLAN: AcceptancePlan = { sampleSize: 13, acceptanceNumber: 0, criticalClasses: [] };

/** The station's acceptance plan when it is an incoming-inspection station; undefined otherwise. */
export function incomingPlan(
  config: HoldfastConfig,
  where: { site: string; line: string; station: string },
): AcceptancePlan | undefined {
  const station = config.sites
    .find((s) => s.id === where.site)
    ?.lines.find((l) => l.id === where.line)
    ?.stations.find((s) => s.id === where.station);
  if (station?.role !== 'incoming-inspection') return undefined;
  return station.acceptance ?? DEFAULT_PLAN;
}

interface ReceiptState {
  sample_size: number;
  acceptance_number: number;
  critical_classes: string[];
  inspected: number;
  defective: number;
  critical: number;
  defects: Record<string, number>;
  decision: 'open' | 'accepted' | 'rejected';
  decision_reason: string | null;
  decided_at: string | null;
}

/**
 * Counts the inspections (only those just inserted: a re-sent one was counted when first stored) and decides each
 * receipt they complete: rejected at the first part that makes the defective count exceed c or carries a critical
 * class, accepted once n parts are inspected without that. Shadow-mode results are never counted. Returns how many
 * receipts were decided, so the caller can wake the relay.
 */
export async function recordIncomingInspections(
  db: Queryable,
  config: HoldfastConfig,
  inspections: readonly IncomingInspection[],
): Promise<number> {
  const byReceipt = new Map<string, { plan: AcceptancePlan; parts: IncomingInspection[] }>();
  for (const i of inspections) {
    if (i.mode === 'shadow') continue;
    const plan = incomingPlan(config, i);
    if (!plan) continue;
    const key = JSON.stringify([i.site, i.lotId]);
    const entry = byReceipt.get(key) ?? { plan, parts: [] };
    entry.parts.push(i);
    byReceipt.set(key, entry);
  }
  let decided = 0;
  for (const { plan, parts } of byReceipt.values()) {
    parts.sort((a, b) => Date.parse(a.inspectedAt) - Date.parse(b.inspectedAt));
    const first = parts[0]!;
    const erpPlant = config.sites.find((s) => s.id === first.site)?.erpPlant ?? '';
    await db.query(
      `INSERT INTO holdfast.incoming_receipt
         (site, lot_id, line, station, material, sample_size, acceptance_number, critical_classes, first_inspected_at,
          lot_key, supplier, supplier_batch, purchase_order, purchase_order_item, goods_receipt)
       SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9,
              l.lot_key, l.supplier, l.supplier_batch, l.purchase_order, l.purchase_order_item, l.goods_receipt
         FROM (SELECT 1) one
         LEFT JOIN LATERAL (
           SELECT * FROM holdfast.material_lot m
            WHERE m.origin = 'purchased' AND m.erp_plant = $10 AND m.erp_material = $5 AND m.erp_batch = $2
            LIMIT 1
         ) l ON TRUE
       ON CONFLICT (site, lot_id) DO NOTHING`,
      [
        first.site,
        first.lotId,
        first.line,
        first.station,
        first.sku,
        plan.sampleSize,
        plan.acceptanceNumber,
        plan.criticalClasses,
        first.inspectedAt,
        erpPlant,
      ],
    );
    const { rows } = await db.query<ReceiptState>(
      `SELECT sample_size, acceptance_number, critical_classes, inspected, defective, critical, defects, decision,
              decision_reason, decided_at
         FROM holdfast.incoming_receipt WHERE site = $1 AND lot_id = $2 FOR UPDATE`,
      [first.site, first.lotId],
    );
    const r = rows[0]!;
    const wasOpen = r.decision === 'open';
    const defects = { ...r.defects };
    for (const part of parts) {
      r.inspected += 1;
      const classes = part.defects.map((d) => d.class);
      if (part.result === 'fail') r.defective += 1;
      for (const c of classes) defects[c] = (defects[c] ?? 0) + 1;
      const critical = classes.filter((c) => r.critical_classes.includes(c));
      if (critical.length > 0) r.critical += 1;
      if (r.decision !== 'open') continue;
      if (critical.length > 0) {
        r.decision = 'rejected';
        r.decision_reason = `critical defect ${critical[0]} in part ${r.inspected}`;
      } else if (r.defective > r.acceptance_number) {
        r.decision = 'rejected';
        r.decision_reason = `${r.defective} defective > acceptance number ${r.acceptance_number}`;
      } else if (r.inspected >= r.sample_size) {
        r.decision = 'accepted';
        r.decision_reason = `${r.defective} defective of ${r.inspected} (n=${r.sample_size}, c=${r.acceptance_number})`;
      }
      if (r.decision !== 'open') r.decided_at = part.inspectedAt;
    }
    const nowDecided = wasOpen && r.decision !== 'open';
    if (nowDecided) decided += 1;
    await db.query(
      `UPDATE holdfast.incoming_receipt
          SET inspected = $3, defective = $4, critical = $5, defects = $6::jsonb, decision = $7,
              decision_reason = $8, decided_at = $9::timestamptz,
              decided_recorded_at = CASE WHEN $10 THEN now() ELSE decided_recorded_at END
        WHERE site = $1 AND lot_id = $2`,
      [
        first.site,
        first.lotId,
        r.inspected,
        r.defective,
        r.critical,
        JSON.stringify(defects),
        r.decision,
        r.decision_reason,
        r.decided_at,
        nowDecided,
      ],
    );
  }
  if (decided > 0) await db.query(`SELECT pg_notify($1, '')`, [RECEIPT_CHANNEL]);
  return decided;
}
