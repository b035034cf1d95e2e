/**
 * What each Holdfast inference station applies across changeovers (holdfast.station_assignment and
 * holdfast.station_control, docs/changeover.md#holdfast-stations). Two writers share it:
 *
 * - the changeover's activities (StationControlPort): `arm` asks a station to apply an order's recipe from that
 *   order's first frame on, `revert` puts back what it applied before a changeover, `readBack` reads what the station
 *   reported, never what was asked;
 * - the inference worker: it reports that it loaded the armed model (with the sha256 of the file it loaded), and
 *   activates the armed assignment at the order's first frame.
 *
 * Every change raises NOTIFY on STATION_ASSIGNMENT_CHANNEL with the station as payload, so workers reload that station
 * at once instead of querying per frame. Each change locks the station's control row, so an arm, a revert and an
 * activation of one station apply one after the other.
 */
import type pg from 'pg';
import { ExternalSystemError } from '../../activities/errors';
import type {
  StationAssignmentReport,
  StationControlPort,
  StationReadBack,
  StationRecipeTarget,
  StationRef,
} from '../../activities/ports';
import { withTransaction } from '../db/pool';

/** NOTIFY channel; the payload is the station as JSON (`{ site, line, station }`). */
export const STATION_ASSIGNMENT_CHANNEL = 'holdfast_station_assignment';

export type StationAssignmentState = 'armed' | 'active' | 'superseded' | 'reverted';

/** One assignment a changeover asked of a station, with what the inference worker reported about it. */
export interface StationAssignment {
  changeoverId: string;
  workOrder: string;
  sku: string;
  recipeVersion: string;
  model: { name: string; version: string };
  state: StationAssignmentState;
  armedAt: string;
  /** The worker loaded the model (absent: not yet). */
  preparedAt?: string;
  modelKey?: string;
  modelSha256?: string;
  /** The worker could not prepare it; a new arm clears it. */
  prepareError?: string;
  activatedAt?: string;
  firstFrameId?: string;
  /** What was active when this one became active (absent: each frame's SKU's active recipe); revert restores it. */
  previousChangeoverId?: string;
  revertedAt?: string;
}

/** A station's armed and active assignments (both absent: never changed over, or reverted to that). */
export interface StationAssignments {
  station: StationRef;
  armed?: StationAssignment;
  active?: StationAssignment;
}

interface AssignmentRow {
  changeover_id: string;
  work_order: string;
  sku: string;
  recipe_version: string;
  model_name: string;
  model_version: string;
  state: StationAssignmentState;
  armed_at: Date;
  prepared_at: Date | null;
  model_key: string | null;
  model_sha256: string | null;
  prepare_error: string | null;
  activated_at: Date | null;
  first_frame_id: string | null;
  previous_changeover_id: string | null;
  reverted_at: Date | null;
}

interface ControlRow {
  armed_changeover_id: string | null;
  active_changeover_id: string | null;
}

const ASSIGNMENT_COLUMNS = `changeover_id, work_order, sku, recipe_version, model_name, model_version, state, armed_at,
  prepared_at, model_key, model_sha256, prepare_error, activated_at, first_frame_id, previous_changeover_id, reverted_at`;

function toAssignment(r: AssignmentRow): StationAssignment {
  return {
    changeoverId: r.changeover_id,
    workOrder: r.work_order,
    sku: r.sku,
    recipeVersion: r.recipe_version,
    model: { name: r.model_name, version: r.model_version },
    state: r.state,
    armedAt: r.armed_at.toISOString(),
    ...(r.prepared_at ? { preparedAt: r.prepared_at.toISOString() } : {}),
    ...(r.model_key !== null ? { modelKey: r.model_key } : {}),
    ...(r.model_sha256 !== null ? { modelSha256: r.model_sha256 } : {}),
    ...(r.prepare_error !== null ? { prepareError: r.prepare_error } : {}),
    ...(r.activated_at ? { activatedAt: r.activated_at.toISOString() } : {}),
    ...(r.first_frame_id !== null ? { firstFrameId: r.first_frame_id } : {}),
    ...(r.previous_changeover_id !== null ? { previousChangeoverId: r.previous_changeover_id } : {}),
    ...(r.reverted_at ? { revertedAt: r.reverted_at.toISOString() } : {}),
  };
}

type Db = Pick<pg.PoolClient, 'query'>;

const key = (s: StationRef) => [s.site, s.line, s.station];

async function assignmentRow(db: Db, station: StationRef, changeoverId: string): Promise<AssignmentRow | undefined> {
  const { rows } = await db.query<AssignmentRow>(
    `SELECT ${ASSIGNMENT_COLUMNS} FROM holdfast.station_assignment
      WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4`,
    [...key(station), changeoverId],
  );
  return rows[0];
}

/** The station's control row, created if missing and locked until the transaction ends. */
async function lockControl(db: Db, station: StationRef): Promise<ControlRow> {
  await db.query(
    `INSERT INTO holdfast.station_control (site, line, station) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    key(station),
  );
  const { rows } = await db.query<ControlRow>(
    `SELECT armed_changeover_id, active_changeover_id FROM holdfast.station_control
      WHERE site = $1 AND line = $2 AND station = $3 FOR UPDATE`,
    key(station),
  );
  return rows[0]!;
}

async function setControl(db: Db, station: StationRef, control: ControlRow): Promise<void> {
  await db.query(
    `UPDATE holdfast.station_control SET armed_changeover_id = $4, active_changeover_id = $5, updated_at = now()
      WHERE site = $1 AND line = $2 AND station = $3`,
    [...key(station), control.armed_changeover_id, control.active_changeover_id],
  );
}

async function setState(db: Db, station: StationRef, changeoverId: string, state: StationAssignmentState) {
  await db.query(
    `UPDATE holdfast.station_assignment
        SET state = $5, reverted_at = CASE WHEN $5 = 'reverted' THEN now() ELSE reverted_at END
      WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4`,
    [...key(station), changeoverId, state],
  );
}

/** Delivered at commit, and only if it commits. */
async function notify(db: Db, station: StationRef): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [
    STATION_ASSIGNMENT_CHANNEL,
    JSON.stringify({ site: station.site, line: station.line, station: station.station }),
  ]);
}

const sameTarget = (row: AssignmentRow, t: StationRecipeTarget) =>
  row.work_order === t.workOrder &&
  row.sku === t.sku &&
  row.recipe_version === t.recipeVersion &&
  row.model_name === t.model.name &&
  row.model_version === t.model.version;

function report(a: StationAssignment): StationAssignmentReport | undefined {
  if (a.modelKey === undefined || a.modelSha256 === undefined) return undefined;
  return {
    workOrder: a.workOrder,
    sku: a.sku,
    recipeVersion: a.recipeVersion,
    modelKey: a.modelKey,
    modelSha256: a.modelSha256,
  };
}

export interface StationAssignmentStore extends StationControlPort {
  /** Armed and active assignments of every station that has a control row, or of the one given. */
  load(station?: StationRef): Promise<StationAssignments[]>;
  /** Every assignment of the station, newest armed first: the before and after of each changeover. */
  history(station: StationRef): Promise<StationAssignment[]>;
  /** The inference worker loaded the armed model: what it loaded. Ignored unless that assignment is still armed. */
  reportPrepared(
    station: StationRef,
    changeoverId: string,
    loaded: { modelKey: string; modelSha256: string },
  ): Promise<void>;
  /** The inference worker could not prepare the armed assignment (kept for operators and the changeover's logs). */
  reportPrepareFailed(station: StationRef, changeoverId: string, error: string): Promise<void>;
  /**
   * The boundary: the first frame of the armed order arrived. Makes the armed assignment active, with that frame's id,
   * once: a second caller (another frame, another worker) finds it done. Returns the station's assignments after.
   */
  activate(
    station: StationRef,
    changeoverId: string,
    boundary: { frameId: string; modelKey: string; modelSha256: string },
  ): Promise<{ activated: boolean; assignments: StationAssignments }>;
}

export function createStationAssignmentStore(pool: pg.Pool): StationAssignmentStore {
  async function load(db: Db, station?: StationRef): Promise<StationAssignments[]> {
    const { rows } = await db.query<
      { site: string; line: string; station: string } & { armed: AssignmentRow | null; active: AssignmentRow | null }
    >(
      `SELECT c.site, c.line, c.station, to_jsonb(ar) AS armed, to_jsonb(ac) AS active
         FROM holdfast.station_control c
         LEFT JOIN holdfast.station_assignment ar ON (ar.site, ar.line, ar.station, ar.changeover_id)
                                                   = (c.site, c.line, c.station, c.armed_changeover_id)
         LEFT JOIN holdfast.station_assignment ac ON (ac.site, ac.line, ac.station, ac.changeover_id)
                                                   = (c.site, c.line, c.station, c.active_changeover_id)
        WHERE $1::text IS NULL OR (c.site, c.line, c.station) = ($1, $2, $3)`,
      station ? key(station) : [null, null, null],
    );
    return rows.map((r) => ({
      station: { site: r.site, line: r.line, station: r.station },
      ...(r.armed ? { armed: toAssignment(fromJson(r.armed)) } : {}),
      ...(r.active ? { active: toAssignment(fromJson(r.active)) } : {}),
    }));
  }

  async function loadOne(db: Db, station: StationRef): Promise<StationAssignments> {
    return (await load(db, station))[0] ?? { station };
  }

  return {
    load: (station) => load(pool, station),

    async history(station) {
      const { rows } = await pool.query<AssignmentRow>(
        `SELECT ${ASSIGNMENT_COLUMNS} FROM holdfast.station_assignment
          WHERE site = $1 AND line = $2 AND station = $3 ORDER BY armed_at DESC, changeover_id`,
        key(station),
      );
      return rows.map(toAssignment);
    },

    async arm(station, target) {
      await withTransaction(pool, async (db) => {
        const control = await lockControl(db, station);
        const row = await assignmentRow(db, station, target.changeoverId);
        if (row && control.active_changeover_id === target.changeoverId) {
          // A retried arm of a changeover whose order already reached the station: nothing left to arm.
          if (sameTarget(row, target)) return;
          throw new ExternalSystemError(
            'station-control',
            'rejected',
            `changeover ${target.changeoverId} is active on ${stationName(station)} with ${row.sku} ` +
              `${row.recipe_version}; it cannot be armed again with ${target.sku} ${target.recipeVersion}`,
          );
        }
        if (row && sameTarget(row, target) && row.state === 'armed') {
          // A retried arm: keep what the worker reported, but let a worker that failed to prepare it try again.
          await db.query(
            `UPDATE holdfast.station_assignment SET prepare_error = NULL
              WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4`,
            [...key(station), target.changeoverId],
          );
        } else {
          // New, or armed again after it was reverted or superseded (the same order's changeover run again): from scratch.
          await db.query(
            `INSERT INTO holdfast.station_assignment (site, line, station, changeover_id, work_order, sku,
                                                      recipe_version, model_name, model_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (site, line, station, changeover_id) DO UPDATE
               SET work_order = EXCLUDED.work_order, sku = EXCLUDED.sku, recipe_version = EXCLUDED.recipe_version,
                   model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, state = 'armed',
                   armed_at = now(), prepared_at = NULL, model_key = NULL, model_sha256 = NULL,
                   prepare_error = NULL, activated_at = NULL, first_frame_id = NULL,
                   previous_changeover_id = NULL, reverted_at = NULL`,
            [
              ...key(station),
              target.changeoverId,
              target.workOrder,
              target.sku,
              target.recipeVersion,
              target.model.name,
              target.model.version,
            ],
          );
        }
        const replaced = control.armed_changeover_id;
        if (replaced !== null && replaced !== target.changeoverId) {
          // Armed by another changeover that never reached its first frame: this one takes its place.
          await setState(db, station, replaced, 'superseded');
        }
        await setControl(db, station, { ...control, armed_changeover_id: target.changeoverId });
        await notify(db, station);
      });
    },

    async readBack(station) {
      const { armed, active } = await loadOne(pool, station);
      const readBack: StationReadBack = {};
      const armedReport = armed && report(armed);
      if (armed && armedReport && armed.preparedAt) {
        readBack.armed = { ...armedReport, changeoverId: armed.changeoverId, preparedAt: armed.preparedAt };
      }
      const activeReport = active && report(active);
      if (active && activeReport && active.activatedAt) {
        readBack.active = {
          ...activeReport,
          activatedAt: active.activatedAt,
          ...(active.firstFrameId !== undefined ? { firstFrameId: active.firstFrameId } : {}),
        };
      }
      return readBack;
    },

    async revert(station, changeoverId) {
      await withTransaction(pool, async (db) => {
        const control = await lockControl(db, station);
        const row = await assignmentRow(db, station, changeoverId);
        if (!row) return; // never armed here: nothing to put back
        if (control.armed_changeover_id === changeoverId) {
          await setState(db, station, changeoverId, 'reverted');
          await setControl(db, station, { ...control, armed_changeover_id: null });
          await notify(db, station);
          return;
        }
        if (control.active_changeover_id === changeoverId) {
          const previous = row.previous_changeover_id;
          await setState(db, station, changeoverId, 'reverted');
          if (previous !== null) await setState(db, station, previous, 'active');
          await setControl(db, station, { ...control, active_changeover_id: previous });
          await notify(db, station);
          return;
        }
        // Already reverted, or superseded by a later changeover: what the station applies is no longer this one's.
        if (row.state === 'armed') await setState(db, station, changeoverId, 'reverted');
      });
    },

    async reportPrepared(station, changeoverId, loaded) {
      await pool.query(
        `UPDATE holdfast.station_assignment
            SET prepared_at = COALESCE(prepared_at, now()), model_key = $5, model_sha256 = $6, prepare_error = NULL
          WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4 AND state = 'armed'`,
        [...key(station), changeoverId, loaded.modelKey, loaded.modelSha256],
      );
    },

    async reportPrepareFailed(station, changeoverId, error) {
      await pool.query(
        `UPDATE holdfast.station_assignment SET prepare_error = $5
          WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4 AND state = 'armed'
            AND prepared_at IS NULL`,
        [...key(station), changeoverId, error.slice(0, 2000)],
      );
    },

    async activate(station, changeoverId, boundary) {
      return withTransaction(pool, async (db) => {
        const control = await lockControl(db, station);
        if (control.armed_changeover_id !== changeoverId) {
          // Another frame or worker activated it first, or the changeover was reverted meanwhile: say what is now.
          return { activated: false, assignments: await loadOne(db, station) };
        }
        const previous = control.active_changeover_id;
        await db.query(
          `UPDATE holdfast.station_assignment
              SET state = 'active', activated_at = now(), first_frame_id = $5, previous_changeover_id = $6,
                  prepared_at = COALESCE(prepared_at, now()), model_key = COALESCE(model_key, $7),
                  model_sha256 = COALESCE(model_sha256, $8), prepare_error = NULL
            WHERE site = $1 AND line = $2 AND station = $3 AND changeover_id = $4`,
          [...key(station), changeoverId, boundary.frameId, previous, boundary.modelKey, boundary.modelSha256],
        );
        if (previous !== null) await setState(db, station, previous, 'superseded');
        await setControl(db, station, { armed_changeover_id: null, active_changeover_id: changeoverId });
        await notify(db, station);
        return { activated: true, assignments: await loadOne(db, station) };
      });
    },
  };
}

/** to_jsonb gives timestamps as ISO text; the row mapper expects Dates, as pg returns them from a plain column. */
function fromJson(raw: AssignmentRow): AssignmentRow {
  const at = (v: Date | string | null) => (v === null ? null : new Date(v));
  return {
    ...raw,
    armed_at: at(raw.armed_at)!,
    prepared_at: at(raw.prepared_at),
    activated_at: at(raw.activated_at),
    reverted_at: at(raw.reverted_at),
  };
}

function stationName(s: StationRef): string {
  return `${s.site}/${s.line}/${s.station}`;
}
