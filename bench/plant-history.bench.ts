/**
 * bench:plant-history — how long the seeded plant history takes to generate and to load into the SAP and MES
 * simulators (in this process, on an embedded PostgreSQL, over HTTP through their bulk admin routes, as
 * `npm run plant:history` loads running ones), and how much memory it takes.
 *
 *   npm run bench:plant-history -- --parts 1000000 --lots 100000 --supplier-lots 10000
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { buildMesSimulator } from '../infra/simulators/mes/mes.simulator';
import { loadIntoSimulators } from '../infra/simulators/plant-history/load';
import { generatePlantHistory } from '../infra/simulators/plant-history/plant-history';
import { buildSapS4Simulator } from '../infra/simulators/sap-s4/sap-s4.simulator';
import { runBenchmark } from './harness';
import { openPool } from './pools';

const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: '1000000' },
    lots: { type: 'string', default: '100000' },
    'supplier-lots': { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    days: { type: 'string', default: '365' },
  },
});

const mb = (bytes: number) => Math.round(bytes / 1e6);

runBenchmark('plant-history', async (bench) => {
  const { say } = bench;
  const started = performance.now();
  const history = generatePlantHistory({
    parts: Number(args.parts),
    lots: Number(args.lots),
    supplierLots: Number(args['supplier-lots']),
    seed: Number(args.seed),
    days: Number(args.days),
    gaps: { 'batch-never-received': 5, 'lot-without-source': 5, 'part-without-inspection': 5 },
    outOfOrderEvents: 20,
    replayedEvents: 20,
  });
  const generatedMs = performance.now() - started;
  const truth = history.groundTruth();
  const truthMs = performance.now() - started - generatedMs;
  let inspections = 0;
  const streamStart = performance.now();
  for (const _ of history.inspections()) inspections++;
  const inspectionsMs = performance.now() - streamStart;
  const heapAfterGeneration = process.memoryUsage();
  say(
    `generated in ${Math.round(generatedMs)} ms, ground truth ${Math.round(truthMs)} ms: ${JSON.stringify(truth.counts)}`,
  );

  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-plant-history-'));
  chmodSync(work, 0o711);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg') });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const db = openPool(pg.url, { max: 8 });
  bench.onCleanUp('database connections', () => db.close());
  const credentials = { username: 'BENCH', password: randomBytes(12).toString('hex') };
  const sap = await buildSapS4Simulator({ pool: db.pool, credentials });
  const mes = await buildMesSimulator({ pool: db.pool });
  bench.onCleanUp('simulators', () => Promise.all([sap.close(), mes.close()]));
  const url = async (app: typeof sap) => {
    await app.listen({ port: 0, host: '127.0.0.1' });
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  };
  const [sapUrl, mesUrl] = [await url(sap), await url(mes)];

  const stepMs: Record<string, number> = {};
  const counts: Record<string, number> = {};
  const loadStart = performance.now();
  let last = loadStart;
  await loadIntoSimulators(history, {
    sap: { url: sapUrl, ...credentials },
    mes: { url: mesUrl },
    // Steps run one after the other, so the time since the last report belongs to this step.
    onProgress: ({ step, count }) => {
      const now = performance.now();
      stepMs[step] = (stepMs[step] ?? 0) + (now - last);
      last = now;
      counts[step] = count;
    },
  });
  const loadMs = performance.now() - loadStart;
  say(`loaded in ${Math.round(loadMs)} ms`);
  return {
    summary: {
      benchmark: 'plant-history',
      options: { parts: Number(args.parts), lots: Number(args.lots), supplierLots: Number(args['supplier-lots']) },
      counts: { ...truth.counts, ...counts, inspectionsStreamed: inspections },
      generateMs: Math.round(generatedMs),
      groundTruthMs: Math.round(truthMs),
      inspectionsStreamMs: Math.round(inspectionsMs),
      loadMs: Math.round(loadMs),
      loadStepMs: Object.fromEntries(Object.entries(stepMs).map(([k, v]) => [k, Math.round(v)])),
      heapUsedMbAfterGeneration: mb(heapAfterGeneration.heapUsed),
      rssMbAfterGeneration: mb(heapAfterGeneration.rss),
      rssMbPeak: mb(process.resourceUsage().maxRSS * 1024),
    },
  };
});
