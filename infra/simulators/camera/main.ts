import { Counter } from 'prom-client';
import { resolve } from 'node:path';
import { loadConfig } from '../../config/load';
import { parseConnectorSettings } from '../../connectors/define';
import { brokerTls, MqttConnectorConfig } from '../../connectors/mqtt/mqtt.connector';
import { createPool } from '../../db/pool';
import { connectorLogger, createLogger } from '../../observability/logger';
import { createProcessRegistry, exposeMetrics } from '../../observability/http-metrics';
import { cameraStationsFor } from './camera.plan';
import { buildCameraAdminApp, startCameraSimulator } from './camera.simulator';
import { startVerdictFeeder, type VerdictFeeder } from './verdict-feeder';

const logger = createLogger('camera-sim');

/**
 * Runs the camera simulator (started by `npm start`). Environment:
 * DATABASE_URL (required: ground truth in schema camera_sim), MQTT_URL (default mqtt://127.0.0.1:1883),
 * MQTT_USERNAME and MQTT_PASSWORD (the camera account; npm start passes the embedded broker's), HOLDFAST_DATA_DIR
 * (the broker connector's tls files are relative to it),
 * CAMERA_SIM_RATE (frames/s per station, default 2), CAMERA_SIM_DEFECT_RATE (0..1, default 0.1),
 * CAMERA_SIM_SEED (default 1), CAMERA_SIM_FRAMES (each station shoots frames 0 to N-1, then stays idle; default no
 * end), CAMERA_SIM_FORMAT (png, jpeg or raw; default png), CAMERA_SIM_PORT (admin HTTP on
 * 127.0.0.1, default 4030), CAMERA_SIM_SCHEMA (default camera_sim), HOLDFAST_CONFIG (the stations and the topic
 * prefix), HOLDFAST_API_URL and HOLDFAST_API_KEYS (JSON { site: key }, keys allowed `verdicts:write`: the ground truth
 * of shadow stations goes to the API's verdicts route; `npm start` makes them). Logs `camera-sim ready` once it publishes and answers HTTP. GET /metrics on the admin port: process
 * series, request counts and frames published.
 */
async function main(): Promise<void> {
  const env = process.env;
  const databaseUrl = env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (PostgreSQL for the camera simulator`s ground truth)');
  const rate = numberFrom('CAMERA_SIM_RATE', 2, (v) => v > 0 && v <= 1000);
  const defectRate = numberFrom('CAMERA_SIM_DEFECT_RATE', 0.1, (v) => v >= 0 && v <= 1);
  const seed = numberFrom('CAMERA_SIM_SEED', 1, (v) => Number.isSafeInteger(v) && v >= 0);
  const frameLimit = env.CAMERA_SIM_FRAMES
    ? numberFrom('CAMERA_SIM_FRAMES', 0, (v) => Number.isSafeInteger(v) && v > 0)
    : undefined;
  const format = env.CAMERA_SIM_FORMAT || 'png';
  if (format !== 'png' && format !== 'jpeg' && format !== 'raw') {
    throw new Error(`CAMERA_SIM_FORMAT must be png, jpeg or raw, not "${format}"`);
  }
  const port = numberFrom('CAMERA_SIM_PORT', 4030, (v) => Number.isInteger(v) && v >= 0 && v <= 65535);
  const mqttUrl = env.MQTT_URL || 'mqtt://127.0.0.1:1883';

  const config = loadConfig();
  const { stations, skipped } = cameraStationsFor(config.sites);
  const log = connectorLogger(logger);
  for (const s of skipped) log.warn('no demo work order on this line: station not simulated', { ...s });

  const pool = createPool(databaseUrl, { max: 4, applicationName: 'holdfast-camera-sim' });
  let sim: Awaited<ReturnType<typeof startCameraSimulator>> | undefined;
  let app: ReturnType<typeof buildCameraAdminApp> | undefined;
  let feeder: VerdictFeeder | undefined;
  const shutdown = async () => {
    await feeder?.stop();
    await sim?.stop();
    await app?.close();
    await pool.end();
  };
  try {
    sim = await startCameraSimulator({
      pool,
      mqttUrl,
      mqttAuth: {
        ...(env.MQTT_USERNAME ? { username: env.MQTT_USERNAME, password: env.MQTT_PASSWORD } : {}),
        // The broker connector's CA (and client certificate), so that it reaches a broker on mqtts:// as the worker does.
        tls:
          config.vision.broker === undefined
            ? undefined
            : brokerTls(parseConnectorSettings(MqttConnectorConfig, config, config.vision.broker), {
                name: config.vision.broker,
                dataDir: resolve(env.HOLDFAST_DATA_DIR ?? '.holdfast/data'),
              }),
      },
      stations,
      ratePerStation: rate,
      defectRate,
      seed,
      frameLimit,
      format,
      schema: env.CAMERA_SIM_SCHEMA || undefined,
      prefix: config.vision.topicPrefix,
      log,
    });
    app = buildCameraAdminApp(sim.store, logger, sim);
    const metrics = createProcessRegistry();
    const camera = sim;
    new Counter({
      name: 'holdfast_camera_frames_published_total',
      help: 'Frames the camera simulator published (all stations).',
      registers: [metrics],
      collect() {
        // A counter read from the simulator's own count at each scrape.
        this.reset();
        this.inc(camera.published());
      },
    });
    exposeMetrics(app, metrics);
    await app.listen({ port, host: '127.0.0.1' });
    // Stations in shadow mode get the simulator's ground truth as verdicts, for Holdfast's shadow report.
    const shadow = new Set(
      config.sites.flatMap((site) =>
        site.lines.flatMap((l) =>
          l.stations.filter((st) => st.mode === 'shadow').map((st) => `${site.id}/${l.id}/${st.id}`),
        ),
      ),
    );
    const apiUrl = env.HOLDFAST_API_URL ?? `http://${config.api.host}:${config.api.port}`;
    const apiKeys = env.HOLDFAST_API_KEYS ? (JSON.parse(env.HOLDFAST_API_KEYS) as Record<string, string>) : undefined;
    if (shadow.size > 0) {
      feeder = startVerdictFeeder({ store: sim.store, apiUrl, ...(apiKeys ? { apiKeys } : {}), stations: shadow, log });
    }
  } catch (err) {
    await shutdown().catch(() => undefined);
    throw err;
  }
  const names = stations.map((s) => `${s.site}/${s.line}/${s.station}`).join(', ');
  logger.info(
    { truth: `http://127.0.0.1:${port}/truth`, format },
    `camera-sim ready: ${stations.length} stations (${names}) at ${rate}/s each, defect rate ${defectRate}`,
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('camera simulator stopping', { signal, published: sim?.published() });
    shutdown().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'camera simulator did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // A camera that died (PostgreSQL gone) ends the process, so `npm start` notices instead of showing a silent line.
  sim.finished.then(
    () => {
      if (frameLimit !== undefined && !stopping) logger.info(`camera-sim: every station shot its ${frameLimit} frames`);
    },
    (err: unknown) => {
      logger.fatal({ err }, 'camera simulator failed');
      void shutdown().finally(() => process.exit(1));
    },
  );
}

function numberFrom(name: string, fallback: number, valid: (v: number) => boolean): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || !valid(value)) throw new Error(`${name} is not valid: "${raw}"`);
  return value;
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'camera simulator failed to start');
  process.exit(1);
});
