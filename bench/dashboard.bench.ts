/**
 * `npm run bench:dashboard`: how fast the quality dashboard paints with a year of plant history, in Debian's Chromium
 * on this machine, and how long each API read behind it takes.
 *
 *   npm run bench:dashboard -- --inspections 2000000 --days 365 --runs 3 --loads 10 --data-dir /var/tmp/holdfast-bench/dashboard
 *
 * 1. The history: bench:analytics's plant (three sites, ten lines, suppliers and their lots, a year of inspections
 *    ending today), loaded by bench:analytics itself into `--data-dir` (reused when it holds that history already).
 * 2. The API app on that PostgreSQL with a configuration naming the plant's sites, lines and stations, and no
 *    Temporal (the page's reads come from PostgreSQL alone); the bundle built first, as api/server.ts does at start.
 * 3. Each run: a new browser context; first the baseline, `--loads` loads of the sign-in form (the same shell and
 *    bundle, no data); then signed in through the page, `--loads` full page loads of each view at a
 *    random site (and the last 14 days, the page's default), one at a time. A view's paint is timed from the moment
 *    the navigation is asked for to the moment its first figure is on screen (its element visible); every API read
 *    the page made is timed by the browser (Resource Timing, request start to response end).
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { buildApp } from '../api/app';
import { uiBundle } from '../api/support/ui-bundle';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { loadConfig } from '../infra/config/load';
import { HoldfastConfig } from '../infra/config/schema';
import { migrate } from '../infra/db/migrate';
import { createAccounts } from '../infra/identity/accounts';
import { generateSigningKey } from '../infra/identity/signing-key';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { createDeferredWorkflowGateway } from '../infra/temporal/gateway';
import { integerOption, runBenchmark } from './harness';
import { openPool } from './pools';
import { jsonFigure, jsonFigures, percentiles, spreadByKey } from './stats';

const { values: args } = parseArgs({
  options: {
    inspections: { type: 'string', default: '2000000' },
    days: { type: 'string', default: '365' },
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    loads: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    'data-dir': { type: 'string' },
  },
});

const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? '/usr/bin/chromium';
const DAY_MS = 86_400_000;
const ms = (since: number) => performance.now() - since;

/** Each view and the element that says its first figure is on screen. */
const VIEWS: Array<{ name: string; path: string; ready: string }> = [
  { name: 'now', path: 'now', ready: '[data-figure="open-lot-cases"]' },
  { name: 'yield', path: 'yield', ready: '[data-figure="fpy-site"]' },
  { name: 'suppliers', path: 'suppliers', ready: '#supplier-scorecards' },
];

runBenchmark('dashboard', async (bench) => {
  const { say } = bench;
  const inspections = integerOption(args, 'inspections', 1000);
  const days = integerOption(args, 'days', 1);
  const runs = integerOption(args, 'runs', 1);
  const loads = integerOption(args, 'loads', 1);
  const seed = integerOption(args, 'seed', 0);
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: npm run system-packages, or HOLDFAST_CHROMIUM`);
  // The history ends today, so the page's default range (the last 14 days) shows its newest part.
  const start = new Date(Date.now() - days * DAY_MS).toISOString().slice(0, 10);

  let dataDir: string;
  if (args['data-dir'] !== undefined) {
    dataDir = resolve(args['data-dir']);
  } else {
    const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-dashboard-'));
    chmodSync(work, 0o755);
    bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
    dataDir = join(work, 'pg');
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o755 });

  // 1. The history, by bench:analytics (one quick run of its own: it keeps the database in the data directory).
  const loadStarted = performance.now();
  await new Promise<void>((done, fail) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        resolve(__dirname, 'analytics.bench.ts'),
        ...['--inspections', String(inspections), '--days', String(days), '--start', start, '--seed', String(seed)],
        ...['--runs', '1', '--queries', '1', '--raw-queries', '0', '--ingest', '100', '--data-dir', dataDir],
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? done() : fail(new Error(`bench:analytics exited ${code}`))));
  });
  say(`history ready in ${Math.round(ms(loadStarted) / 1000)} s`);

  // 2. The API on it.
  const server = await startEmbeddedPostgres({ dataDir, log: () => undefined });
  bench.onCleanUp('PostgreSQL', () => server.stop());
  const db = openPool(server.url, { max: 10, applicationName: 'holdfast-bench-dashboard' });
  bench.onCleanUp('database connections', () => db.close());
  const pool = db.pool;
  await migrate(pool);
  const config = plantConfig(
    (
      await pool.query<{ site: string; line: string; station: string }>(
        `SELECT DISTINCT site, line, station FROM holdfast.station_part_first ORDER BY 1, 2, 3`,
      )
    ).rows,
  );
  // The plant's sites: the ones with a year of history.
  const ownSite = loadConfig().sites[0]!.id;
  const sites = config.sites.map((s) => s.id).filter((id) => id !== ownSite);
  const history = (await pool.query<{ total: string }>(`SELECT count(*) AS total FROM holdfast.inspection`)).rows[0]!;
  say(`${history.total} inspections at ${sites.join(', ')}`);

  const app = await buildApp({
    pool,
    gateway: createDeferredWorkflowGateway().gateway,
    config,
    namespace: 'default',
    signingKey: await generateSigningKey(),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  bench.onCleanUp('API', () => app.close());
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const bundleStarted = performance.now();
  await uiBundle();
  const bundleMs = ms(bundleStarted);
  const username = `bench-${Date.now()}`;
  const { password } = await createAccounts(pool, createAuditTrail(pool), {
    maxFailedSignIns: 5,
    lockForMs: 60_000,
  }).addUser({ kind: 'system', id: 'bench-dashboard' }, { username, roles: ['quality-manager'], sites: 'all' });

  // 3. The runs.
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  bench.onCleanUp('Chromium', () => browser.close());
  const perRun: Record<string, number>[] = [];
  const failures: string[] = [];
  const apiSamples = new Map<string, number[]>();
  let random = seed + 1;
  const pick = <T>(items: readonly T[]): T => {
    random = (random * 1103515245 + 12345) % 2 ** 31;
    return items[random % items.length]!;
  };
  for (let run = 1; run <= runs; run++) {
    const context = await browser.newContext({ viewport: { width: 1440, height: 1000 } });
    const page = await context.newPage();
    // The baseline: the same shell and bundle with no data behind them (the sign-in form, signed out), so that a
    // view's paint minus this is its reads and its drawing.
    const shell: number[] = [];
    for (let load = 0; load < loads; load++) {
      const due = performance.now();
      await page.goto(`${baseUrl}/ui/sign-in`, { waitUntil: 'commit' });
      await page.locator('#username').waitFor({ state: 'visible', timeout: 30_000 });
      shell.push(ms(due));
    }
    await page.goto(`${baseUrl}/ui/sign-in`);
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#user-name').waitFor({ timeout: 30_000 });
    const paints = new Map<string, number[]>(VIEWS.map((v) => [v.name, []]));
    for (let load = 0; load < loads; load++) {
      for (const view of VIEWS) {
        const site = pick(sites);
        const due = performance.now();
        try {
          await page.goto(`${baseUrl}/ui/${view.path}?site=${site}`, { waitUntil: 'commit' });
          await page.locator(view.ready).first().waitFor({ state: 'visible', timeout: 30_000 });
          paints.get(view.name)!.push(ms(due));
        } catch (err) {
          paints.get(view.name)!.push(Infinity);
          failures.push(
            `run ${run} ${view.name} at ${site}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
          );
        }
        for (const entry of await apiReads(page)) {
          const list = apiSamples.get(entry.route) ?? [];
          list.push(entry.ms);
          apiSamples.set(entry.route, list);
        }
      }
    }
    await context.close();
    const figures: Record<string, number> = {
      shell_paint_p50_ms: percentiles(shell).p50,
      shell_paint_max_ms: percentiles(shell).max,
    };
    for (const [name, samples] of paints) {
      const p = percentiles(samples);
      figures[`${name}_paint_p50_ms`] = p.p50;
      figures[`${name}_paint_max_ms`] = p.max;
    }
    say(`run ${run}: ${JSON.stringify(jsonFigures(figures))} (load average ${loadavg()[0]!.toFixed(1)})`);
    perRun.push(figures);
  }

  const api = Object.fromEntries(
    [...apiSamples]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([route, samples]) => [route, jsonFigures({ n: samples.length, ...percentiles(samples) })]),
  );
  const spreads = spreadByKey(perRun);
  const paintP50 = Math.max(...VIEWS.map((v) => spreads[`${v.name}_paint_p50_ms`]!.median));
  return {
    summary: {
      benchmark: 'dashboard',
      machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryGb: Math.round(totalmem() / 2 ** 30) },
      history: { inspections: Number(history.total), days, sites: sites.length },
      runs,
      loadsPerRunPerView: loads,
      bundleBuildMs: Math.round(bundleMs),
      paint: Object.fromEntries(Object.entries(spreads).map(([k, v]) => [k, jsonFigures(v)])),
      apiReadsMs: api,
      bar: {
        firstPaintMs: 1000,
        worstViewMedianP50Ms: jsonFigure(paintP50, 0),
        met: paintP50 <= 1000 && failures.length === 0,
      },
      failures,
    },
    exitCode: failures.length > 0 ? 1 : 0,
  };
});

/** The page's API reads since the navigation: path without query, and request start to response end. */
async function apiReads(page: import('playwright-core').Page): Promise<Array<{ route: string; ms: number }>> {
  return page.evaluate<Array<{ route: string; ms: number }>>(`performance
    .getEntriesByType('resource')
    .filter((e) => new URL(e.name).pathname.startsWith('/v1/') && new URL(e.name).pathname !== '/v1/live')
    .map((e) => ({
      route: new URL(e.name).pathname.replace(/\\/v1\\/(suppliers|lots|quality-rules)\\/[^/]+/, '/v1/$1/{id}'),
      ms: e.responseEnd - e.requestStart,
    }))`);
}

/** temporal.yaml's first site as the template of each of the plant's sites, with the plant's lines and stations. */
function plantConfig(stations: ReadonlyArray<{ site: string; line: string; station: string }>): HoldfastConfig {
  const base = loadConfig();
  const template = base.sites[0]!;
  const stationTemplate = template.lines[0]!.stations[0]!;
  const bySite = new Map<string, Map<string, string[]>>();
  for (const s of stations) {
    const lines = bySite.get(s.site) ?? new Map<string, string[]>();
    lines.set(s.line, [...(lines.get(s.line) ?? []), s.station]);
    bySite.set(s.site, lines);
  }
  return HoldfastConfig.parse({
    ...base,
    // temporal.yaml's own site stays: the rest of the configuration (recipes, connectors) names it.
    sites: [
      ...base.sites,
      ...[...bySite].map(([id, lines]) => ({
        ...template,
        id,
        lines: [...lines].map(([line, ids]) => ({
          id: line,
          stations: ids.map((st) => ({ ...stationTemplate, id: st })),
        })),
      })),
    ],
  });
}
