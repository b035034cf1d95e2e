import { join, resolve } from 'node:path';
import { configPath, loadConfig } from '../../config/load';
import type { ConnectorLogger } from '../../connectors/define';
import { startLinePlcSimulator } from './line-plc.simulator';

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

  const log: ConnectorLogger = {
    info: (msg, meta) => console.log(meta ? `${msg} ${JSON.stringify(meta)}` : msg),
    warn: (msg, meta) => console.warn(meta ? `${msg} ${JSON.stringify(meta)}` : msg),
    error: (msg, meta) => console.error(meta ? `${msg} ${JSON.stringify(meta)}` : msg),
  };
  const sim = await startLinePlcSimulator({ port, stations, dataDir, log });
  console.log(`line-plc: ${stations.length} reject stations in ns=${sim.namespaceIndex} (${sim.namespaceUri})`);
  // The readiness line infra/local waits for; keep its wording.
  console.log(`line-plc ready ${sim.endpointUrl}`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    console.log(`line-plc stopping (${signal})`);
    sim.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`line-plc did not stop cleanly: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
