/**
 * `npm run bench:changeover`: changeovers of 10 lines of 5 stations each (3 Holdfast inference stations and 2 OPC 40100
 * vision systems per line), one MES `started` event at a steady rate, from the event's due time to every station
 * verified (the first article excluded) and to the order released; against a baseline in the same run that switches
 * the same stations with direct calls in one process.
 *
 *   npm run bench:changeover -- --changeovers 100 --rate 5 --io-ms 5
 *
 * 1. An embedded PostgreSQL (the intent ledger and the escalations' keys are real) and a Temporal dev server, the
 *    worker in this process; events enter through the changeover starter as the MES intake calls it
 *    (ChangeoverTrigger.orderStarted), each at its due time.
 * 2. The plant's ports are in-process stand-ins with `--io-ms` of latency per call: each station reads back what it
 *    was asked, the line's first parts are there at once (the first-article wait is not what is measured), the MES
 *    releases every order. The same stand-ins serve the baseline, so both sides pay the same I/O.
 * 3. Verified: the workflow's `verify` step's end (workflow time) minus the due time. Released: its `release` step's
 *    end. Baseline: the same steps as plain awaited calls, at the same rate.
 *
 * Last line: one JSON object with changeovers, verified_p50_ms, verified_p99_ms, released_p50_ms, released_p99_ms,
 * baseline_p50_ms, baseline_p99_ms (every station verified), baseline_released_p99_ms, failed.
 */
import { cpus, loadavg, tmpdir } from 'node:os';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime } from '@temporalio/worker';
import type { ChangeoverRecipeSource } from '../activities';
import type {
  FirstArticleReader,
  LineInterlockPort,
  MesPort,
  StationControlPort,
  StationReadBack,
  VisionSystemPort,
  VisionSystemState,
} from '../activities/ports';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import { migrate } from '../infra/db/migrate';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { modelsDirOf } from '../infra/recall/model-versions';
import { saveRecipe } from '../infra/vision/recipe.repository';
import { startTemporalDevServer } from '../infra/local/temporal-dev-server';
import { resolveTemporalCli } from '../infra/temporal/cli';
import { changeoverInput, createTemporalChangeoverControl } from '../infra/temporal/changeover-starter';
import {
  PAYLOAD_KEYS_ENV,
  generatePayloadKeyEntry,
  holdfastDataConverter,
  holdfastPayloadCodec,
} from '../infra/temporal/payload-codec';
import {
  ALL_SEARCH_ATTRIBUTES,
  changeoverStatusQuery,
  changeoverWorkflowId,
  type ChangeoverInput,
} from '../workflows/contracts';
import { createQualityWorkers } from '../workers/quality-workers';
import { createWorkerActivities } from '../workers/worker-activities';
import { integerOption, runBenchmark } from './harness';
import { openPool } from './pools';
import { jsonFigure, percentiles } from './stats';

const { values: args } = parseArgs({
  options: {
    changeovers: { type: 'string', default: '100' },
    lines: { type: 'string', default: '10' },
    /** Changeovers started per second, over all lines. */
    rate: { type: 'string', default: '5' },
    'io-ms': { type: 'string', default: '5' },
  },
});

const HOLDFAST_STATIONS = 3;
const VISION_SYSTEMS = 2;
const SKUS = ['SKU-A', 'SKU-B'];
const MODEL = { name: 'holdfast-surface', version: '1.0.0' };

/** The plant's ports, in process, each call after `ioMs`: what both the workflow and the baseline switch. */
function standInPlant(ioMs: number, modelSha256: string) {
  const io = () => sleep(ioMs);
  const stations = new Map<string, StationReadBack>();
  const systems = new Map<string, VisionSystemState>();
  const key = (s: { site: string; line: string; station: string }) => `${s.line}/${s.station}`;
  const stationControl: StationControlPort = {
    async arm(station, target) {
      await io();
      const now = stations.get(key(station)) ?? {};
      stations.set(key(station), {
        ...now,
        armed: {
          changeoverId: target.changeoverId,
          workOrder: target.workOrder,
          sku: target.sku,
          recipeVersion: target.recipeVersion,
          modelKey: `${target.model.name}@${target.model.version}`,
          modelSha256,
          preparedAt: new Date().toISOString(),
        },
      });
    },
    async readBack(station) {
      await io();
      return stations.get(key(station)) ?? {};
    },
    async revert(station) {
      await io();
      stations.delete(key(station));
    },
  };
  const vision: VisionSystemPort = {
    endpoint: 'opc.tcp://stand-in:4840',
    async prepareRecipe(system, externalRecipeId) {
      await io();
      const internalRecipeId = `int-${externalRecipeId}`;
      systems.set(system, { state: 'Operational', substate: 'Ready', externalRecipeId, internalRecipeId });
      return { internalRecipeId };
    },
    async unprepareRecipe(system) {
      await io();
      systems.delete(system);
    },
    async readState(system) {
      await io();
      return systems.get(system) ?? { state: 'Operational', externalRecipeId: null, internalRecipeId: null };
    },
  };
  const interlock: LineInterlockPort = {
    async setRelease() {
      await io();
    },
    async readRelease() {
      await io();
      return { released: true, workOrder: '' };
    },
  };
  const firstArticles: FirstArticleReader = {
    async firstParts(_line, workOrder, parts) {
      await io();
      return Array.from({ length: parts }, (_, i) => ({
        partId: `${workOrder}-P${i + 1}`,
        result: 'pass' as const,
        eventIds: [],
        lotId: `LOT-${workOrder}`,
        inspectedAt: new Date().toISOString(),
      }));
    },
  };
  const recipes: ChangeoverRecipeSource = {
    async active(_station, sku) {
      await io();
      return { version: `R-${sku}`, model: MODEL, modelSha256 };
    },
  };
  const mes: MesPort = {
    system: 'stand-in-mes',
    getLot: () => Promise.reject(new Error('not used')),
    holdLot: () => Promise.reject(new Error('not used')),
    recordQualityEvent: () => Promise.reject(new Error('not used')),
    releaseHold: () => Promise.reject(new Error('not used')),
    async releaseForProduction(req) {
      await io();
      return { workOrder: req.workOrder, line: req.line, releasedAt: new Date().toISOString(), externalReference: 'R' };
    },
  };
  return { stationControl, vision, interlock, firstArticles, recipes, mes };
}

type Plant = ReturnType<typeof standInPlant>;

/** The same changeover as plain awaited calls in this process: no durability, no retries, no history. */
async function directChangeover(plant: Plant, input: ChangeoverInput): Promise<{ verified: number; released: number }> {
  const { site, line, workOrder, sku } = input;
  const ref = (station: string) => ({ site, line, station });
  await plant.interlock.setRelease({ site, line }, { released: false, workOrder });
  const plans = await Promise.all(
    input.stations.map(async (s) =>
      s.vision ? { s, recipe: undefined } : { s, recipe: await plant.recipes.active(ref(s.station), sku) },
    ),
  );
  await Promise.all(
    plans.map(({ s }) =>
      s.vision ? plant.vision.readState(s.vision.system) : plant.stationControl.readBack(ref(s.station)),
    ),
  );
  await Promise.all(
    plans.map(({ s, recipe }) =>
      s.vision
        ? plant.vision.prepareRecipe(s.vision.system, s.vision.externalRecipeId!)
        : plant.stationControl.arm(ref(s.station), {
            changeoverId: workOrder,
            workOrder,
            sku,
            recipeVersion: recipe!.version,
            model: recipe!.model,
          }),
    ),
  );
  const agreed = await Promise.all(
    plans.map(async ({ s }) =>
      s.vision
        ? (await plant.vision.readState(s.vision.system)).externalRecipeId === s.vision.externalRecipeId
        : (await plant.stationControl.readBack(ref(s.station))).armed?.workOrder === workOrder,
    ),
  );
  if (agreed.includes(false)) throw new Error(`direct changeover of ${line} to ${workOrder}: a read-back disagreed`);
  const verified = Date.now();
  await plant.firstArticles.firstParts({ site, line }, workOrder, input.options.firstArticleParts);
  await plant.mes.releaseForProduction!({
    idempotencyKey: `direct:${workOrder}`,
    workOrder,
    line,
    releasedBy: 'bench',
    comment: 'direct',
  });
  await plant.interlock.setRelease({ site, line }, { released: true, workOrder });
  return { verified, released: Date.now() };
}

runBenchmark('changeover', async (bench) => {
  const { say } = bench;
  const changeovers = integerOption(args, 'changeovers', 1);
  const lineCount = integerOption(args, 'lines', 1);
  const rate = integerOption(args, 'rate', 1);
  const ioMs = integerOption(args, 'io-ms', 0);
  const base = loadConfig();
  const site = base.sites[0]!;
  const config: HoldfastConfig = {
    ...base,
    sites: [
      {
        ...site,
        lineControl: 'line-plc',
        lines: Array.from({ length: lineCount }, (_, l) => ({
          id: `L${l + 1}`,
          stations: [
            ...Array.from({ length: HOLDFAST_STATIONS }, (_, s) => ({ id: `S${s + 1}`, mode: 'production' as const })),
            ...Array.from({ length: VISION_SYSTEMS }, (_, v) => ({
              id: `V${v + 1}`,
              mode: 'production' as const,
              vision: {
                connector: 'vision-opc',
                system: `L${l + 1}-cam-${v + 1}`,
                recipes: Object.fromEntries(SKUS.map((sku) => [sku, `EXT-${sku}`])),
              },
            })),
          ],
        })),
      },
    ],
    changeover: { ...base.changeover, firstArticleParts: 1 },
  };

  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-changeover-'));
  // PostgreSQL runs as its own OS user, which must be able to enter the directory.
  chmodSync(work, 0o755);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), log: () => undefined });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const holdfast = openPool(pg.url, { max: 8, applicationName: 'holdfast-bench-changeover' });
  bench.onCleanUp('Holdfast pool', holdfast.close);
  await migrate(holdfast.pool);

  Runtime.install({ logger: new DefaultLogger('WARN') });
  const temporal = await startTemporalDevServer({
    cliPath: await resolveTemporalCli(say),
    uiPort: false,
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
  });
  bench.onCleanUp('Temporal dev server', temporal.stop);
  const connection = await Connection.connect({ address: temporal.address });
  bench.onCleanUp('Temporal connection', () => connection.close());
  const payloadCodec = holdfastPayloadCodec({ [PAYLOAD_KEYS_ENV]: generatePayloadKeyEntry('bench') });
  const dataConverter = holdfastDataConverter(payloadCodec);
  const client = new Client({ connection, namespace: temporal.namespace, dataConverter });
  const native = await NativeConnection.connect({ address: temporal.address });
  bench.onCleanUp('worker connection', () => native.close());

  // The recipes are real rows, resolved with the shipped model's manifest as a worker resolves them.
  const manifest = JSON.parse(readFileSync(join(modelsDirOf(config), 'holdfast-surface', 'manifest.json'), 'utf8')) as {
    name: string;
    version: string;
    sha256: string;
  };
  for (const line of config.sites[0]!.lines) {
    for (const station of line.stations.filter((s) => !s.vision)) {
      for (const sku of SKUS) {
        await saveRecipe(
          holdfast.pool,
          {
            site: site.id,
            line: line.id,
            station: station.id,
            sku,
            version: `R-${sku}`,
            model: { name: manifest.name, version: manifest.version },
            thresholds: {},
            minDefectAreaPx: 0,
          },
          'bench',
        );
      }
    }
  }
  const plant = standInPlant(ioMs, manifest.sha256);
  const notUsed = () => Promise.reject(new Error('a changeover does not use this'));
  const activities = createWorkerActivities(
    holdfast.pool,
    config,
    {
      mesFor: () => plant.mes,
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
      changeover: {
        stationControl: plant.stationControl,
        firstArticles: plant.firstArticles,
        visionFor: () => plant.vision,
        lineControlFor: () => plant.interlock,
      },
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
  const trigger = createTemporalChangeoverControl(client, config, { taskQueue: config.taskQueues.quality });
  const lines = config.sites[0]!.lines.map((l) => l.id);
  const gapMs = 1000 / rate;
  const order = (i: number) => ({
    line: lines[i % lines.length]!,
    workOrder: `WO-${i + 1}`,
    sku: SKUS[Math.floor(i / lines.length) % SKUS.length]!,
  });

  // The workflow side: one `started` event per gap, each due when it is sent.
  say(`${changeovers} changeovers over ${lines.length} lines, ${rate}/s, ${ioMs} ms per port call`);
  const started = Date.now();
  const outcomes = await Promise.all(
    Array.from({ length: changeovers }, async (_, i) => {
      const due = started + i * gapMs;
      await sleep(Math.max(0, due - Date.now()));
      const o = order(i);
      const dueAt = new Date(due).toISOString();
      await trigger.orderStarted({
        eventId: `ev-${i}`,
        eventType: 'started',
        revision: 1,
        publishedAt: dueAt,
        site: site.id,
        line: o.line,
        workOrder: o.workOrder,
        sku: o.sku,
      });
      const handle = client.workflow.getHandle(changeoverWorkflowId(site.id, o.line, o.workOrder));
      try {
        await handle.result();
      } catch (err) {
        return { failed: `${o.line}/${o.workOrder}: ${err instanceof Error ? err.message : String(err)}` };
      }
      const status = await handle.query(changeoverStatusQuery);
      const end = (step: string) => Date.parse(status.timings.find((t) => t.step === step)?.finishedAt ?? '') - due;
      return { verified: end('verify'), released: end('release') };
    }),
  );
  const failed = outcomes.flatMap((o) => ('failed' in o && o.failed ? [o.failed] : []));
  for (const f of failed.slice(0, 5)) say(`failed: ${f}`);
  const ok = outcomes.filter((o): o is { verified: number; released: number } => !('failed' in o));

  // The baseline: the same changeovers as direct calls, at the same rate, in this process.
  const baseStart = Date.now();
  const baseline = await Promise.all(
    Array.from({ length: changeovers }, async (_, i) => {
      const due = baseStart + i * gapMs;
      await sleep(Math.max(0, due - Date.now()));
      const o = order(i);
      const input = changeoverInput(config, {
        site: site.id,
        ...o,
        trigger: 'order-event',
        requestId: `ev-${i}`,
        requestedBy: 'bench',
        reason: 'baseline',
        dueAt: new Date(due).toISOString(),
      });
      const { verified, released } = await directChangeover(plant, input);
      return { verified: verified - due, released: released - due };
    }),
  );

  const verified = percentiles(ok.map((o) => o.verified));
  const released = percentiles(ok.map((o) => o.released));
  const direct = percentiles(baseline.map((o) => o.verified));
  const directReleased = percentiles(baseline.map((o) => o.released));
  return {
    summary: {
      benchmark: 'changeover',
      changeovers: ok.length,
      failed: failed.length,
      lines: lines.length,
      stations_per_line: HOLDFAST_STATIONS + VISION_SYSTEMS,
      rate_per_s: rate,
      io_ms: ioMs,
      verified_p50_ms: jsonFigure(verified.p50),
      verified_p99_ms: jsonFigure(verified.p99),
      released_p50_ms: jsonFigure(released.p50),
      released_p99_ms: jsonFigure(released.p99),
      baseline_p50_ms: jsonFigure(direct.p50),
      baseline_p99_ms: jsonFigure(direct.p99),
      baseline_released_p99_ms: jsonFigure(directReleased.p99),
      plant_ports: 'in-process stand-ins',
      cpus: cpus().length,
      load_1m: jsonFigure(loadavg()[0] ?? NaN, 2),
    },
    exitCode: failed.length > 0 ? 1 : 0,
  };
});
