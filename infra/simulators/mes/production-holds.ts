import type { Pool } from 'pg';
import type {
  LineHoldBody,
  OrderHoldBody,
  ProductionHold,
  ProductionHoldQuery,
  ProductionHoldReleaseBody,
} from './production-hold.schema';
import { MesProblem } from './mes.store';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** After the MES store's tables (work_order), which order holds refer to. */
const ddl = (s: string) => `
CREATE SEQUENCE IF NOT EXISTS ${s}.production_hold_seq;
CREATE TABLE IF NOT EXISTS ${s}.production_hold (
  hold_id             text PRIMARY KEY,
  scope               text NOT NULL CHECK (scope IN ('LINE', 'WORK_ORDER')),
  line                text NOT NULL,
  work_order          text,
  station             text,
  status              text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'RELEASED')),
  reason              text NOT NULL,
  external_reference  text NOT NULL,
  created_at          timestamptz NOT NULL DEFAULT now(),
  release_comment     text,
  release_reference   text,
  released_at         timestamptz,
  release_requests    integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS production_hold_reference_idx ON ${s}.production_hold (external_reference);
CREATE INDEX IF NOT EXISTS production_hold_line_idx ON ${s}.production_hold (line, status);
`;

interface Row {
  hold_id: string;
  scope: ProductionHold['scope'];
  line: string;
  work_order: string | null;
  station: string | null;
  status: ProductionHold['status'];
  reason: string;
  external_reference: string;
  created_at: Date;
  release_comment: string | null;
  release_reference: string | null;
  released_at: Date | null;
}

const toHold = (r: Row): ProductionHold => ({
  holdId: r.hold_id,
  scope: r.scope,
  line: r.line,
  ...(r.work_order !== null ? { workOrder: r.work_order } : {}),
  ...(r.station !== null ? { station: r.station } : {}),
  status: r.status,
  reason: r.reason,
  externalReference: r.external_reference,
  createdAt: r.created_at.toISOString(),
  ...(r.release_comment !== null ? { releaseComment: r.release_comment } : {}),
  ...(r.release_reference !== null ? { releaseReference: r.release_reference } : {}),
  ...(r.released_at !== null ? { releasedAt: r.released_at.toISOString() } : {}),
});

/**
 * Line and work-order holds (production holds). Like every create of this MES, a hold is not de-duplicated: the same
 * body twice is two holds. A release answers a repeat with the same `externalReference` unchanged (200), and refuses a
 * release of a released hold under another reference (409 HOLD_ALREADY_RELEASED).
 */
export function createProductionHoldStore(pool: Pool, schema: string) {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid MES simulator schema name: ${schema}`);
  const s = schema;
  const insert = async (
    scope: ProductionHold['scope'],
    line: string,
    workOrder: string | null,
    body: OrderHoldBody,
  ) => {
    const { rows } = await pool.query<Row>(
      `INSERT INTO ${s}.production_hold (hold_id, scope, line, work_order, station, reason, external_reference)
       VALUES ('PH-' || lpad(nextval('${s}.production_hold_seq')::text, 6, '0'), $1, $2, $3, $4, $5, $6)
       RETURNING *`,
      [scope, line, workOrder, body.station ?? null, body.reason, body.externalReference],
    );
    return toHold(rows[0]!);
  };
  return {
    async migrate(): Promise<void> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [
          `holdfast-mes-sim:${schema}:production-holds`,
        ]);
        await client.query(ddl(s));
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },

    holdLine(line: string, body: LineHoldBody): Promise<ProductionHold> {
      return insert('LINE', line, body.workOrder ?? null, body);
    },

    async holdOrder(workOrder: string, body: OrderHoldBody): Promise<ProductionHold> {
      const { rows } = await pool.query<{ line: string }>(`SELECT line FROM ${s}.work_order WHERE work_order = $1`, [
        workOrder,
      ]);
      if (!rows[0]) throw new MesProblem(404, 'NOT_FOUND', `work order ${workOrder} does not exist`);
      return insert('WORK_ORDER', rows[0].line, workOrder, body);
    },

    async find(q: ProductionHoldQuery): Promise<ProductionHold[]> {
      const { rows } = await pool.query<Row>(
        `SELECT * FROM ${s}.production_hold
          WHERE ($1::text IS NULL OR external_reference = $1) AND ($2::text IS NULL OR line = $2)
            AND ($3::text IS NULL OR work_order = $3) AND ($4::text IS NULL OR status = $4)
          ORDER BY created_at, hold_id`,
        [q.externalReference ?? null, q.line ?? null, q.workOrder ?? null, q.status ?? null],
      );
      return rows.map(toHold);
    },

    async get(holdId: string): Promise<ProductionHold> {
      const { rows } = await pool.query<Row>(`SELECT * FROM ${s}.production_hold WHERE hold_id = $1`, [holdId]);
      if (!rows[0]) throw new MesProblem(404, 'NOT_FOUND', `production hold ${holdId} does not exist`);
      return toHold(rows[0]);
    },

    async release(holdId: string, body: ProductionHoldReleaseBody): Promise<ProductionHold> {
      const { rows } = await pool.query<Row>(
        `UPDATE ${s}.production_hold
            SET status = 'RELEASED', released_at = COALESCE(released_at, now()),
                release_comment = COALESCE(release_comment, $2), release_reference = COALESCE(release_reference, $3),
                release_requests = release_requests + 1
          WHERE hold_id = $1 AND (status = 'ACTIVE' OR release_reference = $3)
          RETURNING *`,
        [holdId, body.comment, body.externalReference],
      );
      if (rows[0]) return toHold(rows[0]);
      const existing = await this.get(holdId);
      throw new MesProblem(
        409,
        'HOLD_ALREADY_RELEASED',
        `production hold ${holdId} was released under ${existing.releaseReference ?? '?'}`,
      );
    },

    async lineStatus(line: string) {
      const active = await this.find({ line, status: 'ACTIVE' });
      const lineHolds = active.filter((h) => h.scope === 'LINE');
      return {
        line,
        status: lineHolds.length > 0 ? ('ON_HOLD' as const) : ('RUNNING' as const),
        activeHolds: lineHolds,
      };
    },

    async counts() {
      const { rows } = await pool.query<{ holds: string; active: string; released: string; requests: string }>(
        `SELECT count(*) AS holds, count(*) FILTER (WHERE status = 'ACTIVE') AS active,
                count(*) FILTER (WHERE status = 'RELEASED') AS released,
                COALESCE(sum(release_requests), 0) AS requests
           FROM ${s}.production_hold`,
      );
      const r = rows[0]!;
      return {
        holds: Number(r.holds),
        active: Number(r.active),
        released: Number(r.released),
        releaseRequests: Number(r.requests),
      };
    },
  };
}
