import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../../db/pool';
import { DEMO_LOTS, DEMO_WORK_ORDERS } from '../demo-plant';
import type {
  Counts,
  Disposition,
  Hold,
  HoldBody,
  HoldQuery,
  HoldReleased,
  Lot,
  LotStatus,
  QualityEvent,
  QualityEventBody,
  QualityEventCreated,
  QualityEventQuery,
  ReleaseBody,
  SimLotBody,
  SimWorkOrderBody,
  WorkOrder,
} from './mes.schemas';

/** A refusal the API turns into application/problem+json with this status and code. */
export class MesProblem extends Error {
  override readonly name = 'MesProblem';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const notFound = (what: string, id: string) => new MesProblem(404, 'NOT_FOUND', `${what} ${id} does not exist`);

const LOT_STATUS_AFTER: Record<Disposition, LotStatus> = {
  'use-as-is': 'RELEASED',
  rework: 'REWORK',
  scrap: 'SCRAPPED',
  'return-to-vendor': 'RETURNED',
};

/** Lots in these states have left production; holding them again is refused (the MES's LOT_CLOSED). */
const CLOSED_LOT_STATUSES: readonly LotStatus[] = ['SCRAPPED', 'RETURNED'];

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// Hold and quality-event ids grow past six digits instead of being truncated by lpad.
const ddl = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.work_order (
  work_order              text PRIMARY KEY,
  sku                     text NOT NULL,
  line                    text NOT NULL,
  status                  text NOT NULL,
  planned_quantity        numeric(15,3) NOT NULL,
  good_quantity           numeric(15,3) NOT NULL DEFAULT 0,
  nonconforming_quantity  numeric(15,3) NOT NULL DEFAULT 0,
  scrapped_quantity       numeric(15,3) NOT NULL DEFAULT 0,
  created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.lot (
  lot_id            text PRIMARY KEY,
  work_order        text NOT NULL REFERENCES ${s}.work_order (work_order),
  sku               text NOT NULL,
  quantity          numeric(15,3) NOT NULL CHECK (quantity >= 0),
  unit              text NOT NULL,
  status            text NOT NULL CHECK (status IN ('RELEASED', 'ON_HOLD', 'REWORK', 'SCRAPPED', 'RETURNED')),
  supplier          text,
  purchase_order       text,
  purchase_order_item  text,
  erp_plant         text NOT NULL,
  storage_location  text NOT NULL,
  batch             text NOT NULL,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS lot_work_order_idx ON ${s}.lot (work_order);
ALTER TABLE ${s}.lot
  ADD COLUMN IF NOT EXISTS purchase_order text,
  ADD COLUMN IF NOT EXISTS purchase_order_item text;
CREATE TABLE IF NOT EXISTS ${s}.hold (
  id                  bigserial PRIMARY KEY,
  hold_id             text GENERATED ALWAYS AS ('H-' || lpad(id::text, greatest(6, length(id::text)), '0')) STORED UNIQUE,
  lot_id              text NOT NULL REFERENCES ${s}.lot (lot_id),
  status              text NOT NULL CHECK (status IN ('ACTIVE', 'RELEASED')),
  reason              text NOT NULL,
  defect_class        text NOT NULL,
  line                text NOT NULL,
  station             text NOT NULL,
  external_reference  text NOT NULL,
  disposition         text,
  release_comment     text,
  release_reference   text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  released_at         timestamptz
);
CREATE INDEX IF NOT EXISTS hold_external_reference_idx ON ${s}.hold (external_reference);
CREATE INDEX IF NOT EXISTS hold_active_lot_idx ON ${s}.hold (lot_id) WHERE status = 'ACTIVE';
CREATE TABLE IF NOT EXISTS ${s}.quality_event (
  id                      bigserial PRIMARY KEY,
  quality_event_id        text GENERATED ALWAYS AS ('QE-' || lpad(id::text, greatest(6, length(id::text)), '0')) STORED UNIQUE,
  work_order              text NOT NULL REFERENCES ${s}.work_order (work_order),
  lot_id                  text NOT NULL REFERENCES ${s}.lot (lot_id),
  part_id                 text NOT NULL,
  defect_class            text NOT NULL,
  nonconforming_quantity  numeric(15,3) NOT NULL CHECK (nonconforming_quantity > 0),
  external_reference      text NOT NULL,
  recorded_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS quality_event_work_order_idx ON ${s}.quality_event (work_order, external_reference);
`;

interface HoldRow {
  hold_id: string;
  lot_id: string;
  work_order: string;
  status: 'ACTIVE' | 'RELEASED';
  reason: string;
  defect_class: string;
  line: string;
  station: string;
  external_reference: string;
  disposition: Disposition | null;
  release_comment: string | null;
  release_reference: string | null;
  created_at: Date;
  released_at: Date | null;
}

interface LotRow {
  lot_id: string;
  sku: string;
  work_order: string;
  quantity: string;
  unit: string;
  status: LotStatus;
  supplier: string | null;
  purchase_order: string | null;
  purchase_order_item: string | null;
  erp_plant: string;
  storage_location: string;
  batch: string;
}

interface WorkOrderRow {
  work_order: string;
  sku: string;
  line: string;
  status: string;
  planned_quantity: string;
  good_quantity: string;
  nonconforming_quantity: string;
  scrapped_quantity: string;
  lots_on_hold: string;
  /** Columns job-orders.ts adds. */
  customer_criticality?: number;
  sequence?: number | null;
}

interface QualityEventRow {
  quality_event_id: string;
  work_order: string;
  lot_id: string;
  part_id: string;
  defect_class: string;
  nonconforming_quantity: string;
  external_reference: string;
  recorded_at: Date;
}

const toHold = (r: HoldRow): Hold => ({
  holdId: r.hold_id,
  lotId: r.lot_id,
  workOrder: r.work_order,
  status: r.status,
  reason: r.reason,
  defectClass: r.defect_class,
  line: r.line,
  station: r.station,
  externalReference: r.external_reference,
  createdAt: r.created_at.toISOString(),
  ...(r.disposition !== null ? { disposition: r.disposition } : {}),
  ...(r.release_comment !== null ? { releaseComment: r.release_comment } : {}),
  ...(r.release_reference !== null ? { releaseReference: r.release_reference } : {}),
  ...(r.released_at !== null ? { releasedAt: r.released_at.toISOString() } : {}),
});

const toLot = (r: LotRow, activeHolds: Hold[]): Lot => ({
  lotId: r.lot_id,
  sku: r.sku,
  workOrder: r.work_order,
  quantity: Number(r.quantity),
  unit: r.unit,
  status: r.status,
  ...(r.supplier !== null ? { supplier: r.supplier } : {}),
  ...(r.purchase_order !== null ? { purchaseOrder: r.purchase_order } : {}),
  ...(r.purchase_order_item !== null ? { purchaseOrderItem: r.purchase_order_item } : {}),
  erpPlant: r.erp_plant,
  storageLocation: r.storage_location,
  batch: r.batch,
  activeHolds,
});

const toWorkOrder = (r: WorkOrderRow): WorkOrder => {
  const nonconformingQuantity = Number(r.nonconforming_quantity);
  return {
    workOrder: r.work_order,
    sku: r.sku,
    line: r.line,
    status: r.status,
    plannedQuantity: Number(r.planned_quantity),
    goodQuantity: Number(r.good_quantity),
    nonconformingQuantity,
    scrappedQuantity: Number(r.scrapped_quantity),
    qualityStatus: Number(r.lots_on_hold) > 0 ? 'ON_HOLD' : nonconformingQuantity > 0 ? 'NONCONFORMING' : 'OK',
    ...(r.customer_criticality !== undefined ? { customerCriticality: r.customer_criticality } : {}),
    ...(r.sequence !== undefined ? { sequence: r.sequence } : {}),
  };
};

const toQualityEvent = (r: QualityEventRow): QualityEvent => ({
  qualityEventId: r.quality_event_id,
  workOrder: r.work_order,
  lotId: r.lot_id,
  partId: r.part_id,
  defectClass: r.defect_class,
  nonconformingQuantity: Number(r.nonconforming_quantity),
  externalReference: r.external_reference,
  recordedAt: r.recorded_at.toISOString(),
});

type Queryable = Pick<Pool, 'query'> | PoolClient;

/** The simulator's state in its own PostgreSQL schema. Every write is one transaction; nothing is de-duplicated. */
export function createMesStore(pool: Pool, schema: string) {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid MES simulator schema name "${schema}"`);
  // Identifiers cannot be bound as parameters; the name is checked against SCHEMA_NAME above.
  const s = `"${schema}"`;

  const holdColumns = `h.hold_id, h.lot_id, l.work_order, h.status, h.reason, h.defect_class, h.line, h.station,
    h.external_reference, h.disposition, h.release_comment, h.release_reference, h.created_at, h.released_at`;
  const workOrderSelect = `SELECT w.*, (SELECT count(*) FROM ${s}.lot l WHERE l.work_order = w.work_order
    AND l.status = 'ON_HOLD') AS lots_on_hold FROM ${s}.work_order w`;
  const inTransaction = <T>(work: (client: PoolClient) => Promise<T>): Promise<T> => withTransaction(pool, work);

  async function lockLot(db: PoolClient, lotId: string): Promise<LotRow> {
    const { rows } = await db.query<LotRow>(`SELECT * FROM ${s}.lot WHERE lot_id = $1 FOR UPDATE`, [lotId]);
    if (!rows[0]) throw notFound('lot', lotId);
    return rows[0];
  }

  async function findHolds(db: Queryable, query: HoldQuery): Promise<Hold[]> {
    const { rows } = await db.query<HoldRow>(
      `SELECT ${holdColumns} FROM ${s}.hold h JOIN ${s}.lot l USING (lot_id)
        WHERE ($1::text IS NULL OR h.external_reference = $1)
          AND ($2::text IS NULL OR h.lot_id = $2)
          AND ($3::text IS NULL OR h.status = $3)
        ORDER BY h.id`,
      [query.externalReference ?? null, query.lotId ?? null, query.status ?? null],
    );
    return rows.map(toHold);
  }

  async function findWorkOrder(db: Queryable, workOrder: string): Promise<WorkOrder> {
    const { rows } = await db.query<WorkOrderRow>(`${workOrderSelect} WHERE w.work_order = $1`, [workOrder]);
    if (!rows[0]) throw notFound('work order', workOrder);
    return toWorkOrder(rows[0]);
  }

  async function getLot(lotId: string): Promise<Lot> {
    const { rows } = await pool.query<LotRow>(`SELECT * FROM ${s}.lot WHERE lot_id = $1`, [lotId]);
    if (!rows[0]) throw notFound('lot', lotId);
    return toLot(rows[0], await findHolds(pool, { lotId, status: 'ACTIVE' }));
  }

  async function insertWorkOrder(db: Queryable, wo: SimWorkOrderBody): Promise<boolean> {
    const { rowCount } = await db.query(
      `INSERT INTO ${s}.work_order (work_order, sku, line, status, planned_quantity, good_quantity)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (work_order) DO NOTHING`,
      [wo.workOrder, wo.sku, wo.line, wo.status, wo.plannedQuantity, wo.goodQuantity],
    );
    return rowCount === 1;
  }

  async function insertLot(db: Queryable, lot: Omit<SimLotBody, 'line' | 'plannedQuantity'>): Promise<boolean> {
    const { rowCount } = await db.query(
      `INSERT INTO ${s}.lot (lot_id, work_order, sku, quantity, unit, status, supplier, purchase_order,
                            purchase_order_item, erp_plant, storage_location, batch)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (lot_id) DO NOTHING`,
      [
        lot.lotId,
        lot.workOrder,
        lot.sku,
        lot.quantity,
        lot.unit,
        lot.status,
        lot.supplier ?? null,
        lot.purchaseOrder ?? null,
        lot.purchaseOrderItem ?? null,
        lot.erpPlant,
        lot.storageLocation,
        lot.batch ?? lot.lotId,
      ],
    );
    return rowCount === 1;
  }

  return {
    schema,

    /** Creates the schema and tables; concurrent starts on one database serialise on an advisory lock. */
    async migrate(): Promise<void> {
      await inTransaction(async (db) => {
        await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`holdfast-mes-sim:${schema}`]);
        await db.query(ddl(s));
      });
    },

    /** Inserts the demo plant's work orders and lots; existing rows (and their state) are left alone. */
    async seedDemo(): Promise<void> {
      await inTransaction(async (db) => {
        for (const wo of DEMO_WORK_ORDERS) {
          await insertWorkOrder(db, { ...wo, goodQuantity: 0, status: 'IN_PROGRESS' });
        }
        for (const lot of DEMO_LOTS) {
          await insertLot(db, { ...lot, status: 'RELEASED' });
        }
      });
    },

    getLot,

    async holdLot(lotId: string, body: HoldBody): Promise<Hold> {
      return inTransaction(async (db) => {
        const lot = await lockLot(db, lotId);
        if (CLOSED_LOT_STATUSES.includes(lot.status)) {
          throw new MesProblem(409, 'LOT_CLOSED', `lot ${lotId} is ${lot.status} and cannot be put on hold`);
        }
        if (body.workOrder !== undefined && body.workOrder !== lot.work_order) {
          throw new MesProblem(
            422,
            'WORK_ORDER_MISMATCH',
            `lot ${lotId} belongs to work order ${lot.work_order}, not ${body.workOrder}`,
          );
        }
        const { rows } = await db.query<{ id: string }>(
          `INSERT INTO ${s}.hold (lot_id, status, reason, defect_class, line, station, external_reference)
           VALUES ($1, 'ACTIVE', $2, $3, $4, $5, $6) RETURNING id`,
          [lotId, body.reason, body.defectClass, body.line, body.station, body.externalReference],
        );
        await db.query(`UPDATE ${s}.lot SET status = 'ON_HOLD', updated_at = now() WHERE lot_id = $1`, [lotId]);
        const created = await db.query<HoldRow>(
          `SELECT ${holdColumns} FROM ${s}.hold h JOIN ${s}.lot l USING (lot_id) WHERE h.id = $1`,
          [rows[0]!.id],
        );
        return toHold(created.rows[0]!);
      });
    },

    async getHold(holdId: string): Promise<Hold> {
      const { rows } = await pool.query<HoldRow>(
        `SELECT ${holdColumns} FROM ${s}.hold h JOIN ${s}.lot l USING (lot_id) WHERE h.hold_id = $1`,
        [holdId],
      );
      if (!rows[0]) throw notFound('hold', holdId);
      return toHold(rows[0]);
    },

    findHolds: (query: HoldQuery) => findHolds(pool, query),

    /**
     * Closes the hold. The lot takes the disposition's status only when no other hold is still active
     * (the last release decides). A repeat with the same disposition answers the current state unchanged.
     */
    async releaseHold(holdId: string, body: ReleaseBody): Promise<HoldReleased> {
      return inTransaction(async (db) => {
        const found = await db.query<{ lot_id: string }>(`SELECT lot_id FROM ${s}.hold WHERE hold_id = $1`, [holdId]);
        if (!found.rows[0]) throw notFound('hold', holdId);
        // Lot first, then hold: the same lock order as holdLot, so concurrent hold and release cannot deadlock.
        const lot = await lockLot(db, found.rows[0].lot_id);
        const { rows } = await db.query<HoldRow>(
          `SELECT ${holdColumns} FROM ${s}.hold h JOIN ${s}.lot l USING (lot_id) WHERE h.hold_id = $1 FOR UPDATE OF h`,
          [holdId],
        );
        const hold = rows[0]!;
        if (hold.status === 'RELEASED') {
          if (hold.disposition !== body.disposition) {
            throw new MesProblem(
              409,
              'HOLD_ALREADY_RELEASED',
              `hold ${holdId} was already released with disposition ${hold.disposition ?? 'none'}`,
            );
          }
          return { ...toHold(hold), lotStatus: lot.status };
        }
        if (body.disposition === 'return-to-vendor' && lot.supplier === null) {
          throw new MesProblem(
            409,
            'LOT_NOT_PURCHASED',
            `lot ${lot.lot_id} was made in-house and has no supplier to return it to`,
          );
        }
        await db.query(
          `UPDATE ${s}.hold SET status = 'RELEASED', disposition = $2, release_comment = $3, release_reference = $4,
             released_at = now() WHERE hold_id = $1`,
          [holdId, body.disposition, body.comment, body.externalReference],
        );
        const others = await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${s}.hold WHERE lot_id = $1 AND status = 'ACTIVE'`,
          [lot.lot_id],
        );
        let lotStatus = lot.status;
        if (Number(others.rows[0]!.n) === 0) {
          lotStatus = LOT_STATUS_AFTER[body.disposition];
          await db.query(`UPDATE ${s}.lot SET status = $2, updated_at = now() WHERE lot_id = $1`, [
            lot.lot_id,
            lotStatus,
          ]);
          if (lotStatus === 'SCRAPPED') {
            await db.query(
              `UPDATE ${s}.work_order SET scrapped_quantity = scrapped_quantity + $2 WHERE work_order = $1`,
              [lot.work_order, lot.quantity],
            );
          }
        }
        const released = await db.query<HoldRow>(
          `SELECT ${holdColumns} FROM ${s}.hold h JOIN ${s}.lot l USING (lot_id) WHERE h.hold_id = $1`,
          [holdId],
        );
        return { ...toHold(released.rows[0]!), lotStatus };
      });
    },

    getWorkOrder: (workOrder: string) => findWorkOrder(pool, workOrder),

    async recordQualityEvent(workOrder: string, body: QualityEventBody): Promise<QualityEventCreated> {
      return inTransaction(async (db) => {
        const wo = await db.query(`SELECT 1 FROM ${s}.work_order WHERE work_order = $1 FOR UPDATE`, [workOrder]);
        if (wo.rowCount === 0) throw notFound('work order', workOrder);
        const lot = await db.query<LotRow>(`SELECT * FROM ${s}.lot WHERE lot_id = $1`, [body.lotId]);
        if (!lot.rows[0]) throw notFound('lot', body.lotId);
        if (lot.rows[0].work_order !== workOrder) {
          throw new MesProblem(
            422,
            'LOT_NOT_IN_WORK_ORDER',
            `lot ${body.lotId} belongs to work order ${lot.rows[0].work_order}, not ${workOrder}`,
          );
        }
        const { rows } = await db.query<QualityEventRow>(
          `INSERT INTO ${s}.quality_event (work_order, lot_id, part_id, defect_class, nonconforming_quantity,
             external_reference) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
          [workOrder, body.lotId, body.partId, body.defectClass, body.nonconformingQuantity, body.externalReference],
        );
        await db.query(
          `UPDATE ${s}.work_order SET nonconforming_quantity = nonconforming_quantity + $2 WHERE work_order = $1`,
          [workOrder, body.nonconformingQuantity],
        );
        return { ...toQualityEvent(rows[0]!), workOrderQuality: await findWorkOrder(db, workOrder) };
      });
    },

    async findQualityEvents(workOrder: string, query: QualityEventQuery): Promise<QualityEvent[]> {
      await findWorkOrder(pool, workOrder);
      const { rows } = await pool.query<QualityEventRow>(
        `SELECT * FROM ${s}.quality_event WHERE work_order = $1
            AND ($2::text IS NULL OR external_reference = $2)
            AND ($3::text IS NULL OR part_id = $3)
          ORDER BY id`,
        [workOrder, query.externalReference ?? null, query.partId ?? null],
      );
      return rows.map(toQualityEvent);
    },

    /** Admin: creates the work order unless it exists; `created` is false when it was already there. */
    async createWorkOrder(body: SimWorkOrderBody): Promise<{ created: boolean; workOrder: WorkOrder }> {
      const created = await insertWorkOrder(pool, body);
      return { created, workOrder: await findWorkOrder(pool, body.workOrder) };
    },

    /** Admin: creates the lot, and its work order when missing; `created` is false when the lot was already there. */
    async createLot(body: SimLotBody): Promise<{ created: boolean; lot: Lot }> {
      const created = await inTransaction(async (db) => {
        await insertWorkOrder(db, {
          workOrder: body.workOrder,
          sku: body.sku,
          line: body.line,
          plannedQuantity: body.plannedQuantity ?? body.quantity,
          goodQuantity: 0,
          status: 'IN_PROGRESS',
        });
        const owner = await db.query<{ sku: string }>(`SELECT sku FROM ${s}.work_order WHERE work_order = $1`, [
          body.workOrder,
        ]);
        if (owner.rows[0]!.sku !== body.sku) {
          throw new MesProblem(
            422,
            'SKU_MISMATCH',
            `work order ${body.workOrder} makes ${owner.rows[0]!.sku}, not ${body.sku}`,
          );
        }
        return insertLot(db, body);
      });
      return { created, lot: await getLot(body.lotId) };
    },

    async counts(): Promise<Counts> {
      const { rows } = await pool.query<{ holds: string; active_holds: string; quality_events: string }>(
        `SELECT (SELECT count(*) FROM ${s}.hold) AS holds,
                (SELECT count(*) FROM ${s}.hold WHERE status = 'ACTIVE') AS active_holds,
                (SELECT count(*) FROM ${s}.quality_event) AS quality_events`,
      );
      const r = rows[0]!;
      return { holds: Number(r.holds), activeHolds: Number(r.active_holds), qualityEvents: Number(r.quality_events) };
    },
  };
}

export type MesStore = ReturnType<typeof createMesStore>;
