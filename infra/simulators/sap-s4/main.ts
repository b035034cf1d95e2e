import pg from 'pg';
import { createLogger } from '../../observability/logger';
import { createProcessRegistry, exposeMetrics } from '../../observability/http-metrics';
import { buildSapS4Simulator } from './sap-s4.simulator';

const logger = createLogger('sap-sim');

/**
 * Starts the SAP S/4HANA simulator as its own process (`npm run start:sim:erp`), listening on loopback only.
 * GET /metrics: process series and request counts.
 */
function requireEnv(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`SAP simulator: environment variable ${name} is not set`);
  }
  return value;
}

async function main(): Promise<void> {
  const databaseUrl = requireEnv('DATABASE_URL');
  const credentials = { username: requireEnv('SAP_USER'), password: requireEnv('SAP_PASSWORD') };
  const port = Number(process.env.SAP_SIM_PORT ?? '4020');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`SAP simulator: SAP_SIM_PORT must be a port number, got "${process.env.SAP_SIM_PORT}"`);
  }

  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  const app = await buildSapS4Simulator({ pool, credentials, seedDemo: true, logger });
  exposeMetrics(app, createProcessRegistry());
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'SAP simulator stopping');
    void app
      .close()
      .then(() => pool.end())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          app.log.error({ err }, 'SAP simulator did not stop cleanly');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  await app.listen({ port, host: '127.0.0.1' });
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'SAP simulator failed to start');
  process.exit(1);
});
