/**
 * The aggregates under concurrent ingest (docs/analytics.md#how-the-aggregates-are-kept): batches on several
 * connections at once, each part's inspections spread over different connections and arriving out of time order,
 * must neither deadlock nor count a part first twice. Checked against counts computed here from the raw events. And a
 * plain INSERT (a test's, a benchmark's) is counted like ingest, and its counts go when it is deleted.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { createPool } from '../../infra/db/pool';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `FC${run}`;
const CONNECTIONS = 6;
const PARTS = 300;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(7);

const start = Date.parse('2026-06-01T08:00:00Z');
const events: InspectionRecord[] = [];
for (let p = 0; p < PARTS; p++) {
  // Three inspections of each part at the same station, within the same two hours (shared aggregate rows).
  for (let k = 0; k < 3; k++) {
    const failed = rnd() < 0.3;
    events.push({
      eventId: `${run}-${p}-${k}`,
      site: SITE,
      line: 'L1',
      station: p % 2 === 0 ? 'S1' : 'S2',
      partId: `P${p}`,
      sku: 'BRKT-200',
      lotId: `${run}-LOT`,
      workOrder: `${run}-WO`,
      result: failed ? 'fail' : 'pass',
      defects: failed ? [{ class: rnd() < 0.5 ? 'dent' : 'burr', score: 0.9 }] : [],
      modelVersion: 'model@1',
      recipeVersion: 'recipe-1',
      inspectedAt: new Date(start + Math.floor(rnd() * 7_200_000)).toISOString(),
      payloadSha256: `sha-${p}-${k}`,
      mode: 'production',
    });
  }
}

/** Each connection's share: every event once, a part's events on different connections, shuffled. */
const shares: InspectionRecord[][] = Array.from({ length: CONNECTIONS }, () => []);
events.forEach((e, i) => shares[(i + Math.floor(i / 3)) % CONNECTIONS]!.push(e));
for (const share of shares) share.sort(() => rnd() - 0.5);

let pool: Pool;

beforeAll(() => {
  pool = createPool(readTestEnv().databaseUrl, { max: CONNECTIONS + 1 });
});
afterAll(async () => {
  await pool?.end();
});

test('concurrent batches of the same parts: no deadlock, one first per part, every count right', async () => {
  await Promise.all(
    shares.map(async (share) => {
      for (let i = 0; i < share.length; i += 15) {
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          await insertInspections(client, share.slice(i, i + 15));
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        } finally {
          client.release();
        }
      }
    }),
  );
  // Re-sent afterwards, all of them: nothing changes.
  await insertInspections(pool, events.slice(0, 100));

  const firstOf = new Map<string, InspectionRecord>();
  for (const e of events) {
    const key = `${e.station}/${e.partId}`;
    const f = firstOf.get(key);
    if (!f || e.inspectedAt < f.inspectedAt || (e.inspectedAt === f.inspectedAt && e.eventId < f.eventId)) {
      firstOf.set(key, e);
    }
  }
  const firsts = new Set([...firstOf.values()].map((e) => e.eventId));

  const stored = await pool.query<{ event_id: string; inspection_kind: string }>(
    `SELECT event_id, inspection_kind FROM holdfast.inspection WHERE site = $1`,
    [SITE],
  );
  expect(stored.rows).toHaveLength(events.length);
  const wrong = stored.rows.filter((r) => (r.inspection_kind === 'first') !== firsts.has(r.event_id));
  expect(wrong).toEqual([]);

  const sums = await pool.query<Record<string, string>>(
    `SELECT station, sum(units) AS units, sum(first_pass_good) AS good, sum(reinspections) AS re,
            sum(reinspections_passed) AS re_passed
       FROM holdfast.quality_hourly WHERE site = $1 GROUP BY station ORDER BY station`,
    [SITE],
  );
  const expected = ['S1', 'S2'].map((station) => {
    const mine = events.filter((e) => e.station === station);
    const mineFirst = mine.filter((e) => firsts.has(e.eventId));
    const re = mine.filter((e) => !firsts.has(e.eventId));
    return {
      station,
      units: String(mineFirst.length),
      good: String(mineFirst.filter((e) => e.result === 'pass').length),
      re: String(re.length),
      re_passed: String(re.filter((e) => e.result === 'pass').length),
    };
  });
  expect(sums.rows).toEqual(expected);

  const defects = await pool.query<{ inspection_kind: string; defects: string }>(
    `SELECT inspection_kind, sum(defects) AS defects FROM holdfast.defect_hourly WHERE site = $1
      GROUP BY inspection_kind HAVING sum(defects) <> 0 ORDER BY inspection_kind`,
    [SITE],
  );
  const failedFirst = events.filter((e) => e.result === 'fail' && firsts.has(e.eventId)).length;
  const failedRe = events.filter((e) => e.result === 'fail' && !firsts.has(e.eventId)).length;
  expect(defects.rows).toEqual([
    { inspection_kind: 'first', defects: String(failedFirst) },
    { inspection_kind: 're-inspection', defects: String(failedRe) },
  ]);
}, 60_000);

/** The site's aggregates, rows that count nothing left out (a moved count can leave a row at zero). */
async function aggregates(site: string) {
  const q = (sql: string) => pool.query(sql, [site]).then((r) => r.rows.map((row) => JSON.stringify(row)).sort());
  return {
    quality: await q(`SELECT * FROM holdfast.quality_hourly WHERE site = $1
                       AND units + reinspections + reworked + shadow_inspections <> 0`),
    defects: await q(`SELECT * FROM holdfast.defect_hourly WHERE site = $1 AND parts <> 0`),
    firsts: await q(`SELECT site, line, station, part_id, mode, event_id FROM holdfast.station_part_first
                      WHERE site = $1`),
  };
}

test('recounting the site from its inspections finds exactly what the trigger kept', async () => {
  const kept = await aggregates(SITE);
  expect(kept.quality.length).toBeGreaterThan(0);
  const counted = await pool.query<{ n: string }>(`SELECT holdfast.recount_quality($1)::text AS n`, [SITE]);
  expect(counted.rows[0]!.n).toBe(String(events.length));
  expect(await aggregates(SITE)).toEqual(kept);
});

test('a plain INSERT, without kind or shift, is classified, stamped and counted like ingest', async () => {
  const site = `${SITE}D`;
  await pool.query(
    `INSERT INTO holdfast.inspection (event_id, site, line, station, part_id, sku, lot_id, work_order, result, defects,
                                      model_version, recipe_version, inspected_at, payload_sha256, mode)
     VALUES ($1 || '-2', $2, 'L1', 'S1', 'P1', 'BRKT-200', 'LOT', 'WO', 'pass', '[]', 'm', 'r', '2026-06-01T23:30:00Z', 'x', 'production'),
            ($1 || '-1', $2, 'L1', 'S1', 'P1', 'BRKT-200', 'LOT', 'WO', 'fail', '[{"class":"dent","score":0.9}]', 'm', 'r',
             '2026-06-01T23:10:00Z', 'x', 'production'),
            ($1 || '-3', $2, 'L1', 'S3', 'P1', 'BRKT-200', 'LOT', 'WO', 'fail', '[{"class":"dent","score":0.9}]', 'm', 'r',
             '2026-06-02T00:10:00Z', 'x', 'shadow')`,
    [run, site],
  );
  const rows = await pool.query<{ event_id: string; inspection_kind: string; shift: string; shift_date: string }>(
    `SELECT event_id, inspection_kind, shift, to_char(shift_date, 'YYYY-MM-DD') AS shift_date
       FROM holdfast.inspection WHERE site = $1 ORDER BY event_id`,
    [site],
  );
  // No calendar for this site in holdfast.site_shift: one shift, `all`, dated by UTC.
  expect(rows.rows).toEqual([
    { event_id: `${run}-1`, inspection_kind: 'first', shift: 'all', shift_date: '2026-06-01' },
    { event_id: `${run}-2`, inspection_kind: 're-inspection', shift: 'all', shift_date: '2026-06-01' },
    { event_id: `${run}-3`, inspection_kind: 'first', shift: 'all', shift_date: '2026-06-02' },
  ]);
  const sums = await pool.query(
    `SELECT station, sum(units)::int AS units, sum(first_pass_good)::int AS good, sum(reinspections_passed)::int AS re,
            sum(shadow_inspections)::int AS shadow, sum(shadow_failed)::int AS shadow_failed
       FROM holdfast.quality_hourly WHERE site = $1 GROUP BY station ORDER BY station`,
    [site],
  );
  expect(sums.rows).toEqual([
    { station: 'S1', units: 1, good: 0, re: 1, shadow: 0, shadow_failed: 0 },
    { station: 'S3', units: 0, good: 0, re: 0, shadow: 1, shadow_failed: 1 },
  ]);
  // Deleted (as tests clear theirs): the counts go with the rows.
  await pool.query(`DELETE FROM holdfast.inspection WHERE site = $1`, [site]);
  const left = await pool.query<{ n: string }>(
    `SELECT coalesce(sum(units + reinspections + shadow_inspections), 0)::text AS n FROM holdfast.quality_hourly
      WHERE site = $1`,
    [site],
  );
  expect(left.rows[0]!.n).toBe('0');
});
