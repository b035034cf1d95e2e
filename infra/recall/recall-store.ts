/**
 * The recall's stages over Holdfast's genealogy (docs/recall.md): trace writes the lots reached to
 * holdfast.recall_lot, classify says where each went, reconcile accounts for the quantities, report completes the
 * recall's row. Every write is keyed by the recall, so an activity retried after a crash changes nothing.
 */
import type pg from 'pg';
import { msToNumber } from '@temporalio/common/lib/time';
import type { RecallReconciliation, RecallStore, RecallTraceCounts } from '../../activities/ports';
import type { RecallScope, RecallStage, RecallTargets } from '../../workflows/contracts';

/** What the report stage stores in holdfast.recall.report, and GET /v1/recalls/{id} shows. */
export interface RecallReport {
  stages: RecallStage[];
  targets: RecallTargets;
  score: {
    traceMs: number;
    traceWithinMs: number;
    traceOnTime: boolean;
    reconciliation: number;
    reconciliationAtLeast: number;
    reconciled: boolean;
    passed: boolean;
  };
}
import { lotKeyOfNode, nodeKind } from '../genealogy/genealogy-keys';
import { MAX_DEPTH, resolveStart, walkGenealogy } from '../genealogy/trace-queries';

type Db = Pick<pg.Pool, 'query'>;

/** Movements that take quantity out of a lot into other lots (through a work order or directly). */
const OUT_KINDS = ['consumed', 'split', 'merged', 'reworked', 'repacked'];

export function createRecallStore(db: Db): RecallStore {
  return {
    async trace(recallId: string, scope: RecallScope): Promise<RecallTraceCounts> {
      const start = await resolveStart(db, scope);
      const [forward, backward] = await Promise.all([
        walkGenealogy(db, start, 'forward', MAX_DEPTH),
        walkGenealogy(db, start, 'backward', MAX_DEPTH),
      ]);
      // The scope's lots: the lots it names, or for a work order the lots it produced.
      const scopeLots = new Set(start.filter((s) => nodeKind(s.node) === 'lot').map((s) => s.node));
      for (const e of forward.edges)
        if (e.kind === 'produced' && nodeKind(e.from) === 'wo' && e.depth === 1) scopeLots.add(e.to);
      const rows: { node: string; reachedBy: string; depth: number }[] = [...scopeLots].map((node) => ({
        node,
        reachedBy: 'scope',
        depth: 0,
      }));
      for (const [walk, reachedBy] of [
        [forward, 'forward'],
        [backward, 'backward'],
      ] as const) {
        for (const [node, depth] of walk.depthOf) {
          if (nodeKind(node) === 'lot' && !scopeLots.has(node)) rows.push({ node, reachedBy, depth });
        }
      }
      // A lot reached both ways (a loop in the data) is kept once, as the forward trace found it.
      const seen = new Set<string>();
      const unique = rows.filter((r) => !seen.has(r.node) && seen.add(r.node));
      await db.query(
        `INSERT INTO holdfast.recall_lot (recall_id, lot_key, reached_by, depth, site, material, quantity, unit)
         SELECT $1, l.lot_key, r.reached_by, r.depth, l.site, l.material, l.quantity, l.unit
           FROM unnest($2::text[], $3::text[], $4::int[]) AS r (lot_key, reached_by, depth)
           JOIN holdfast.material_lot l USING (lot_key)
         ON CONFLICT DO NOTHING`,
        [recallId, unique.map((r) => lotKeyOfNode(r.node)), unique.map((r) => r.reachedBy), unique.map((r) => r.depth)],
      );
      const reached = [...forward.depthOf.keys(), ...backward.depthOf.keys()];
      const findings: { kind: string; subject: string; detail: unknown }[] = [
        ...[...forward.cycles, ...backward.cycles].map((c) => ({ kind: 'cycle', subject: c.join(' > '), detail: {} })),
        ...(forward.truncated || backward.truncated ? [{ kind: 'trace-truncated', subject: 'walk', detail: {} }] : []),
      ];
      const gaps = await db.query<{ kind: string; subject: string }>(
        `SELECT kind, subject FROM holdfast.trace_gap WHERE resolved_at IS NULL AND subject = ANY($1::text[])`,
        [reached],
      );
      for (const g of gaps.rows) findings.push({ kind: 'trace-gap', subject: g.subject, detail: { gap: g.kind } });
      await insertFindings(db, recallId, findings);
      const deliveries = [...forward.depthOf.keys()].filter((n) => nodeKind(n) === 'delivery');
      const customers = await db.query<{ n: number }>(
        `SELECT count(DISTINCT customer)::int AS n FROM holdfast.delivery WHERE lot_key = ANY($1::text[])`,
        [unique.filter((r) => r.reachedBy !== 'backward').map((r) => lotKeyOfNode(r.node))],
      );
      const count = (by: string) => unique.filter((r) => r.reachedBy === by).length;
      return {
        scopeLots: count('scope'),
        forwardLots: count('forward'),
        backwardLots: count('backward'),
        deliveries: new Set(deliveries.map((d) => d.split('/')[0])).size,
        customers: customers.rows[0]?.n ?? 0,
        gaps: gaps.rowCount ?? 0,
        cycles: forward.cycles.length + backward.cycles.length,
        truncated: forward.truncated || backward.truncated ? 1 : 0,
      };
    },

    async classify(recallId: string): Promise<Record<string, number>> {
      // Where each lot's quantity went, from the genealogy's edges out of it; a lot case closed with a scrap
      // disposition scraps what was neither shipped nor consumed (docs/recall.md#classify).
      const res = await db.query<{ class: string; n: number }>(
        `WITH out AS (
           SELECT r.lot_key,
                  coalesce(sum(e.quantity) FILTER (WHERE e.kind = 'delivered'), 0) AS shipped,
                  coalesce(sum(e.quantity) FILTER (WHERE e.kind = ANY($2::text[]) AND (e.to_node NOT LIKE 'wo:%' OR made.any)), 0) AS consumed,
                  coalesce(sum(e.quantity) FILTER (WHERE e.kind = 'consumed' AND e.to_node LIKE 'wo:%' AND NOT made.any), 0) AS in_process,
                  coalesce(jsonb_agg(DISTINCT jsonb_build_object('delivery', d.delivery, 'item', d.item, 'customer', d.customer,
                                                                  'shipTo', d.ship_to, 'quantity', d.quantity))
                           FILTER (WHERE d.delivery IS NOT NULL), '[]'::jsonb) AS deliveries
             FROM holdfast.recall_lot r
             LEFT JOIN holdfast.genealogy_edge e ON e.from_node = 'lot:' || r.lot_key
             LEFT JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM holdfast.genealogy_edge p
                                                WHERE p.from_node = e.to_node AND p.kind = 'produced') AS any) made ON true
             LEFT JOIN holdfast.delivery d ON e.kind = 'delivered' AND e.to_node = 'delivery:' || d.delivery || '/' || d.item
            WHERE r.recall_id = $1
            GROUP BY r.lot_key
         ),
         scrap AS (
           SELECT r.lot_key FROM holdfast.recall_lot r JOIN holdfast.material_lot l USING (lot_key)
             JOIN holdfast.lot_case c ON c.site = l.mes_site AND c.lot_id = l.mes_lot_id
            WHERE r.recall_id = $1 AND c.closed_at IS NOT NULL AND c.state #>> '{disposition,decision}' = 'scrap'
         ),
         upd AS (
           UPDATE holdfast.recall_lot r
              SET shipped = o.shipped, consumed = o.consumed, in_process = o.in_process, deliveries = o.deliveries,
                  scrapped = CASE WHEN s.lot_key IS NULL THEN 0
                                  ELSE greatest(coalesce(r.quantity, 0) - o.shipped - o.consumed - o.in_process, 0) END,
                  class = CASE WHEN o.shipped > 0 THEN 'shipped'
                               WHEN o.consumed > 0 THEN 'consumed'
                               WHEN o.in_process > 0 THEN 'in-process'
                               WHEN s.lot_key IS NOT NULL THEN 'scrapped'
                               ELSE 'in-stock' END
             FROM out o LEFT JOIN scrap s USING (lot_key)
            WHERE r.recall_id = $1 AND r.lot_key = o.lot_key
           RETURNING r.class
         )
         SELECT class, count(*)::int AS n FROM upd GROUP BY class`,
        [recallId, OUT_KINDS],
      );
      return Object.fromEntries(res.rows.map((r) => [r.class, r.n]));
    },

    async reconcile(recallId: string): Promise<RecallReconciliation> {
      // The scope and everything made from it: each lot's quantity against where it went. The genealogy holds no
      // stock figure; a real recall's contain stage read the ERP's unrestricted stock of each lot it blocked, and that
      // is the lot's stock on hand. What is left (a mock recall's stock, stock blocked before the recall) is
      // unreconciled until counted; more out than in is a finding too.
      const res = await db.query<{ lot_key: string; quantity: string; accounted: string }>(
        `SELECT r.lot_key, r.quantity::text,
                (r.shipped + r.consumed + r.in_process + r.scrapped + coalesce(stock.quantity, 0))::text AS accounted
           FROM holdfast.recall_lot r
           LEFT JOIN LATERAL (
             SELECT sum((b->>'quantity')::numeric) AS quantity
               FROM holdfast.recall_containment c, jsonb_array_elements(c.erp_blocks) b
              WHERE c.recall_id = r.recall_id AND c.lot_key = r.lot_key) stock ON true
          WHERE r.recall_id = $1 AND r.reached_by IN ('scope', 'forward') AND r.quantity IS NOT NULL
          ORDER BY r.lot_key`,
        [recallId],
      );
      let produced = 0;
      let accounted = 0;
      const findings: { kind: string; subject: string; detail: unknown }[] = [];
      for (const r of res.rows) {
        const quantity = Number(r.quantity);
        const out = Number(r.accounted);
        produced += quantity;
        accounted += Math.min(out, quantity);
        if (out < quantity) {
          findings.push({
            kind: 'unreconciled-quantity',
            subject: `lot:${r.lot_key}`,
            detail: { quantity, accounted: out, remainder: quantity - out },
          });
        } else if (out > quantity) {
          findings.push({
            kind: 'over-accounted-quantity',
            subject: `lot:${r.lot_key}`,
            detail: { quantity, accounted: out, excess: out - quantity },
          });
        }
      }
      await insertFindings(db, recallId, findings);
      return {
        produced,
        accounted,
        unreconciledLots: findings.filter((f) => f.kind === 'unreconciled-quantity').length,
      };
    },

    async report(recallId, state, stages, targets): Promise<void> {
      const ms = (name: string) => stages.find((s) => s.name === name)?.durationMs ?? 0;
      const reconcile = stages.find((s) => s.name === 'reconcile')?.counts;
      const produced = reconcile?.['produced'] ?? 0;
      const reconciliation = produced > 0 ? (reconcile?.['accounted'] ?? 0) / produced : 1;
      const traceMs = ms('trace') + ms('classify');
      const score = {
        traceMs,
        traceWithinMs: msToNumber(targets.traceWithin),
        traceOnTime: traceMs <= msToNumber(targets.traceWithin),
        reconciliation,
        reconciliationAtLeast: targets.reconciliationAtLeast,
        reconciled: reconciliation >= targets.reconciliationAtLeast,
      };
      const report: RecallReport = {
        stages,
        targets,
        score: { ...score, passed: score.traceOnTime && score.reconciled },
      };
      await db.query(
        `UPDATE holdfast.recall SET state = $2, report = $3, completed_at = coalesce(completed_at, now())
          WHERE recall_id = $1`,
        [recallId, state, JSON.stringify(report)],
      );
    },
  };
}

async function insertFindings(
  db: Db,
  recallId: string,
  findings: { kind: string; subject: string; detail: unknown }[],
): Promise<void> {
  if (findings.length === 0) return;
  await db.query(
    `INSERT INTO holdfast.recall_finding (recall_id, kind, subject, detail)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::jsonb[]) ON CONFLICT DO NOTHING`,
    [
      recallId,
      findings.map((f) => f.kind),
      findings.map((f) => f.subject),
      findings.map((f) => JSON.stringify(f.detail)),
    ],
  );
}
