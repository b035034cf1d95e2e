import { Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig } from '../infra/config/load';
import { createPool } from '../infra/db/pool';
import { createPgIntentLedger } from '../infra/ledger/pg-intent-ledger';
import { connectorLogger, createLogger } from '../infra/observability/logger';
import { temporalLogger } from '../infra/observability/temporal-logger';
import { connectNative, resolveTemporalTarget } from '../infra/temporal/connection';
import { openSiteConnectors } from './connectors';
import { createQualityWorkers } from './quality-workers';

const logger = createLogger('worker');

/**
 * The worker process: load config → open connectors → build activities → one Worker per pool → run until
 * SIGINT/SIGTERM (the Temporal runtime drains in-flight tasks) → close everything it opened, in reverse.
 */
async function main(): Promise<void> {
  // Before the first connection: the SDK's and the Rust core's lines (warnings and up) go through this process's logger.
  Runtime.install({
    logger: temporalLogger(logger),
    telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
  });
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const target = resolveTemporalTarget(config);
  const pool = createPool(databaseUrl);
  // Opens every site's MES, ERP and escalation connector and runs their health checks: a required one that fails
  // stops start-up here, named with its cause, before anything talks to Temporal.
  const connectors = await openSiteConnectors(config, connectorLogger(logger, { component: 'connectors' })).catch(
    async (err: unknown) => {
      await pool.end();
      throw err;
    },
  );
  const connection = await connectNative(target);
  try {
    const activities = createActivities({
      pool,
      ledger: createPgIntentLedger(pool),
      mesFor: connectors.mesFor,
      erpFor: connectors.erpFor,
      escalationFor: connectors.escalationFor,
    });
    logger.info('bundling workflow code and creating the workers');
    const workers = await createQualityWorkers({ config, connection, namespace: target.namespace, activities });
    // infra/local/start.ts waits for a line containing `worker ready` before starting the API.
    logger.info({ pools: config.workerPools.map((p) => p.taskQueue) }, 'worker ready');
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await connection.close();
    await connectors.close();
    await pool.end();
  }
  logger.info('worker stopped');
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'worker failed');
  process.exit(1);
});
