/**
 * What the traceability benchmarks (bench:trace, bench:recall) start from: a seeded plant history generated, loaded
 * into the SAP and MES simulators (in this process, on their own database of a PostgreSQL started here) and synced
 * into Holdfast's genealogy page by page through the genealogy store, as the sync activity does
 * (activities/traceability/genealogy.activities.ts) but driven here in a loop: Temporal is not in the measured path.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import type { Pool } from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAuditTrail } from '../infra/audit/audit-trail';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger } from '../infra/connectors/define';
import { migrate } from '../infra/db/migrate';
import { createGenealogyStore } from '../infra/genealogy/genealogy-store';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { buildMesSimulator } from '../infra/simulators/mes/mes.simulator';
import { loadIntoSimulators } from '../infra/simulators/plant-history/load';
import {
  generatePlantHistory,
  type GroundTruth,
  type PlantHistory,
  type PlantHistoryOptions,
} from '../infra/simulators/plant-history/plant-history';
import { buildSapS4Simulator } from '../infra/simulators/sap-s4/sap-s4.simulator';
import { openSiteConnectors, type SiteConnectors } from '../workers/connectors';
import type { Bench } from './harness';
import { openPool, type ClosablePool } from './pools';
import { jsonFigure } from './stats';

export const SITE = 'PLANT1';
export const PLANT = '1010';
export const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface SyncTally {
  ms: number;
  readMs: number;
  recordMs: number;
  pages: number;
  documents: number;
  facts: number;
  added: number;
}

export interface PlantGenealogy {
  work: string;
  pgUrl: string;
  holdfast: ClosablePool;
  sims: ClosablePool;
  sapUrl: string;
  mesUrl: string;
  sapCredentials: { username: string; password: string };
  /** temporal.yaml with its SAP and MES connectors pointed at this run's simulators. */
  config: HoldfastConfig;
  connectors: SiteConnectors;
  history: PlantHistory;
  truth: GroundTruth;
  generatedRows: number;
  generationMs: number;
  loadMs: number;
  sync: Record<'erp' | 'mes', SyncTally>;
}

const ms = (since: number) => performance.now() - since;

function pointedAt(base: HoldfastConfig, sapUrl: string, mesUrl: string): HoldfastConfig {
  const connectors = Object.fromEntries(
    Object.entries(base.connectors).map(([name, c]) => [
      name,
      c.kind === 'sap-s4-odata'
        ? { ...c, baseUrl: sapUrl }
        : c.kind === 'holdfast-mes-rest'
          ? { ...c, baseUrl: mesUrl }
          : c,
    ]),
  );
  return { ...base, connectors };
}

/** Every step up to a synced genealogy; each resource is handed to the bench's clean-up as it is opened. */
export async function preparePlantGenealogy(
  bench: Bench,
  opts: {
    base: HoldfastConfig;
    history: Omit<PlantHistoryOptions, 'site' | 'erpPlant'>;
    pageSize: number;
    production: 'erp' | 'mes';
    name: string;
  },
): Promise<PlantGenealogy> {
  const { say } = bench;
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-'));
  chmodSync(work, 0o755);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  const pg = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), log: () => undefined });
  bench.onCleanUp('PostgreSQL', pg.stop);
  const admin = openPool(pg.url, { max: 1 });
  try {
    await admin.pool.query('CREATE DATABASE holdfast_sims');
  } finally {
    await admin.close();
  }
  const simsUrl = new URL(pg.url);
  simsUrl.pathname = '/holdfast_sims';
  const holdfast = openPool(pg.url, { max: 8, applicationName: `holdfast-bench-${opts.name}` });
  bench.onCleanUp('Holdfast pool', holdfast.close);
  const sims = openPool(simsUrl.toString(), { max: 8, applicationName: 'holdfast-bench-sims' });
  bench.onCleanUp('simulator pool', sims.close);
  await migrate(holdfast.pool);

  const sapCredentials = { username: 'HOLDFAST', password: `bench-${opts.name}-only` };
  const sap = await buildSapS4Simulator({
    pool: sims.pool,
    schema: 'sap',
    credentials: sapCredentials,
    seedDemo: false,
  });
  bench.onCleanUp('SAP simulator', () => sap.close());
  const mes = await buildMesSimulator({ pool: sims.pool, schema: 'mes', seedDemo: false });
  bench.onCleanUp('MES simulator', () => mes.close());
  const sapUrl = await sap.listen({ host: '127.0.0.1', port: 0 });
  const mesUrl = await mes.listen({ host: '127.0.0.1', port: 0 });
  const config = pointedAt(opts.base, sapUrl, mesUrl);
  const connectors = await openSiteConnectors(config, quiet, {
    ...process.env,
    SAP_USER: sapCredentials.username,
    SAP_PASSWORD: sapCredentials.password,
  });
  bench.onCleanUp('connectors', () => connectors.close());

  const { history, truth, generatedRows, generationMs } = generateCounted(say, {
    ...opts.history,
    site: SITE,
    erpPlant: PLANT,
  });

  // 2. Load into the simulators through their bulk routes (generation again, on the fly, included).
  const started = performance.now();
  await loadIntoSimulators(history, { sap: { url: sapUrl, ...sapCredentials }, mes: { url: mesUrl } });
  const loadMs = ms(started);
  say(`loaded in ${Math.round(loadMs)} ms`);

  const sync = await syncIntoGenealogy(say, holdfast.pool, connectors, opts.production, opts.pageSize);
  return {
    work,
    pgUrl: pg.url,
    holdfast,
    sims,
    sapUrl,
    mesUrl,
    sapCredentials,
    config,
    connectors,
    history,
    truth,
    generatedRows,
    generationMs,
    loadMs,
    sync,
  };
}

/** The sync's figures for a summary: reading the feed (the simulator's answer included) apart from applying it. */
export function syncFigures({ ms: total, readMs, recordMs, ...counts }: SyncTally) {
  return { ...counts, ms: jsonFigure(total, 0), read_ms: jsonFigure(readMs, 0), record_ms: jsonFigure(recordMs, 0) };
}

/** The history, its ground truth, and every document and event it yields (counted, not kept), timed. */
export function generateCounted(say: (line: string) => void, options: PlantHistoryOptions) {
  const started = performance.now();
  const history = generatePlantHistory(options);
  const truth = history.groundTruth();
  let generatedRows = 0;
  for (const _ of history.materialDocuments()) generatedRows++;
  for (const _ of history.outboundDeliveries()) generatedRows++;
  generatedRows += history.stock().length;
  for (const _ of history.productionEvents()) generatedRows++;
  const generationMs = ms(started);
  say(
    `generated ${generatedRows} documents and events in ${Math.round(generationMs)} ms: ${JSON.stringify(truth.counts)}`,
  );
  return { history, truth, generatedRows, generationMs };
}

/** Each system's feed of SITE page by page into the store, as the sync activity does; timed per system. */
export async function syncIntoGenealogy(
  say: (line: string) => void,
  pool: Pool,
  connectors: Pick<SiteConnectors, 'erpFor' | 'mesFor'>,
  production: 'erp' | 'mes',
  pageSize: number,
): Promise<Record<'erp' | 'mes', SyncTally>> {
  const store = createGenealogyStore(createAuditTrail(pool));
  const scope = { site: SITE, erpPlant: PLANT, production };
  const sync = {} as Record<'erp' | 'mes', SyncTally>;
  for (const system of ['erp', 'mes'] as const) {
    const feed = (system === 'erp' ? connectors.erpFor(SITE) : connectors.mesFor(SITE)).genealogy;
    if (!feed) throw new Error(`the ${system} connector of ${SITE} offers no genealogy feed`);
    const tally: SyncTally = { ms: 0, readMs: 0, recordMs: 0, pages: 0, documents: 0, facts: 0, added: 0 };
    const started = performance.now();
    let after: string | undefined;
    for (;;) {
      const read = performance.now();
      const page = await feed.readGenealogy(scope, after, pageSize);
      const record = performance.now();
      tally.readMs += record - read;
      const applied = await store.recordPage({ source: `${system}-sync:${SITE}` }, page);
      tally.recordMs += performance.now() - record;
      tally.pages++;
      tally.documents += page.documents;
      tally.facts += page.lots.length + page.movements.length + page.deliveries.length + page.parts.length;
      tally.added += applied.added + applied.updated;
      after = page.cursor;
      if (!page.more) break;
      if (tally.pages % 200 === 0) say(`${system} sync: ${tally.documents} documents, ${tally.facts} facts`);
    }
    tally.ms = ms(started);
    sync[system] = tally;
    say(
      `${system} sync: ${tally.pages} pages, ${tally.documents} documents, ${tally.facts} facts in ${Math.round(tally.ms)} ms`,
    );
  }
  await pool.query('ANALYZE');
  return sync;
}
