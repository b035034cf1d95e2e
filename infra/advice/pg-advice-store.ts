/**
 * Scheduling advice in PostgreSQL (migration 0019, docs/changeover.md#scheduling-advice): the rule's counts per
 * component lot from the inspections' material context (0018), and the advice rows the rule proposes, the API
 * decides and the MES activity marks sent.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { AdviceStore, NewAdvice, StoredAdvice } from '../../activities/advice/advice.ports';
import type { MesResequencing } from '../../activities/ports';
import type { AuditEntry } from '../audit/audit-record';
import type { AuditTrail } from '../audit/audit-trail';

export type { StoredAdvice } from '../../activities/advice/advice.ports';

type Queryable = Pick<pg.Pool, 'query'>;

export interface AdviceRow {
  advice_id: string;
  site: string;
  line: string;
  component_lot: string;
  lot_id: string;
  material: string | null;
  action: StoredAdvice['action'];
  orders: string[];
  current_order: StoredAdvice['currentOrder'];
  evidence: StoredAdvice['evidence'];
  proposed_by: string;
  state: StoredAdvice['state'];
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  decision_reason: string | null;
  signature: unknown;
  resequencing: MesResequencing | null;
  sent_at: Date | null;
}

export function adviceOfRow(r: AdviceRow): StoredAdvice {
  return {
    adviceId: r.advice_id,
    site: r.site,
    line: r.line,
    componentLot: r.component_lot,
    lotId: r.lot_id,
    material: r.material,
    action: r.action,
    orders: r.orders,
    currentOrder: r.current_order,
    evidence: r.evidence,
    proposedBy: r.proposed_by,
    state: r.state,
    createdAt: r.created_at.toISOString(),
    decidedAt: r.decided_at?.toISOString() ?? null,
    decidedBy: r.decided_by,
    decisionReason: r.decision_reason,
    signature: r.signature,
    resequencing: r.resequencing,
    sentAt: r.sent_at?.toISOString() ?? null,
  };
}

/**
 * `audit`: where the rule's proposals and the MES's acceptance of a sent advice are recorded (system actor
 * `scheduling-advice`); the decisions between them are audited by the API routes that take them.
 */
export function createPgAdviceStore(pool: Queryable, audit: AuditTrail): AdviceStore {
  const actor = { kind: 'system' as const, id: 'scheduling-advice' };
  return {
    async lotDefectCounts(site, line, from, to) {
      // A part counts once per lot however many stations saw it; defective when any of them failed it.
      const res = await pool.query<{
        lot_key: string;
        lot_id: string;
        material: string | null;
        parts: string;
        defective: string;
        skus: string[];
      }>(
        `WITH parts AS (
           SELECT k.key, i.part_id, bool_or(i.result = 'fail') AS failed, min(i.sku) AS sku
             FROM holdfast.inspection i CROSS JOIN LATERAL unnest(i.component_lots) AS k (key)
            WHERE i.site = $1 AND i.line = $2 AND i.inspected_at >= $3 AND i.inspected_at < $4
              AND i.mode = 'production' AND i.material_context IN ('at-ingest', 'completed-later')
            GROUP BY k.key, i.part_id
         )
         SELECT p.key AS lot_key, COALESCE(l.mes_lot_id, l.erp_batch, p.key) AS lot_id, l.material,
                count(*) AS parts, count(*) FILTER (WHERE p.failed) AS defective,
                array_agg(DISTINCT p.sku ORDER BY p.sku) AS skus
           FROM parts p LEFT JOIN holdfast.material_lot l ON l.lot_key = p.key
          GROUP BY p.key, l.mes_lot_id, l.erp_batch, l.material
          ORDER BY p.key`,
        [site, line, from, to],
      );
      return res.rows.map((r) => ({
        lotKey: r.lot_key,
        lotId: r.lot_id,
        material: r.material,
        parts: Number(r.parts),
        defective: Number(r.defective),
        skus: r.skus,
      }));
    },

    async propose(a: NewAdvice) {
      // One advice per lot and window: none while one is open, none while the last one's window still overlaps.
      return audit.inTransaction(async (client) => {
        const res = await client.query<{ advice_id: string }>(
          `INSERT INTO holdfast.scheduling_advice (advice_id, site, line, component_lot, lot_id, material, action,
                                                   orders, current_order, evidence, proposed_by)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
            WHERE NOT EXISTS (
                    SELECT 1 FROM holdfast.scheduling_advice o
                     WHERE o.site = $2 AND o.line = $3 AND o.component_lot = $4
                       AND (o.state = 'open' OR o.created_at > $12::timestamptz))
           ON CONFLICT (site, line, component_lot) WHERE state = 'open' DO NOTHING
           RETURNING advice_id`,
          [
            randomUUID(),
            a.site,
            a.line,
            a.componentLot,
            a.lotId,
            a.material,
            a.action,
            a.orders,
            a.currentOrder === null ? null : JSON.stringify(a.currentOrder),
            JSON.stringify(a.evidence),
            a.proposedBy,
            a.evidence.window.from,
          ],
        );
        const adviceId = res.rows[0]?.advice_id;
        const entries: AuditEntry[] =
          adviceId === undefined
            ? []
            : [
                {
                  actor,
                  action: 'advice.propose',
                  recordType: 'scheduling-advice',
                  recordId: adviceId,
                  old: null,
                  new: { state: 'open', componentLot: a.componentLot, action: a.action, orders: a.orders },
                  reason: null,
                  outcome: 'done',
                  detail: { site: a.site, line: a.line, evidence: a.evidence, proposedBy: a.proposedBy },
                },
              ];
        return { result: adviceId, audit: entries };
      });
    },

    async acceptedUnsent(site, line) {
      const res = await pool.query<AdviceRow>(
        `SELECT * FROM holdfast.scheduling_advice WHERE site = $1 AND line = $2 AND state = 'accepted'
          ORDER BY decided_at, advice_id`,
        [site, line],
      );
      return res.rows.map(adviceOfRow);
    },

    async get(adviceId) {
      const res = await pool.query<AdviceRow>(`SELECT * FROM holdfast.scheduling_advice WHERE advice_id = $1`, [
        adviceId,
      ]);
      return res.rows[0] && adviceOfRow(res.rows[0]);
    },

    async recordSent(adviceId, resequencing) {
      await audit.inTransaction(async (client) => {
        const res = await client.query(
          `UPDATE holdfast.scheduling_advice SET state = 'sent', sent_at = now(), resequencing = $2
            WHERE advice_id = $1 AND state = 'accepted'`,
          [adviceId, JSON.stringify(resequencing)],
        );
        const entries: AuditEntry[] =
          res.rowCount === 1
            ? [
                {
                  actor,
                  action: 'advice.send',
                  recordType: 'scheduling-advice',
                  recordId: adviceId,
                  old: { state: 'accepted' },
                  new: { state: 'sent', requestId: resequencing.requestId, status: resequencing.status },
                  reason: null,
                  outcome: 'done',
                  detail: { externalReference: resequencing.externalReference },
                },
              ]
            : [];
        return { result: undefined, audit: entries };
      });
    },
  };
}
