import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { LotCaseStage } from '../../workflows/contracts';
import { oncePerScrape } from './scrape';

/** Every open stage, so a stage with no case reads 0 instead of vanishing (the compiler keeps the list complete). */
const OPEN_STAGES = Object.keys({
  containing: true,
  'awaiting-disposition': true,
  'awaiting-second-signature': true,
  'executing-disposition': true,
  'needs-attention': true,
} satisfies Record<Exclude<LotCaseStage, 'closed'>, true>);

/**
 * Open lot cases (hold cycles) by stage, read on every scrape from the lot-case projection (holdfast.lot_case) with
 * one query. Closed cases are left out: they only accumulate.
 */
export function registerLotCaseGauge(registry: Registry, pool: Pick<pg.Pool, 'query'>): void {
  const openCases = oncePerScrape(async () => {
    const res = await pool.query<{ stage: string; cases: number }>(
      `SELECT stage, count(*)::int AS cases FROM holdfast.lot_case WHERE stage <> 'closed' GROUP BY stage`,
    );
    return res.rows;
  });
  new Gauge({
    name: 'holdfast_lot_cases',
    help: 'Open lot cases by stage (containing, awaiting-disposition, awaiting-second-signature, executing-disposition, needs-attention).',
    labelNames: ['stage'],
    registers: [registry],
    async collect() {
      const rows = await openCases();
      this.reset();
      if (!rows) return;
      for (const stage of OPEN_STAGES) this.set({ stage }, 0);
      for (const row of rows) this.set({ stage: row.stage }, row.cases);
    },
  });
}
