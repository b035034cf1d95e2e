import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { createErpFeedStore } from '../../../infra/erp-feed/erp-feed-store';
import { notFound } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { ApiDeps } from '../../deps';
import {
  CostOfQualityQuerySchema,
  CostOfQualitySchema,
  ErpFeedParamsSchema,
  ErpFeedStatusSchema,
  type COST_DIMENSIONS,
} from '../../schemas/erp-feed.schema';
import { READERS } from '../../support/access';

/** Each report dimension's column in holdfast.cost_of_quality; `period` is bucketed in the site's time zone. */
const DIMENSION_SQL: Record<(typeof COST_DIMENSIONS)[number], string> = {
  line: 'line',
  sku: 'sku',
  workOrder: 'work_order',
  supplier: 'supplier',
  supplierLot: 'supplier_lot',
  category: 'category',
  period: `to_char(date_trunc($4, interval_start AT TIME ZONE $5), 'YYYY-MM-DD"T"HH24:MI')`,
};

const erpFeedRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const store = createErpFeedStore(deps.pool, deps.config);

  app.get('/v1/erp-feed/:site', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => [{ site: (request.params as { site: string }).site }],
    },
    schema: {
      summary: "The site's ERP feed: the last interval posted, the intervals pending and how late the feed is",
      description:
        'Confirmations and cost of quality are posted per interval by the schedule erp-feed-<site>. `lagSeconds` is ' +
        'how long the oldest interval not yet posted has been due (0: caught up); an ERP that is down makes it grow. ' +
        '404 when the site has no feed. docs/analytics.md#the-erp-feed.',
      tags: ['erp-feed'],
      params: ErpFeedParamsSchema,
      response: {
        200: ErpFeedStatusSchema,
        400: ProblemSchema,
        401: ProblemSchema,
        403: ProblemSchema,
        404: ProblemSchema,
      },
    },
    handler: async (request) => {
      const { site } = request.params;
      const feed = deps.config.sites.find((s) => s.id === site)?.erpFeed;
      if (!feed) throw notFound(`site ${site} has no ERP feed`);
      const status = await store.status(site, Date.now());
      return { site, every: feed.every, settle: feed.settle, ...status };
    },
  });

  app.get('/v1/metrics/cost-of-quality', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => [{ site: (request.query as { site: string }).site }],
    },
    schema: {
      summary: 'Cost of quality posted to the ERP, by line, SKU, work order, supplier, category and period',
      description:
        'Sums what the ERP feed posted for intervals starting in [from, to): scrap (quantity × standard price), ' +
        'rework (parts × minutes × rate), inspection (inspections × rate) and external failure (recalled quantity ' +
        'shipped × standard price). Supplier and supplier lot come from the parts’ material-lot context; a part made ' +
        'from n supplier lots counts 1/n to each. docs/analytics.md#the-erp-feed.',
      tags: ['erp-feed'],
      querystring: CostOfQualityQuerySchema,
      response: { 200: CostOfQualitySchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, from, to, groupBy, period } = request.query;
      const timezone = deps.config.sites.find((s) => s.id === site)?.timezone ?? 'UTC';
      const dims = [...new Set(groupBy)];
      const select = dims.map((d) => `${DIMENSION_SQL[d]} AS "${d}"`).join(', ');
      const { rows } = await deps.pool.query<Record<string, string | null>>(
        `SELECT ${select}, sum(quantity)::float8 AS quantity, sum(amount)::text AS amount, min(currency) AS currency
           FROM holdfast.cost_of_quality
          WHERE site = $1 AND interval_start >= $2 AND interval_start < $3
          GROUP BY ${dims.map((_, i) => i + 1).join(', ')}
          ORDER BY ${dims.map((_, i) => i + 1).join(', ')}`,
        dims.includes('period') ? [site, from, to, period, timezone] : [site, from, to],
      );
      const groups = rows.map((r) => ({
        ...Object.fromEntries(dims.map((d) => [d, r[d] ?? null])),
        quantity: Number(r.quantity),
        amount: Number(r.amount),
      }));
      const total = Math.round(groups.reduce((s, g) => s + g.amount * 100, 0)) / 100;
      return { site, from, to, currency: rows[0]?.currency ?? null, groupBy: dims, groups, total };
    },
  });
};

export default erpFeedRoutes;
