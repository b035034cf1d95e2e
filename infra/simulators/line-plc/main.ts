import { join, resolve } from 'node:path';
import { configPath, loadConfig } from '../../config/load';
import { connectorLogger, createLogger } from '../../observability/logger';
import { startLinePlcSimulator } from './line-plc.simulator';

const logger = createLogger('line-plc');

/**
 * Runs the simulated line PLC on 127.0.0.1 with one RejectStation per station in the project config.
 * LINE_PLC_PORT (default 4840, OPC UA's registered port), LINE_PLC_DATA_DIR (default <HOLDFAST_DATA_DIR>/line-plc,
 * else .holdfast/data/line-plc): the simulator's PKI lives there. HOLDFAST_CONFIG picks the config file.
 */
async function main(): Promise<void> {
  const port = Number(process.env.LINE_PLC_PORT ?? 4840);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`LINE_PLC_PORT must be a port number, got "${process.env.LINE_PLC_PORT}"`);
  }
  const dataDir = resolve(
    process.env.LINE_PLC_DATA_DIR ??
      join(process.env.HOLDFAST_DATA_DIR ?? resolve(__dirname, '../../../.holdfast/data'), 'line-plc'),
  );
  const config = loadConfig(configPath(process.env));
  const stations = config.sites.flatMap((site) =>
    site.lines.flatMap((line) =>
      line.stations.map((station) => ({ site: site.id, line: line.id, station: station.id })),
    ),
  );

  const sim = await startLinePlcSimulator({ port, stations, dataDir, log: connectorLogger(logger) });
  // The readiness line infra/local waits for; keep its wording.
  logger.info(
    { rejectStations: stations.length, namespaceIndex: sim.namespaceIndex, namespaceUri: sim.namespaceUri },
    `line-plc ready ${sim.endpointUrl}`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'line-plc stopping');
    sim.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'line-plc did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'line-plc failed to start');
  process.exit(1);
});
