/**
 * `npm run bench:recall`: a mock recall of a supplier lot over a plant history of a million parts, end to end through
 * the API (the recall workflow, its report and the FSMA 204 sheet of its lots), against the same affected set found
 * by walking the ERP's raw goods movements; then a real recall that contains a thousand lots in the simulators.
 *
 *   npm run bench:recall -- --runs 3
 *
 * 1. A seeded history (300 supplier lots, so that one reaches over a thousand finished lots; `--unshipped-share` of
 *    the finished lots kept in stock, so that a recall has a thousand lots to contain) is generated, loaded into the
 *    SAP and MES simulators and synced into the genealogy (bench/plant-genealogy.ts).
 * 2. Holdfast's worker and API run in this process over that PostgreSQL and a Temporal dev server started here.
 * 3. Each run: a mock recall of the next supplier lot by reach, from `POST /v1/recalls` to the last byte of
 *    `GET /v1/recalls/{id}/report` and `GET /v1/recalls/{id}/fsma204` (CSV), called through the API in process
 *    (`inject`: routes, access checks, JSON; no sockets). Its forward lots and deliveries are checked against the
 *    generator's ground truth. The baseline: the same supplier lot's forward walk through the SAP simulator's OData
 *    API (bench/erp-walk.ts, part 1's baseline), checked the same way.
 */
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities';
import { buildApp } from '../api/app';
import type { RecallReportDocument } from '../api/routes/recalls/recall-report';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import { genealogyRecorder } from '../infra/genealogy/genealogy-recorder';
import { createGenealogyStore } from '../infra/genealogy/genealogy-store';
import { lotKey } from '../infra/genealogy/genealogy-keys';
import { createAccounts } from '../infra/identity/accounts';
import { issueLocalToken } from '../infra/identity/authenticate';
import { generateSigningKey } from '../infra/identity/signing-key';
import { createPgIntentLedger } from '../infra/ledger/pg-intent-ledger';
import { startTemporalDevServer } from '../infra/local/temporal-dev-server';
import { createRecallStore } from '../infra/recall/recall-store';
import { resolveTemporalCli } from '../infra/temporal/cli';
import { createTemporalWorkflowGateway } from '../infra/temporal/gateway';
import {
  PAYLOAD_KEYS_ENV,
  generatePayloadKeyEntry,
  holdfastDataConverter,
  holdfastPayloadCodec,
} from '../infra/temporal/payload-codec';
import { ALL_SEARCH_ATTRIBUTES, type RecallStatus } from '../workflows/contracts';
import { createQualityWorkers } from '../workers/quality-workers';
import { createErpWalk } from './erp-walk';
import { runBenchmark } from './harness';
import { PLANT, SITE, preparePlantGenealogy, syncFigures } from './plant-genealogy';
import { jsonFigure, jsonFigures, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: '1000000' },
    lots: { type: 'string', default: '100000' },
    'supplier-lots': { type: 'string', default: '300' },
    'unshipped-share': { type: 'string', default: '0.05' },
    days: { type: 'string', default: '365' },
    seed: { type: 'string', default: '1' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    'min-lots': { type: 'string', default: '1000' },
    'min-deliveries': { type: 'string', default: '100' },
  },
});

function count(name: string, min: number): number {
  const text = args[name as keyof typeof args];
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${text}"`);
  return value;
}

const seconds = (since: number) => (performance.now() - since) / 1000;

runBenchmark('recall', async (bench) => {
  const { say } = bench;
  const parts = count('parts', 1);
  const lots = count('lots', 3);
  const supplierLots = count('supplier-lots', 1);
  const days = count('days', 1);
  const seed = count('seed', 0);
  const runs = count('runs', 1);
  const minLots = count('min-lots', 0);
  const minDeliveries = count('min-deliveries', 0);
  const unshippedShare = Number(args['unshipped-share']);
  if (!(unshippedShare >= 0 && unshippedShare < 1)) throw new Error('--unshipped-share must be in [0, 1)');
  const base = loadConfig();
  const loadBefore = loadavg()[0]!;

  // The history in the simulators and the genealogy (the sync is not what this benchmark measures).
  const config: HoldfastConfig = { ...base, sites: [{ ...base.sites.find((s) => s.id === SITE)!, erpPlant: PLANT }] };
  const plant = await preparePlantGenealogy(bench, {
    base: config,
    history: { parts, lots, supplierLots, seed, days, unshippedShare },
    pageSize: config.traceability.sync.pageSize,
    production: config.traceability.sync.production,
    name: 'recall',
  });
  const { holdfast, truth, sapUrl, sapCredentials } = plant;
  process.env.HOLDFAST_DATA_DIR = join(plant.work, 'data');

  // Holdfast: a Temporal dev server, the worker and the API, in this process (as test/support/stack.ts wires them).
  // The worker's state changes at INFO would bury the benchmark's own lines.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const temporal = await startTemporalDevServer({
    cliPath: await resolveTemporalCli(say),
    uiPort: false,
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
  });
  bench.onCleanUp('Temporal dev server', temporal.stop);
  const connection = await Connection.connect({ address: temporal.address });
  bench.onCleanUp('Temporal connection', () => connection.close());
  // This run's own key, as npm start makes one: the benchmark pays for payload encryption like a plant does.
  const payloadCodec = holdfastPayloadCodec({ [PAYLOAD_KEYS_ENV]: generatePayloadKeyEntry('bench') });
  const dataConverter = holdfastDataConverter(payloadCodec);
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter });
  const native = await NativeConnection.connect({ address: temporal.address });
  bench.onCleanUp('worker connection', () => native.close());
  const workers = await createQualityWorkers({
    config: plant.config,
    connection: native,
    namespace: temporal.namespace,
    dataConverter,
    activities: createActivities({
      pool: holdfast.pool,
      ledger: createPgIntentLedger(holdfast.pool),
      mesFor: plant.connectors.mesFor,
      erpFor: plant.connectors.erpFor,
      escalationFor: plant.connectors.escalationFor,
      genealogy: genealogyRecorder(createGenealogyStore(createAuditTrail(holdfast.pool))),
      recalls: createRecallStore(holdfast.pool),
    }),
  });
  const running = workers.map((w) => w.run());
  bench.onCleanUp('workers', async () => {
    workers.forEach((w) => w.shutdown());
    await Promise.allSettled(running);
  });
  const signingKey = await generateSigningKey();
  const api = await buildApp({
    signingKey,
    pool: holdfast.pool,
    gateway: createTemporalWorkflowGateway(client, { taskQueue: plant.config.taskQueues.quality }),
    config: plant.config,
    namespace: temporal.namespace,
    payloadCodec,
  });
  bench.onCleanUp('API', () => api.close());
  // A quality engineer with a local account: a real recall is signed with the re-entered password.
  const accounts = createAccounts(holdfast.pool, createAuditTrail(holdfast.pool), {
    maxFailedSignIns: 5,
    lockForMs: 60_000,
  });
  const engineer = { username: 'bench-qe', roles: ['quality-engineer' as const], sites: 'all' as const };
  const { password: _signerPassword } = await accounts.addUser({ kind: 'system', id: 'bench' }, engineer);
  const token = await issueLocalToken(
    signingKey,
    { ...engineer, displayName: engineer.username, disabled: false, lockedUntil: null },
    24 * 3600,
  );
  const headers = { authorization: `Bearer ${token}` };

  // The supplier lots worth a recall of this size, by reach.
  const byId = new Map(truth.lots.map((l) => [l.lotId, l]));
  const candidates = [...truth.supplierReach]
    .filter((r) => r.finishedLots.length >= minLots && r.deliveries.length >= minDeliveries)
    .sort((a, b) => b.finishedLots.length - a.finishedLots.length || a.supplierLot.localeCompare(b.supplierLot));
  if (candidates.length < runs) {
    throw new Error(
      `only ${candidates.length} supplier lot(s) reach ${minLots} finished lots and ${minDeliveries} deliveries; ` +
        'lower --supplier-lots or --min-lots',
    );
  }
  const keyOf = (id: string) => lotKey({ erp: { plant: PLANT, material: byId.get(id)!.material, batch: id } });
  const erpWalk = createErpWalk({ url: sapUrl, ...sapCredentials, plant: PLANT });
  const wrong: string[] = [];
  const perRun: Record<string, number>[] = [];

  for (let run = 1; run <= runs; run++) {
    const reach = candidates[run - 1]!;
    const supplier = byId.get(reach.supplierLot)!;
    const figures: Record<string, number> = {};

    // The mock recall, end to end.
    const t0 = performance.now();
    const posted = await api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...headers, 'idempotency-key': `bench-mock-${seed}-${run}` },
      payload: {
        site: SITE,
        kind: 'mock',
        scope: { kind: 'erp-batch', plant: PLANT, material: supplier.material, batch: supplier.lotId },
        reason: `bench mock recall ${run}`,
      },
    });
    if (posted.statusCode !== 202) throw new Error(`POST /v1/recalls answered ${posted.statusCode}: ${posted.body}`);
    const { recallId, workflowId } = posted.json<{ recallId: string; workflowId: string }>();
    const status = (await client.workflow.getHandle(workflowId).result()) as RecallStatus;
    const workflowS = seconds(t0);
    let t1 = performance.now();
    const reportRes = await api.inject({ method: 'GET', url: `/v1/recalls/${recallId}/report`, headers });
    const reportS = seconds(t1);
    t1 = performance.now();
    const sheetRes = await api.inject({ method: 'GET', url: `/v1/recalls/${recallId}/fsma204`, headers });
    const sheetS = seconds(t1);
    figures.mock_recall_s = seconds(t0);
    if (status.state !== 'completed' || reportRes.statusCode !== 200 || sheetRes.statusCode !== 200) {
      throw new Error(
        `mock recall ${recallId}: ${status.state}, report ${reportRes.statusCode}, sheet ${sheetRes.statusCode}`,
      );
    }
    const report = reportRes.json<RecallReportDocument>();
    const fsmaRows = sheetRes.body.split('\r\n').filter(Boolean).length - 1;
    for (const s of status.stages) if (s.durationMs !== undefined) figures[`stage_${s.name}_s`] = s.durationMs / 1000;
    figures.workflow_s = workflowS;
    figures.report_s = reportS;
    figures.fsma_s = sheetS;
    figures.fsma_rows = fsmaRows;
    const affected = report.lots.filter((l) => l.reachedBy !== 'backward');
    figures.lots_affected = affected.length;
    const deliveries = new Set(report.customers.flatMap((c) => c.deliveries.map((d) => d.delivery)));
    figures.deliveries_affected = deliveries.size;
    figures.customers_affected = report.customers.length;

    // Checked against the truth: every finished lot the supplier lot reached, and their deliveries.
    const finished = new Set(reach.finishedLots.map(keyOf));
    const gotFinished = new Set(affected.map((l) => l.lotKey).filter((k) => finished.has(k)));
    if (gotFinished.size !== finished.size) {
      wrong.push(`recall ${run}: ${gotFinished.size} of the truth's ${finished.size} finished lots`);
    }
    if (deliveries.size !== reach.deliveries.length || !reach.deliveries.every((d) => deliveries.has(d))) {
      wrong.push(`recall ${run}: ${deliveries.size} deliveries, the truth ${reach.deliveries.length}`);
    }

    // The baseline: the same affected set from the ERP's raw documents.
    t1 = performance.now();
    const walked = await erpWalk.forward(supplier.material, supplier.lotId);
    figures.baseline_s = seconds(t1);
    figures.baseline_requests = walked.requests;
    const walkedFinished = reach.finishedLots.filter((id) => walked.batches.has(id)).length;
    if (walkedFinished !== reach.finishedLots.length || walked.deliveries.size !== reach.deliveries.length) {
      wrong.push(
        `baseline ${run}: ${walkedFinished} of ${reach.finishedLots.length} finished lots, ` +
          `${walked.deliveries.size} of ${reach.deliveries.length} deliveries`,
      );
    }
    say(
      `run ${run}: mock recall of ${supplier.lotId} in ${figures.mock_recall_s.toFixed(2)} s (workflow ` +
        `${workflowS.toFixed(2)} s, report ${reportS.toFixed(2)} s, sheet ${sheetS.toFixed(2)} s): ` +
        `${affected.length} lots, ${deliveries.size} deliveries, ${fsmaRows} sheet rows; baseline ` +
        `${figures.baseline_s.toFixed(2)} s in ${walked.requests} requests`,
    );
    perRun.push(figures);
  }

  const spreads = spreadByKey(perRun);
  const median = (key: string) => jsonFigure(spreads[key]!.median, 2);
  const ok = wrong.length === 0;
  return {
    exitCode: ok ? 0 : 1,
    summary: {
      bench: 'recall',
      ok,
      wrong: wrong.slice(0, 20),
      machine: {
        cpus: cpus().length,
        memory_gb: Math.round(totalmem() / 2 ** 30),
        loadavg_1m_before: jsonFigure(loadBefore, 2),
        loadavg_1m_after: jsonFigure(loadavg()[0]!, 2),
      },
      runs,
      parts: truth.counts.parts,
      lots: truth.counts.producedLots,
      supplier_lots: truth.counts.supplierLots,
      deliveries: truth.counts.deliveries,
      unshipped_share: unshippedShare,
      generation_ms: jsonFigure(plant.generationMs, 0),
      generated_rows: plant.generatedRows,
      load_ms: jsonFigure(plant.loadMs, 0),
      sync_erp: syncFigures(plant.sync.erp),
      sync_mes: syncFigures(plant.sync.mes),
      spread: Object.fromEntries(Object.entries(spreads).map(([k, s]) => [k, jsonFigures({ ...s }, 3)])),
      mock_recall_s: median('mock_recall_s'),
      lots_affected: median('lots_affected'),
      deliveries_affected: median('deliveries_affected'),
      fsma_rows: median('fsma_rows'),
      baseline_s: median('baseline_s'),
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  };
});
