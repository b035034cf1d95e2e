/**
 * bench:latency — failed inspections at a steady rate through the whole of Holdfast (HTTP ingest → PostgreSQL outbox
 * → Temporal dev server → worker → MES/SAP simulators over HTTP), against a direct baseline in the same run and at
 * the same time: the same inspections POSTed to Holdfast's API app (the same PostgreSQL transaction) and the same
 * simulator calls, made straight away from one process without Temporal or the outbox (bench/direct-baseline.ts).
 * The ratio is the price of durability.
 *
 *   npm run bench:latency -- --rate 20 --duration 60 --runs 3
 *
 * - Latency is measured from when each inspection was due by the schedule (its `inspectedAt`), never from when the
 *   generator managed to send it, and read from the systems' own records: the MES hold's creation (per lot, from its
 *   first part), and all steps (per part: the hold, the MES work-order quality event, and the record that its
 *   notification item and block are posted).
 * - A hold or step still missing `--deadline` seconds after the last inspection was due is a failure: counted as
 *   +Infinity in the percentiles ("inf" in the JSON), listed by id, and the run exits with status 1.
 * - Both streams run at `--rate` at once, interleaved (the baseline's due instants half a period after Holdfast's),
 *   so Holdfast's stream is the schedule it would see alone and the baseline shares the machine with it. Each side
 *   has processes, simulators and databases of its own, so its CPU is read per process (bench/process-cpu.ts).
 * - Lots fall on work orders as a plant has them (a work order per line and shift with `--lots-per-work-order` lots),
 *   `--parts-per-lot` consecutive defects on each lot (1: every defect a new lot, the worst case).
 * - `--runs N` repeats the measurement with fresh lots on the same stack; every figure is published as the median,
 *   min and max over the runs.
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { parseDocument } from 'yaml';
import { configPath, loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import { migrate } from '../infra/db/migrate';
import { freePort } from '../infra/local/free-port';
import { spawnManaged } from '../infra/local/managed-process';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { holdfastDataConverter, holdfastPayloadCodec } from '../infra/temporal/payload-codec';
import { defaultLocalProcesses, startLocalStack, type LocalProcessSpec } from '../infra/local/start';
import { DIRECT_READY_LINE, type DirectRunRequest, type DirectRunStatus } from './direct-protocol';
import { integratorAuthorization, runBenchmark, type Bench } from './harness';
import { complete, latencyOutcome, type LatencyOutcome, type SentPart } from './latency-report';
import { inspectionBody, planRun, type PlannedLot } from './plant-data';
import { openPool, type ClosablePool } from './pools';
import { cpuByBucket, cpuSecondsBetween, postgresBackendRole, ROLE_ENV, snapshotCpu } from './process-cpu';
import { dueAt, openLoop } from './schedule';
import { jsonFigure, jsonFigures, percentiles, spreadByKey } from './stats';
import { loadOrCreateSigningKey } from '../infra/identity/signing-key';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: process.env.BENCH_RATE ?? '20' },
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '60' },
    // 1 = every defect on a lot of its own (the worst case: a hold, a notification and a block each);
    // N = bursts of N consecutive defects on one lot, as when one cause spoils a run of parts.
    'parts-per-lot': { type: 'string', default: process.env.BENCH_PARTS_PER_LOT ?? '1' },
    'lots-per-work-order': { type: 'string', default: '40' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    // How long after the last inspection was due a hold or step may still appear before it counts as missing.
    deadline: { type: 'string', default: '300' },
    warmup: { type: 'string', default: '20' },
  },
});
const rate = Number(args.rate);
const durationS = Number(args.duration);
const count = Math.round(rate * durationS);
const partsPerLot = Math.max(1, Math.floor(Number(args['parts-per-lot'])));
const lotsPerWorkOrder = Math.max(1, Math.floor(Number(args['lots-per-work-order'])));
const runs = Math.max(1, Math.floor(Number(args.runs)));
const deadlineS = Number(args.deadline);
const warmup = Math.max(1, Math.min(Math.floor(Number(args.warmup)), count));
for (const [name, value] of Object.entries({ rate, duration: durationS, deadline: deadlineS })) {
  if (!(value > 0)) throw new Error(`--${name} must be a positive number`);
}
if (count < 1) throw new Error('--rate × --duration must be at least one defect');

/** The site every inspection is for (temporal.yaml's demo plant). */
const SITE = 'PLANT1';
const LOT_QUANTITY = Math.max(100, partsPerLot);
const WARMUP_WAIT_S = 120;
/** Shown in the summary: how the CPU is split between Holdfast, the simulators and the load generator. */
const CPU_ATTRIBUTION =
  'by process: Holdfast = API (with the outbox dispatcher), worker, Temporal dev server and the PostgreSQL backends ' +
  'of its database; simulators = MES and SAP simulators and the backends of their database; load generator = this ' +
  "process and its own backends. PostgreSQL's shared processes (WAL writer, checkpointer, autovacuum) are split in " +
  "proportion to each part's backend CPU. Baseline: its process (load generator, API app, direct calls), its " +
  'simulators and their databases, the same way.';

/** The two sides of the run: Holdfast (measured) and the direct baseline. */
interface Side {
  name: 'holdfast' | 'baseline';
  /** Lot and event ids start with it (and the run number). */
  tag: string;
  mesUrl: string;
  sapUrl: string;
  /** Its inspections, outbox and trace rows. */
  db: ClosablePool;
  /** Its simulators' tables (schemas mes_sim, sap_sim). */
  simDb: ClosablePool;
}

interface StreamResult {
  sent: SentPart[];
  outcome: LatencyOutcome;
  ingestMs: number[];
  sendLagMs: number[];
  /** Parts whose send or direct calls failed, with why. */
  failures: { eventId: string; error: string }[];
  /** When the last of its steps was recorded (ms since the epoch), or the deadline. */
  doneAtMs: number;
  stepRows: StepRows;
}

interface StepRows {
  holdAt: Map<string, number>;
  qualityEventAt: Map<string, number>;
  containedAt: Map<string, number>;
}

runBenchmark('latency', async (bench) => {
  const { say } = bench;
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  // PostgreSQL runs as the postgres OS user when we are root: it must be able to enter this directory.
  chmodSync(work, 0o755);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  say(
    `${runs} run(s) of ${count} defects at ${rate}/s (${durationS} s), ${partsPerLot} per lot, ` +
      `${lotsPerWorkOrder} lots per work order; the direct baseline at the same rate, interleaved`,
  );

  // PostgreSQL on a free port, with a database per side and per side's simulators, and a user for this process: the
  // backends' process titles then say whom they serve.
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), log: () => undefined });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const benchUser = { user: 'bench', password: randomBytes(16).toString('hex') };
  const databases = { holdfast: 'holdfast', sims: 'holdfast_sims', direct: 'direct', directSims: 'direct_sims' };
  const admin = openPool(pg.url, { max: 1 });
  try {
    await admin.pool.query(`CREATE ROLE ${benchUser.user} LOGIN SUPERUSER PASSWORD '${benchUser.password}'`);
    for (const db of [databases.sims, databases.direct, databases.directSims]) {
      await admin.pool.query(`CREATE DATABASE ${db}`);
    }
  } finally {
    await admin.close();
  }
  const urlOf = (database: string, as?: { user: string; password: string }) => {
    const url = new URL(pg.url);
    url.pathname = `/${database}`;
    if (as) {
      url.username = as.user;
      url.password = as.password;
    }
    return url.toString();
  };
  const directMigrations = openPool(urlOf(databases.direct), { max: 1 });
  try {
    await migrate(directMigrations.pool);
  } finally {
    await directMigrations.close();
  }

  // Every port free, so that the benchmark runs beside an `npm start` or a test run.
  const ports = await distinctFreePorts(10);
  const [temporalPort, uiPort, apiPort, mesPort, sapPort, mesDirectPort, sapDirectPort] = ports;
  const [directApiPort, directControlPort, mqttPort] = ports.slice(7);
  const holdfastConfigFile = join(work, 'holdfast.yaml');
  const directConfigFile = join(work, 'direct.yaml');
  const config = writeConfig(holdfastConfigFile, {
    temporal: temporalPort!,
    temporalUi: uiPort!,
    api: apiPort!,
    mqtt: mqttPort!,
    mesUrl: `http://127.0.0.1:${mesPort}`,
    sapUrl: `http://127.0.0.1:${sapPort}`,
  });
  writeConfig(directConfigFile, {
    temporal: temporalPort!,
    temporalUi: uiPort!,
    api: directApiPort!,
    mqtt: mqttPort!,
    mesUrl: `http://127.0.0.1:${mesDirectPort}`,
    sapUrl: `http://127.0.0.1:${sapDirectPort}`,
  });

  // The `npm start` topology without the vision side (line PLC, inference worker, camera simulator: the camera would
  // add defects of its own at its own rate), plus the baseline's own simulators.
  const defaults = defaultLocalProcesses(config);
  const spec = (name: string): LocalProcessSpec => {
    const found = defaults.find((p) => p.name === name);
    if (!found) throw new Error(`npm start has no process named ${name}`);
    return found;
  };
  /** A simulator of `npm start` on its own port and database; `role` names it for the CPU split. */
  const simulator = (name: 'mes-sim' | 'sap-sim', role: string, port: number, database: string): LocalProcessSpec => ({
    ...spec(name),
    name: role,
    readiness: { kind: 'http', url: `http://127.0.0.1:${port}/health` },
    env: {
      [name === 'mes-sim' ? 'MES_SIM_PORT' : 'SAP_SIM_PORT']: String(port),
      DATABASE_URL: urlOf(database),
      [ROLE_ENV]: role,
    },
  });
  const processes: LocalProcessSpec[] = [
    simulator('sap-sim', 'sap-sim', sapPort!, databases.sims),
    simulator('mes-sim', 'mes-sim', mesPort!, databases.sims),
    simulator('sap-sim', 'sap-sim-direct', sapDirectPort!, databases.directSims),
    simulator('mes-sim', 'mes-sim-direct', mesDirectPort!, databases.directSims),
    spec('worker'),
    {
      ...spec('api'),
      readiness: { kind: 'http', url: `http://${config.api.host}:${apiPort}/health` },
      env: { API_PORT: String(apiPort) },
    },
  ];
  say('starting the stack: Temporal dev server, simulators, worker, API, direct baseline');
  // The API's token key, made first so that the camera side can sign an integrator's token the API trusts (the
  // direct baseline checks one too: both sides pay for the access check).
  const signingKey = await loadOrCreateSigningKey(join(work, 'data', 'identity', 'signing-key.json'));
  const integrator = await integratorAuthorization(signingKey);
  const local = await startLocalStack({
    config,
    env: { ...process.env, DATABASE_URL: urlOf(databases.holdfast), HOLDFAST_CONFIG: holdfastConfigFile },
    dataDir: join(work, 'data'),
    log: () => undefined,
    processes,
  });
  bench.onCleanUp('the stack', () => local.stop());

  const direct = await startDirectBaseline(bench, {
    ...process.env,
    ...local.sapCredentials,
    DATABASE_URL: urlOf(databases.direct),
    HOLDFAST_CONFIG: directConfigFile,
    BENCH_DIRECT_API_PORT: String(directApiPort),
    BENCH_DIRECT_CONTROL_PORT: String(directControlPort),
  });

  const pools = [databases.holdfast, databases.sims, databases.direct, databases.directSims].map((db) =>
    openPool(urlOf(db, benchUser), { max: 2, applicationName: 'holdfast-bench' }),
  );
  bench.onCleanUp('database connections', () => Promise.all(pools.map((p) => p.close())));
  const [holdfastDb, simsDb, directDb, directSimsDb] = pools as [
    ClosablePool,
    ClosablePool,
    ClosablePool,
    ClosablePool,
  ];
  const connection = await Connection.connect({ address: local.temporal.address });
  bench.onCleanUp('Temporal connection', () => connection.close());
  const temporal = new Client({
    connection,
    namespace: local.temporal.namespace,
    dataConverter: holdfastDataConverter(holdfastPayloadCodec({ ...local.payloadKeys })),
  });

  const holdfast: Side = {
    name: 'holdfast',
    tag: 'T',
    mesUrl: `http://127.0.0.1:${mesPort}`,
    sapUrl: `http://127.0.0.1:${sapPort}`,
    db: holdfastDb,
    simDb: simsDb,
  };
  const baseline: Side = {
    name: 'baseline',
    tag: 'D',
    mesUrl: `http://127.0.0.1:${mesDirectPort}`,
    sapUrl: `http://127.0.0.1:${sapDirectPort}`,
    db: directDb,
    simDb: directSimsDb,
  };
  const apiUrl = `http://${config.api.host}:${apiPort}/v1/inspections`;

  /** One measurement: both streams at once, then the wait for every hold and step (or the deadline). */
  const measure = async (label: string, defects: number, waitS: number) => {
    const plans = {
      holdfast: planRun({ tag: `${holdfast.tag}${label}`, defects, partsPerLot, lotsPerWorkOrder }),
      // The baseline handles every part as a new lot (a hand-wired integration has no lot case to add parts to).
      baseline: planRun({ tag: `${baseline.tag}${label}`, defects, partsPerLot: 1, lotsPerWorkOrder }),
    };
    await createLots(holdfast, plans.holdfast.lots);
    await createLots(baseline, plans.baseline.lots);

    const t0 = Date.now() + 2_000;
    const cpuFrom = Date.now();
    const cpuBefore = snapshotCpu();
    // The baseline's inspections are due half a period after Holdfast's: the two streams interleave.
    await direct.start({ t0Ms: t0, perSecond: rate, offsetMs: 500 / rate, parts: plans.baseline.parts });
    const sent: SentPart[] = [];
    const ingestMs: number[] = [];
    const failures: { eventId: string; error: string }[] = [];
    const { sendLagMs } = await openLoop(defects, rate, t0, async (i, dueMs) => {
      const part = plans.holdfast.parts[i]!;
      sent.push({ eventId: part.eventId, partId: part.partId, lotId: part.lot.lotId, dueMs });
      try {
        const res = await fetch(apiUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: integrator },
          body: JSON.stringify(inspectionBody(part, dueMs, SITE)),
        });
        ingestMs.push(Date.now() - dueMs);
        if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
      } catch (err) {
        failures.push({ eventId: part.eventId, error: err instanceof Error ? err.message : String(err) });
      }
    });
    const lastDue = t0 + ((defects - 1) * 1000) / rate;
    const deadlineAt = lastDue + waitS * 1000;
    const directStatus = await direct.waitDone(deadlineAt);
    const baseSent = plans.baseline.parts.map((p, i) => ({
      eventId: p.eventId,
      partId: p.partId,
      lotId: p.lot.lotId,
      dueMs: dueAt(t0, i, rate, 500 / rate),
    }));
    const [holdfastRows, baselineRows] = await Promise.all([
      waitForSteps(holdfast, sent, deadlineAt),
      waitForSteps(baseline, baseSent, deadlineAt),
    ]);
    const cpu = cpuSecondsBetween(cpuBefore, snapshotCpu());
    const windowS = (Date.now() - cpuFrom) / 1000;
    const result = (
      parts: SentPart[],
      rows: { steps: StepRows; doneAtMs: number },
      extra: Pick<StreamResult, 'ingestMs' | 'sendLagMs' | 'failures'>,
    ): StreamResult => ({
      sent: parts,
      outcome: latencyOutcome(parts, rows.steps),
      doneAtMs: rows.doneAtMs,
      stepRows: rows.steps,
      ...extra,
    });
    return {
      t0,
      windowS,
      cpu,
      holdfast: result(sent, holdfastRows, { ingestMs, sendLagMs, failures }),
      baseline: result(baseSent, baselineRows, {
        ingestMs: directStatus.ingestMs,
        sendLagMs: directStatus.sendLagMs,
        failures: directStatus.failures,
      }),
    };
  };

  /** Creates the plan's lots in a side's simulators: the work order (by the lot's line), the lot and its stock. */
  const createLots = async (side: Side, lots: PlannedLot[]) => {
    const post = (url: string, body: unknown) =>
      fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    await mapLimit(lots, 8, async (lot) => {
      const a = await post(`${side.mesUrl}/__sim/lots`, {
        lotId: lot.lotId,
        workOrder: lot.workOrder,
        line: lot.line,
        sku: lot.sku,
        quantity: LOT_QUANTITY,
        batch: lot.batch,
        plannedQuantity: LOT_QUANTITY * lotsPerWorkOrder,
      });
      const b = await post(`${side.sapUrl}/__sim/stock`, {
        material: lot.sku,
        plant: '1010',
        storageLocation: '0001',
        batch: lot.batch,
        quantity: LOT_QUANTITY,
        unit: 'PC',
      });
      if (!a.ok || !b.ok) throw new Error(`cannot create lot ${lot.lotId} for ${side.name}: ${a.status}/${b.status}`);
    });
  };

  /** Polls a side's records until every hold and step is there or the deadline passes; then reads them. */
  const waitForSteps = async (side: Side, parts: SentPart[], deadlineAt: number) => {
    const lotIds = [...new Set(parts.map((p) => p.lotId))];
    const partIds = parts.map((p) => p.partId);
    const eventIds = parts.map((p) => p.eventId);
    for (;;) {
      const [holds, events, contained] = await Promise.all([
        countOf(side.simDb, `SELECT count(DISTINCT lot_id)::int AS n FROM mes_sim.hold WHERE lot_id = ANY($1)`, lotIds),
        countOf(
          side.simDb,
          `SELECT count(DISTINCT part_id)::int AS n FROM mes_sim.quality_event WHERE part_id = ANY($1)`,
          partIds,
        ),
        countOf(
          side.db,
          `SELECT count(DISTINCT from_id)::int AS n FROM holdfast.trace_link
            WHERE relation = 'defect-item' AND from_id = ANY($1)`,
          eventIds,
        ),
      ]);
      if (holds >= lotIds.length && events >= partIds.length && contained >= eventIds.length) break;
      if (Date.now() > deadlineAt) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const steps: StepRows = {
      holdAt: await instants(
        side.simDb,
        `SELECT lot_id AS id, min(created_at) AS at FROM mes_sim.hold WHERE lot_id = ANY($1) GROUP BY lot_id`,
        lotIds,
      ),
      qualityEventAt: await instants(
        side.simDb,
        `SELECT part_id AS id, min(recorded_at) AS at FROM mes_sim.quality_event WHERE part_id = ANY($1)
          GROUP BY part_id`,
        partIds,
      ),
      containedAt: await instants(
        side.db,
        `SELECT from_id AS id, min(created_at) AS at FROM holdfast.trace_link
          WHERE relation = 'defect-item' AND from_id = ANY($1) GROUP BY from_id`,
        eventIds,
      ),
    };
    const latest = Math.max(
      ...[steps.holdAt, steps.qualityEventAt, steps.containedAt].flatMap((m) => [...m.values()]),
      parts[0]?.dueMs ?? 0,
    );
    const missing =
      steps.holdAt.size < lotIds.length ||
      steps.qualityEventAt.size < partIds.length ||
      steps.containedAt.size < eventIds.length;
    return { steps, doneAtMs: missing ? Date.now() : latest };
  };

  say(`warm-up: ${warmup} defects on each side`);
  // Its own wait: the warm-up must finish whatever --deadline says, or the runs would start on a cold or busy stack.
  const warm = await measure('W', warmup, Math.max(deadlineS, WARMUP_WAIT_S));
  for (const side of [warm.holdfast, warm.baseline]) {
    if (!complete(side.outcome) || side.failures.length > 0) {
      throw new Error(
        `warm-up did not complete: ${side.outcome.missingHolds.length} holds and ` +
          `${side.outcome.missingAllSteps.length} parts missing, ${side.failures.length} failures` +
          (side.failures[0] ? ` (first: ${side.failures[0].error})` : ''),
      );
    }
  }

  const figures: Record<string, number>[] = [];
  const perRun: Record<string, unknown>[] = [];
  const missing = { holdfast: emptyMissing(), baseline: emptyMissing() };
  for (let run = 1; run <= runs; run++) {
    say(`run ${run} of ${runs}: ${count} defects at ${rate}/s on each side`);
    const m = await measure(String(run), count, deadlineS);
    const stages = await holdfastStages(temporal, holdfast, m.holdfast, m.t0);
    const buckets = cpuByBucket(m.cpu.byRole, bucketOf(databases, benchUser.user), 'holdfast');
    const h = figuresOf(m.holdfast);
    const b = figuresOf(m.baseline);
    const perDefect = (bucket: string) => ((buckets[bucket] ?? 0) * 1000) / count;
    const run_: Record<string, number> = {
      ...prefixed('', h),
      ...prefixed('baseline_', b),
      ratio_hold_p99: h.hold_p99_ms! / b.hold_p99_ms!,
      ratio_all_steps_p99: h.all_steps_p99_ms! / b.all_steps_p99_ms!,
      drain_s: (m.holdfast.doneAtMs - m.t0) / 1000,
      cpu_holdfast_ms_per_defect: perDefect('holdfast'),
      cpu_simulators_ms_per_defect: perDefect('simulators'),
      cpu_load_generator_ms_per_defect: perDefect('load-generator'),
      cpu_baseline_ms_per_defect: perDefect('baseline') + perDefect('baseline-simulators'),
      cpu_baseline_integration_ms_per_defect: perDefect('baseline'),
      cpu_baseline_simulators_ms_per_defect: perDefect('baseline-simulators'),
      cpu_other_ms_per_defect: perDefect('other'),
      cpu_cores: m.cpu.totalS / m.windowS,
      ...prefixed('stage_p50_ms_', stages),
    };
    figures.push(run_);
    for (const side of ['holdfast', 'baseline'] as const) addMissing(missing[side], m[side]);
    perRun.push({
      run,
      hold_p99_ms: jsonFigure(run_.hold_p99_ms!),
      all_steps_p99_ms: jsonFigure(run_.all_steps_p99_ms!),
      baseline_hold_p99_ms: jsonFigure(run_.baseline_hold_p99_ms!),
      drain_s: jsonFigure(run_.drain_s!),
      cpu_s_by_process: m.cpu.byProcess,
    });
    say(
      `run ${run}: hold p99 ${fmt(run_.hold_p99_ms!)}, all steps p99 ${fmt(run_.all_steps_p99_ms!)}, ` +
        `baseline hold p99 ${fmt(run_.baseline_hold_p99_ms!)}; missing holds ${m.holdfast.outcome.missingHolds.length}` +
        ` (baseline ${m.baseline.outcome.missingHolds.length})`,
    );
  }

  const failed =
    missing.holdfast.holds + missing.holdfast.allSteps + missing.holdfast.failures > 0 ||
    missing.baseline.holds + missing.baseline.allSteps + missing.baseline.failures > 0;
  if (failed) say('FAILED: holds or steps missing, or sends failed (listed in the summary under "missing")');
  const summary = {
    bench: 'latency',
    ok: !failed,
    rate,
    duration_s: durationS,
    defects_per_run: count,
    parts_per_lot: partsPerLot,
    baseline_parts_per_lot: 1,
    lots_per_work_order: lotsPerWorkOrder,
    runs,
    deadline_s: deadlineS,
    baseline: 'interleaved: the same rate at the same time, due half a period after each Holdfast inspection',
    latency_from: 'due instant (inspectedAt) by the schedule',
    missing_counted_as: 'inf',
    figures: Object.fromEntries(Object.entries(spreadByKey(figures)).map(([k, v]) => [k, jsonFigures(v, 2)])),
    missing,
    cpu_attribution: CPU_ATTRIBUTION,
    per_run: perRun,
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
  };
  return { summary, exitCode: failed ? 1 : 0 };
});

/** Latency figures of one side's stream, ms. */
function figuresOf(r: StreamResult): Record<string, number> {
  const hold = percentiles(r.outcome.holdMs);
  const all = percentiles(r.outcome.allStepsMs);
  return {
    hold_p50_ms: hold.p50,
    hold_p95_ms: hold.p95,
    hold_p99_ms: hold.p99,
    hold_max_ms: hold.max,
    all_steps_p50_ms: all.p50,
    all_steps_p95_ms: all.p95,
    all_steps_p99_ms: all.p99,
    all_steps_max_ms: all.max,
    ingest_p99_ms: percentiles(r.ingestMs).p99,
    send_lag_p99_ms: percentiles(r.sendLagMs).p99,
    holds_missing: r.outcome.missingHolds.length,
    all_steps_missing: r.outcome.missingAllSteps.length,
    send_failures: r.failures.length,
  };
}

interface Missing {
  holds: number;
  allSteps: number;
  failures: number;
  /** The first 20 of each, by id. */
  lots: string[];
  parts: string[];
  failed: { eventId: string; error: string }[];
}

function emptyMissing(): Missing {
  return { holds: 0, allSteps: 0, failures: 0, lots: [], parts: [], failed: [] };
}

function addMissing(into: Missing, r: StreamResult): void {
  into.holds += r.outcome.missingHolds.length;
  into.allSteps += r.outcome.missingAllSteps.length;
  into.failures += r.failures.length;
  into.lots = [...into.lots, ...r.outcome.missingHolds].slice(0, 20);
  into.parts = [...into.parts, ...r.outcome.missingAllSteps].slice(0, 20);
  into.failed = [...into.failed, ...r.failures].slice(0, 20);
}

function prefixed(prefix: string, figures: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(figures).map(([k, v]) => [`${prefix}${k}`, v]));
}

function fmt(ms: number): string {
  return ms === Infinity ? '∞ (missing)' : `${Math.round(ms)} ms`;
}

/** Which part of the CPU split a process role belongs to (see CPU_ATTRIBUTION). */
function bucketOf(
  databases: { holdfast: string; sims: string; direct: string; directSims: string },
  benchUser: string,
): (role: string) => string | undefined {
  const byRole: Record<string, string> = {
    api: 'holdfast',
    worker: 'holdfast',
    temporal: 'holdfast',
    'mes-sim': 'simulators',
    'sap-sim': 'simulators',
    bench: 'load-generator',
    'direct-baseline': 'baseline',
    'mes-sim-direct': 'baseline-simulators',
    'sap-sim-direct': 'baseline-simulators',
  };
  return (role) => {
    if (byRole[role]) return byRole[role];
    for (const [db, bucket] of [
      [databases.holdfast, 'holdfast'],
      [databases.sims, 'simulators'],
      [databases.direct, 'baseline'],
      [databases.directSims, 'baseline-simulators'],
    ] as const) {
      if (role.endsWith(`@${db}`)) {
        return role.startsWith(postgresBackendRole(benchUser, '')) ? 'load-generator' : bucket;
      }
    }
    return undefined;
  };
}

/**
 * Where the time goes on Holdfast's side, p50 ms after each lot's first due instant (per part for the part's own
 * steps): the API's answer, the outbox row dispatched, the first workflow for the lot started, the hold, the
 * work-order count, containment. A stage that cannot be read (a table or column renamed) is left out, not guessed.
 */
async function holdfastStages(
  temporal: Client,
  side: Side,
  r: StreamResult,
  t0: number,
): Promise<Record<string, number>> {
  const dueOf = new Map(r.sent.map((p) => [p.eventId, p.dueMs]));
  const lotDue = new Map<string, number>();
  for (const p of r.sent) lotDue.set(p.lotId, Math.min(p.dueMs, lotDue.get(p.lotId) ?? Infinity));
  const p50 = (xs: number[]) => percentiles(xs.filter(Number.isFinite)).p50;
  const stages: Record<string, number> = { ingest_answered: p50(r.ingestMs) };
  try {
    const { rows } = await side.db.pool.query<{ event_id: string; dispatched_at: Date | null }>(
      'SELECT event_id, dispatched_at FROM holdfast.outbox WHERE event_id = ANY($1)',
      [[...dueOf.keys()]],
    );
    stages.dispatched = p50(rows.map((x) => (x.dispatched_at?.getTime() ?? NaN) - dueOf.get(x.event_id)!));
  } catch {
    // The outbox's shape changed: no stage rather than a wrong one.
  }
  try {
    const byEvent = new Map(r.sent.map((p) => [p.eventId, p.lotId]));
    const firstStart = new Map<string, number>();
    const query = `StartTime >= '${new Date(t0 - 1_000).toISOString()}'`;
    for await (const wf of temporal.workflow.list({ query })) {
      // Workflow ids end with the business key they are for: the lot or the part's event id.
      const key = wf.workflowId.split('-').slice(-3).join('-');
      const lot = lotDue.has(key) ? key : byEvent.get(key);
      if (!lot) continue;
      firstStart.set(lot, Math.min(wf.startTime.getTime(), firstStart.get(lot) ?? Infinity));
    }
    stages.workflow_started = p50([...firstStart].map(([lot, at]) => at - lotDue.get(lot)!));
  } catch {
    // Visibility unavailable: no stage.
  }
  stages.mes_hold = p50([...r.stepRows.holdAt].map(([lot, at]) => at - (lotDue.get(lot) ?? NaN)));
  stages.work_order_count = p50(r.sent.map((p) => (r.stepRows.qualityEventAt.get(p.partId) ?? NaN) - p.dueMs));
  stages.contained = p50(r.sent.map((p) => (r.stepRows.containedAt.get(p.eventId) ?? NaN) - p.dueMs));
  stages.all_steps = p50(r.outcome.allStepsMs);
  return stages;
}

async function countOf(db: ClosablePool, sql: string, ids: string[]): Promise<number> {
  return (await db.pool.query<{ n: number }>(sql, [ids])).rows[0]!.n;
}

async function instants(db: ClosablePool, sql: string, ids: string[]): Promise<Map<string, number>> {
  const { rows } = await db.pool.query<{ id: string; at: Date }>(sql, [ids]);
  return new Map(rows.map((r) => [r.id, r.at.getTime()]));
}

async function mapLimit<T>(items: T[], limit: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** `n` ports free a moment ago, no two alike. */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * temporal.yaml with this run's ports (the dev server, its UI, the API, the embedded broker) and connector URLs, so
 * the benchmark never reaches for an `npm start` running beside it. Secrets stay `${env:…}` references.
 */
function writeConfig(
  file: string,
  at: { temporal: number; temporalUi: number; api: number; mqtt: number; mesUrl: string; sapUrl: string },
): HoldfastConfig {
  const source = configPath();
  const base = loadConfig(source);
  const site = base.sites.find((s) => s.id === SITE);
  if (!site) throw new Error(`${source} has no site ${SITE}`);
  const doc = parseDocument(readFileSync(source, 'utf8'));
  doc.setIn(['temporal', 'devServer', 'port'], at.temporal);
  doc.setIn(['temporal', 'devServer', 'uiPort'], at.temporalUi);
  doc.setIn(['api', 'port'], at.api);
  doc.setIn(['api', 'temporalUiUrl'], `http://127.0.0.1:${at.temporalUi}`);
  // Any free port for the worker's metrics and the SDK's exporter (0), as for everything else here.
  doc.setIn(['observability', 'worker', 'port'], 0);
  doc.setIn(['observability', 'worker', 'temporalSdkPort'], 0);
  if (base.vision.broker) doc.setIn(['connectors', base.vision.broker, 'embeddedPort'], at.mqtt);
  doc.setIn(['connectors', site.mes, 'baseUrl'], at.mesUrl);
  doc.setIn(['connectors', site.erp, 'baseUrl'], at.sapUrl);
  writeFileSync(file, doc.toString(), { mode: 0o600 });
  return loadConfig(resolve(file));
}

interface DirectBaseline {
  start(req: DirectRunRequest): Promise<void>;
  /** Its stream's status once every part has been tried (or at `deadlineAt`, with what it has). */
  waitDone(deadlineAt: number): Promise<DirectRunStatus>;
  stop(): Promise<void>;
}

/** The direct baseline's process (bench/direct-baseline.ts), ready to take a run. */
async function startDirectBaseline(bench: Bench, env: NodeJS.ProcessEnv): Promise<DirectBaseline> {
  const root = resolve(__dirname, '..');
  let ready: () => void = () => undefined;
  const readyLine = new Promise<void>((r) => (ready = r));
  const proc = spawnManaged({
    name: 'direct-baseline',
    command: process.execPath,
    args: ['--import', 'tsx', join(root, 'bench/direct-baseline.ts')],
    cwd: root,
    env,
    onLine: (line) => line.includes(DIRECT_READY_LINE) && ready(),
  });
  const stop = async () => void (await proc.stop({ signal: 'SIGTERM' }));
  bench.onCleanUp('direct baseline process', stop);
  await Promise.race([
    readyLine,
    proc.exited.then((exit) => {
      throw new Error(
        `the direct baseline exited before it was ready (${JSON.stringify(exit)}):\n${proc.outputTail()}`,
      );
    }),
  ]);
  const control = `http://127.0.0.1:${env.BENCH_DIRECT_CONTROL_PORT}/runs`;
  return {
    async start(req) {
      const res = await fetch(control, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(req),
      });
      if (res.status !== 202) throw new Error(`the direct baseline refused the run: ${res.status} ${await res.text()}`);
    },
    async waitDone(deadlineAt) {
      for (;;) {
        const status = (await (await fetch(`${control}/last`)).json()) as DirectRunStatus;
        if (status.state === 'done' || Date.now() > deadlineAt) return status;
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    stop,
  };
}
