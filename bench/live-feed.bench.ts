/**
 * `npm run bench:live-feed`: what the live feed costs ingest, and the Now view's reads (docs/dashboard.md).
 *
 *   npm run bench:live-feed -- --history 2000000 --rounds 5 --reads 50
 *
 * 1. Starts PostgreSQL (embedded), migrates it, and keeps one connection LISTENing on holdfast_live, as an API with an
 *    open page does.
 * 2. Ingest: each round stores `--batches` batches of `--batch` new inspections (3 % failed) through ingest's own
 *    insert (insertInspections), with the live trigger (0024_live_events.sql) and without it (disabled), the same
 *    inspections under another id prefix; the side that goes first alternates. Every other trigger stays on.
 * 3. Now view: loads `--history` inspections over the year before (3 % failed, triggers off for the load: only the
 *    indexes matter here), lot cases (a few hundred open among tens of thousands closed), recalls and drills, then
 *    reads the Now view's PostgreSQL figures `--reads` times, one at a time, as GET /v1/dashboard/now does.
 *
 * Prints progress on stderr and one JSON summary line last on stdout.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { backlogs, latestFailedInspections, openLotCases, runningWork } from '../api/repositories/dashboard.repository';
import { migrate } from '../infra/db/migrate';
import { type InspectionRecord, insertInspections } from '../infra/ingest/inspection.repository';
import { startEmbeddedPostgres } from '../infra/local/postgres';
import { integerOption, runBenchmark } from './harness';
import { openPool } from './pools';
import { jsonFigures, percentiles } from './stats';

const { values: args } = parseArgs({
  options: {
    history: { type: 'string', default: '2000000' },
    rounds: { type: 'string', default: '5' },
    batches: { type: 'string', default: '20' },
    batch: { type: 'string', default: '500' },
    reads: { type: 'string', default: '50' },
  },
});
const history = integerOption(args, 'history', 1);
const rounds = integerOption(args, 'rounds', 1);
const batches = integerOption(args, 'batches', 1);
const batchSize = integerOption(args, 'batch', 1);
const reads = integerOption(args, 'reads', 1);
const SITE = 'PLANT1';
const LINES = ['L1', 'L2', 'L3'];

function batchOf(prefix: string, round: number, b: number): InspectionRecord[] {
  return Array.from({ length: batchSize }, (_, i) => {
    const n = (round * batches + b) * batchSize + i;
    const failed = n % 33 === 0;
    return {
      eventId: `${prefix}-${n}`,
      site: SITE,
      line: LINES[n % LINES.length]!,
      station: 'S1',
      partId: `${prefix}-P-${n}`,
      sku: 'BRKT-200',
      lotId: `LOT-${Math.floor(n / 1000)}`,
      workOrder: '1000100',
      result: failed ? 'fail' : 'pass',
      defects: failed ? [{ class: 'scratch', score: 0.9 }] : [],
      modelVersion: 'm-1',
      recipeVersion: 'R-1',
      inspectedAt: new Date(Date.UTC(2027, 0, 1) + n * 1000).toISOString(),
      payloadSha256: 'x'.repeat(64),
      mode: 'production',
    };
  });
}

runBenchmark('live-feed', async (bench) => {
  const work = mkdtempSync(join(tmpdir(), 'holdfast-bench-dashboard-'));
  chmodSync(work, 0o755);
  bench.onCleanUp('work directory', async () => rmSync(work, { recursive: true, force: true }));
  const server = await startEmbeddedPostgres({ dataDir: join(work, 'pg'), log: () => undefined });
  bench.onCleanUp('PostgreSQL', () => server.stop());
  const db = openPool(server.url, { max: 6, statementTimeoutMs: 600_000, applicationName: 'holdfast-bench-dash' });
  bench.onCleanUp('database connections', () => db.close());
  const pool = db.pool;
  await migrate(pool);

  let notified = 0;
  const listener = new pg.Client({ connectionString: server.url });
  await listener.connect();
  listener.on('notification', () => (notified += 1));
  await listener.query('LISTEN holdfast_live');
  bench.onCleanUp('listener', () => listener.end());

  // 2. Ingest with and without the live trigger.
  const perBatch = { with: [] as number[], without: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    const order: ('with' | 'without')[] = round % 2 === 0 ? ['with', 'without'] : ['without', 'with'];
    for (const side of order) {
      await pool.query(
        `ALTER TABLE holdfast.inspection ${side === 'with' ? 'ENABLE' : 'DISABLE'} TRIGGER inspection_live`,
      );
      await pool.query('CHECKPOINT');
      for (let b = 0; b < batches; b++) {
        const rows = batchOf(side, round, b);
        const started = performance.now();
        const client = await pool.connect();
        try {
          // The trigger function's own time (pg_stat_user_functions), apart from the batches' noise.
          await client.query(`SET track_functions = 'pl'`);
          await client.query('BEGIN');
          await insertInspections(client, rows);
          await client.query('COMMIT');
        } finally {
          client.release();
        }
        perBatch[side].push(performance.now() - started);
      }
    }
    bench.say(`ingest round ${round + 1}/${rounds}`);
  }
  await pool.query(`ALTER TABLE holdfast.inspection ENABLE TRIGGER inspection_live`);
  const withP = percentiles(perBatch.with);
  const withoutP = percentiles(perBatch.without);
  const notifiedAfterIngest = notified;
  // An idle backend flushes its statistics to the shared view within 10 s (PGSTAT_IDLE_INTERVAL).
  await new Promise((resolve) => setTimeout(resolve, 11_000));
  const fn = await readFunctionStats(server.url);

  // 3. A year of history, then the Now view's reads.
  bench.say(`loading ${history} inspections over a year`);
  const loadStarted = performance.now();
  const client = await pool.connect();
  try {
    await client.query(`SET session_replication_role = replica`);
    const chunk = 250_000;
    for (let from = 0; from < history; from += chunk) {
      await client.query(
        `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result,
                                          defects, model_version, recipe_version, inspected_at, payload_sha256, mode)
         SELECT 'h-' || n, $1, (ARRAY['L1','L2','L3'])[1 + n % 3], 'S' || (1 + n % 4), 'P-' || n, 'BRKT-200',
                'LOT-' || (n / 2000), 'WO-' || (n / 20000), CASE WHEN n % 33 = 0 THEN 'fail' ELSE 'pass' END,
                CASE WHEN n % 33 = 0 THEN '[{"class":"scratch","score":0.9}]'::jsonb ELSE '[]'::jsonb END,
                'm-1', 'R-1', timestamptz '2026-01-01' + (n * (365 * 86400.0 / $2)) * interval '1 second', 'x',
                'production'
           FROM generate_series($3::bigint, $4::bigint) AS n`,
        [SITE, history, from, Math.min(history, from + chunk) - 1],
      );
    }
    await client.query(
      `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, state, opened_at, closed_at)
       SELECT 'lot-case-' || n, 'r', $1, (ARRAY['L1','L2','L3'])[1 + n % 3], 'LOT-' || n, 'BRKT-200',
              CASE WHEN n < 300 THEN (ARRAY['containing','awaiting-disposition','needs-attention'])[1 + n % 3]
                   ELSE 'closed' END,
              CASE WHEN n % 7 = 0 THEN '{"failures":[{"step":"mes-hold"}]}'::jsonb ELSE '{}'::jsonb END,
              timestamptz '2026-01-01' + n * interval '10 minutes',
              CASE WHEN n < 300 THEN NULL ELSE timestamptz '2026-01-01' + n * interval '10 minutes' + interval '2 hours'
              END
         FROM generate_series(0, 50000) AS n`,
      [SITE],
    );
    await client.query(
      `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key,
                                    request_sha256, workflow_id, state, created_at)
       SELECT 'R-' || n, $1, CASE WHEN n % 2 = 0 THEN 'mock' ELSE 'real' END, '{}', 'r', 'qm', 'k-' || n, 'x',
              'recall-' || n, CASE WHEN n < 3 THEN 'running' ELSE 'completed' END,
              timestamptz '2026-01-01' + n * interval '1 day'
         FROM generate_series(0, 2000) AS n`,
      [SITE],
    );
    await client.query(`SET session_replication_role = origin`);
  } finally {
    client.release();
  }
  await pool.query('VACUUM ANALYZE');
  const loadMs = performance.now() - loadStarted;
  bench.say(`loaded in ${Math.round(loadMs / 1000)} s; reading the Now view ${reads} times`);

  const readMs: number[] = [];
  const now = new Date('2027-01-01T00:00:00Z');
  for (let i = 0; i < reads; i++) {
    const at = i % 2 === 0 ? { site: SITE } : { site: SITE, line: LINES[i % 3]! };
    const started = performance.now();
    await Promise.all([
      openLotCases(pool, at, 4 * 3_600_000, now),
      runningWork(pool, at),
      backlogs(pool),
      latestFailedInspections(pool, at),
    ]);
    readMs.push(performance.now() - started);
  }
  const readP = percentiles(readMs);

  return {
    summary: {
      bench: 'dashboard',
      ingest: {
        batches: perBatch.with.length,
        batchSize,
        withTriggerMs: jsonFigures(withP),
        withoutTriggerMs: jsonFigures(withoutP),
        medianOverheadMs: Math.round((withP.p50 - withoutP.p50) * 100) / 100,
        medianOverheadShare: Math.round(((withP.p50 - withoutP.p50) / withoutP.p50) * 1000) / 1000,
        notifications: notifiedAfterIngest,
        triggerFunction: fn,
      },
      now: { historyInspections: history, lotCases: 50_001, reads, ms: jsonFigures(readP), loadMs: Math.round(loadMs) },
    },
  };
});

/** inspection_live_notify's calls and time, as PostgreSQL counted them in the backends that ran it. */
async function readFunctionStats(url: string): Promise<{ calls: number; totalMs: number; perCallMs: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ calls: string; total: number }>(
      `SELECT calls, total_time AS total FROM pg_stat_user_functions WHERE funcname = 'inspection_live_notify'`,
    );
    const r = rows[0];
    if (!r) return { calls: 0, totalMs: 0, perCallMs: 0 };
    const calls = Number(r.calls);
    return { calls, totalMs: Math.round(r.total), perCallMs: Math.round((r.total / calls) * 1000) / 1000 };
  } finally {
    await c.end();
  }
}
