/**
 * The aggregates under concurrent ingest (docs/analytics.md#how-the-aggregates-are-kept): batches on several
 * connections at once, each part's inspections spread over different connections and arriving out of time order,
 * must neither deadlock nor count a part first twice. Checked against counts computed here from the raw events.
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
