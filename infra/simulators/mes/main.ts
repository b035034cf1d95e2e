import { Pool } from 'pg';
import { createLogger } from '../../observability/logger';
import { createProcessRegistry, exposeMetrics } from '../../observability/http-metrics';
import { buildMesSimulator } from './mes.simulator';

const logger = createLogger('mes-sim');

/**
 * Runs the reference MES on 127.0.0.1 (`npm run start:sim:mes`).
 * DATABASE_URL (required), MES_API_KEY (optional; then requests need X-API-Key), MES_SIM_PORT (default 4010);
 * MES_MQTT_URL (optional, with MES_MQTT_USERNAME / MES_MQTT_PASSWORD): also publish production and job-order events there.
 * GET /metrics: process series and request counts.
 */
async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (PostgreSQL connection string for the MES simulator)');
  const port = Number(process.env.MES_SIM_PORT ?? 4010);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`MES_SIM_PORT must be a port number, got "${process.env.MES_SIM_PORT}"`);
  }
  const apiKey = process.env.MES_API_KEY || undefined;

  const pool = new Pool({ connectionString: databaseUrl, max: 10 });
  let app: Awaited<ReturnType<typeof buildMesSimulator>>;
  try {
    const brokerUrl = process.env.MES_MQTT_URL || undefined;
    const productionEventBroker = brokerUrl
      ? {
          url: brokerUrl,
          ...(process.env.MES_MQTT_USERNAME ? { username: process.env.MES_MQTT_USERNAME } : {}),
          ...(process.env.MES_MQTT_PASSWORD ? { password: process.env.MES_MQTT_PASSWORD } : {}),
        }
      : undefined;
    app = await buildMesSimulator({ pool, apiKey, seedDemo: true, logger, productionEventBroker });
    exposeMetrics(app, createProcessRegistry());
    await app.listen({ port, host: '127.0.0.1' });
  } catch (err) {
    await pool.end();
    throw err;
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'MES simulator stopping');
    app
      .close()
      .then(() => pool.end())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          app.log.error({ err }, 'MES simulator did not stop cleanly');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'MES simulator failed to start');
  process.exit(1);
});
