import { connectAsync, type MqttClient } from 'mqtt';
import type { Pool } from 'pg';
import { withTransaction } from '../../db/pool';
import { jobOrderTopic, type JobOrderEvent } from './job-order.schema';
import { productionEventTopic, type ProductionPerformanceEvent } from './production-event.schema';

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const ROWS_PER_STATEMENT = 2000;

const ddl = (s: string) => `
CREATE TABLE IF NOT EXISTS ${s}.production_event (
  -- The cursor: the order the MES recorded the events in, which is not always the order they happened in.
  seq           bigserial PRIMARY KEY,
  event_id      text NOT NULL UNIQUE,
  line          text NOT NULL,
  payload       jsonb NOT NULL,
  recorded_at   timestamptz NOT NULL DEFAULT now()
);
`;

export interface RecordedEvents {
  /** Events stored now; an event id the MES already has is not stored again (the REST record is unique by id). */
  recorded: number;
  duplicates: number;
}

/**
 * The MES's record of production performance: each event once (by `eventId`), in arrival order, readable with a
 * cursor. Recording an event also books what it produced: the work order and the produced lots, so the lots exist for
 * holds like any other.
 */
export function createProductionEventStore(pool: Pool, schema: string) {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid MES schema name "${schema}"`);
  const s = `"${schema}"`;
  return {
    async migrate(): Promise<void> {
      await pool.query(ddl(s));
    },

    async record(events: ProductionPerformanceEvent[]): Promise<RecordedEvents> {
      let recorded = 0;
      await withTransaction(pool, async (db) => {
        for (let i = 0; i < events.length; i += ROWS_PER_STATEMENT) {
          const batch = events.slice(i, i + ROWS_PER_STATEMENT);
          const inserted = await db.query(
            `INSERT INTO ${s}.production_event (event_id, line, payload)
             SELECT e, l, p::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(e, l, p, o)
              ORDER BY o
             ON CONFLICT (event_id) DO NOTHING`,
            [batch.map((e) => e.eventId), batch.map((e) => e.hierarchyScope.line), batch.map((e) => JSON.stringify(e))],
          );
          recorded += inserted.rowCount ?? 0;
          const produced = batch.flatMap((e) =>
            e.segmentResponse.materialActuals
              .filter((m) => m.materialUse === 'Produced')
              .map((m) => ({ event: e, actual: m })),
          );
          await db.query(
            `INSERT INTO ${s}.work_order (work_order, sku, line, status, planned_quantity, good_quantity)
             SELECT w, k, l, 'COMPLETED', q::numeric, q::numeric FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               AS u(w, k, l, q)
             ON CONFLICT (work_order) DO NOTHING`,
            [
              produced.map((p) => p.event.productionRequestId),
              produced.map((p) => p.actual.materialDefinitionId),
              produced.map((p) => p.event.hierarchyScope.line),
              produced.map((p) => p.actual.quantity.quantityString),
            ],
          );
          await db.query(
            `INSERT INTO ${s}.lot (lot_id, work_order, sku, quantity, unit, status, erp_plant, storage_location, batch)
             SELECT lot, w, k, q::numeric, u, 'RELEASED', '1010', '0001', lot
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(lot, w, k, q, u)
             ON CONFLICT (lot_id) DO NOTHING`,
            [
              produced.map((p) => p.actual.materialLotId),
              produced.map((p) => p.event.productionRequestId),
              produced.map((p) => p.actual.materialDefinitionId),
              produced.map((p) => p.actual.quantity.quantityString),
              produced.map((p) => p.actual.quantity.unitOfMeasure),
            ],
          );
        }
      });
      return { recorded, duplicates: events.length - recorded };
    },

    /** Events after `after` (a cursor from an earlier page), oldest first. */
    async list(
      after: string | undefined,
      limit: number,
    ): Promise<{ items: ProductionPerformanceEvent[]; nextCursor: string | null }> {
      const { rows } = await pool.query<{ cursor: string; payload: ProductionPerformanceEvent }>(
        // Ordered by the number, not by its text (the output column of the same name).
        `SELECT seq::text AS cursor, payload FROM ${s}.production_event WHERE seq > $1 ORDER BY production_event.seq LIMIT $2`,
        [after ?? '0', limit],
      );
      const last = rows.at(-1)?.cursor ?? after ?? null;
      return { items: rows.map((r) => r.payload), nextCursor: last };
    },
  };
}

export type ProductionEventStore = ReturnType<typeof createProductionEventStore>;

/** Where the MES publishes its production events: an MQTT broker and the MES's own login there. */
export interface ProductionEventBroker {
  url: string;
  username?: string;
  password?: string;
  clientId?: string;
}

/**
 * Publishes production events on their line's Unified Namespace topic, QoS 1, in the order given (a replayed event
 * is published again, as a real publisher's retry would). Not retained: a late subscriber reads the REST fallback.
 */
export async function connectProductionEventPublisher(broker: ProductionEventBroker) {
  const client: MqttClient = await connectAsync(broker.url, {
    clientId: broker.clientId ?? `mes-sim-${process.pid}`,
    clean: true,
    connectTimeout: 5_000,
    reconnectPeriod: 1_000,
    ...(broker.username !== undefined ? { username: broker.username } : {}),
    ...(broker.password !== undefined ? { password: broker.password } : {}),
  });
  return {
    async publish(events: ProductionPerformanceEvent[]): Promise<void> {
      for (const event of events) {
        await client.publishAsync(productionEventTopic(event.hierarchyScope), JSON.stringify(event), { qos: 1 });
      }
    },
    /** Job-order events on their line's topic, QoS 1, not retained, in the order given (replays included). */
    async publishJobOrders(events: JobOrderEvent[]): Promise<void> {
      for (const event of events) {
        await client.publishAsync(jobOrderTopic(event.hierarchyScope), JSON.stringify(event), { qos: 1 });
      }
    },
    async close(): Promise<void> {
      await client.endAsync();
    },
  };
}

export type ProductionEventPublisher = Awaited<ReturnType<typeof connectProductionEventPublisher>>;
