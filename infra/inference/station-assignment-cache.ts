/**
 * The inference worker's copy of what changeovers assigned each station (docs/changeover.md#holdfast-stations), so
 * that a frame costs no query: loaded at start, reloaded per station on NOTIFY (a dedicated LISTEN connection that
 * reconnects on its own) and in full every `refreshIntervalMs`, the safety net for notifications missed while that
 * connection was down.
 *
 * On an armed assignment it prepares the station: loads the recipe version and the model (warm, before the order's
 * first frame) and reports what it loaded, with the model file's sha256, for the changeover to read back.
 */
import type pg from 'pg';
import { createChannelListener } from '../db/channel-listener';
import type { StationRef } from '../../activities/ports';
import type { Recipe } from '../vision/contracts';
import { recipeByVersion } from '../vision/recipe.repository';
import {
  STATION_ASSIGNMENT_CHANNEL,
  type StationAssignment,
  type StationAssignments,
  type StationAssignmentStore,
} from '../vision/station-assignment.store';
import type { AssignedRecipe, ModelSource, PipelineLog, StationAssignmentSource, StationAssignmentView } from './ports';

export interface StationAssignmentCacheOptions {
  pool: pg.Pool;
  store: StationAssignmentStore;
  models: ModelSource;
  log: PipelineLog;
  /** Full reload period, ms; default 30 s. */
  refreshIntervalMs?: number;
}

export interface StationAssignmentCache extends StationAssignmentSource {
  /** Loads every station and starts listening; resolves once the first load is applied. */
  start(): Promise<void>;
  /** Reloads every station now. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

const LISTEN_RECONNECT_MAX_MS = 10_000;

const stationKey = (s: StationRef) => `${s.site}\u0000${s.line}\u0000${s.station}`;

export function createStationAssignmentCache(opts: StationAssignmentCacheOptions): StationAssignmentCache {
  const { pool, store, models, log } = opts;
  const refreshIntervalMs = opts.refreshIntervalMs ?? 30_000;
  const views = new Map<string, StationAssignmentView>();
  // Loads can finish out of order: each takes a ticket when it is issued, and a station's view is replaced only by a
  // newer ticket than the one that last set it (an activation takes its ticket when it commits).
  let tickets = 0;
  const appliedTicket = new Map<string, number>();
  const recipes = new Map<string, Recipe>();
  const preparing = new Map<string, Promise<void>>();
  const prepared = new Set<string>();
  const warmed = new Set<string>();
  const activations = new Map<string, Promise<StationAssignmentView>>();
  let refreshTimer: NodeJS.Timeout | undefined;
  let stopped = false;

  async function recipeOf(station: StationRef, a: StationAssignment): Promise<Recipe | undefined> {
    const id = `${stationKey(station)}\u0000${a.sku}\u0000${a.recipeVersion}`;
    const hit = recipes.get(id);
    if (hit) return hit;
    const recipe = await recipeByVersion(pool, { ...station, sku: a.sku, version: a.recipeVersion });
    // Versions are immutable: one found is kept; one missing is asked for again at the next load.
    if (recipe) recipes.set(id, recipe);
    return recipe;
  }

  async function assigned(station: StationRef, a: StationAssignment | undefined): Promise<AssignedRecipe | undefined> {
    if (!a) return undefined;
    const recipe = await recipeOf(station, a);
    return {
      changeoverId: a.changeoverId,
      workOrder: a.workOrder,
      sku: a.sku,
      recipeVersion: a.recipeVersion,
      model: a.model,
      ...(recipe ? { recipe } : {}),
    };
  }

  async function toView(s: StationAssignments): Promise<StationAssignmentView> {
    const [armed, active] = await Promise.all([assigned(s.station, s.armed), assigned(s.station, s.active)]);
    return { ...(armed ? { armed } : {}), ...(active ? { active } : {}) };
  }

  function apply(station: StationRef, view: StationAssignmentView, ticket: number): boolean {
    const k = stationKey(station);
    // A station switching at its boundary is settled by the activation's own answer, which is newer than any load.
    if ((appliedTicket.get(k) ?? 0) > ticket || views.get(k)?.switching) return false;
    appliedTicket.set(k, ticket);
    views.set(k, view);
    return true;
  }

  async function applyLoaded(loaded: StationAssignments, ticket: number): Promise<void> {
    const view = await toView(loaded);
    if (!apply(loaded.station, view, ticket)) return;
    if (loaded.armed) prepare(loaded.station, loaded.armed, view.armed!);
    if (loaded.active) warm(loaded.active);
  }

  /**
   * A worker (re)started on a station already switched: the active order's model is loaded now, not by its next
   * frame (whose reject signal would wait for it). A failure shows at that frame, refused `model`.
   */
  function warm(active: StationAssignment): void {
    const key = `${active.model.name}@${active.model.version}`;
    if (warmed.has(key)) return;
    warmed.add(key);
    models.get(active.model.name, active.model.version).catch(() => warmed.delete(key));
  }

  /** Loads the armed recipe's model warm and reports it loaded (or why not); once per arm and worker. */
  function prepare(station: StationRef, armed: StationAssignment, view: AssignedRecipe): void {
    const id = `${stationKey(station)}\u0000${armed.changeoverId}\u0000${armed.armedAt}`;
    if (prepared.has(id) || preparing.has(id) || armed.prepareError !== undefined) return;
    const where = { ...station, changeoverId: armed.changeoverId, model: `${armed.model.name}@${armed.model.version}` };
    const work = (async () => {
      const recipe = view.recipe;
      if (!recipe) throw new Error(`no recipe ${armed.recipeVersion} for SKU ${armed.sku} at this station`);
      if (recipe.model.name !== armed.model.name || recipe.model.version !== armed.model.version) {
        throw new Error(
          `recipe ${armed.recipeVersion} is for model ${recipe.model.name}@${recipe.model.version}, ` +
            `not ${armed.model.name}@${armed.model.version}`,
        );
      }
      const model = await models.get(armed.model.name, armed.model.version);
      await store.reportPrepared(station, armed.changeoverId, {
        modelKey: model.key,
        modelSha256: model.manifest.sha256,
      });
      prepared.add(id);
      log.info('station armed: model loaded', { ...where, modelSha256: model.manifest.sha256 });
    })()
      .catch(async (err: unknown) => {
        const error = err instanceof Error ? err.message : String(err);
        log.warn('station not armed: preparing failed', { ...where, error });
        await store
          .reportPrepareFailed(station, armed.changeoverId, error)
          .catch((e: unknown) => log.warn('prepare failure not recorded', { ...where, error: String(e) }));
      })
      .finally(() => preparing.delete(id));
    preparing.set(id, work);
  }

  async function loadStation(station: StationRef): Promise<void> {
    const ticket = ++tickets;
    const [loaded] = await store.load(station);
    await applyLoaded(loaded ?? { station }, ticket);
  }

  async function refresh(): Promise<void> {
    const ticket = ++tickets;
    const all = await store.load();
    const seen = new Set(all.map((s) => stationKey(s.station)));
    await Promise.all(all.map((s) => applyLoaded(s, ticket)));
    for (const k of [...views.keys()]) {
      if (!seen.has(k) && (appliedTicket.get(k) ?? 0) <= ticket && !views.get(k)?.switching) views.delete(k);
    }
  }

  function onNotification(msg: pg.Notification): void {
    let station: StationRef;
    try {
      station = JSON.parse(msg.payload ?? '') as StationRef;
    } catch {
      void refresh().catch((err: unknown) => log.warn('station assignments not reloaded', { error: String(err) }));
      return;
    }
    loadStation(station).catch((err: unknown) =>
      // The periodic refresh catches up.
      log.warn('station assignment not reloaded', { ...station, error: String(err) }),
    );
  }

  // After every (re)connect the stations are reloaded: changes committed while no one listened went unheard.
  const listener = createChannelListener({
    connection: pool.options,
    channel: STATION_ASSIGNMENT_CHANNEL,
    onNotification,
    onListening: refresh,
    onProblem: (problem, error, retryInMs) =>
      log.warn(`station assignment LISTEN ${problem}`, { error, ...(retryInMs !== undefined ? { retryInMs } : {}) }),
    maxBackoffMs: LISTEN_RECONNECT_MAX_MS,
  });

  function scheduleRefresh(): void {
    refreshTimer = setTimeout(() => {
      refresh()
        .catch((err: unknown) => log.warn('station assignments not reloaded', { error: String(err) }))
        .finally(() => {
          if (!stopped) scheduleRefresh();
        });
    }, refreshIntervalMs);
    refreshTimer.unref();
  }

  return {
    current: (station) => views.get(stationKey(station)),

    async start() {
      // Listening first, then the first load: a change committed between the two would otherwise go unheard.
      await listener.start();
      scheduleRefresh();
    },

    refresh,

    activate(station, armed, boundary) {
      const k = stationKey(station);
      const id = `${k}\u0000${armed.changeoverId}`;
      const running = activations.get(id);
      if (running) return running;
      const before = views.get(k);
      // Frames of other orders are refused from now on, not only once the activation commits.
      views.set(k, { ...before, armed, switching: true });
      const activation = store
        .activate(station, armed.changeoverId, {
          frameId: boundary.frameId,
          modelKey: boundary.model.key,
          modelSha256: boundary.model.manifest.sha256,
        })
        .then(async ({ activated, assignments }) => {
          const view = await toView(assignments);
          appliedTicket.set(k, ++tickets);
          views.set(k, view);
          if (assignments.armed) prepare(station, assignments.armed, view.armed!);
          if (activated) {
            log.info('station switched at its order boundary', {
              ...station,
              changeoverId: armed.changeoverId,
              workOrder: armed.workOrder,
              recipeVersion: armed.recipeVersion,
              firstFrameId: boundary.frameId,
            });
          }
          return view;
        })
        .catch((err: unknown) => {
          const current = views.get(k);
          if (current?.switching && current.armed?.changeoverId === armed.changeoverId) {
            views.set(k, before ?? {});
          }
          throw err;
        })
        .finally(() => activations.delete(id));
      activations.set(id, activation);
      return activation;
    },

    async close() {
      stopped = true;
      clearTimeout(refreshTimer);
      await listener.close();
      await Promise.allSettled([...preparing.values(), ...activations.values()]);
    },
  };
}
