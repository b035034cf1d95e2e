import type pg from 'pg';
import type {
  ConfirmationFigures,
  ErpFeedSettings,
  ErpFeedStore,
  FeedInterval,
  PendingFigures,
} from '../../activities/ports';
import { ConfigError } from '../../activities/errors';
import { withTransaction } from '../db/pool';
import { parseDurationMs } from '../config/duration';
import type { ErpFeedConfig, HoldfastConfig, SiteConfig } from '../config/schema';

/**
 * Holdfast's side of the ERP feed (docs/analytics.md#the-erp-feed): which intervals are due, each interval's figures
 * (fixed once, first writer wins), what was posted, and the lag. The ERP calls are the activities' business.
 */

interface CountRow {
  line: string;
  station: string;
  sku: string;
  work_order: string;
  supplier_lot: string | null;
  inspections: number | null;
  passed: number | null;
  reworked: number | null;
  scrapped: number | null;
}

/** The idempotency key of one order's confirmation for one interval: the business event, nothing else. */
export function erpFeedConfirmationKey(site: string, workOrder: string, interval: FeedInterval): string {
  return `erp-feed:${site}:${workOrder}:${interval.from}/${interval.to}`;
}

export function erpFeedCostKey(site: string, interval: FeedInterval): string {
  return `erp-feed-coq:${site}:${interval.from}/${interval.to}`;
}

/** Per line, the station whose results are confirmed: configured, else the line's last production station. */
export function confirmingStations(site: SiteConfig, feed: ErpFeedConfig): Map<string, string> {
  const stations = new Map<string, string>();
  for (const line of site.lines) {
    const configured = feed.confirmingStations[line.id];
    const production = line.stations.filter((s) => s.mode === 'production');
    const station = configured ?? production[production.length - 1]?.id;
    if (station) stations.set(line.id, station);
  }
  return stations;
}

export function createErpFeedStore(pool: pg.Pool, config: HoldfastConfig) {
  const siteAndFeed = (siteId: string): { site: SiteConfig; feed: ErpFeedConfig } => {
    const site = config.sites.find((s) => s.id === siteId);
    if (!site) throw new ConfigError(`unknown site "${siteId}"`);
    if (!site.erpFeed) throw new ConfigError(`site "${siteId}" has no sites[].erpFeed in temporal.yaml`);
    return { site, feed: site.erpFeed };
  };

  /** Interval boundaries in (after, until]: aligned multiples of `every`, or the site's shift ends. */
  async function boundaries(site: SiteConfig, feed: ErpFeedConfig, after: number, until: number): Promise<number[]> {
    if (feed.every !== 'shift-end') {
      const step = parseDurationMs(feed.every);
      const out: number[] = [];
      for (let b = Math.floor(after / step) * step + step; b <= until; b += step) out.push(b);
      return out;
    }
    // Shift ends in the site's local time (holdfast.site_shift); a site without shifts has one, midnight to midnight.
    const { rows } = await pool.query<{ b: Date }>(
      `WITH shifts AS (
         SELECT ends, time_zone FROM holdfast.site_shift WHERE site = $1
         UNION ALL
         SELECT time '00:00', $4 WHERE NOT EXISTS (SELECT 1 FROM holdfast.site_shift WHERE site = $1)
       )
       SELECT DISTINCT ((d::date + s.ends) AT TIME ZONE s.time_zone) AS b
         FROM shifts s,
              generate_series(($2::timestamptz - interval '2 days')::date, ($3::timestamptz + interval '2 days')::date,
                              interval '1 day') d
        WHERE ((d::date + s.ends) AT TIME ZONE s.time_zone) > $2
          AND ((d::date + s.ends) AT TIME ZONE s.time_zone) <= $3
        ORDER BY b`,
      [site.id, new Date(after), new Date(until), site.timezone],
    );
    return rows.map((r) => r.b.getTime());
  }

  /** The last boundary at or before `at`. */
  async function boundaryAtOrBefore(site: SiteConfig, feed: ErpFeedConfig, at: number): Promise<number> {
    if (feed.every !== 'shift-end') {
      const step = parseDurationMs(feed.every);
      return Math.floor(at / step) * step;
    }
    const found = await boundaries(site, feed, at - 3 * 86_400_000, at);
    return found[found.length - 1] ?? at;
  }

  const store = {
    settings(siteId: string): ErpFeedSettings {
      const { site, feed } = siteAndFeed(siteId);
      return {
        site: site.id,
        plant: site.erpPlant,
        timezone: site.timezone,
        operation: feed.operation,
        unit: feed.unit,
        companyCode: feed.companyCode,
        costCentre: feed.costCentre,
        currency: feed.currency,
        accounts: feed.accounts,
        rates: feed.rates,
        confirmingStations: Object.fromEntries(confirmingStations(site, feed)),
      };
    },

    /**
     * Intervals due at `asOf` and not yet posted, oldest first, at most `limit`: from the first one not posted (or
     * after the last posted one; for a new site `startBack` before `asOf`), each ending `settle` before `asOf`.
     */
    async dueIntervals(siteId: string, asOf: number, limit = 96): Promise<FeedInterval[]> {
      const { site, feed } = siteAndFeed(siteId);
      const { rows } = await pool.query<{ pending: Date | null; last_end: Date | null }>(
        `SELECT (SELECT min(interval_start) FROM holdfast.erp_feed_interval WHERE site = $1 AND posted_at IS NULL)
                  AS pending,
                (SELECT max(interval_end) FROM holdfast.erp_feed_interval WHERE site = $1) AS last_end`,
        [site.id],
      );
      const until = asOf - parseDurationMs(feed.settle);
      const start =
        rows[0]?.pending?.getTime() ??
        rows[0]?.last_end?.getTime() ??
        (await boundaryAtOrBefore(site, feed, asOf - parseDurationMs(feed.startBack)));
      const ends = await boundaries(site, feed, start, until);
      const intervals: FeedInterval[] = [];
      let from = start;
      for (const to of ends.slice(0, limit)) {
        intervals.push({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
        from = to;
      }
      // Intervals already fixed keep their own bounds (a changed `every` applies from the next new one).
      const fixed = await pool.query<{ interval_start: Date; interval_end: Date; posted_at: Date | null }>(
        `SELECT interval_start, interval_end, posted_at FROM holdfast.erp_feed_interval
          WHERE site = $1 AND interval_start >= $2 ORDER BY interval_start`,
        [site.id, new Date(start)],
      );
      if (fixed.rows.length === 0) return intervals;
      const known = fixed.rows.map((r) => ({
        from: r.interval_start.toISOString(),
        to: r.interval_end.toISOString(),
        posted: r.posted_at !== null,
      }));
      const lastKnownEnd = known[known.length - 1]!.to;
      return [
        ...known.filter((k) => !k.posted).map(({ from: f, to: t }) => ({ from: f, to: t })),
        ...intervals.filter((i) => i.from >= lastKnownEnd),
      ].slice(0, limit);
    },

    async isFixed(site: string, interval: FeedInterval): Promise<boolean> {
      const { rowCount } = await pool.query(
        'SELECT 1 FROM holdfast.erp_feed_interval WHERE site = $1 AND interval_start = $2',
        [site, interval.from],
      );
      return rowCount === 1;
    },

    /** The counts behind an interval's figures, and the completed real recalls not yet charged. */
    async pendingFigures(site: string, interval: FeedInterval): Promise<PendingFigures> {
      const counts = await pool.query<CountRow>(
        `WITH i AS (
           SELECT line, station, sku, work_order, result, coalesce(inspection_kind, 'first') AS kind,
                  CASE WHEN cardinality(supplier_lots) > 0 THEN supplier_lots ELSE ARRAY[NULL::text] END AS lots
             FROM holdfast.inspection
            WHERE site = $1 AND received_at >= $2 AND received_at < $3 AND mode = 'production'
         )
         SELECT line, station, sku, work_order, lot AS supplier_lot,
                sum(1.0 / cardinality(lots))::float8 AS inspections,
                (sum(1.0 / cardinality(lots)) FILTER (WHERE result = 'pass'))::float8 AS passed,
                (sum(1.0 / cardinality(lots)) FILTER (WHERE kind = 'after-rework'))::float8 AS reworked,
                (sum(1.0 / cardinality(lots)) FILTER (WHERE result = 'fail' AND kind <> 'first'))::float8 AS scrapped
           FROM i, unnest(lots) AS lot
          GROUP BY line, station, sku, work_order, lot`,
        [site, interval.from, interval.to],
      );
      const recalls = await pool.query<{ recall_id: string; material: string; shipped: string }>(
        `SELECT r.recall_id, l.material, sum(l.shipped)::text AS shipped
           FROM holdfast.recall r JOIN holdfast.recall_lot l ON l.recall_id = r.recall_id
          WHERE r.site = $1 AND r.kind = 'real' AND r.state = 'completed' AND r.completed_at < $2
            AND l.shipped > 0 AND l.material IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM holdfast.erp_feed_recall_charge c WHERE c.recall_id = r.recall_id)
          GROUP BY r.recall_id, l.material`,
        [site, interval.to],
      );
      return {
        counts: counts.rows.map((r) => ({
          line: r.line,
          station: r.station,
          sku: r.sku,
          workOrder: r.work_order,
          supplierLot: r.supplier_lot,
          inspections: r.inspections ?? 0,
          passed: r.passed ?? 0,
          reworked: r.reworked ?? 0,
          scrapped: r.scrapped ?? 0,
        })),
        recalls: recalls.rows.map((r) => ({ recallId: r.recall_id, material: r.material, shipped: Number(r.shipped) })),
      };
    },

    /**
     * Fixes the interval's figures unless a run already did (then its figures stand); returns what is stored. The
     * recall charges are taken in the same transaction, so a recall is charged once however runs interleave.
     */
    async fixFigures(input: Parameters<ErpFeedStore['fixFigures']>[0]): Promise<void> {
      const { site, interval } = input;
      const { feed } = siteAndFeed(site);
      await withTransaction(pool, async (c) => {
        const inserted = await c.query(
          `INSERT INTO holdfast.erp_feed_interval (site, interval_start, interval_end) VALUES ($1, $2, $3)
           ON CONFLICT (site, interval_start) DO NOTHING`,
          [site, interval.from, interval.to],
        );
        if (inserted.rowCount === 0) return;
        for (const f of input.confirmations) {
          await c.query(
            `INSERT INTO holdfast.erp_feed_confirmation
               (site, interval_start, work_order, line, station, sku, yield_quantity, scrap_quantity, rework_quantity,
                idempotency_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
            [
              site,
              interval.from,
              f.workOrder,
              f.line,
              f.station,
              f.sku,
              f.yieldQuantity,
              f.scrapQuantity,
              f.reworkQuantity,
              f.idempotencyKey,
            ],
          );
        }
        const recallIds = [...new Set(input.costs.flatMap((r) => (r.recallId ? [r.recallId] : [])))];
        const charged = new Set<string>();
        for (const recallId of recallIds) {
          const r = await c.query(
            `INSERT INTO holdfast.erp_feed_recall_charge (recall_id, site, interval_start) VALUES ($1, $2, $3)
             ON CONFLICT (recall_id) DO NOTHING`,
            [recallId, site, interval.from],
          );
          if (r.rowCount === 1) charged.add(recallId);
        }
        const supplierOf = await c.query<{ lot_key: string; supplier: string | null }>(
          `SELECT lot_key, supplier FROM holdfast.material_lot WHERE lot_key = ANY($1)`,
          [[...new Set(input.costs.flatMap((r) => (r.supplierLot ? [r.supplierLot] : [])))]],
        );
        const suppliers = new Map(supplierOf.rows.map((r) => [r.lot_key, r.supplier]));
        for (const row of input.costs) {
          if (row.recallId && !charged.has(row.recallId)) continue;
          await c.query(
            `INSERT INTO holdfast.cost_of_quality
               (site, interval_start, interval_end, category, line, sku, work_order, supplier_lot, supplier, recall_id,
                quantity, unit_cost, amount, currency, cost_centre, gl_account)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
            [
              site,
              interval.from,
              interval.to,
              row.category,
              row.line,
              row.sku,
              row.workOrder,
              row.supplierLot,
              row.supplierLot ? (suppliers.get(row.supplierLot) ?? null) : null,
              row.recallId,
              row.quantity,
              row.unitCost,
              row.amount,
              feed.currency,
              feed.costCentre,
              row.glAccount,
            ],
          );
        }
      });
    },

    async confirmations(site: string, interval: FeedInterval): Promise<ConfirmationFigures[]> {
      const { rows } = await pool.query<{
        work_order: string;
        line: string;
        station: string;
        sku: string;
        yield_quantity: string;
        scrap_quantity: string;
        rework_quantity: string;
        idempotency_key: string;
        confirmation_group: string | null;
        confirmation_count: string | null;
      }>(`SELECT * FROM holdfast.erp_feed_confirmation WHERE site = $1 AND interval_start = $2 ORDER BY work_order`, [
        site,
        interval.from,
      ]);
      return rows.map((r) => ({
        workOrder: r.work_order,
        line: r.line,
        station: r.station,
        sku: r.sku,
        yieldQuantity: Number(r.yield_quantity),
        scrapQuantity: Number(r.scrap_quantity),
        reworkQuantity: Number(r.rework_quantity),
        idempotencyKey: r.idempotency_key,
        confirmationGroup: r.confirmation_group,
        confirmationCount: r.confirmation_count,
      }));
    },

    async recordConfirmation(
      site: string,
      interval: FeedInterval,
      workOrder: string,
      posted: { confirmationGroup: string; confirmationCount: string },
    ): Promise<void> {
      await pool.query(
        `UPDATE holdfast.erp_feed_confirmation SET confirmation_group = $4, confirmation_count = $5,
                posted_at = coalesce(posted_at, now())
          WHERE site = $1 AND interval_start = $2 AND work_order = $3`,
        [site, interval.from, workOrder, posted.confirmationGroup, posted.confirmationCount],
      );
    },

    /** The interval's cost per G/L account (amounts summed from the stored rows) and whether it was posted. */
    async costByAccount(
      site: string,
      interval: FeedInterval,
    ): Promise<{ accounts: { account: string; category: string; amount: number }[]; document: string | null }> {
      const { rows } = await pool.query<{ gl_account: string; category: string; amount: string }>(
        `SELECT gl_account, category, sum(amount)::text AS amount FROM holdfast.cost_of_quality
          WHERE site = $1 AND interval_start = $2 GROUP BY gl_account, category ORDER BY category, gl_account`,
        [site, interval.from],
      );
      const doc = await pool.query<{ cost_document: string | null }>(
        `SELECT cost_document FROM holdfast.erp_feed_interval WHERE site = $1 AND interval_start = $2`,
        [site, interval.from],
      );
      return {
        accounts: rows
          .map((r) => ({ account: r.gl_account, category: r.category, amount: Number(r.amount) }))
          .filter((r) => r.amount > 0),
        document: doc.rows[0]?.cost_document ?? null,
      };
    },

    async recordPosted(site: string, interval: FeedInterval, costDocument: string | null): Promise<void> {
      await pool.query(
        `UPDATE holdfast.erp_feed_interval SET cost_document = coalesce(cost_document, $3),
                posted_at = coalesce(posted_at, now())
          WHERE site = $1 AND interval_start = $2`,
        [site, interval.from, costDocument],
      );
    },

    async exclusive<T>(site: string, interval: FeedInterval, work: () => Promise<T>): Promise<T> {
      // A session lock on a connection of its own, held across the ERP calls; a crashed worker's lock dies with it.
      const client = await pool.connect();
      const key = `erp-feed:${site}:${interval.from}`;
      try {
        await client.query('SELECT pg_advisory_lock(hashtext($1))', [key]);
        try {
          return await work();
        } finally {
          await client.query('SELECT pg_advisory_unlock(hashtext($1))', [key]);
        }
      } finally {
        client.release();
      }
    },

    /** The feed's state at `asOf`: last posted interval, intervals due and not posted, and how late the oldest is. */
    async status(siteId: string, asOf: number) {
      const { site, feed } = siteAndFeed(siteId);
      const last = await pool.query<{ interval_start: Date; interval_end: Date; posted_at: Date }>(
        `SELECT interval_start, interval_end, posted_at FROM holdfast.erp_feed_interval
          WHERE site = $1 AND posted_at IS NOT NULL ORDER BY interval_start DESC LIMIT 1`,
        [site.id],
      );
      const due = await store.dueIntervals(site.id, asOf, 10_000);
      const oldest = due[0];
      const lagMs = oldest ? Math.max(0, asOf - Date.parse(oldest.to) - parseDurationMs(feed.settle)) : 0;
      const l = last.rows[0];
      return {
        lastPosted: l
          ? {
              from: l.interval_start.toISOString(),
              to: l.interval_end.toISOString(),
              postedAt: l.posted_at.toISOString(),
            }
          : null,
        pending: due.length,
        oldestPending: oldest ?? null,
        lagSeconds: Math.round(lagMs / 1000),
      };
    },
  };
  return store;
}

export type PgErpFeedStore = ReturnType<typeof createErpFeedStore>;
export type { ErpFeedStore };
