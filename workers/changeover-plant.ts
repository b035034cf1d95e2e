import type pg from 'pg';
import type { LineInterlockPort, VisionSystemPort } from '../activities/ports';
import type { ConnectorRole } from '../infra/config/connector-kinds';
import { ConfigError } from '../activities/errors';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger, PortOf } from '../infra/connectors/define';
import { createFirstArticleReader } from '../infra/vision/first-article.reader';
import { createStationAssignmentStore } from '../infra/vision/station-assignment.store';
import { openConnectors, type ConnectorSet } from './connectors';
import type { ChangeoverPorts } from './worker-activities';

/** The ports a changeover works through, and the connectors behind them, which this owner closes. */
export interface ChangeoverPlant {
  ports: ChangeoverPorts;
  close(): Promise<void>;
}

/**
 * The changeover's plant: Holdfast's own stations through PostgreSQL, and every OPC 40100 vision system and line PLC
 * that temporal.yaml names (Station.vision.connector, Site.lineControl).
 *
 * Those OPC UA connectors open on first use, not at start: a worker must start (and inspection go on) while a vision
 * system or a line PLC is off, and `npm start` starts the line simulator after the worker. A call that finds its
 * server down fails like any transient connector error, so Temporal retries the step, which opens it again.
 */
export function openChangeoverPlant(
  pool: pg.Pool,
  config: HoldfastConfig,
  opts: { log: ConnectorLogger; env?: NodeJS.ProcessEnv; dataDir?: string },
): ChangeoverPlant {
  const opened = new Map<string, Promise<ConnectorSet>>();
  let closed = false;

  async function portOf<R extends ConnectorRole>(name: string, role: R): Promise<PortOf<R>> {
    if (closed) throw new Error(`connector ${name}: the worker is stopping`);
    let set = opened.get(name);
    if (!set) {
      set = openConnectors(config, [name], {
        log: opts.log,
        ...(opts.env ? { env: opts.env } : {}),
        ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      });
      opened.set(name, set);
      // A failed open is forgotten, so the step's next attempt tries again.
      set.catch(() => opened.delete(name));
    }
    return (await set).port(name, role);
  }

  const visionSystems = new Map<string, VisionSystemPort>();
  const interlocks = new Map<string, LineInterlockPort>();

  return {
    ports: {
      stationControl: createStationAssignmentStore(pool),
      firstArticles: createFirstArticleReader(pool, config),
      visionFor(connector) {
        let port = visionSystems.get(connector);
        if (!port) {
          const target = () => portOf(connector, 'vision-system');
          port = {
            endpoint: connector,
            prepareRecipe: async (system, externalRecipeId) => (await target()).prepareRecipe(system, externalRecipeId),
            unprepareRecipe: async (system, internalRecipeId) =>
              (await target()).unprepareRecipe(system, internalRecipeId),
            readState: async (system) => (await target()).readState(system),
          };
          visionSystems.set(connector, port);
        }
        return port;
      },
      lineControlFor(siteId) {
        const site = config.sites.find((s) => s.id === siteId);
        if (!site) throw new ConfigError(`unknown site "${siteId}"`);
        const connector = site.lineControl;
        if (connector === undefined) throw new ConfigError(`site ${siteId} has no lineControl in temporal.yaml`);
        let port = interlocks.get(connector);
        if (!port) {
          const target = () => portOf(connector, 'line-control');
          port = {
            setRelease: async (line, state) => (await target()).setRelease(line, state),
            readRelease: async (line) => (await target()).readRelease(line),
          };
          interlocks.set(connector, port);
        }
        return port;
      },
    },
    async close() {
      closed = true;
      const sets = [...opened.values()];
      opened.clear();
      for (const set of sets) await (await set.catch(() => undefined))?.close();
    },
  };
}
