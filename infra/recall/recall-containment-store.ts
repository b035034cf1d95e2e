/**
 * A real recall's containment rows (docs/recall.md#contain) in holdfast.recall_containment: which reached lots are
 * affected, in which batch each is contained, and what was done to each, written before and after every effect.
 */
import type pg from 'pg';
import type {
  ContainmentCounts,
  ContainmentLot,
  ContainmentUpdate,
  RecallContainmentStore,
} from '../../activities/ports';

type Db = Pick<pg.Pool, 'query'>;

/**
 * The affected lots: the scope's and every lot reached forward from them whose quantity is still, at least in part,
 * in the plant's hands: in process, or not wholly shipped, consumed into other lots or scrapped. A lot whose quantity
 * the genealogy does not know is affected: nothing shows it left. Lots reached only backward are sources, not
 * affected. A model recall's reinspect stage clears the lots whose parts passed the corrected model
 * (`needs_containment` false, docs/recall.md#model-recall); every other recall leaves it unset.
 */
const AFFECTED = `r.reached_by IN ('scope', 'forward') AND r.needs_containment IS NOT FALSE
  AND (r.quantity IS NULL OR r.in_process > 0 OR r.quantity - r.shipped - r.consumed - r.in_process - r.scrapped > 0)`;

interface Row {
  lot_key: string;
  site: string;
  mes_site: string | null;
  mes_lot_id: string | null;
  erp_plant: string | null;
  erp_material: string | null;
  erp_batch: string | null;
  work_order: string | null;
  line: string | null;
  state: ContainmentLot['state'];
  mes_state: ContainmentLot['mesState'];
  hold_id: string | null;
  erp_state: ContainmentLot['erpState'];
  erp_blocks: ContainmentLot['erpBlocks'];
  open_case_hold: string | null;
}

const COLUMNS: Record<keyof ContainmentUpdate, string> = {
  state: 'state',
  mesState: 'mes_state',
  holdId: 'hold_id',
  erpState: 'erp_state',
  erpBlocks: 'erp_blocks',
  error: 'error',
};

export function createRecallContainmentStore(db: Db): RecallContainmentStore {
  return {
    async plan(recallId, batchSize) {
      await db.query(
        `INSERT INTO holdfast.recall_containment (recall_id, lot_key, batch, mes_site, mes_lot_id, erp_plant,
                                                  erp_material, erp_batch)
         SELECT r.recall_id, r.lot_key, ((row_number() OVER (ORDER BY r.lot_key)) - 1) / $2, l.mes_site, l.mes_lot_id,
                l.erp_plant, l.erp_material, l.erp_batch
           FROM holdfast.recall_lot r JOIN holdfast.material_lot l USING (lot_key)
          WHERE r.recall_id = $1 AND ${AFFECTED}
            AND NOT EXISTS (SELECT 1 FROM holdfast.recall_containment c WHERE c.recall_id = $1)
         ON CONFLICT DO NOTHING`,
        [recallId, batchSize],
      );
      const { rows } = await db.query<{ lots: number; batches: number }>(
        `SELECT count(*)::int AS lots, coalesce(max(batch) + 1, 0)::int AS batches
           FROM holdfast.recall_containment WHERE recall_id = $1`,
        [recallId],
      );
      return rows[0] ?? { lots: 0, batches: 0 };
    },

    async batch(recallId, batch) {
      // An open lot case with a hold has the lot held already (its hold is the one the lot carries).
      const { rows } = await db.query<Row>(
        `SELECT c.lot_key, l.site, c.mes_site, c.mes_lot_id, c.erp_plant, c.erp_material, c.erp_batch, l.work_order,
                l.line, c.state, c.mes_state, c.hold_id, c.erp_state, c.erp_blocks, k.hold_id AS open_case_hold
           FROM holdfast.recall_containment c
           JOIN holdfast.material_lot l USING (lot_key)
           LEFT JOIN LATERAL (
             SELECT hold_id FROM holdfast.lot_case k
              WHERE k.site = c.mes_site AND k.lot_id = c.mes_lot_id AND k.closed_at IS NULL AND k.hold_id IS NOT NULL
              ORDER BY k.opened_at DESC LIMIT 1) k ON true
          WHERE c.recall_id = $1 AND c.batch = $2
          ORDER BY c.lot_key`,
        [recallId, batch],
      );
      return rows.map((r): ContainmentLot => ({
        lotKey: r.lot_key,
        ...(r.mes_site && r.mes_lot_id ? { mes: { site: r.mes_site, lotId: r.mes_lot_id } } : {}),
        ...(r.erp_plant && r.erp_material && r.erp_batch
          ? { erp: { plant: r.erp_plant, material: r.erp_material, batch: r.erp_batch } }
          : {}),
        ...(r.work_order ? { workOrder: r.work_order } : {}),
        ...(r.line ? { line: r.line } : {}),
        state: r.state,
        mesState: r.mes_state,
        ...(r.hold_id ? { holdId: r.hold_id } : {}),
        erpState: r.erp_state,
        erpBlocks: r.erp_blocks.map((b) => ({ ...b, quantity: Number(b.quantity) })),
        ...(r.open_case_hold ? { openCaseHold: r.open_case_hold } : {}),
      }));
    },

    async update(recallId, lotKey, update) {
      const entries = Object.entries(update).filter(([, v]) => v !== undefined) as [keyof ContainmentUpdate, unknown][];
      if (entries.length === 0) return;
      const sets = entries.map(([k], i) => `${COLUMNS[k]} = $${i + 3}`);
      const values = entries.map(([k, v]) => (k === 'erpBlocks' ? JSON.stringify(v) : v));
      const settled = update.state !== undefined && update.state !== 'pending';
      await db.query(
        `UPDATE holdfast.recall_containment
            SET ${sets.join(', ')}, updated_at = now()${settled ? ', contained_at = coalesce(contained_at, now())' : ''}
          WHERE recall_id = $1 AND lot_key = $2`,
        [recallId, lotKey, ...values],
      );
    },

    async cancelRequested(recallId) {
      const { rows } = await db.query<{ cancelled: boolean }>(
        'SELECT cancel_requested_at IS NOT NULL AS cancelled FROM holdfast.recall WHERE recall_id = $1',
        [recallId],
      );
      return rows[0]?.cancelled ?? false;
    },

    async cancel(recallId) {
      await db.query(
        `UPDATE holdfast.recall SET cancel_requested_at = coalesce(cancel_requested_at, now()) WHERE recall_id = $1`,
        [recallId],
      );
    },

    async abandon(recallId) {
      await db.query(
        `UPDATE holdfast.recall_containment SET state = 'cancelled', updated_at = now()
          WHERE recall_id = $1 AND state = 'pending'`,
        [recallId],
      );
    },

    async counts(recallId, batch): Promise<ContainmentCounts> {
      const { rows } = await db.query<ContainmentCounts>(
        `SELECT count(*)::int AS lots,
                count(*) FILTER (WHERE state = 'pending')::int AS pending,
                count(*) FILTER (WHERE state = 'held')::int AS held,
                count(*) FILTER (WHERE state = 'already-held')::int AS "alreadyHeld",
                count(*) FILTER (WHERE state = 'nothing-to-block')::int AS "nothingToBlock",
                count(*) FILTER (WHERE state = 'failed')::int AS failed,
                count(*) FILTER (WHERE state = 'cancelled')::int AS cancelled,
                count(*) FILTER (WHERE erp_state = 'blocked')::int AS blocked
           FROM holdfast.recall_containment WHERE recall_id = $1 AND ($2::int IS NULL OR batch = $2)`,
        [recallId, batch ?? null],
      );
      return rows[0]!;
    },
  };
}
