/**
 * bench:latency — failed inspections at a steady rate through the whole of Holdfast (HTTP ingest → PostgreSQL
 * outbox → Temporal dev server → worker → MES/SAP simulators over HTTP), against a baseline in the same run that
 * makes the same simulator calls directly in-process, without Temporal or the outbox. The ratio is the price of
 * durability. Every defect is on a lot of its own, so each one pays for a hold, a notification and a block.
 *
 *   npm run bench:latency -- --rate 20 --duration 60
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { randomUUID } from 'node:crypto';
import { cpus, totalmem, tmpdir } from 'node:os';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import type { MesPort, ErpPort } from '../activities/ports';
import { loadConfig } from '../infra/config/load';
import type { ConnectorLogger } from '../infra/connectors/define';
import { createPool } from '../infra/db/pool';
import { defaultLocalProcesses, MES_SIM_PORT, SAP_SIM_PORT, startLocalStack } from '../infra/local/start';
import { openSiteConnectors } from '../workers/connectors';
import { cpuSecondsBetween, snapshotCpu } from './process-cpu';
import { percentile } from './stats';
import { cleanUpOnInterrupt } from './interrupt';

const VISION_PROCESSES = new Set(['line-plc', 'inference', 'camera-sim']);
const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: process.env.BENCH_RATE ?? '20' },
    // 1 = every defect on a lot of its own (the worst case: a hold, a notification and a block each);
    // N = bursts of N consecutive defects on one lot, as when one cause spoils a run of parts.
    'parts-per-lot': { type: 'string', default: process.env.BENCH_PARTS_PER_LOT ?? '1' },
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '60' },
  },
});
const rate = Number(args.rate);
const durationS = Number(args.duration);
const count = Math.round(rate * durationS);
const partsPerLot = Math.max(1, Number(args['parts-per-lot']));
const say = (msg: string) => process.stderr.write(`[bench:latency] ${msg}\n`);

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1] ?? NaN };
};
const round = (n: number) => Math.round(n * 10) / 10;

/** Runs `fn(i)` for i in [0, n) at `rate` per second on an open loop (late calls do not delay later ones). */
async function openLoop(n: number, perSecond: number, fn: (i: number) => Promise<void>): Promise<void> {
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const due = start + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    inFlight.push(fn(i));
  }
  await Promise.all(inFlight);
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  // PostgreSQL runs as the postgres OS user when we are root: it must be able to enter this directory.
  chmodSync(work, 0o755);
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanUp = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  };
  const stopHandling = cleanUpOnInterrupt(cleanUp, say);
  try {
    say(`rate ${rate}/s for ${durationS}s = ${count} defects, ${partsPerLot} per lot`);
    // The topology of `npm start`: PostgreSQL, the Temporal dev server (SQLite file, WAL), and the simulators, the
    // worker and the API as separate processes, in a data directory of its own.
    // Without the vision side (line PLC, inference worker, camera simulator): the camera simulator would add defects
    // of its own at its own rate, and this benchmark controls the rate.
    const config = loadConfig();
    const local = await startLocalStack({
      config,
      dataDir: join(work, 'data'),
      log: () => undefined,
      processes: defaultLocalProcesses(config).filter((p) => !VISION_PROCESSES.has(p.name)),
    });
    cleanups.push(() => local.stop());
    const pool = createPool(local.databaseUrl, { max: 10 });
    cleanups.push(() => pool.end());
    const connection = await Connection.connect({ address: local.temporal.address });
    cleanups.push(() => connection.close());
    const client = new Client({ connection, namespace: local.temporal.namespace });
    const taskQueue = config.taskQueues.quality;
    const sapUrl = `http://127.0.0.1:${SAP_SIM_PORT}`;
    const mesUrl = `http://127.0.0.1:${MES_SIM_PORT}`;
    const apiUrl = `http://${config.api.host}:${config.api.port}`;
    const connectors = await openSiteConnectors(config, quiet, { ...process.env, ...local.sapCredentials });
    cleanups.push(() => connectors.close());
    const view = { client, taskQueue };

    const makeLots = async (prefix: string, n: number) => {
      const lots = Array.from({ length: n }, (_, i) => ({
        lotId: `${prefix}-${String(i).padStart(5, '0')}`,
        batch: `${prefix}${String(i).padStart(5, '0')}`.slice(-10),
      }));
      await mapLimit(lots, 8, async ({ lotId, batch }) => {
        const post = (url: string, body: unknown) =>
          fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const a = await post(`${mesUrl}/__sim/lots`, {
          lotId,
          workOrder: '1000100',
          sku: 'BRKT-200',
          quantity: 100,
          batch,
        });
        const b = await post(`${sapUrl}/__sim/stock`, {
          material: 'BRKT-200',
          plant: '1010',
          storageLocation: '0001',
          batch,
          quantity: 100,
          unit: 'PC',
        });
        if (!a.ok || !b.ok) throw new Error(`cannot create lot ${lotId}: ${a.status}/${b.status}`);
      });
      return lots;
    };
    const warmup = Math.min(20, count);
    say('creating lots in the simulators');
    const warmLots = await makeLots('W', warmup);
    const lots = await makeLots('T', Math.ceil(count / partsPerLot));
    const baseLots = await makeLots('D', count);

    const inspection = (lotId: string) => ({
      eventId: `bench-${randomUUID()}`,
      site: 'PLANT1',
      line: 'L1',
      station: 'S1',
      partId: `P-${randomUUID().slice(0, 12)}`,
      sku: 'BRKT-200',
      lotId,
      workOrder: '1000100',
      result: 'fail' as const,
      defects: [{ class: 'scratch', score: 0.91 }],
      modelVersion: 'bench-1',
      recipeVersion: 'BRKT-200@1',
      inspectedAt: new Date().toISOString(),
    });
    const sent = new Map<string, number>(); // eventId → inspectedAt (ms)
    const send = async (lotId: string) => {
      const body = inspection(lotId);
      sent.set(body.eventId, Date.parse(body.inspectedAt));
      const res = await fetch(`${apiUrl}/v1/inspections`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
      return body.eventId;
    };

    say(`warm-up: ${warmup} defects`);
    await Promise.all(warmLots.map((l) => send(l.lotId)));
    const warmIds = new Set(sent.keys());
    await waitForContainment(pool, warmIds.size, 60_000);

    say(`measuring Holdfast: ${count} defects at ${rate}/s`);
    sent.clear();
    const ingestMs: number[] = [];
    const cpuBefore = snapshotCpu();
    const t0 = Date.now();
    await openLoop(count, rate, async (i) => {
      const s = performance.now();
      await send(lots[Math.floor(i / partsPerLot)]!.lotId);
      ingestMs.push(performance.now() - s);
    });
    await waitForContainment(pool, warmup + count, 600_000);
    const drainS = (Date.now() - t0) / 1000;
    // What the measured defects cost the machine, from the first send until the last one was contained.
    const { totalS: cpuTotalS, byProcess: cpuByProcess } = cpuSecondsBetween(cpuBefore, snapshotCpu());

    // Latencies from the systems' own clocks: the MES hold's creation time, the lot case's trace rows.
    const mesSchema = 'mes_sim';
    const holds = await pool.query<{ lot_id: string; created_at: Date }>(
      `SELECT lot_id, created_at FROM ${mesSchema}.hold WHERE lot_id LIKE 'T-%'`,
    );
    const holdAt = new Map(holds.rows.map((r) => [r.lot_id, r.created_at.getTime()]));
    const inspected = await pool.query<{ event_id: string; lot_id: string }>(
      `SELECT event_id, lot_id FROM holdfast.inspection WHERE event_id = ANY($1)`,
      [[...sent.keys()]],
    );
    // Per lot: its first failed part's inspection → the hold (later parts of a held lot need no hold).
    const firstSeen = new Map<string, number>();
    for (const r of inspected.rows) {
      const at = sent.get(r.event_id)!;
      firstSeen.set(r.lot_id, Math.min(at, firstSeen.get(r.lot_id) ?? Infinity));
    }
    const holdMs = [...firstSeen].map(([lot, at]) => holdAt.get(lot)! - at).filter(Number.isFinite);
    // All steps: the lot case has linked the part's notification item (the trace edge it writes with the stage
    // record that follows the part's item, block and work-order count).
    const contained = await pool.query<{ from_id: string; created_at: Date }>(
      `SELECT from_id, created_at FROM holdfast.trace_link WHERE relation = 'defect-item' AND from_id = ANY($1)`,
      [[...sent.keys()]],
    );
    const containedAt = new Map(contained.rows.map((r) => [r.from_id, r.created_at.getTime()]));
    const allStepsMs = [...sent.entries()]
      .map(([eventId, at]) => (containedAt.get(eventId) ?? NaN) - at)
      .filter(Number.isFinite);

    // Where the time goes, per stage, from each system's own record (p50 ms after inspectedAt).
    const outbox = await pool.query<{ event_id: string; dispatched_at: Date | null; confirmed_at: Date | null }>(
      'SELECT event_id, dispatched_at, confirmed_at FROM holdfast.outbox WHERE event_id = ANY($1)',
      [[...sent.keys()]],
    );
    const since = (at: [string, Date | null][]) =>
      at.flatMap(([eventId, t]) => (t ? [t.getTime() - sent.get(eventId)!] : []));
    const caseStarts = await workflowTimes(view, `WorkflowType = 'lotCaseWorkflow'`, 'start');
    const stagesP50 = {
      dispatched: stats(since(outbox.rows.map((r) => [r.event_id, r.dispatched_at]))).p50,
      // The lot case's first activity for the part's batch recorded it.
      recorded: stats(since(outbox.rows.map((r) => [r.event_id, r.confirmed_at]))).p50,
      lot_case_started: stats(
        [...firstSeen].map(([lot, at]) => (caseStarts.get(`lot-PLANT1-${lot}`) ?? NaN) - at).filter(Number.isFinite),
      ).p50,
      mes_hold: stats(holdMs).p50,
      all_steps: stats(allStepsMs).p50,
    };

    say(`baseline: the same simulator calls in-process, ${count} defects at ${rate}/s`);
    const site = config.sites[0]!.id;
    const mes = connectors.mesFor(site);
    const erp = connectors.erpFor(site);
    const baseStarted = new Map<string, number>();
    const baseAll: number[] = [];
    await openLoop(count, rate, async (i) => {
      const at = Date.now();
      baseStarted.set(baseLots[i]!.lotId, at);
      await directContainment(mes, erp, pool, baseLots[i]!.lotId);
      baseAll.push(Date.now() - at);
    });
    const baseHolds = await pool.query<{ lot_id: string; created_at: Date }>(
      `SELECT lot_id, created_at FROM ${mesSchema}.hold WHERE lot_id LIKE 'D-%'`,
    );
    const baseHold = baseHolds.rows.map((r) => r.created_at.getTime() - baseStarted.get(r.lot_id)!);

    const h = stats(holdMs);
    const a = stats(allStepsMs);
    const bh = stats(baseHold);
    const ba = stats(baseAll);
    const ing = stats(ingestMs);
    const summary = {
      bench: 'latency',
      rate,
      duration_s: durationS,
      defects: count,
      parts_per_lot: partsPerLot,
      completed: allStepsMs.length,
      holds: holdMs.length,
      // Not finished within the 10-minute drain window (nothing is dropped: the outbox and Temporal keep it).
      unfinished: count - allStepsMs.length,
      p50_ms: round(h.p50),
      p95_ms: round(h.p95),
      p99_ms: round(h.p99),
      max_ms: round(h.max),
      all_steps_p50_ms: round(a.p50),
      all_steps_p95_ms: round(a.p95),
      all_steps_p99_ms: round(a.p99),
      ingest_p99_ms: round(ing.p99),
      baseline_p50_ms: round(bh.p50),
      baseline_p99_ms: round(bh.p99),
      baseline_all_steps_p50_ms: round(ba.p50),
      baseline_all_steps_p99_ms: round(ba.p99),
      ratio_p99: round(h.p99 / bh.p99),
      ratio_all_steps_p99: round(a.p99 / ba.p99),
      drain_s: round(drainS),
      // CPU of the whole stack over that window: per defect, in cores on average, and by process.
      cpu_ms_per_defect: round((cpuTotalS * 1000) / count),
      cpu_cores: round(cpuTotalS / drainS),
      cpu_s_by_process: cpuByProcess,
      stages_p50_ms: Object.fromEntries(Object.entries(stagesP50).map(([k, v]) => [k, round(v)])),
      machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    };
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    stopHandling();
    await cleanUp();
  }
}

/** Waits until `n` parts have been contained by their lot cases (the defect-item trace edge exists). */
async function waitForContainment(pool: import('pg').Pool, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM holdfast.trace_link WHERE relation = 'defect-item' AND from_id LIKE 'bench-%'`,
    );
    if (rows[0]!.n >= n) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function workflowTimes(
  stack: { client: Client; taskQueue: string },
  filter: string,
  which: 'start' | 'close',
): Promise<Map<string, number>> {
  const times = new Map<string, number>();
  for await (const wf of stack.client.workflow.list({ query: `${filter} AND TaskQueue = '${stack.taskQueue}'` })) {
    const t = which === 'start' ? wf.startTime : wf.closeTime;
    if (t) times.set(wf.workflowId, t.getTime());
  }
  return times;
}

/**
 * What a hand-wired integration would do for one defect, with the same connectors and simulators: read the lot,
 * then hold, notification, block and work-order count in parallel, then the trace row. No durability.
 */
async function directContainment(mes: MesPort, erp: ErpPort, pool: import('pg').Pool, lotId: string): Promise<void> {
  const key = `direct-${randomUUID()}`;
  const lot = await mes.getLot(lotId);
  await Promise.all([
    mes.holdLot({
      idempotencyKey: `${key}:hold`,
      lotId,
      workOrder: lot.workOrder,
      reason: 'bench',
      defectClass: 'scratch',
      line: 'L1',
      station: 'S1',
    }),
    erp.raiseQualityNotification({
      idempotencyKey: `${key}:qn`,
      notificationType: 'F3',
      text: `Vision defects in lot ${lotId}`,
      material: lot.sku,
      plant: lot.erpPlant,
      batch: lot.batch,
      quantity: lot.quantity,
      unit: lot.unit,
      firstItem: { idempotencyKey: `${key}:item`, defectCodeGroup: 'HF-VISN', defectCode: 'SCRA', text: 'scratch' },
    }),
    erp.postGoodsMovement({
      idempotencyKey: `${key}:344`,
      movementType: '344',
      material: lot.sku,
      plant: lot.erpPlant,
      storageLocation: lot.storageLocation,
      batch: lot.batch,
      quantity: 1,
      unit: lot.unit,
      headerText: `Hold ${lotId}`,
    }),
    mes.recordQualityEvent({
      idempotencyKey: `${key}:wo`,
      workOrder: lot.workOrder,
      lotId,
      partId: key,
      defectClass: 'scratch',
      nonconformingQuantity: 1,
    }),
  ]);
  await pool.query(
    `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id) VALUES ('inspection', $1, 'part-of-lot', 'lot', $2)`,
    [key, lotId],
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench:latency] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
