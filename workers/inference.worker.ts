/**
 * The inference worker process: frames from MQTT → model → reject signal → durable ingest → defect workflows.
 * Runs until SIGINT/SIGTERM, then stops taking frames, lets finished ones be acknowledged and closes everything.
 */
import { resolve } from 'node:path';
import { loadConfig } from '../infra/config/load';
import type { ConnectorLogger } from '../infra/connectors/define';
import { createPool } from '../infra/db/pool';
import { createProcessRegistry } from '../infra/observability/http-metrics';
import { startInferenceWorker } from './inference/inference-worker';

const log: ConnectorLogger = {
  info: (msg, meta) => console.log(msg, meta ? JSON.stringify(meta) : ''),
  warn: (msg, meta) => console.warn(msg, meta ? JSON.stringify(meta) : ''),
  error: (msg, meta) => console.error(msg, meta ? JSON.stringify(meta) : ''),
};

async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const mqttUrl = process.env.MQTT_URL ?? config.vision.mqtt.url;
  if (!mqttUrl) throw new Error('no MQTT broker: set MQTT_URL or vision.mqtt.url (npm start runs one)');
  const dataDir = resolve(process.env.HOLDFAST_DATA_DIR ?? '.holdfast/data');
  const pool = createPool(databaseUrl);
  const metrics = createProcessRegistry();
  const worker = await startInferenceWorker({ config, pool, mqttUrl, dataDir, log, metrics }).catch(
    async (err: unknown) => {
      await pool.end();
      throw err;
    },
  );
  log.info('metrics and health', { metrics: `${worker.http.url}/metrics`, health: `${worker.http.url}/health` });
  // infra/local/start.ts waits for this exact line.
  console.log('inference worker ready', JSON.stringify({ models: worker.models.list().map((m) => m.key) }));

  const statsTimer = setInterval(() => {
    const { frameLatencyMs: _frames, rejectLatencyMs: _rejects, ...counts } = worker.pipeline.stats();
    log.info('inference', { ...counts, subscriber: worker.subscriber.stats() });
  }, 60_000);
  statsTimer.unref();

  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  clearInterval(statsTimer);
  await worker.close();
  await pool.end();
}

main().catch((err: unknown) => {
  console.error('inference worker failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
