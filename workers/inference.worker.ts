/**
 * The inference worker process: frames from MQTT → model → reject signal → durable ingest → lot cases.
 * Runs until SIGINT/SIGTERM, then stops taking frames, lets finished ones be acknowledged and closes everything.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../infra/config/load';
import { createPool } from '../infra/db/pool';
import { seedRecipesFromConfig } from '../infra/vision/recipe.repository';
import { connectorLogger, createLogger } from '../infra/observability/logger';
import { createProcessRegistry } from '../infra/observability/http-metrics';
import { startInferenceWorker } from './inference/inference-worker';

const logger = createLogger('inference');
const STATS_INTERVAL_MS = 60_000;

async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const dataDir = resolve(process.env.HOLDFAST_DATA_DIR ?? '.holdfast/data');
  const pool = createPool(databaseUrl);
  const log = connectorLogger(logger);
  const metrics = createProcessRegistry();
  // Opens the broker and reject station connectors (MQTT_URL overrides the broker's url) and runs their health
  // checks: one that fails stops start-up here, named with its cause.
  const worker = await startInferenceWorker({ config, pool, dataDir, log, httpLogger: logger, metrics }).catch(
    async (err: unknown) => {
      await pool.end();
      throw err;
    },
  );
  // A model loads on its first frame otherwise, and that frame (its reject signal) waits seconds for it.
  const named = new Map(seedRecipesFromConfig(config).map((r) => [`${r.model.name}@${r.model.version}`, r.model]));
  for (const model of named.values()) {
    // A model that does not load is reported (announced by the worker) and retried by the first frame that needs it.
    await worker.models.get(model.name, model.version).catch(() => undefined);
  }
  // infra/local/start.ts waits for a line containing `inference worker ready`.
  logger.info(
    {
      models: worker.models.list().map((m) => m.key),
      metrics: `${worker.http.url}/metrics`,
      health: `${worker.http.url}/health`,
    },
    'inference worker ready',
  );

  let last = { frames: 0, failed: 0, rejectSignals: 0 };
  const statsTimer = setInterval(() => {
    const { frameLatencyMs: _frames, rejectLatencyMs: _rejects, ...counts } = worker.pipeline.stats();
    const refused = Object.values(counts.rejectedFrames).reduce((sum, n) => sum + n, 0);
    // One short line a minute by default; every counter with LOG_LEVEL_INFERENCE=debug.
    logger.info(
      {
        frames: counts.frames - last.frames,
        failed: counts.failed - last.failed,
        rejectSignals: counts.rejectSignals - last.rejectSignals,
        ...(refused > 0 ? { refused } : {}),
        ...(counts.deferredFrames > 0 ? { deferred: counts.deferredFrames } : {}),
      },
      `inspected in the last ${STATS_INTERVAL_MS / 1000} s`,
    );
    logger.debug({ ...counts, subscriber: worker.subscriber.stats() }, 'inference totals');
    last = counts;
  }, STATS_INTERVAL_MS);
  statsTimer.unref();

  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  logger.info('inference worker stopping');
  clearInterval(statsTimer);
  await worker.close();
  await pool.end();
  logger.info('inference worker stopped');
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'inference worker failed');
  process.exit(1);
});
