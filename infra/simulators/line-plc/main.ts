import { delimiter, join, resolve } from 'node:path';
import { configPath, loadConfig } from '../../config/load';
import { connectorLogger, createLogger } from '../../observability/logger';
import { Counter } from 'prom-client';
import { createProcessRegistry } from '../../observability/http-metrics';
import { startObservabilityServer } from '../../observability/observability-server';
import { startLinePlcSimulator } from './line-plc.simulator';
import { visionFaultsFromEnv, visionSystemsFromConfig } from './plant-config';

const logger = createLogger('line-plc');

/**
 * Runs the simulated line PLC on 127.0.0.1 with one RejectStation per station in the project config.
 * LINE_PLC_PORT (default 4840, OPC UA's registered port), LINE_PLC_DATA_DIR (default <HOLDFAST_DATA_DIR>/line-plc,
 * else .holdfast/data/line-plc): the simulator's PKI lives there. HOLDFAST_CONFIG picks the config file.
 * LINE_PLC_METRICS_PORT (default 9472): GET /metrics (process series, reject commands, vision-system calls and interlock changes received) and GET /health.
 * LINE_PLC_TRUSTED_CLIENT_PKI_DIRS: client PKI folders (path-list separated) to exchange certificates with (npm start
 * names the reject station's, <HOLDFAST_DATA_DIR>/opcua-pki). LINE_PLC_ALLOW_SECURITY_NONE=true also offers None.
 * Vision systems: one per station with `vision:`; a release interlock per line of a site with `lineControl`.
 * LINE_PLC_VISION_FAULTS: JSON `{ "<system>": { "prepareDelayMs": 2000, "refuseWithError": -100,
 * "reportWrongRecipe": true } }`, faults from the start (a running simulator: each system's Simulation.SetFaults).
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

  const visionSystems = visionSystemsFromConfig(config, visionFaultsFromEnv(process.env.LINE_PLC_VISION_FAULTS));
  const lineControls = config.sites.flatMap((site) =>
    site.lineControl === undefined ? [] : site.lines.map((line) => ({ site: site.id, line: line.id })),
  );

  const metricsPort = Number(process.env.LINE_PLC_METRICS_PORT ?? 9472);
  if (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535) {
    throw new Error(`LINE_PLC_METRICS_PORT must be a port number, got "${process.env.LINE_PLC_METRICS_PORT}"`);
  }
  const metrics = createProcessRegistry();
  const commands = new Counter({
    name: 'holdfast_plc_reject_commands_total',
    help: 'Reject Command writes the simulated PLC received, by station and whether the event id was a repeat.',
    labelNames: ['station', 'duplicate'],
    registers: [metrics],
  });
  const visionCalls = new Counter({
    name: 'holdfast_plc_vision_calls_total',
    help: 'OPC 40100 method calls the simulated vision systems answered, by system, method and error code.',
    labelNames: ['system', 'method', 'error'],
    registers: [metrics],
  });
  const releases = new Counter({
    name: 'holdfast_plc_line_release_calls_total',
    help: 'SetRelease calls the simulated line interlocks accepted, by line and the state asked for.',
    labelNames: ['line', 'released'],
    registers: [metrics],
  });
  const sim = await startLinePlcSimulator({
    port,
    stations,
    visionSystems,
    lineControls,
    dataDir,
    trustedClientPkiDirs: (process.env.LINE_PLC_TRUSTED_CLIENT_PKI_DIRS ?? '').split(delimiter).filter(Boolean),
    allowSecurityNone: process.env.LINE_PLC_ALLOW_SECURITY_NONE === 'true',
    log: connectorLogger(logger),
    onReject: (r) => commands.inc({ station: `${r.site}/${r.line}/${r.station}`, duplicate: String(r.duplicate) }),
    onVisionCall: (c) => visionCalls.inc({ system: c.system, method: c.method, error: String(c.error ?? c.status) }),
    onRelease: (r) => releases.inc({ line: `${r.site}/${r.line}`, released: String(r.released) }),
  });
  const observability = await startObservabilityServer({
    host: '127.0.0.1',
    port: metricsPort,
    registry: metrics,
    // Up as long as this process answers: the OPC UA server runs in it.
    health: [{ name: 'opcua-server', check: async () => sim.endpointUrl }],
  }).catch(async (err: unknown) => {
    await sim.stop();
    throw err;
  });
  logger.debug({ url: `${observability.url}/metrics` }, 'line-plc metrics');
  // The readiness line infra/local waits for; keep its wording.
  logger.info(
    {
      rejectStations: stations.length,
      visionSystems: visionSystems.map((v) => v.system),
      lineControls: lineControls.map((l) => `${l.site}/${l.line}`),
      namespaceIndex: sim.namespaceIndex,
      namespaceUri: sim.namespaceUri,
    },
    `line-plc ready ${sim.endpointUrl}`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'line-plc stopping');
    Promise.all([sim.stop(), observability.close()]).then(
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
