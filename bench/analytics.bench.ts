/**
 * `npm run bench:analytics`: first-pass yield, defect Pareto and supplier queries over a plant history of ten million
 * inspections, and what keeping the aggregates costs ingest.
 *
 *   npm run bench:analytics -- --inspections 10000000 --days 90 --runs 3
 *   npm run bench:analytics -- --inspections 200000 --ingest 20000 --queries 50   (a quick check)
 *
 * 1. Starts PostgreSQL (embedded, as the other benchmarks do), migrates it, writes the plant's shift calendars
 *    (holdfast.site_shift) and its genealogy (purchased and in-house lots, the movements that consumed them) through
 *    the genealogy store, then loads the history (bench/analytics-plant.ts) through ingest's own insert
 *    (insertInspections), one connection per site, each site's results in the order they arrive: the aggregates are
 *    kept by the same maintenance as in production. Then VACUUM ANALYZE.
 * 2. Each run: `--queries` each of FPY, Pareto and supplier over a random site and 30-day window, grouped by line
 *    and shift, interleaved, one at a time (a closed loop: each query is due when the one before it has answered),
 *    and `--raw-queries` of the reference (FPY from the raw inspections), whose figures must equal the aggregates'.
 * 3. Each run: the ingest of `--ingest` new inspections (the days after the history), with the aggregate maintenance
 *    and without it (the maintenance triggers on holdfast.inspection disabled), the same inspections under another id
 *    prefix, in batches of `--batch`, one connection per site, a checkpoint before each side; the side that goes
 *    first alternates from run to run.
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { migrate } from '../infra/db/migrate';
import { createGenealogyStore } from '../infra/genealogy/genealogy-store';
import { insertInspections } from '../infra/ingest/inspection.repository';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../infra/local/postgres';
import {
  buildPlant,
  HOUR,
  partsPerHour,
  seededRandom,
  siteInspections,
  type Plant,
  type PlantInspection,
  type PlantSite,
} from './analytics-plant';
import {
  fpyByLineAndShift,
  paretoByLineAndShift,
  rawFpyByLineAndShift,
  supplierByLineAndShift,
  supplierHeatmap,
  lineChartWeek,
  type FpyRow,
  type Window,
} from './analytics-queries';
import { insertWithoutAnalytics } from './analytics-baseline';
import { integerOption, runBenchmark } from './harness';
import { openPool, type ClosablePool } from './pools';
import { jsonFigure, jsonFigures, percentiles, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    inspections: { type: 'string', default: '10000000' },
    days: { type: 'string', default: '90' },
    start: { type: 'string', default: '2026-09-01' },
    seed: { type: 'string', default: '1' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    queries: { type: 'string', default: '200' },
    'raw-queries': { type: 'string', default: '5' },
    'window-days': { type: 'string', default: '30' },
    ingest: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '500' },
    'load-batch': { type: 'string', default: '5000' },
    'data-dir': { type: 'string' },
    profile: { type: 'boolean', default: false },
  },
});

const count = (name: string, min: number) => integerOption(args, name, min);
const ms = (since: number) => performance.now() - since;
const perSecond = (n: number, millis: number) => (millis > 0 ? (n * 1000) / millis : NaN);
const DAY = 24 * HOUR;

/**
 * PostgreSQL for ten million rows on a small machine: a larger buffer cache and fewer checkpoints than the defaults,
 * durability unchanged (infra/local/postgres.ts fixes fsync and synchronous_commit on the command line).
 */
const PG_SETTINGS: Record<string, string> = {
  shared_buffers: '1GB',
  max_wal_size: '8GB',
  checkpoint_timeout: '15min',
  work_mem: '16MB',
  maintenance_work_mem: '256MB',
};

/** What loading the history took, kept with it so that a reused --data-dir still reports it. */
interface LoadRecord {
  history: unknown;
  load_ms: number;
  retries: number;
  vacuum_ms: number;
  genealogy_ms: number;
  invocations: number;
}

/**
 * --profile: where ingest's time goes, statement by statement from pg_stat_statements (nested ones too: the
 * trigger's). Its bookkeeping slows ingest a little, so a profiled run is not a measured one.
 */
const PROFILE_SETTINGS: Record<string, string> = {
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.track': 'all',
};

interface IngestProfile {
  statements: { query: string; calls: number; total_ms: number; rows: number }[];
}

async function readProfile(pool: pg.Pool): Promise<IngestProfile> {
  const statements = await pool.query<{ query: string; calls: string; total_ms: number; rows: string }>(
    `SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 200) AS query, calls, total_exec_time AS total_ms, rows
       FROM pg_stat_statements
      WHERE query NOT LIKE '%pg_stat%' AND query NOT IN ('BEGIN', 'COMMIT')
      ORDER BY total_exec_time DESC LIMIT 12`,
  );
  return {
    statements: statements.rows.map((r) => ({
      query: r.query,
      calls: Number(r.calls),
      total_ms: Math.round(r.total_ms),
      rows: Number(r.rows),
    })),
  };
}

const RETRYABLE = new Set(['40P01', '40001']);

type Insert = (db: pg.Pool, rows: readonly PlantInspection[]) => Promise<Set<string>>;

/** The ingest sides: with the aggregates, without them, and today's insert with the triggers off. */
const SIDES = ['with', 'without', 'triggers_off'] as const;

/** An insert, retried as a producer would on a deadlock or serialization failure; returns the retries. */
async function insertBatch(pool: pg.Pool, insert: Insert, batch: readonly PlantInspection[]): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    try {
      const inserted = await insert(pool, batch);
      if (inserted.size !== batch.length) {
        throw new Error(`a batch of ${batch.length} stored ${inserted.size} (from ${batch[0]?.eventId})`);
      }
      return attempt;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt < 5 && code !== undefined && RETRYABLE.has(code)) continue;
      throw err;
    }
  }
}

/** Each site's share of a count: in proportion to its lines (every line gets the same share of the plant's volume). */
function siteQuotas(plant: Plant, total: number): Map<PlantSite, number> {
  const quotas = new Map<PlantSite, number>();
  let left = total;
  plant.sites.forEach((site, i) => {
    const q = i === plant.sites.length - 1 ? left : Math.round((total * site.lines.length) / plant.counts.lines);
    quotas.set(site, q);
    left -= q;
  });
  return quotas;
}

/** The first `quota` inspections of a site's stream, in batches of `size`, as they arrive. */
function* batchesOf(stream: Generator<PlantInspection[]>, quota: number, size: number): Generator<PlantInspection[]> {
  let batch: PlantInspection[] = [];
  let taken = 0;
  for (const arriving of stream) {
    for (const rec of arriving) {
      batch.push(rec);
      if (++taken === quota || batch.length === size) {
        yield batch;
        batch = [];
      }
      if (taken === quota) return;
    }
  }
}

/** The user triggers on holdfast.inspection: the aggregate maintenance this benchmark switches off for its baseline. */
async function inspectionTriggers(pool: pg.Pool): Promise<string[]> {
  const res = await pool.query<{ tgname: string }>(
    `SELECT tgname FROM pg_trigger WHERE tgrelid = 'holdfast.inspection'::regclass AND NOT tgisinternal ORDER BY tgname`,
  );
  return res.rows.map((r) => r.tgname);
}

async function setTriggers(pool: pg.Pool, triggers: readonly string[], enabled: boolean): Promise<void> {
  for (const t of triggers) {
    await pool.query(`ALTER TABLE holdfast.inspection ${enabled ? 'ENABLE' : 'DISABLE'} TRIGGER ${JSON.stringify(t)}`);
  }
}

/** Sums of a grouped FPY answer, keyed by line and shift, to compare two answers. */
const keyed = (rows: readonly FpyRow[]) =>
  new Map(rows.map((r) => [`${r.line}/${r.shift}`, `${r.units}/${r.firstPassGood}`]));

function sameFpy(a: readonly FpyRow[], b: readonly FpyRow[]): boolean {
  const ka = keyed(a.filter((r) => r.units > 0));
  const kb = keyed(b.filter((r) => r.units > 0));
  return ka.size === kb.size && [...ka].every(([k, v]) => kb.get(k) === v);
}

runBenchmark('analytics', async (bench) => {
  const { say } = bench;
  const inspections = count('inspections', 1000);
  const days = count('days', 31);
  const seed = count('seed', 0);
  const runs = count('runs', 1);
  const queries = count('queries', 1);
  const rawQueries = count('raw-queries', 0);
  const windowDays = count('window-days', 1);
  const ingestN = count('ingest', 100);
  const batchSize = count('batch', 1);
  const loadBatch = count('load-batch', 1);
  if (windowDays > days) throw new Error(`--window-days ${windowDays} is longer than the history (--days ${days})`);
  const profile = args.profile;
  const start = Date.parse(`${args.start}T00:00:00Z`);
  if (Number.isNaN(start)) throw new Error(`--start must be a date (YYYY-MM-DD), got "${args.start}"`);
  const historyEnd = start + days * DAY;
  // Each run's ingest sets follow the history, in the plant's own rhythm: as many hours as the plant needs for them.
  const perHour = inspections / (days * 24);
  const ingestSpanHours = Math.ceil((ingestN / perHour) * 1.1) + 2;
  // The plant (its work orders and lots) depends on its horizon: room for at least three runs, so that a reused
  // --data-dir serves invocations of one to three runs alike.
  const horizonDays = days + Math.ceil((Math.max(runs, 3) * ingestSpanHours) / 24) + 1;
  const loadBefore = loadavg()[0]!;

  // 1. The plant, its database, its genealogy.
  const planStarted = performance.now();
  const plant = buildPlant({ seed, start, days, horizonDays });
  const rates = partsPerHour(plant, inspections, start, days);
  say(
    `${inspections} inspections over ${days} days from ${args.start}: ${plant.counts.lines} lines, ` +
      `${plant.counts.stations} stations, ${plant.counts.workOrders} work orders, ` +
      `${plant.counts.purchasedLots} purchased lots (${Math.round(ms(planStarted))} ms)`,
  );

  // --data-dir keeps the database: a later invocation with the same history options reuses the loaded history.
  let dataDir: string;
  if (args['data-dir'] !== undefined) {
    dataDir = resolve(args['data-dir']);
    mkdirSync(dataDir, { recursive: true, mode: 0o755 });
  } else {
    const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-analytics-'));
    chmodSync(work, 0o755);
    bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
    dataDir = join(work, 'pg');
  }
  let pgServer: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir, log: () => undefined });
  {
    const admin = openPool(pgServer.url, { max: 1 });
    for (const [name, value] of Object.entries(PG_SETTINGS)) {
      await admin.pool.query(`ALTER SYSTEM SET ${name} = '${value}'`);
    }
    for (const [name, value] of Object.entries(PROFILE_SETTINGS)) {
      await admin.pool.query(profile ? `ALTER SYSTEM SET ${name} = '${value}'` : `ALTER SYSTEM RESET ${name}`);
    }
    await admin.close();
    await pgServer.stop();
    pgServer = await startEmbeddedPostgres({ dataDir, log: () => undefined });
  }
  const server = pgServer;
  bench.onCleanUp('PostgreSQL', () => server.stop());
  const sites = plant.sites.length;
  const db: ClosablePool = openPool(server.url, {
    max: sites + 2,
    statementTimeoutMs: 600_000,
    applicationName: 'holdfast-bench-analytics',
  });
  bench.onCleanUp('database connections', () => db.close());
  const pool = db.pool;
  await migrate(pool);
  if (profile) await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const version = (await pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`)).rows[0]!.v;

  // What an earlier invocation on this --data-dir loaded, if anything.
  const historyKey = { inspections, days, start: args.start, seed, horizonDays, loadBatch };
  await pool.query(`CREATE SCHEMA IF NOT EXISTS bench_analytics`);
  await pool.query(`CREATE TABLE IF NOT EXISTS bench_analytics.load (
      history jsonb NOT NULL, load_ms double precision NOT NULL, retries integer NOT NULL,
      vacuum_ms double precision NOT NULL, genealogy_ms double precision NOT NULL, invocations integer NOT NULL)`);
  const earlier = (
    await pool.query<LoadRecord & { same: boolean }>(
      `UPDATE bench_analytics.load SET invocations = invocations + 1 RETURNING *, history = $1::jsonb AS same`,
      [JSON.stringify(historyKey)],
    )
  ).rows[0];
  if (earlier && !earlier.same) {
    throw new Error(`${dataDir} holds another history (${JSON.stringify(earlier.history)}): use another --data-dir`);
  }
  const invocation = earlier?.invocations ?? 1;
  if (earlier) say(`reusing the history loaded in ${dataDir} (invocation ${invocation})`);
  if (!earlier && (await pool.query(`SELECT 1 FROM holdfast.inspection LIMIT 1`)).rowCount !== 0) {
    throw new Error(`${dataDir} holds inspections but no record of loading them: use another --data-dir`);
  }

  const triggers = await inspectionTriggers(pool);
  const problems: string[] = [];
  if (triggers.length === 0) problems.push('no aggregate maintenance: holdfast.inspection has no trigger');
  say(`aggregate maintenance on holdfast.inspection: ${triggers.length > 0 ? triggers.join(', ') : 'none'}`);

  let load: LoadRecord;
  if (earlier) {
    load = earlier;
  } else {
    for (const site of plant.sites) {
      for (const shift of site.shifts) {
        await pool.query(
          `INSERT INTO holdfast.site_shift (site, shift, starts, ends, time_zone) VALUES ($1, $2, $3, $4, $5)`,
          [site.id, shift.id, shift.start, shift.end, site.timezone],
        );
      }
    }
    const store = createGenealogyStore(createAuditTrail(pool));
    const genealogyStarted = performance.now();
    let facts = 0;
    for (const page of plant.genealogyPages(2000)) {
      await store.recordPage({ source: 'bench-analytics' }, page);
      facts += page.lots.length + page.movements.length;
    }
    const genealogyMs = ms(genealogyStarted);
    say(`genealogy: ${facts} lots and movements in ${Math.round(genealogyMs)} ms`);

    // The history, one connection per site, each site's results in arrival order.
    const loadStarted = performance.now();
    let loaded = 0;
    let retries = 0;
    let nextReport = 250_000;
    const quotas = siteQuotas(plant, inspections);
    await Promise.all(
      plant.sites.map(async (site) => {
        const stream = siteInspections(plant, site, { prefix: 'h-', seed, from: start, partsPerHour: rates });
        for (const batch of batchesOf(stream, quotas.get(site)!, loadBatch)) {
          retries += await insertBatch(pool, insertInspections, batch);
          loaded += batch.length;
          if (loaded >= nextReport) {
            nextReport += 250_000;
            say(`loaded ${loaded} (${Math.round(perSecond(loaded, ms(loadStarted)))}/s)`);
          }
        }
      }),
    );
    const loadMs = ms(loadStarted);
    say(`loaded ${loaded} inspections in ${Math.round(loadMs / 1000)} s (${Math.round(perSecond(loaded, loadMs))}/s)`);
    const vacuumStarted = performance.now();
    await pool.query('VACUUM (ANALYZE)');
    load = {
      history: historyKey,
      load_ms: loadMs,
      retries,
      vacuum_ms: ms(vacuumStarted),
      genealogy_ms: genealogyMs,
      invocations: 1,
    };
    await pool.query(
      `INSERT INTO bench_analytics.load (history, load_ms, retries, vacuum_ms, genealogy_ms, invocations)
       VALUES ($1, $2, $3, $4, $5, 1)`,
      [JSON.stringify(historyKey), load.load_ms, load.retries, load.vacuum_ms, load.genealogy_ms],
    );
  }

  const history = (
    await pool.query<{
      total: string;
      failed: string;
      first: string;
      reinspection: string;
      after_rework: string;
      unclassified: string;
      shadow: string;
      newest: Date;
    }>(
      `SELECT count(*) AS total, count(*) FILTER (WHERE result = 'fail') AS failed,
              count(*) FILTER (WHERE inspection_kind = 'first') AS first,
              count(*) FILTER (WHERE inspection_kind = 're-inspection') AS reinspection,
              count(*) FILTER (WHERE inspection_kind = 'after-rework') AS after_rework,
              count(*) FILTER (WHERE inspection_kind IS NULL) AS unclassified,
              count(*) FILTER (WHERE mode = 'shadow') AS shadow,
              max(inspected_at) AS newest
         FROM holdfast.inspection
        WHERE event_id LIKE 'h-%'`,
    )
  ).rows[0]!;
  const sizes = (
    await pool.query<{ name: string; rows: string; mb: string }>(
      `SELECT c.relname AS name, c.reltuples::bigint AS rows,
              round(pg_total_relation_size(c.oid) / 1e6) AS mb
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'holdfast'
          AND c.relname IN ('inspection', 'quality_hourly', 'defect_hourly', 'work_order_lot')`,
    )
  ).rows;
  const tables = Object.fromEntries(sizes.map((r) => [r.name, { rows: Number(r.rows), mb: Number(r.mb) }]));
  say(`history: ${JSON.stringify(history)}; tables ${JSON.stringify(tables)}`);
  if (Number(history.total) !== inspections) problems.push(`${history.total} inspections stored, ${inspections} asked`);
  if ((tables.quality_hourly?.rows ?? 0) <= 0) problems.push('holdfast.quality_hourly is empty after the load');

  // 2 and 3, each run.
  const wrong: string[] = [];
  const failures: string[] = [];
  const perRun: Record<string, number>[] = [];
  let ingestRetries = 0;
  const profiles: Record<string, IngestProfile> = {};
  const windowsFrom = (random: () => number): Window => {
    const site = plant.sites[Math.floor(random() * plant.sites.length)]!;
    const offset = Math.floor(random() * (days - windowDays + 1));
    const from = new Date(start + offset * DAY);
    return { site: site.id, from, to: new Date(from.getTime() + windowDays * DAY) };
  };
  const timed = async (samples: number[], what: string, run: () => Promise<unknown>) => {
    const t0 = performance.now();
    try {
      await run();
      samples.push(ms(t0));
    } catch (err) {
      samples.push(Infinity);
      failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };

  for (let run = 1; run <= runs; run++) {
    const figures: Record<string, number> = {};
    const random = seededRandom(seed * 65_537 + run);
    const samples = {
      fpy: [] as number[],
      pareto: [] as number[],
      supplier: [] as number[],
      heatmap: [] as number[],
      chart: [] as number[],
      raw: [] as number[],
    };
    for (let i = 0; i < queries; i++) {
      const w = windowsFrom(random);
      await timed(samples.fpy, `fpy ${w.site} ${w.from.toISOString()}`, () => fpyByLineAndShift(pool, w));
      await timed(samples.pareto, `pareto ${w.site} ${w.from.toISOString()}`, () => paretoByLineAndShift(pool, w));
      await timed(samples.supplier, `supplier ${w.site} ${w.from.toISOString()}`, () =>
        supplierByLineAndShift(pool, w),
      );
      await timed(samples.heatmap, `heatmap ${w.site} ${w.from.toISOString()}`, () => supplierHeatmap(pool, w));
      const lines = plant.sites.find((s) => s.id === w.site)!.lines;
      const line = lines[i % lines.length]!.id;
      await timed(samples.chart, `chart ${w.site}/${line} ${w.to.toISOString()}`, () => lineChartWeek(pool, w, line));
    }
    for (let i = 0; i < rawQueries; i++) {
      const w = windowsFrom(random);
      let raw: FpyRow[] = [];
      await timed(samples.raw, `raw fpy ${w.site} ${w.from.toISOString()}`, async () => {
        raw = await rawFpyByLineAndShift(pool, w);
      });
      const agg = await fpyByLineAndShift(pool, w);
      if (!sameFpy(agg, raw)) {
        wrong.push(
          `run ${run} ${w.site} ${w.from.toISOString()}: aggregates ${JSON.stringify(agg)} raw ${JSON.stringify(raw)}`,
        );
      }
    }
    for (const [name, list] of Object.entries(samples)) {
      const p = percentiles(list);
      figures[`${name}_p50_ms`] = p.p50;
      figures[`${name}_p99_ms`] = p.p99;
      figures[`${name}_max_ms`] = p.max;
      say(`run ${run} ${name}: ${list.length} queries, p50 ${p.p50.toFixed(1)} ms, p99 ${p.p99.toFixed(1)} ms`);
    }

    // The same inspections three ways, each under its own id prefix, the order rotating from run to run: with the
    // aggregates (today's insert, triggers on), without them (the insert before migration 0020, triggers off), and
    // today's insert with the triggers off (what the trigger alone costs).
    const from = historyEnd + (run - 1) * ingestSpanHours * HOUR;
    const base = `i${invocation}r${run}-`;
    const set = plant.sites.map((site) => [
      ...batchesOf(
        siteInspections(plant, site, { prefix: base, seed: seed + run * 101, from, partsPerHour: rates }),
        siteQuotas(plant, ingestN).get(site)!,
        batchSize,
      ),
    ]);
    const renamed = (prefix: string) =>
      set.map((batches) =>
        batches.map((batch) =>
          batch.map((r) => ({
            ...r,
            eventId: prefix + r.eventId.slice(base.length),
            partId: prefix + r.partId.slice(base.length),
          })),
        ),
      );
    const order = [...SIDES.slice((run - 1) % SIDES.length), ...SIDES.slice(0, (run - 1) % SIDES.length)];
    for (const side of order) {
      const batchesBySite = renamed(`i${invocation}r${run}${'abc'[SIDES.indexOf(side)]}-`);
      const insert = side === 'without' ? insertWithoutAnalytics : insertInspections;
      await setTriggers(pool, triggers, side === 'with');
      await pool.query('CHECKPOINT');
      if (profile) await pool.query('SELECT pg_stat_statements_reset()');
      const t0 = performance.now();
      try {
        await Promise.all(
          batchesBySite.map(async (batches) => {
            for (const batch of batches) ingestRetries += await insertBatch(pool, insert, batch);
          }),
        );
      } finally {
        await setTriggers(pool, triggers, true);
      }
      const took = ms(t0);
      if (profile) profiles[`run ${run} ${side}`] = await readProfile(pool);
      figures[`ingest_${side}_per_s`] = perSecond(ingestN, took);
      say(`run ${run} ingest ${side}: ${ingestN} in ${Math.round(took)} ms`);
    }
    figures.ingest_ratio = figures.ingest_with_per_s! / figures.ingest_without_per_s!;
    figures.ingest_ratio_to_triggers_off = figures.ingest_with_per_s! / figures.ingest_triggers_off_per_s!;
    perRun.push(figures);
  }

  const spreads = spreadByKey(perRun);
  const median = (k: string) => jsonFigure(spreads[k]?.median ?? NaN);
  const ok = problems.length === 0 && wrong.length === 0 && failures.length === 0;
  const settings = (
    await pool.query<{ name: string; setting: string; unit: string | null }>(
      `SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1::text[])`,
      [[...Object.keys(PG_SETTINGS), 'fsync', 'synchronous_commit']],
    )
  ).rows;
  return {
    exitCode: ok ? 0 : 1,
    summary: {
      bench: 'analytics',
      ok,
      problems,
      wrong: wrong.slice(0, 5),
      failures: failures.slice(0, 20),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        memory_gb: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        postgres: version,
        postgres_settings: Object.fromEntries(settings.map((s) => [s.name, `${s.setting}${s.unit ?? ''}`])),
        loadavg_1m_before: jsonFigure(loadBefore, 2),
        loadavg_1m_after: jsonFigure(loadavg()[0]!, 2),
      },
      inspections: Number(history.total),
      days,
      sites,
      lines: plant.counts.lines,
      stations: plant.counts.stations,
      work_orders: plant.counts.workOrders,
      purchased_lots: plant.counts.purchasedLots,
      suppliers: plant.counts.suppliers,
      failed_share: jsonFigure(Number(history.failed) / Number(history.total), 4),
      kinds: {
        first: Number(history.first),
        re_inspection: Number(history.reinspection),
        after_rework: Number(history.after_rework),
        unclassified: Number(history.unclassified),
        shadow: Number(history.shadow),
      },
      tables,
      maintenance_triggers: triggers,
      load_reused: earlier !== undefined,
      genealogy_s: jsonFigure(load.genealogy_ms / 1000, 0),
      load_s: jsonFigure(load.load_ms / 1000, 0),
      load_inspections_per_s: jsonFigure(perSecond(inspections, load.load_ms), 0),
      load_batch: loadBatch,
      load_retries: load.retries,
      vacuum_analyze_s: jsonFigure(load.vacuum_ms / 1000, 0),
      runs,
      queries_per_run: queries,
      raw_queries_per_run: rawQueries,
      window_days: windowDays,
      query_loop: 'closed: one client, each query due when the one before it answered',
      ingest_per_side: ingestN,
      ingest_batch: batchSize,
      ingest_connections: sites,
      ingest_retries: ingestRetries,
      spread: Object.fromEntries(Object.entries(spreads).map(([k, s]) => [k, jsonFigures({ ...s }, 2)])),
      fpy_p50_ms: median('fpy_p50_ms'),
      pareto_p50_ms: median('pareto_p50_ms'),
      supplier_p50_ms: median('supplier_p50_ms'),
      heatmap_p50_ms: median('heatmap_p50_ms'),
      chart_p50_ms: median('chart_p50_ms'),
      raw_fpy_p50_ms: median('raw_p50_ms'),
      raw_fpy_p99_ms: median('raw_p99_ms'),
      ingest_with_per_s: jsonFigure(spreads.ingest_with_per_s?.median ?? NaN, 0),
      ingest_without_per_s: jsonFigure(spreads.ingest_without_per_s?.median ?? NaN, 0),
      ingest_triggers_off_per_s: jsonFigure(spreads.ingest_triggers_off_per_s?.median ?? NaN, 0),
      ingest_ratio_to_triggers_off: jsonFigure(spreads.ingest_ratio_to_triggers_off?.median ?? NaN, 3),
      fpy_p99_ms: median('fpy_p99_ms'),
      pareto_p99_ms: median('pareto_p99_ms'),
      supplier_p99_ms: median('supplier_p99_ms'),
      heatmap_p99_ms: median('heatmap_p99_ms'),
      chart_p99_ms: median('chart_p99_ms'),
      ingest_ratio: jsonFigure(spreads.ingest_ratio?.median ?? NaN, 3),
      ...(profile ? { profile: profiles } : {}),
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  };
});
