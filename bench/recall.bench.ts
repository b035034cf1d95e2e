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
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { buildApp } from '../api/app';
import type { RecallReportDocument } from '../api/routes/recalls/recall-report';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import { lotKey } from '../infra/genealogy/genealogy-keys';
import { createAccounts } from '../infra/identity/accounts';
import { issueLocalToken } from '../infra/identity/authenticate';
import { generateSigningKey } from '../infra/identity/signing-key';
import { startTemporalDevServer } from '../infra/local/temporal-dev-server';
import { openReinspector } from '../infra/recall/reinspection';
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
import { createWorkerActivities } from '../workers/worker-activities';
import { createErpWalk } from './erp-walk';
import { integerOption, runBenchmark } from './harness';
import { PLANT, SITE, preparePlantGenealogy, syncFigures } from './plant-genealogy';
import { jsonFigure, jsonFigures, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    parts: { type: 'string', default: '1000000' },
    lots: { type: 'string', default: '100000' },
    'supplier-lots': { type: 'string', default: '300' },
    // Finished lots still in stock: most, so that each real recall finds a thousand lots in the plant's hands.
    'unshipped-share': { type: 'string', default: '0.7' },
    // Lots a real recall may share with an earlier run's (found held, not held again; reported as already_held).
    'max-overlap': { type: 'string', default: '0.05' },
    'real-runs': { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    'min-contain': { type: 'string', default: '1000' },
    days: { type: 'string', default: '365' },
    seed: { type: 'string', default: '1' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    'min-lots': { type: 'string', default: '1000' },
    'min-deliveries': { type: 'string', default: '100' },
  },
});

const count = (name: string, min: number) => integerOption(args, name, min);

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
  const realRuns = count('real-runs', 0);
  const minContain = count('min-contain', 0);
  const maxOverlap = Number(args['max-overlap']);
  if (!(maxOverlap >= 0 && maxOverlap <= 1)) throw new Error('--max-overlap must be in [0, 1]');
  const unshippedShare = Number(args['unshipped-share']);
  if (!(unshippedShare >= 0 && unshippedShare < 1)) throw new Error('--unshipped-share must be in [0, 1)');
  const base = loadConfig();
  const loadBefore = loadavg()[0]!;

  // Keys, signatures and the real recall's notices (a file drop) in this run's own data directory.
  const dataDir = mkdtempSync(join(tmpdir(), 'holdfast-bench-data-'));
  bench.onCleanUp('data directory', async () => rmSync(dataDir, { recursive: true, force: true }));
  process.env.HOLDFAST_DATA_DIR = dataDir;
  // The history in the simulators and the genealogy (the sync is not what this benchmark measures).
  const config: HoldfastConfig = { ...base, sites: [{ ...base.sites.find((s) => s.id === SITE)!, erpPlant: PLANT }] };
  const plant = await preparePlantGenealogy(bench, {
    base: config,
    history: { parts, lots, supplierLots, seed, days, unshippedShare },
    pageSize: config.traceability.sync.pageSize,
    production: config.traceability.sync.production,
    name: 'recall',
  });
  const { holdfast, truth, history, sapUrl, sapCredentials } = plant;

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
  const reinspection = openReinspector(holdfast.pool, plant.config);
  bench.onCleanUp('reinspector', () => reinspection.close());
  const workers = await createQualityWorkers({
    config: plant.config,
    connection: native,
    namespace: temporal.namespace,
    dataConverter,
    activities: createWorkerActivities(holdfast.pool, plant.config, plant.connectors, {
      reinspector: reinspection.reinspector,
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
  const { password } = await accounts.addUser({ kind: 'system', id: 'bench' }, engineer);
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

  // The real recalls: supplier lots whose lots still in stock are at least --min-contain, each sharing at most
  // --max-overlap of them with the runs before (a lot another run held already is found held, not held again).
  const stock = new Map(history.stock().map((x) => [x.batch, x.quantity]));
  const inHand = (supplierLot: string): Set<string> => {
    const reached = new Set([supplierLot]);
    const todo = [supplierLot];
    while (todo.length > 0) {
      for (const c of byId.get(todo.pop()!)!.children)
        if (!reached.has(c.lotId) && reached.add(c.lotId)) todo.push(c.lotId);
    }
    return new Set([...reached].filter((id) => (stock.get(id) ?? 0) > 0));
  };
  const taken = new Set<string>();
  const realScopes: { lot: string; lots: Set<string> }[] = [];
  for (const r of [...truth.supplierReach].sort((a, b) => b.finishedLots.length - a.finishedLots.length)) {
    if (realScopes.length >= realRuns) break;
    const lots = inHand(r.supplierLot);
    const shared = [...lots].filter((id) => taken.has(id)).length;
    if (lots.size < minContain || shared > maxOverlap * lots.size) continue;
    lots.forEach((id) => taken.add(id));
    realScopes.push({ lot: r.supplierLot, lots });
  }
  if (realScopes.length < realRuns) {
    throw new Error(
      `only ${realScopes.length} supplier lot(s) with ${minContain} lots in stock sharing at most ${maxOverlap} of them; ` +
        'raise --unshipped-share or lower --min-contain',
    );
  }
  const realPerRun: Record<string, number>[] = [];
  for (const [i, { lot, lots: expected }] of realScopes.entries()) {
    const supplier = byId.get(lot)!;
    const t0 = performance.now();
    const posted = await api.inject({
      method: 'POST',
      url: '/v1/recalls',
      headers: { ...headers, 'idempotency-key': `bench-real-${seed}-${i + 1}` },
      payload: {
        site: SITE,
        kind: 'real',
        scope: { kind: 'erp-batch', plant: PLANT, material: supplier.material, batch: supplier.lotId },
        reason: `bench real recall ${i + 1}`,
        signature: { meaning: 'responsibility', password },
      },
    });
    if (posted.statusCode !== 202) throw new Error(`POST /v1/recalls answered ${posted.statusCode}: ${posted.body}`);
    const { recallId, workflowId } = posted.json<{ recallId: string; workflowId: string }>();
    const postedAt = Date.now() - (performance.now() - t0);
    const status = (await client.workflow
      .getHandle(workflowId)
      .result()
      .catch((err: unknown) => {
        // The cause chain says which stage failed and why (a failed activity's own message is two causes down).
        let cause: unknown = err;
        const chain: string[] = [];
        while (cause instanceof Error) {
          chain.push(cause.message);
          cause = cause.cause;
        }
        throw new Error(`real recall ${recallId}: ${chain.join(': ')}`);
      })) as RecallStatus;
    const recallS = seconds(t0);
    const contain = status.stages.find((x) => x.name === 'contain')!;
    const notify = status.stages.find((x) => x.name === 'notify')!;
    const real = {
      real_recall_contain_s: (Date.parse(contain.finishedAt!) - postedAt) / 1000,
      contain_stage_s: contain.durationMs! / 1000,
      notify_stage_s: (notify.durationMs ?? 0) / 1000,
      real_recall_s: recallS,
      lots_contained: status.contain?.lots ?? 0,
      already_held: status.contain?.alreadyHeld ?? 0,
      notifications: notify.counts?.['notifications'] ?? 0,
    };
    const figures: Record<string, number> = real;
    // Exactly once, by the simulators' own records: one hold of this recall per MES lot, one 344 per batch.
    const rows = await holdfast.pool.query<{ lot_key: string; state: string; hold_id: string | null; blocks: number }>(
      `SELECT lot_key, state, hold_id, jsonb_array_length(erp_blocks)::int AS blocks
         FROM holdfast.recall_containment WHERE recall_id = $1`,
      [recallId],
    );
    const holds = await plant.sims.pool.query<{ lot_id: string; n: number }>(
      `SELECT lot_id, count(*)::int AS n FROM mes.hold WHERE external_reference LIKE $1 GROUP BY lot_id`,
      [`recall:${recallId}:%`],
    );
    const got = new Set(rows.rows.map((r) => r.lot_key));
    const want = new Set([...expected].map(keyOf));
    if (got.size !== want.size || ![...want].every((k) => got.has(k))) {
      wrong.push(`real recall ${i + 1}: contained ${got.size} lots, the truth has ${want.size} in stock`);
    }
    if (holds.rows.some((h) => h.n !== 1)) wrong.push(`real recall ${i + 1}: a lot held more than once`);
    if (holds.rows.length + real.already_held !== rows.rows.length) {
      wrong.push(
        `real recall ${i + 1}: ${holds.rows.length} holds + ${real.already_held} held before ≠ ${rows.rows.length} lots`,
      );
    }
    // A lot an earlier run held and blocked has nothing left to block.
    if (rows.rows.some((r) => r.state === 'failed' || r.blocks > 1 || (r.state === 'held' && r.blocks !== 1))) {
      wrong.push(`real recall ${i + 1}: a lot failed, or was not blocked exactly once`);
    }
    figures.mes_holds = holds.rows.length;
    figures.erp_blocks = rows.rows.reduce((n, r) => n + r.blocks, 0);
    say(
      `real recall ${i + 1} of ${supplier.lotId}: ${figures.lots_contained} lots contained ` +
        `${real.real_recall_contain_s.toFixed(2)} s after the request (stage ${real.contain_stage_s.toFixed(2)} s; ` +
        `${figures.mes_holds} MES holds, ${real.already_held} held before, ${figures.erp_blocks} blocks), ` +
        `${figures.notifications} notices in ` +
        `${real.notify_stage_s.toFixed(2)} s, the whole recall ${recallS.toFixed(2)} s`,
    );
    realPerRun.push(figures);
  }

  const spreads = spreadByKey(perRun);
  const realSpreads = spreadByKey(realPerRun);
  const median = (key: string) => jsonFigure((spreads[key] ?? realSpreads[key])!.median, 2);
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
      spread: Object.fromEntries(
        Object.entries({ ...spreads, ...realSpreads }).map(([k, s]) => [k, jsonFigures({ ...s }, 3)]),
      ),
      real_runs: realRuns,
      mock_recall_s: median('mock_recall_s'),
      lots_affected: median('lots_affected'),
      deliveries_affected: median('deliveries_affected'),
      fsma_rows: median('fsma_rows'),
      baseline_s: median('baseline_s'),
      real_recall_contain_s: realRuns > 0 ? median('real_recall_contain_s') : null,
      lots_contained: realRuns > 0 ? median('lots_contained') : null,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  };
});
