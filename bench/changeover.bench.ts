/**
 * `npm run bench:changeover`: changeovers of 10 lines of 5 stations each (3 Holdfast inference stations and 2 OPC 40100
 * vision systems per line) on the real parts, one MES `started` event at a steady rate, from the event's due time to
 * every station verified (the first article excluded) and to the order released; against a baseline in the same run
 * that switches the same stations with direct calls in one process.
 *
 *   npm run bench:changeover -- --changeovers 50 --rate 1 --runs 3
 *
 * 1. Embedded PostgreSQL, a Temporal dev server, Mosquitto, the MES simulator (publishing its job-order events to
 *    Mosquitto), the line-plc simulator (node-opcua: every line's vision systems and release interlock) and the
 *    inference worker (onnxruntime, the shipped model on every Holdfast station) in this process tree; the quality worker in this
 *    process, over the worker's own changeover plant (workers/changeover-plant.ts) and the real job-order intake
 *    (workers/job-orders.ts: the MQTT subscription and the REST poll).
 * 2. Event i is due at t0 + i / rate: then the benchmark asks the MES simulator to start the order. The MES publishes
 *    `started`, the intake applies it and starts the changeover. Every latency runs from that due time.
 * 3. The first article is not waited for: each order's first part is written to holdfast.inspection, passed at every
 *    Holdfast station of its line, once its changeover has started (a first article counts only parts received since),
 *    while the stations are prepared (as if the line had run it the moment it switched). So
 *    `released` = verified + one first-article read + the MES release + lifting the interlock.
 * 4. Verified: the workflow's `verify` step's end (workflow time) minus the due time; released: its `release` step's
 *    end. A changeover that failed, or had not finished by the deadline, is a failure: counted, and +Infinity in the
 *    percentiles (it is never dropped from them).
 * 5. Baseline: other orders on the same stations, switched at the same rate with direct awaited calls over the same
 *    ports: interlock, recipe lookup, read-before, arm / PrepareRecipe, read-back (a Holdfast station polled every
 *    50 ms until its inference worker reports the model loaded), first-article read, MES release, interlock lifted.
 *
 * Last line: one JSON object with changeovers, failed, verified_p99_ms, released_p99_ms, baseline_p99_ms (each the
 * median over the runs, with _min and _max), and the per-step breakdown of the workflow side.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import { Registry } from 'prom-client';
import type { ChangeoverPorts } from '../workers/worker-activities';
import type { MesPort } from '../activities/ports';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger } from '../infra/connectors/define';
import { migrate } from '../infra/db/migrate';
import { findFreePort } from '../infra/local/managed-process';
import {
  mesEventsReaderAccount,
  mesProductionAccount,
  startMosquitto,
  visionStreamAccounts,
} from '../infra/local/mqtt-broker';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { startTemporalDevServer } from '../infra/local/temporal-dev-server';
import { startLinePlcSimulator } from '../infra/simulators/line-plc/line-plc.simulator';
import { visionSystemsFromConfig } from '../infra/simulators/line-plc/plant-config';
import { buildMesSimulator } from '../infra/simulators/mes/mes.simulator';
import { resolveTemporalCli } from '../infra/temporal/cli';
import { changeoverInput, createTemporalChangeoverControl } from '../infra/temporal/changeover-starter';
import {
  PAYLOAD_KEYS_ENV,
  generatePayloadKeyEntry,
  holdfastDataConverter,
  holdfastPayloadCodec,
} from '../infra/temporal/payload-codec';
import { modelsDirOf } from '../infra/recall/model-versions';
import { createChangeoverRecipeSource } from '../infra/vision/changeover-recipes';
import { saveRecipe } from '../infra/vision/recipe.repository';
import {
  ALL_SEARCH_ATTRIBUTES,
  changeoverStatusQuery,
  changeoverWorkflowId,
  type ChangeoverInput,
  type ChangeoverStatus,
} from '../workflows/contracts';
import { openChangeoverPlant } from '../workers/changeover-plant';
import { openConnectors } from '../workers/connectors';
import { startInferenceWorker } from '../workers/inference/inference-worker';
import { startJobOrderIntake } from '../workers/job-orders';
import { createQualityWorkers } from '../workers/quality-workers';
import { createWorkerActivities } from '../workers/worker-activities';
import { integerOption, runBenchmark } from './harness';
import { openPool } from './pools';
import { jsonFigure, percentiles, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    changeovers: { type: 'string', default: '50' },
    lines: { type: 'string', default: '10' },
    /** Changeovers started per second, over all lines. */
    rate: { type: 'string', default: '1' },
    runs: { type: 'string', default: '3' },
    /** Seconds after the last event was due that a changeover may still finish. */
    deadline: { type: 'string', default: '120' },
  },
});

const HOLDFAST_STATIONS = 3;
const VISION_SYSTEMS = 2;
const SKUS = ['SKU-A', 'SKU-B'];
const SITE = 'PLANT1';
const AREA = 'ASSEMBLY';
const STEPS = ['interlock', 'resolve', 'prepare', 'verify', 'first-article', 'release'] as const;

const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
const login = (username: string) => ({ username, password: randomBytes(12).toString('base64url') });

/** One workflow-side changeover: its latencies from the due time, and each step's duration; undefined when it failed. */
interface Measured {
  verified: number;
  released: number;
  /** Due time → the workflow started (MES publish, broker, intake, Temporal start). */
  intake: number;
  steps: Partial<Record<(typeof STEPS)[number], number>>;
  /** From the workflow's start to its `interlock` step's start (the first workflow task). */
  firstTask: number;
  /** From the interlock step's start to verify's end, the time outside every step: workflow tasks between steps. */
  between: number;
}

function topology(base: HoldfastConfig, opts: { lineCount: number; modelsDir: string }): HoldfastConfig {
  const site = base.sites.find((s) => s.id === SITE)!;
  return {
    ...base,
    vision: { ...base.vision, modelsDir: opts.modelsDir, recipes: [] },
    sites: [
      {
        ...site,
        mes: 'mes-sim',
        lineControl: 'line-control',
        lines: Array.from({ length: opts.lineCount }, (_, l) => ({
          ...site.lines[0]!,
          id: `L${l + 1}`,
          stations: [
            ...Array.from({ length: HOLDFAST_STATIONS }, (_, s) => ({ id: `S${s + 1}`, mode: 'production' as const })),
            ...Array.from({ length: VISION_SYSTEMS }, (_, v) => ({
              id: `V${v + 1}`,
              mode: 'production' as const,
              vision: {
                connector: 'line-vision',
                system: `L${l + 1}-cam-${v + 1}`,
                recipes: Object.fromEntries(SKUS.map((sku) => [sku, `EXT-${sku}`])),
              },
            })),
          ],
        })),
      },
    ],
    changeover: { ...base.changeover, firstArticleParts: 1, startOnOrderEvent: true },
  };
}

/** The changeover plant's ports, every one present (openChangeoverPlant opens them all). */
function allPorts(ports: ChangeoverPorts): Required<ChangeoverPorts> {
  const { stationControl, firstArticles, visionFor, lineControlFor } = ports;
  if (!stationControl || !firstArticles || !visionFor || !lineControlFor)
    throw new Error('a changeover port is missing');
  return { stationControl, firstArticles, visionFor, lineControlFor };
}

/** Durations of every plant call by name, for the profile (`ports_ms` in the summary). */
type CallTimes = Map<string, number[]>;

/** The ports with each call timed into `times` under `<port>.<method>`; behaviour unchanged. */
function timedPorts(ports: Required<ChangeoverPorts>, times: CallTimes): Required<ChangeoverPorts> {
  const timed = <T extends object>(name: string, target: T): T =>
    new Proxy(target, {
      get(obj, key, receiver) {
        const value: unknown = Reflect.get(obj, key, receiver);
        if (typeof value !== 'function') return value;
        return async (...callArgs: unknown[]) => {
          const started = performance.now();
          try {
            const call = value as (...a: unknown[]) => Promise<unknown>;
            return await call.apply(obj, callArgs);
          } finally {
            const key2 = `${name}.${String(key)}`;
            const list = times.get(key2) ?? [];
            list.push(performance.now() - started);
            times.set(key2, list);
          }
        };
      },
    });
  return {
    stationControl: timed('station', ports.stationControl),
    firstArticles: timed('firstArticles', ports.firstArticles),
    visionFor: (connector) => timed('vision', ports.visionFor(connector)),
    lineControlFor: (site) => timed('interlock', ports.lineControlFor(site)),
  };
}

/** The same changeover as plain awaited calls in this process over the same ports: no durability, no history. */
async function directChangeover(
  ports: Required<ChangeoverPorts>,
  mes: MesPort,
  recipes: ReturnType<typeof createChangeoverRecipeSource>,
  input: ChangeoverInput,
): Promise<{ verified: number; released: number }> {
  const { site, line, workOrder, sku } = input;
  const ref = (station: string) => ({ site, line, station });
  const interlock = ports.lineControlFor(site);
  const changeoverId = `direct-${workOrder}`;
  await interlock.setRelease({ site, line }, { released: false, workOrder });
  const plans = await Promise.all(
    input.stations.map(async (s) => {
      if (s.vision) return { s, recipe: undefined };
      const recipe = await recipes.active(ref(s.station), sku);
      if (!recipe) throw new Error(`no recipe for ${line}/${s.station} ${sku}`);
      return { s, recipe };
    }),
  );
  await Promise.all(
    plans.map(({ s }) =>
      s.vision
        ? ports.visionFor(s.vision.connector).readState(s.vision.system)
        : ports.stationControl.readBack(ref(s.station)),
    ),
  );
  const internal = new Map<string, string>();
  await Promise.all(
    plans.map(async ({ s, recipe }) => {
      if (s.vision) {
        const { internalRecipeId } = await ports
          .visionFor(s.vision.connector)
          .prepareRecipe(s.vision.system, s.vision.externalRecipeId!);
        internal.set(s.station, internalRecipeId);
      } else {
        await ports.stationControl.arm(ref(s.station), {
          changeoverId,
          workOrder,
          sku,
          recipeVersion: recipe!.version,
          model: recipe!.model,
        });
      }
    }),
  );
  const giveUp = Date.now() + 30_000;
  await Promise.all(
    plans.map(async ({ s, recipe }) => {
      for (;;) {
        if (s.vision) {
          const state = await ports.visionFor(s.vision.connector).readState(s.vision.system);
          if (
            state.externalRecipeId === s.vision.externalRecipeId &&
            state.internalRecipeId === internal.get(s.station)
          )
            return;
        } else {
          const back = await ports.stationControl.readBack(ref(s.station));
          const loaded = back.armed ?? back.active;
          if (loaded?.workOrder === workOrder && loaded.modelSha256 === recipe!.modelSha256) return;
        }
        if (Date.now() > giveUp) throw new Error(`direct changeover of ${line}/${s.station}: read-back disagrees`);
        await sleep(50);
      }
    }),
  );
  const verified = Date.now();
  const parts = await ports.firstArticles.firstParts({ site, line }, workOrder, input.options.firstArticleParts);
  if (parts.length < input.options.firstArticleParts || parts.some((p) => p.result !== 'pass')) {
    throw new Error(`direct changeover of ${line} to ${workOrder}: no passed first article`);
  }
  await mes.releaseForProduction!({
    idempotencyKey: `direct:${workOrder}`,
    workOrder,
    line,
    releasedBy: 'bench',
    comment: 'direct',
  });
  await interlock.setRelease({ site, line }, { released: true, workOrder });
  return { verified, released: Date.now() };
}

runBenchmark('changeover', async (bench) => {
  const { say } = bench;
  const changeovers = integerOption(args, 'changeovers', 1);
  const lineCount = integerOption(args, 'lines', 1);
  const rate = integerOption(args, 'rate', 1);
  const runs = integerOption(args, 'runs', 1);
  const deadlineMs = integerOption(args, 'deadline', 1) * 1000;
  const load = [loadavg()[0] ?? NaN];

  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-changeover-'));
  // PostgreSQL and Mosquitto run as their own OS users, which must be able to enter the directory.
  chmodSync(work, 0o755);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  // The shipped model (models/holdfast-surface), as a worker resolves it: its manifest's identity and sha256.
  const shipped = loadConfig();
  const modelsDir = modelsDirOf(shipped);
  const MODEL = JSON.parse(readFileSync(join(modelsDir, 'holdfast-surface', 'manifest.json'), 'utf8')) as {
    name: string;
    version: string;
    sha256: string;
  };
  const base = topology(shipped, { lineCount, modelsDir });
  const lines = base.sites[0]!.lines.map((l) => l.id);

  say('starting PostgreSQL, Temporal, Mosquitto, the MES and line-plc simulators, the inference worker');
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), log: () => undefined });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const holdfast = openPool(pg.url, { max: 10, applicationName: 'holdfast-bench-changeover' });
  bench.onCleanUp('Holdfast pool', holdfast.close);
  const simulators = openPool(pg.url, { max: 4, applicationName: 'holdfast-bench-simulators' });
  bench.onCleanUp('simulator pool', simulators.close);
  await migrate(holdfast.pool);

  Runtime.install({ logger: new DefaultLogger('WARN') });
  const temporal = await startTemporalDevServer({
    cliPath: await resolveTemporalCli(say),
    uiPort: false,
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
  });
  bench.onCleanUp('Temporal dev server', temporal.stop);

  const prefix = 'bench';
  const logins = { mes: login('mes'), reader: login('holdfast-job-orders'), inference: login('inference') };
  const broker = await startMosquitto({
    port: await findFreePort(),
    dataDir: join(work, 'mosquitto'),
    access: {
      accounts: [
        mesProductionAccount(logins.mes),
        mesEventsReaderAccount(logins.reader),
        ...visionStreamAccounts({ prefix, inference: logins.inference, cameras: [] }),
      ],
    },
  });
  bench.onCleanUp('Mosquitto', () => broker.stop());

  const mesSim = await buildMesSimulator({
    pool: simulators.pool,
    schema: 'mes_bench',
    seedDemo: false,
    productionEventBroker: { url: broker.url, ...logins.mes, clientId: 'mes-bench' },
  });
  bench.onCleanUp('MES simulator', () => mesSim.close());
  const mesUrl = await mesSim.listen({ host: '127.0.0.1', port: 0 });

  const plc = await startLinePlcSimulator({
    port: await findFreePort(),
    dataDir: join(work, 'line-plc'),
    stations: [],
    visionSystems: visionSystemsFromConfig(base),
    lineControls: lines.map((line) => ({ site: SITE, line })),
    trustedClientPkiDirs: [join(work, 'opcua-pki')],
  });
  bench.onCleanUp('line-plc simulator', () => plc.stop());

  const config: HoldfastConfig = {
    ...base,
    vision: { ...base.vision, broker: 'line-mqtt', topicPrefix: prefix, http: { ...base.vision.http, port: 0 } },
    connectors: {
      ...base.connectors,
      'mes-sim': { ...base.connectors['mes-sim']!, baseUrl: mesUrl },
      'line-vision': { ...base.connectors['line-vision']!, endpointUrl: plc.endpointUrl },
      'line-control': { ...base.connectors['line-control']!, endpointUrl: plc.endpointUrl },
      'line-mqtt': { ...base.connectors['line-mqtt']!, ...logins.inference },
      'uns-mqtt': { kind: 'mqtt', required: true, url: broker.url, ...logins.reader },
    },
    changeover: {
      ...base.changeover,
      events: {
        broker: 'uns-mqtt',
        clientId: 'holdfast-job-orders',
        topicFilter: `plant/${SITE}/+/+/production/job-orders`,
      },
    },
  };
  delete config.vision.rejectStation;

  // The recipes: one per Holdfast station and SKU, both on the shipped model (what the worker loads and reports).
  for (const line of lines) {
    for (let s = 1; s <= HOLDFAST_STATIONS; s++) {
      for (const sku of SKUS) {
        await saveRecipe(
          holdfast.pool,
          {
            site: SITE,
            line,
            station: `S${s}`,
            sku,
            version: `R-${sku}`,
            model: { name: MODEL.name, version: MODEL.version },
            thresholds: {},
            minDefectAreaPx: 0,
          },
          'bench',
        );
      }
    }
  }

  const inference = await startInferenceWorker({
    config,
    pool: holdfast.pool,
    mqttUrl: broker.url,
    dataDir: work,
    modelsDir,
    clientId: 'inference-bench',
    seedRecipes: false,
    log: quiet,
  });
  bench.onCleanUp('inference worker', () => inference.close());

  const connection = await Connection.connect({ address: temporal.address });
  bench.onCleanUp('Temporal connection', () => connection.close());
  const payloadCodec = holdfastPayloadCodec({ [PAYLOAD_KEYS_ENV]: generatePayloadKeyEntry('bench') });
  const dataConverter = holdfastDataConverter(payloadCodec);
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter });
  const native = await NativeConnection.connect({ address: temporal.address });
  bench.onCleanUp('worker connection', () => native.close());

  const mesConnector = await openConnectors(config, ['mes-sim'], { log: quiet, dataDir: work, env: {} });
  bench.onCleanUp('MES connector', () => mesConnector.close());
  const mes = mesConnector.port('mes-sim', 'mes');
  const plant = openChangeoverPlant(holdfast.pool, config, { log: quiet, dataDir: work, env: {} });
  bench.onCleanUp('changeover plant', () => plant.close());
  // The workflow side's plant calls, timed: where the time of prepare and verify goes.
  const callTimes: CallTimes = new Map();
  const notUsed = () => Promise.reject(new Error('a changeover does not use this'));
  const activities = createWorkerActivities(
    holdfast.pool,
    config,
    {
      mesFor: () => mes,
      erpFor: () => {
        throw new Error('a changeover uses no ERP');
      },
      escalationFor: () => ({ target: 'bench', port: { escalate: async () => undefined } }),
      recallNoticeFor: () => {
        throw new Error('a changeover sends no recall notices');
      },
    },
    {
      reinspector: { reinspectBatch: notUsed, conclude: notUsed },
      changeover: timedPorts(allPorts(plant.ports), callTimes),
    },
  );
  const workers = await createQualityWorkers({
    config,
    connection: native,
    namespace: temporal.namespace,
    dataConverter,
    activities,
  });
  const running = workers.map((w) => w.run());
  bench.onCleanUp('workers', async () => {
    workers.forEach((w) => w.shutdown());
    await Promise.allSettled(running);
  });
  const control = createTemporalChangeoverControl(client, config, { taskQueue: config.taskQueues.quality });
  const intake = await startJobOrderIntake({
    config,
    pool: holdfast.pool,
    mesFor: () => mes,
    trigger: control,
    registry: new Registry(),
    log: quiet,
    env: {},
  });
  bench.onCleanUp('job-order intake', () => intake.close());

  async function sim(path: string, body: unknown = {}): Promise<void> {
    const res = await fetch(`${mesUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201 && res.status !== 200)
      throw new Error(`MES simulator ${path}: ${res.status} ${await res.text()}`);
  }
  const order = (i: number) => ({
    line: lines[i % lines.length]!,
    sku: SKUS[Math.floor(i / lines.length) % SKUS.length]!,
  });
  /** The order's first part, passed at every Holdfast station of its line (the first article is not measured). */
  async function firstPartOf(line: string, workOrder: string, sku: string): Promise<void> {
    for (let s = 1; s <= HOLDFAST_STATIONS; s++) {
      await holdfast.pool.query(
        `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                          model_version, recipe_version, inspected_at, payload_sha256, mode)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pass', $9, $10, now(), $11, 'production')`,
        [
          `fa-${workOrder}-S${s}`,
          SITE,
          line,
          `S${s}`,
          `${workOrder}-P1`,
          sku,
          `LOT-${workOrder}`,
          workOrder,
          `${MODEL.name}@${MODEL.version}`,
          `R-${sku}`,
          MODEL.sha256,
        ],
      );
    }
  }
  const recipes = createChangeoverRecipeSource(holdfast.pool, config, modelsDir);
  const gapMs = 1000 / rate;

  /** The workflow side of one run: every event through the MES, the broker and the intake. */
  async function workflowSide(run: number): Promise<(Measured | undefined)[]> {
    const orders = Array.from({ length: changeovers }, (_, i) => ({ ...order(i), workOrder: `WO-${run}-${i + 1}` }));
    for (const o of orders) {
      await sim('/__sim/job-orders', {
        workOrder: o.workOrder,
        sku: o.sku,
        site: SITE,
        area: AREA,
        line: o.line,
        plannedQuantity: 100,
      });
    }
    const t0 = Date.now() + 1000;
    const dues = await Promise.all(
      orders.map(async (o, i) => {
        const due = t0 + i * gapMs;
        await sleep(Math.max(0, due - Date.now()));
        await sim(`/__sim/job-orders/${o.workOrder}/start`);
        // The first part is made once the changeover runs: a first article counts only parts received since its start.
        // Written while the stations are prepared, it is there by the first-article read, so none is waited for.
        const handle = client.workflow.getHandle(changeoverWorkflowId(SITE, o.line, o.workOrder));
        while (
          !(await handle.describe().then(
            () => true,
            () => false,
          ))
        )
          await sleep(20);
        await firstPartOf(o.line, o.workOrder, o.sku);
        return due;
      }),
    );
    const until = t0 + changeovers * gapMs + deadlineMs;
    return Promise.all(
      orders.map(async (o, i): Promise<Measured | undefined> => {
        const due = dues[i]!;
        const handle = client.workflow.getHandle(changeoverWorkflowId(SITE, o.line, o.workOrder));
        for (;;) {
          const d = await handle.describe().catch(() => undefined);
          if (d && d.status.name !== 'RUNNING') {
            if (d.status.name !== 'COMPLETED') {
              say(`failed: ${o.line}/${o.workOrder}: ${d.status.name}`);
              return undefined;
            }
            const status: ChangeoverStatus = await handle.query(changeoverStatusQuery);
            const at = (step: string, edge: 'startedAt' | 'finishedAt') =>
              Date.parse(status.timings.find((t) => t.step === step)?.[edge] ?? '');
            const steps = Object.fromEntries(
              STEPS.map((s) => [s, at(s, 'finishedAt') - at(s, 'startedAt')]),
            ) as Measured['steps'];
            return {
              verified: at('verify', 'finishedAt') - due,
              released: at('release', 'finishedAt') - due,
              intake: d.startTime.getTime() - due,
              firstTask: at('interlock', 'startedAt') - d.startTime.getTime(),
              between:
                at('verify', 'finishedAt') -
                at('interlock', 'startedAt') -
                (['interlock', 'resolve', 'prepare', 'verify'] as const).reduce((sum, k) => sum + (steps[k] ?? 0), 0),
              steps,
            };
          }
          if (Date.now() > until) {
            say(`failed: ${o.line}/${o.workOrder}: ${d ? 'still running' : 'never started'} at the deadline`);
            return undefined;
          }
          await sleep(500);
        }
      }),
    );
  }

  /** The baseline side of one run: other orders on the same stations, direct calls at the same rate. */
  async function baselineSide(run: number): Promise<({ verified: number; released: number } | undefined)[]> {
    const orders = Array.from({ length: changeovers }, (_, i) => ({ ...order(i), workOrder: `WB-${run}-${i + 1}` }));
    for (const o of orders) {
      // Released in the MES but never started there: no event starts a changeover of these.
      await sim('/__sim/job-orders', {
        workOrder: o.workOrder,
        sku: o.sku,
        site: SITE,
        area: AREA,
        line: o.line,
        plannedQuantity: 100,
        publish: false,
      });
      await firstPartOf(o.line, o.workOrder, o.sku);
    }
    const t0 = Date.now() + 1000;
    return Promise.all(
      orders.map(async (o, i) => {
        const due = t0 + i * gapMs;
        await sleep(Math.max(0, due - Date.now()));
        const input = changeoverInput(config, {
          site: SITE,
          ...o,
          trigger: 'order-event',
          requestId: `direct-${o.workOrder}`,
          requestedBy: 'bench',
          reason: 'baseline',
          dueAt: new Date(due).toISOString(),
        });
        try {
          const { verified, released } = await directChangeover(allPorts(plant.ports), mes, recipes, input);
          return { verified: verified - due, released: released - due };
        } catch (err) {
          say(`baseline failed: ${o.line}/${o.workOrder}: ${err instanceof Error ? err.message : String(err)}`);
          return undefined;
        }
      }),
    );
  }

  const perRun: Record<string, number>[] = [];
  let failed = 0;
  let baselineFailed = 0;
  const breakdown: Record<string, number[]> = {};
  /** The changeover slowest to verified, step by step: what one run's p99 (its slowest of 50) is made of. */
  let slowest: Measured | undefined;
  say(
    `${runs} run(s) of ${changeovers} changeovers over ${lines.length} lines, ${rate}/s; load ${load[0]?.toFixed(2)}`,
  );
  for (let run = 1; run <= runs; run++) {
    const side = await workflowSide(run);
    const base2 = await baselineSide(run);
    load.push(loadavg()[0] ?? NaN);
    failed += side.filter((m) => !m).length;
    baselineFailed += base2.filter((m) => !m).length;
    const inf = (v: number | undefined) => v ?? Infinity;
    const v = percentiles(side.map((m) => inf(m?.verified)));
    const r = percentiles(side.map((m) => inf(m?.released)));
    const b = percentiles(base2.map((m) => inf(m?.verified)));
    const br = percentiles(base2.map((m) => inf(m?.released)));
    perRun.push({
      verified_p50_ms: v.p50,
      verified_p99_ms: v.p99,
      released_p50_ms: r.p50,
      released_p99_ms: r.p99,
      baseline_p50_ms: b.p50,
      baseline_p99_ms: b.p99,
      baseline_released_p99_ms: br.p99,
    });
    // How long each Holdfast station's inference worker took from the arm to its report (model loaded): a station
    // whose report comes after the verify step's first read-back waits for the next read.
    const reports = await holdfast.pool.query<{ ms: number }>(
      `SELECT (extract(epoch FROM prepared_at - armed_at) * 1000)::float8 AS ms FROM holdfast.station_assignment
        WHERE changeover_id LIKE $1 AND prepared_at IS NOT NULL`,
      [`changeover-${SITE}-%-WO-${run}-%`],
    );
    (breakdown.worker_report ??= []).push(...reports.rows.map((r) => r.ms));
    for (const m of side) {
      if (!m) continue;
      const add = (k: string, x: number) => (breakdown[k] ??= []).push(x);
      add('intake', m.intake);
      add('first_task', m.firstTask);
      add('between_steps', m.between);
      for (const s of STEPS) add(s, m.steps[s] ?? NaN);
      if (!slowest || m.verified > slowest.verified) slowest = m;
    }
    say(
      `run ${run}: verified p50/p99 ${v.p50}/${v.p99} ms, released ${r.p50}/${r.p99} ms, ` +
        `baseline ${b.p50}/${b.p99} ms; load ${load.at(-1)?.toFixed(2)}`,
    );
  }

  const figures: Record<string, number | string | null> = {};
  for (const [key, s] of Object.entries(spreadByKey(perRun))) {
    figures[key] = jsonFigure(s.median);
    figures[`${key}_min`] = jsonFigure(s.min);
    figures[`${key}_max`] = jsonFigure(s.max);
  }
  const steps: Record<string, unknown> = {};
  for (const [k, xs] of Object.entries(breakdown)) {
    const p = percentiles(xs.filter((x) => !Number.isNaN(x)));
    steps[k] = { p50: jsonFigure(p.p50), p99: jsonFigure(p.p99) };
  }
  const ports: Record<string, unknown> = {};
  for (const [k, xs] of [...callTimes].sort(([a], [b]) => a.localeCompare(b))) {
    const p = percentiles(xs);
    ports[k] = { calls: xs.length, p50: jsonFigure(p.p50), p99: jsonFigure(p.p99) };
  }
  return {
    summary: {
      benchmark: 'changeover',
      changeovers: changeovers * runs,
      failed,
      baseline_failed: baselineFailed,
      runs,
      lines: lines.length,
      stations_per_line: HOLDFAST_STATIONS + VISION_SYSTEMS,
      rate_per_s: rate,
      ...figures,
      steps_ms: steps,
      slowest_ms: slowest
        ? {
            verified: jsonFigure(slowest.verified),
            intake: jsonFigure(slowest.intake),
            first_task: jsonFigure(slowest.firstTask),
            between_steps: jsonFigure(slowest.between),
            ...Object.fromEntries(Object.entries(slowest.steps).map(([k, x]) => [k, jsonFigure(x)])),
          }
        : null,
      ports_ms: ports,
      plant: 'line-plc simulator (OPC UA), PostgreSQL station store + inference worker, MES simulator, Mosquitto',
      run_id: randomUUID().slice(0, 8),
      cpus: cpus().length,
      load_1m_start: jsonFigure(load[0] ?? NaN, 2),
      load_1m_max: jsonFigure(Math.max(...load), 2),
    },
    exitCode: failed + baselineFailed > 0 ? 1 : 0,
  };
});
