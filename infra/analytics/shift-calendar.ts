/**
 * Each site's shift calendar (sites[].shifts and sites[].timezone in temporal.yaml), copied into holdfast.site_shift
 * when a process starts, where the aggregates' trigger and holdfast.shift_of (migration 0020) read it. Changing a
 * calendar changes where inspections stored from then on fall; counts already kept stay where they were counted.
 */
import type pg from 'pg';
import type { HoldfastConfig } from '../config/schema';

type Queryable = Pick<pg.PoolClient, 'query'>;

/** Any constant shared by every Holdfast process: serialises concurrent starts replacing the same calendars. */
const SHIFT_SYNC_LOCK_KEY = '7236911402386762020';

export interface SiteShiftRow {
  site: string;
  shift: string;
  starts: string;
  ends: string;
  timeZone: string;
}

export function siteShiftRows(config: HoldfastConfig): SiteShiftRow[] {
  return config.sites.flatMap((site) =>
    site.shifts.map((s) => ({ site: site.id, shift: s.id, starts: s.start, ends: s.end, timeZone: site.timezone })),
  );
}

/**
 * Replaces the calendars of the configured sites with the configuration's, in one transaction; sites not configured
 * here are left alone (another process may serve them). Idempotent: a second call with the same config changes
 * nothing. Returns whether anything changed.
 */
export async function syncSiteShifts(pool: pg.Pool, config: HoldfastConfig): Promise<boolean> {
  const rows = siteShiftRows(config);
  const sites = config.sites.map((s) => s.id);
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [SHIFT_SYNC_LOCK_KEY]);
    const changed = await replaceSiteShifts(client, sites, rows);
    await client.query('COMMIT');
    return changed;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

async function replaceSiteShifts(db: Queryable, sites: string[], rows: SiteShiftRow[]): Promise<boolean> {
  const deleted = await db.query(
    `DELETE FROM holdfast.site_shift s
      WHERE s.site = ANY ($1::text[])
        AND NOT EXISTS (SELECT 1 FROM unnest($2::text[], $3::text[], $4::time[], $5::time[], $6::text[])
                                       AS c (site, shift, starts, ends, time_zone)
                         WHERE (c.site, c.shift, c.starts, c.ends, c.time_zone) = (s.site, s.shift, s.starts, s.ends,
                                                                                    s.time_zone))`,
    [sites, ...columns(rows)],
  );
  const inserted = await db.query(
    `INSERT INTO holdfast.site_shift (site, shift, starts, ends, time_zone)
     SELECT * FROM unnest($1::text[], $2::text[], $3::time[], $4::time[], $5::text[])
     ON CONFLICT (site, shift) DO NOTHING`,
    columns(rows),
  );
  return (deleted.rowCount ?? 0) + (inserted.rowCount ?? 0) > 0;
}

function columns(rows: SiteShiftRow[]): [string[], string[], string[], string[], string[]] {
  return [
    rows.map((r) => r.site),
    rows.map((r) => r.shift),
    rows.map((r) => r.starts),
    rows.map((r) => r.ends),
    rows.map((r) => r.timeZone),
  ];
}
