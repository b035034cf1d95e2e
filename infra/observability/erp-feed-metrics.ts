import { Gauge, type Registry } from 'prom-client';
import type { HoldfastConfig } from '../config/schema';
import type { PgErpFeedStore } from '../erp-feed/erp-feed-store';

/**
 * holdfast_erp_feed_lag_seconds{site}: how long the oldest interval of the site's ERP feed that is not posted yet has
 * been due (0: caught up). Read from PostgreSQL at each scrape, so every process serving it tells the same.
 */
export function registerErpFeedMetrics(registry: Registry, config: HoldfastConfig, store: PgErpFeedStore): void {
  const sites = config.sites.filter((s) => s.erpFeed).map((s) => s.id);
  if (sites.length === 0) return;
  new Gauge({
    name: 'holdfast_erp_feed_lag_seconds',
    help: 'Seconds the oldest ERP feed interval not yet posted has been due, per site (0: caught up)',
    labelNames: ['site'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const site of sites) {
        const { lagSeconds } = await store.status(site, Date.now());
        this.set({ site }, lagSeconds);
      }
    },
  });
}
