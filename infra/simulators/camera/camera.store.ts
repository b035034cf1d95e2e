import type { Pool } from 'pg';
import { withTransaction } from '../../db/pool';
import type { GroundTruth, PixelBox } from '../../vision/contracts';
import type { LineOrderRun, RenderedFrame } from './camera.plan';

/** What a published frame really shows, as GET /truth answers it. */
export interface FrameTruth {
  frameId: string;
  site: string;
  line: string;
  station: string;
  partId: string;
  lotId: string;
  workOrder: string;
  sku: string;
  class: GroundTruth['class'];
  box?: PixelBox;
  imageSeed: number;
  capturedAt: string;
  /** Absent while the broker has not acknowledged the frame (then it was never published). */
  publishedAt?: string;
}

interface TruthRow {
  frame_id: string;
  site: string;
  line: string;
  station: string;
  part_id: string;
  lot_id: string;
  work_order: string;
  sku: string;
  class: GroundTruth['class'];
  box: PixelBox | null;
  image_seed: string;
  captured_at: Date;
  published_at: Date | null;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

// sim_seed + sequence let a restarted simulator continue after its last frame instead of repeating frame ids.
const ddl = (s: string) => `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.frame_truth (
  frame_id      text PRIMARY KEY,
  site          text NOT NULL,
  line          text NOT NULL,
  station       text NOT NULL,
  part_id       text NOT NULL,
  lot_id        text NOT NULL,
  work_order    text NOT NULL,
  sku           text NOT NULL,
  class         text NOT NULL,
  box           jsonb,
  sim_seed      bigint NOT NULL,
  sequence      bigint NOT NULL,
  image_seed    bigint NOT NULL,
  captured_at   timestamptz NOT NULL,
  published_at  timestamptz
);
CREATE INDEX IF NOT EXISTS frame_truth_published_idx ON ${s}.frame_truth (published_at, frame_id)
  WHERE published_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS frame_truth_station_idx ON ${s}.frame_truth (sim_seed, site, line, station, sequence);
CREATE INDEX IF NOT EXISTS frame_truth_order_idx ON ${s}.frame_truth (site, line, work_order);
-- The orders each line was switched to at runtime (a changeover), so that a restart goes on with the order running.
CREATE TABLE IF NOT EXISTS ${s}.line_order (
  sim_seed      bigint NOT NULL,
  site          text NOT NULL,
  line          text NOT NULL,
  from_sequence bigint NOT NULL,
  work_order    text NOT NULL,
  sku           text NOT NULL,
  lot_id        text NOT NULL,
  set_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (sim_seed, site, line, from_sequence)
);
`;

const toTruth = (r: TruthRow): FrameTruth => ({
  frameId: r.frame_id,
  site: r.site,
  line: r.line,
  station: r.station,
  partId: r.part_id,
  lotId: r.lot_id,
  workOrder: r.work_order,
  sku: r.sku,
  class: r.class,
  ...(r.box ? { box: r.box } : {}),
  imageSeed: Number(r.image_seed),
  capturedAt: r.captured_at.toISOString(),
  ...(r.published_at ? { publishedAt: r.published_at.toISOString() } : {}),
});

/** Ground truth in the simulator's own PostgreSQL schema (default camera_sim), apart from Holdfast's tables. */
export function createCameraTruthStore(pool: Pool, schema: string) {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid camera simulator schema name "${schema}"`);
  // Identifiers cannot be bound as parameters; the name is checked against SCHEMA_NAME above.
  const s = `"${schema}"`;

  return {
    schema,

    /** Creates the schema and table; concurrent starts on one database serialise on an advisory lock. */
    async migrate(): Promise<void> {
      await withTransaction(pool, async (db) => {
        await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`holdfast-camera-sim:${schema}`]);
        await db.query(ddl(s));
      });
    },

    /** The next frame number for a station under `simSeed`: one past the last recorded, 0 for a fresh start. */
    async nextSequence(simSeed: number, station: { site: string; line: string; station: string }): Promise<number> {
      const { rows } = await pool.query<{ last: string | null }>(
        `SELECT max(sequence) AS last FROM ${s}.frame_truth
          WHERE sim_seed = $1 AND site = $2 AND line = $3 AND station = $4`,
        [simSeed, station.site, station.line, station.station],
      );
      const last = rows[0]?.last;
      return last === null || last === undefined ? 0 : Number(last) + 1;
    },

    /**
     * Records the truth before the frame is published (published_at NULL), so no published frame lacks its truth.
     * A frame recorded again (a restart that re-renders it) keeps its first row.
     */
    async recordPlanned(frame: RenderedFrame, simSeed: number): Promise<void> {
      const p = frame.plan;
      await pool.query(
        `INSERT INTO ${s}.frame_truth (frame_id, site, line, station, part_id, lot_id, work_order, sku, class, box,
           sim_seed, sequence, image_seed, captured_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (frame_id) DO NOTHING`,
        [
          p.frameId,
          p.station.site,
          p.station.line,
          p.station.station,
          p.partId,
          p.lotId,
          p.workOrder,
          p.sku,
          frame.truth.class,
          frame.truth.box ? JSON.stringify(frame.truth.box) : null,
          simSeed,
          p.sequence,
          p.imageSeed,
          frame.frame.capturedAt,
        ],
      );
    },

    /**
     * The broker acknowledged the frame (PUBACK): from now on it counts as published. Milliseconds, so the ISO
     * instant GET /truth answers is the stored value exactly and works as a paging cursor.
     */
    async markPublished(frameId: string): Promise<void> {
      await pool.query(
        `UPDATE ${s}.frame_truth SET published_at = date_trunc('milliseconds', clock_timestamp())
          WHERE frame_id = $1 AND published_at IS NULL`,
        [frameId],
      );
    },

    /** The line runs `run` from its frame number `fromSequence` on (a later switch at the same frame replaces it). */
    async recordLineOrder(simSeed: number, line: { site: string; line: string }, run: LineOrderRun): Promise<void> {
      await pool.query(
        `INSERT INTO ${s}.line_order (sim_seed, site, line, from_sequence, work_order, sku, lot_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (sim_seed, site, line, from_sequence) DO UPDATE
           SET work_order = EXCLUDED.work_order, sku = EXCLUDED.sku, lot_id = EXCLUDED.lot_id, set_at = now()`,
        [simSeed, line.site, line.line, run.fromSequence, run.workOrder, run.sku, run.lotId],
      );
    },

    /** Every line's switches under `simSeed`, keyed `<site>/<line>`, each by fromSequence ascending. */
    async lineOrders(simSeed: number): Promise<Map<string, LineOrderRun[]>> {
      const { rows } = await pool.query<{
        site: string;
        line: string;
        from_sequence: string;
        work_order: string;
        sku: string;
        lot_id: string;
      }>(
        `SELECT site, line, from_sequence, work_order, sku, lot_id FROM ${s}.line_order
          WHERE sim_seed = $1 ORDER BY site, line, from_sequence`,
        [simSeed],
      );
      const runs = new Map<string, LineOrderRun[]>();
      for (const r of rows) {
        const key = `${r.site}/${r.line}`;
        const list = runs.get(key) ?? [];
        list.push({ fromSequence: Number(r.from_sequence), workOrder: r.work_order, sku: r.sku, lotId: r.lot_id });
        runs.set(key, list);
      }
      return runs;
    },

    async get(frameId: string): Promise<FrameTruth | undefined> {
      const { rows } = await pool.query<TruthRow>(`SELECT * FROM ${s}.frame_truth WHERE frame_id = $1`, [frameId]);
      return rows[0] ? toTruth(rows[0]) : undefined;
    },

    /**
     * Published frames in (published_at, frame_id) order: after `since` (exclusive), or with `after` too, after
     * that exact row (frames published in the same millisecond are then not skipped between pages).
     */
    async listPublished(query: { since?: string; after?: string; limit: number }): Promise<FrameTruth[]> {
      const { rows } = await pool.query<TruthRow>(
        `SELECT * FROM ${s}.frame_truth
          WHERE published_at IS NOT NULL
            AND ($1::timestamptz IS NULL
                 OR ($2::text IS NULL AND published_at > $1)
                 OR ($2::text IS NOT NULL AND (published_at, frame_id) > ($1, $2)))
          ORDER BY published_at, frame_id LIMIT $3`,
        [query.since ?? null, query.after ?? null, query.limit],
      );
      return rows.map(toTruth);
    },

    async counts(): Promise<{ published: number; unpublished: number; byClass: Record<string, number> }> {
      const { rows } = await pool.query<{ class: string; published: string; unpublished: string }>(
        `SELECT class, count(*) FILTER (WHERE published_at IS NOT NULL) AS published,
                count(*) FILTER (WHERE published_at IS NULL) AS unpublished
           FROM ${s}.frame_truth GROUP BY class ORDER BY class`,
      );
      const byClass: Record<string, number> = {};
      let published = 0;
      let unpublished = 0;
      for (const r of rows) {
        byClass[r.class] = Number(r.published);
        published += Number(r.published);
        unpublished += Number(r.unpublished);
      }
      return { published, unpublished, byClass };
    },
  };
}

export type CameraTruthStore = ReturnType<typeof createCameraTruthStore>;
