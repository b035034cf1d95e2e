import { Client } from '@temporalio/client';
import { createActivities } from '../activities';
import { loadConfig } from '../infra/config/load';
import type { ConnectorLogger } from '../infra/connectors/define';
import { createPool } from '../infra/db/pool';
import { connectNative, resolveTemporalTarget } from '../infra/temporal/connection';
import { createTemporalLotCaseStarter } from '../infra/temporal/gateway';
import { openSiteConnectors } from './connectors';
import { createQualityWorkers } from './quality-workers';

const log: ConnectorLogger = {
  info: (msg, meta) => console.log(msg, meta ?? ''),
  warn: (msg, meta) => console.warn(msg, meta ?? ''),
  error: (msg, meta) => console.error(msg, meta ?? ''),
};

/**
 * The worker process: load config → open connectors → build activities → one Worker per pool → run until
 * SIGINT/SIGTERM (the Temporal runtime drains in-flight tasks) → close everything it opened, in reverse.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const target = resolveTemporalTarget(config);
  const pool = createPool(databaseUrl);
  // Opens every site's MES, ERP and escalation connector and runs their health checks: a required one that fails
  // stops start-up here, named with its cause, before anything talks to Temporal.
  const connectors = await openSiteConnectors(config, log).catch(async (err: unknown) => {
    await pool.end();
    throw err;
  });
  const connection = await connectNative(target);
  try {
    const client = new Client({ connection, namespace: target.namespace });
    const activities = createActivities({
      pool,
      mesFor: connectors.mesFor,
      erpFor: connectors.erpFor,
      escalationFor: connectors.escalationFor,
      lotCases: createTemporalLotCaseStarter(client),
    });
    const workers = await createQualityWorkers({ config, connection, namespace: target.namespace, activities });
    // infra/local/start.ts waits for this exact line before starting the API.
    console.log(
      'worker ready',
      JSON.stringify({ pools: config.workerPools.map((p) => p.taskQueue), pid: process.pid }),
    );
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await connection.close();
    await connectors.close();
    await pool.end();
  }
}

main().catch((err: unknown) => {
  console.error('worker failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
