import type { Pool, PoolClient } from 'pg';
import { withTransaction } from '../../db/pool';
import type {
  DispatchStatus,
  JobOrderEvent,
  JobOrderEventType,
  LineOrder,
  ProductionRelease,
  ProductionReleaseBody,
  Resequencing,
  ResequencingBody,
  SimJobOrderRelease,
} from './job-order.schema';
import { MesProblem } from './mes.store';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** After the MES store's tables (work_order, lot, hold), which these extend. */
const ddl = (s: string) => `
ALTER TABLE ${s}.work_order
  ADD COLUMN IF NOT EXISTS site                  text NOT NULL DEFAULT 'PLANT1',
  ADD COLUMN IF NOT EXISTS area                  text NOT NULL DEFAULT 'ASSEMBLY',
  ADD COLUMN IF NOT EXISTS unit                  text NOT NULL DEFAULT 'PC',
  ADD COLUMN IF NOT EXISTS customer_criticality  integer NOT NULL DEFAULT 5,
  ADD COLUMN IF NOT EXISTS sequence              integer,
  ADD COLUMN IF NOT EXISTS priority              integer,
  ADD COLUMN IF NOT EXISTS work_master_id        text,
  ADD COLUMN IF NOT EXISTS revision              integer NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS ${s}.job_order_event (
  -- The cursor: the order the MES recorded the events in.
  seq          bigserial PRIMARY KEY,
  event_id     text NOT NULL UNIQUE,
  work_order   text NOT NULL,
  payload      jsonb NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${s}.production_release (
  id                  bigserial PRIMARY KEY,
  work_order          text NOT NULL REFERENCES ${s}.work_order (work_order),
  line                text NOT NULL,
  external_reference  text NOT NULL,
  released_by         text NOT NULL,
  comment             text NOT NULL,
  released_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS production_release_order_idx ON ${s}.production_release (work_order, id);
CREATE TABLE IF NOT EXISTS ${s}.resequencing_request (
  id                  bigserial PRIMARY KEY,
  request_id          text GENERATED ALWAYS AS ('RS-' || lpad(id::text, greatest(6, length(id::text)), '0')) STORED UNIQUE,
  line                text NOT NULL,
  component_lot       text NOT NULL,
  action              text NOT NULL,
  orders              jsonb,
  reason              text NOT NULL,
  external_reference  text NOT NULL,
  status              text NOT NULL,
  status_reason       text,
  created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS resequencing_reference_idx ON ${s}.resequencing_request (external_reference);
`;

interface OrderRow {
  work_order: string;
  sku: string;
  site: string;
  area: string;
  line: string;
  status: string;
  planned_quantity: string;
  unit: string;
  customer_criticality: number;
  sequence: number | null;
  priority: number | null;
  work_master_id: string | null;
  revision: number;
}

interface ReleaseRow {
  work_order: string;
  line: string;
  external_reference: string;
  released_by: string;
  comment: string;
  released_at: Date;
}

interface ResequencingRow {
  request_id: string;
  line: string;
  component_lot: string;
  action: Resequencing['action'];
  orders: string[] | null;
  reason: string;
  external_reference: string;
  status: Resequencing['status'];
  status_reason: string | null;
  created_at: Date;
}

/** Work-order status (the MES's own words) → the job order's state after the event. */
const DISPATCH_STATUS: Record<string, DispatchStatus> = {
  RELEASED: 'AllowedToStart',
  IN_PROGRESS: 'Running',
  COMPLETED: 'Ended',
};
const OPEN_STATUSES = ['RELEASED', 'IN_PROGRESS'];

const toRelease = (r: ReleaseRow): ProductionRelease => ({
  workOrder: r.work_order,
  line: r.line,
  externalReference: r.external_reference,
  releasedBy: r.released_by,
  comment: r.comment,
  releasedAt: r.released_at.toISOString(),
});

const toResequencing = (r: ResequencingRow): Resequencing => ({
  requestId: r.request_id,
  line: r.line,
  componentLot: r.component_lot,
  action: r.action,
  ...(r.orders !== null ? { orders: r.orders } : {}),
  reason: r.reason,
  externalReference: r.external_reference,
  status: r.status,
  ...(r.status_reason !== null ? { statusReason: r.status_reason } : {}),
  createdAt: r.created_at.toISOString(),
});

/** Changes an order made: the events to publish once the transaction committed. */
export interface JobOrderChange<T> {
  result: T;
  events: JobOrderEvent[];
}

/**
 * The MES's production orders as ISA-95 job orders: each change to an order (released, started, changed, completed)
 * raises the order's revision and records one job-order event, kept once by event id, readable with a cursor. Also
 * production releases (a changeover's end) and resequencing requests (scheduling advice), both applied at once.
 */
export function createJobOrderStore(pool: Pool, schema: string) {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid MES schema name "${schema}"`);
  const s = `"${schema}"`;
  const tx = <T>(work: (db: PoolClient) => Promise<T>) => withTransaction(pool, work);

  async function lockOrder(db: PoolClient, workOrder: string): Promise<OrderRow> {
    const { rows } = await db.query<OrderRow>(`SELECT * FROM ${s}.work_order WHERE work_order = $1 FOR UPDATE`, [
      workOrder,
    ]);
    if (!rows[0]) throw new MesProblem(404, 'NOT_FOUND', `work order ${workOrder} does not exist`);
    return rows[0];
  }

  /** Raises the order's revision and records the event describing it as it now is. */
  async function emit(db: PoolClient, workOrder: string, eventType: JobOrderEventType): Promise<JobOrderEvent> {
    const { rows } = await db.query<OrderRow>(
      `UPDATE ${s}.work_order SET revision = revision + 1 WHERE work_order = $1 RETURNING *`,
      [workOrder],
    );
    const o = rows[0]!;
    const event: JobOrderEvent = {
      eventId: `JO-${o.work_order}-r${o.revision}`,
      eventType,
      publishedDate: new Date().toISOString(),
      hierarchyScope: { site: o.site, area: o.area, line: o.line },
      jobOrder: {
        id: o.work_order,
        ...(o.work_master_id !== null ? { workMasterId: o.work_master_id } : {}),
        ...(o.priority !== null ? { priority: o.priority } : {}),
        ...(o.sequence !== null ? { sequence: o.sequence } : {}),
        dispatchStatus: DISPATCH_STATUS[o.status] ?? 'AllowedToStart',
        customerCriticality: o.customer_criticality,
        revision: o.revision,
        materialRequirements: [
          {
            materialUse: 'Produced',
            materialDefinitionId: o.sku,
            quantity: { quantityString: String(Number(o.planned_quantity)), unitOfMeasure: o.unit },
          },
        ],
      },
    };
    await db.query(`INSERT INTO ${s}.job_order_event (event_id, work_order, payload) VALUES ($1, $2, $3)`, [
      event.eventId,
      workOrder,
      JSON.stringify(event),
    ]);
    return event;
  }

  async function openOrders(db: PoolClient | Pool, line: string): Promise<OrderRow[]> {
    const { rows } = await db.query<OrderRow>(
      `SELECT * FROM ${s}.work_order WHERE line = $1 AND status = ANY($2::text[])
        ORDER BY sequence NULLS LAST, created_at, work_order`,
      [line, OPEN_STATUSES],
    );
    return rows;
  }

  async function resequence(db: PoolClient, rows: OrderRow[]): Promise<JobOrderEvent[]> {
    const events: JobOrderEvent[] = [];
    for (const [i, row] of rows.entries()) {
      if (row.sequence === i + 1) continue;
      await db.query(`UPDATE ${s}.work_order SET sequence = $2 WHERE work_order = $1`, [row.work_order, i + 1]);
      events.push(await emit(db, row.work_order, 'JobOrderChanged'));
    }
    return events;
  }

  return {
    async migrate(): Promise<void> {
      await tx(async (db) => {
        await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`holdfast-mes-sim:${schema}:job-orders`]);
        await db.query(ddl(s));
      });
    },

    /** Releases the order to its line (created when new, its plan replaced when it exists and has not ended). */
    async release(body: SimJobOrderRelease): Promise<JobOrderEvent> {
      return tx(async (db) => {
        const existing = await db.query<OrderRow>(`SELECT * FROM ${s}.work_order WHERE work_order = $1 FOR UPDATE`, [
          body.workOrder,
        ]);
        const row = existing.rows[0];
        if (row && row.sku !== body.sku) {
          throw new MesProblem(422, 'SKU_MISMATCH', `work order ${body.workOrder} makes ${row.sku}, not ${body.sku}`);
        }
        if (row?.status === 'COMPLETED') {
          throw new MesProblem(409, 'ORDER_ENDED', `work order ${body.workOrder} is completed`);
        }
        const last = await db.query<{ n: number | null }>(
          `SELECT max(sequence) AS n FROM ${s}.work_order WHERE line = $1 AND status = ANY($2::text[])`,
          [body.line, OPEN_STATUSES],
        );
        const sequence = body.sequence ?? (last.rows[0]?.n ?? 0) + 1;
        await db.query(
          `INSERT INTO ${s}.work_order (work_order, sku, line, status, planned_quantity, site, area, unit,
             customer_criticality, sequence, priority, work_master_id)
           VALUES ($1, $2, $3, 'RELEASED', $4, $5, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (work_order) DO UPDATE SET line = $3, planned_quantity = $4, site = $5, area = $6, unit = $7,
             customer_criticality = $8, sequence = $9, priority = $10, work_master_id = $11`,
          [
            body.workOrder,
            body.sku,
            body.line,
            body.plannedQuantity,
            body.site,
            body.area,
            body.unit,
            body.customerCriticality,
            sequence,
            body.priority ?? null,
            body.workMasterId ?? null,
          ],
        );
        return emit(db, body.workOrder, 'JobOrderReleased');
      });
    },

    async start(workOrder: string, line?: string): Promise<JobOrderEvent> {
      return tx(async (db) => {
        const row = await lockOrder(db, workOrder);
        if (row.status === 'COMPLETED')
          throw new MesProblem(409, 'ORDER_ENDED', `work order ${workOrder} is completed`);
        await db.query(`UPDATE ${s}.work_order SET status = 'IN_PROGRESS', line = $2 WHERE work_order = $1`, [
          workOrder,
          line ?? row.line,
        ]);
        return emit(db, workOrder, 'JobOrderStarted');
      });
    },

    async change(
      workOrder: string,
      fields: { plannedQuantity?: number; customerCriticality?: number; sequence?: number; priority?: number },
    ): Promise<JobOrderEvent> {
      return tx(async (db) => {
        const row = await lockOrder(db, workOrder);
        if (row.status === 'COMPLETED')
          throw new MesProblem(409, 'ORDER_ENDED', `work order ${workOrder} is completed`);
        await db.query(
          `UPDATE ${s}.work_order SET planned_quantity = coalesce($2, planned_quantity),
             customer_criticality = coalesce($3, customer_criticality), sequence = coalesce($4, sequence),
             priority = coalesce($5, priority) WHERE work_order = $1`,
          [
            workOrder,
            fields.plannedQuantity ?? null,
            fields.customerCriticality ?? null,
            fields.sequence ?? null,
            fields.priority ?? null,
          ],
        );
        return emit(db, workOrder, 'JobOrderChanged');
      });
    },

    async complete(workOrder: string): Promise<JobOrderEvent> {
      return tx(async (db) => {
        const row = await lockOrder(db, workOrder);
        if (row.status === 'COMPLETED')
          throw new MesProblem(409, 'ORDER_ENDED', `work order ${workOrder} is completed`);
        await db.query(`UPDATE ${s}.work_order SET status = 'COMPLETED', sequence = NULL WHERE work_order = $1`, [
          workOrder,
        ]);
        return emit(db, workOrder, 'JobOrderCompleted');
      });
    },

    async getEvent(eventId: string): Promise<JobOrderEvent> {
      const { rows } = await pool.query<{ payload: JobOrderEvent }>(
        `SELECT payload FROM ${s}.job_order_event WHERE event_id = $1`,
        [eventId],
      );
      if (!rows[0]) throw new MesProblem(404, 'NOT_FOUND', `job-order event ${eventId} does not exist`);
      return rows[0].payload;
    },

    /** Events after `after` (a cursor from an earlier page), in the order the MES recorded them. */
    async list(
      after: string | undefined,
      limit: number,
    ): Promise<{ items: JobOrderEvent[]; nextCursor: string | null }> {
      const { rows } = await pool.query<{ cursor: string; payload: JobOrderEvent }>(
        `SELECT seq::text AS cursor, payload FROM ${s}.job_order_event WHERE seq > $1 ORDER BY job_order_event.seq
          LIMIT $2`,
        [after ?? '0', limit],
      );
      return { items: rows.map((r) => r.payload), nextCursor: rows.at(-1)?.cursor ?? after ?? null };
    },

    /**
     * Releases the order for production on its line. A repeat with an externalReference already on one of the
     * order's releases answers that release; any other is kept as another release (not de-duplicated, like every
     * create here). `created` is false for a repeat.
     */
    async releaseForProduction(
      workOrder: string,
      body: ProductionReleaseBody,
    ): Promise<{ created: boolean; release: ProductionRelease }> {
      return tx(async (db) => {
        const row = await lockOrder(db, workOrder);
        if (row.line !== body.line) {
          throw new MesProblem(
            422,
            'LINE_MISMATCH',
            `work order ${workOrder} runs on line ${row.line}, not ${body.line}`,
          );
        }
        const repeat = await db.query<ReleaseRow>(
          `SELECT * FROM ${s}.production_release WHERE work_order = $1 AND external_reference = $2 ORDER BY id LIMIT 1`,
          [workOrder, body.externalReference],
        );
        if (repeat.rows[0]) return { created: false, release: toRelease(repeat.rows[0]) };
        const { rows } = await db.query<ReleaseRow>(
          `INSERT INTO ${s}.production_release (work_order, line, external_reference, released_by, comment)
           VALUES ($1, $2, $3, $4, $5) RETURNING *`,
          [workOrder, body.line, body.externalReference, body.releasedBy, body.comment],
        );
        return { created: true, release: toRelease(rows[0]!) };
      });
    },

    /** The order's first production release; 404 when it was never released. */
    async getProductionRelease(workOrder: string): Promise<ProductionRelease> {
      const { rows } = await pool.query<ReleaseRow>(
        `SELECT r.* FROM ${s}.production_release r WHERE r.work_order = $1 ORDER BY r.id LIMIT 1`,
        [workOrder],
      );
      if (rows[0]) return toRelease(rows[0]);
      const known = await pool.query(`SELECT 1 FROM ${s}.work_order WHERE work_order = $1`, [workOrder]);
      throw new MesProblem(
        404,
        'NOT_FOUND',
        known.rowCount === 0
          ? `work order ${workOrder} does not exist`
          : `work order ${workOrder} is not released for production`,
      );
    },

    /** The line's open orders (released or running) in sequence; `sequence` is the position, 1 first. */
    async lineOrders(line: string): Promise<LineOrder[]> {
      return (await openOrders(pool, line)).map((o, i) => ({
        workOrder: o.work_order,
        sku: o.sku,
        line: o.line,
        status: o.status,
        sequence: i + 1,
        customerCriticality: o.customer_criticality,
        plannedQuantity: Number(o.planned_quantity),
      }));
    },

    /**
     * Applies the request at once and keeps it with the MES's answer. `hold-remaining`: the lot is put on hold (a
     * hold carrying the request's externalReference). `use-on-less-critical`: the named orders move up, in the order
     * given, behind the orders already running, and every order whose position changed gets a JobOrderChanged event.
     * Refused (REJECTED, with the reason) when the lot or an order is unknown or not open on the line. Not
     * de-duplicated: the same body twice is two requests.
     */
    async requestResequencing(body: ResequencingBody): Promise<JobOrderChange<Resequencing>> {
      return tx(async (db) => {
        let events: JobOrderEvent[] = [];
        const refuse = (why: string) => ({ status: 'REJECTED' as const, why });
        const decide = async (): Promise<{ status: 'ACCEPTED' } | { status: 'REJECTED'; why: string }> => {
          const lot = await db.query<{ status: string }>(`SELECT status FROM ${s}.lot WHERE lot_id = $1 FOR UPDATE`, [
            body.componentLot,
          ]);
          if (!lot.rows[0]) return refuse(`component lot ${body.componentLot} is unknown to the MES`);
          if (body.action === 'hold-remaining') {
            if (['SCRAPPED', 'RETURNED'].includes(lot.rows[0].status)) {
              return refuse(`component lot ${body.componentLot} is ${lot.rows[0].status}`);
            }
            await db.query(
              `INSERT INTO ${s}.hold (lot_id, status, reason, defect_class, line, station, external_reference)
               VALUES ($1, 'ACTIVE', $2, 'scheduling-advice', $3, '-', $4)`,
              [body.componentLot, body.reason.slice(0, 500), body.line, body.externalReference],
            );
            await db.query(`UPDATE ${s}.lot SET status = 'ON_HOLD', updated_at = now() WHERE lot_id = $1`, [
              body.componentLot,
            ]);
            return { status: 'ACCEPTED' };
          }
          const named = body.orders ?? [];
          if (named.length === 0) return refuse('use-on-less-critical names no orders');
          const open = await openOrders(db, body.line);
          const byId = new Map(open.map((o) => [o.work_order, o]));
          const missing = named.filter((wo) => !byId.has(wo));
          if (missing.length > 0) return refuse(`not open on line ${body.line}: ${missing.join(', ')}`);
          const running = open.filter((o) => o.status === 'IN_PROGRESS' && !named.includes(o.work_order));
          const rest = open.filter((o) => o.status !== 'IN_PROGRESS' && !named.includes(o.work_order));
          events = await resequence(db, [...running, ...named.map((wo) => byId.get(wo)!), ...rest]);
          return { status: 'ACCEPTED' };
        };
        const decision = await decide();
        const { rows } = await db.query<ResequencingRow>(
          `INSERT INTO ${s}.resequencing_request (line, component_lot, action, orders, reason, external_reference,
             status, status_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
          [
            body.line,
            body.componentLot,
            body.action,
            body.orders === undefined ? null : JSON.stringify(body.orders),
            body.reason,
            body.externalReference,
            decision.status,
            decision.status === 'REJECTED' ? decision.why : null,
          ],
        );
        return { result: toResequencing(rows[0]!), events };
      });
    },

    async getResequencing(requestId: string): Promise<Resequencing> {
      const { rows } = await pool.query<ResequencingRow>(
        `SELECT * FROM ${s}.resequencing_request WHERE request_id = $1`,
        [requestId],
      );
      if (!rows[0]) throw new MesProblem(404, 'NOT_FOUND', `resequencing request ${requestId} does not exist`);
      return toResequencing(rows[0]);
    },

    async findResequencing(externalReference: string | undefined): Promise<Resequencing[]> {
      const { rows } = await pool.query<ResequencingRow>(
        `SELECT * FROM ${s}.resequencing_request WHERE ($1::text IS NULL OR external_reference = $1) ORDER BY id`,
        [externalReference ?? null],
      );
      return rows.map(toResequencing);
    },
  };
}

export type JobOrderStore = ReturnType<typeof createJobOrderStore>;
