import type { FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { defectPareto, firstPassYield, lotQuality } from '../../../infra/analytics/metrics';
import { HEATMAP_KEY_LIMIT, defectHeatmap } from '../../../infra/analytics/defect-heatmap';
import { ProblemError, validationProblem } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { AccessTarget } from '../../../infra/identity/access';
import type { ApiDeps } from '../../deps';
import {
  DefectParetoResponseSchema,
  DefectQuerySchema,
  FpyQuerySchema,
  FpyResponseSchema,
  LotQualityQuerySchema,
  LotQualityResponseSchema,
} from '../../schemas/metrics.schema';
import {
  DefectHeatmapQuerySchema,
  DefectHeatmapResponseSchema,
  HEATMAP_MAX_DAYS,
} from '../../schemas/dashboard.schema';
import { READERS } from '../../support/access';

/** The narrowest place the filters name: a reader of the site, the line or the station may call. */
const filteredTarget = (request: FastifyRequest): AccessTarget[] => {
  const { site, line, station } = request.query as { site: string; line?: string; station?: string };
  return [{ site, ...(line !== undefined ? { line } : {}), ...(line !== undefined && station ? { station } : {}) }];
};

const access = { access: { roles: READERS, machine: ['lots:read' as const] }, accessTargets: filteredTarget };
const problems = { 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema };
const DAY_MS = 86_400_000;

const metricsRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/metrics/fpy', {
    config: access,
    schema: {
      summary: 'First-pass yield by any of line, station, SKU, work order, shift, shift date and site, per time bucket',
      description:
        'Parts whose first inspection at a station passed ÷ parts first inspected there, summed over the stations ' +
        'of each group; re-inspections, inspections after rework and shadow-mode results are counted apart and ' +
        'never enter units or firstPassGood. Read from the aggregates kept at ingest (hours starting in [from, to)). ' +
        'docs/analytics.md#first-pass-yield.',
      tags: ['metrics'],
      querystring: FpyQuerySchema,
      response: { 200: FpyResponseSchema, ...problems },
    },
    handler: async (request) => {
      const { groupBy = [], bucket, ...filter } = request.query;
      const result = await firstPassYield(deps.pool, { ...filter, groupBy, bucket });
      return { site: filter.site, groupBy, bucket, ...result };
    },
  });

  app.get('/v1/metrics/defects', {
    config: access,
    schema: {
      summary: 'Defect Pareto by defect class, grouped and bucketed like the first-pass yield',
      description:
        'Defects found per class (production mode; every inspection kind unless `inspectionKind` narrows it), most ' +
        'first within each group, with each class share of the group and the cumulative share. ' +
        'docs/analytics.md#first-pass-yield.',
      tags: ['metrics'],
      querystring: DefectQuerySchema,
      response: { 200: DefectParetoResponseSchema, ...problems },
    },
    handler: async (request) => {
      const { groupBy = [], bucket, inspectionKind, ...filter } = request.query;
      const result = await defectPareto(deps.pool, { ...filter, groupBy, bucket, inspectionKinds: inspectionKind });
      return { site: filter.site, groupBy, bucket, inspectionKinds: inspectionKind ?? null, ...result };
    },
  });

  app.get('/v1/metrics/lot-quality', {
    config: access,
    schema: {
      summary: 'First-pass yield and defects by component lot, supplier lot or supplier',
      description:
        "From each inspection's material-lot context, kept as it is joined at ingest or completed later: parts " +
        'first inspected, first-pass good and defects found, per lot (or per supplier, over its lots), by shift date. ' +
        'docs/analytics.md#first-pass-yield.',
      tags: ['metrics'],
      querystring: LotQualityQuerySchema,
      response: { 200: LotQualityResponseSchema, ...problems },
    },
    handler: async (request) => {
      const { groupBy = [], ...q } = request.query;
      const result = await lotQuality(deps.pool, { ...q, groupBy });
      return { site: q.site, by: q.by, groupBy, ...result };
    },
  });

  app.get('/v1/metrics/defect-heatmap', {
    config: access,
    schema: {
      summary: 'Defect rate per product, line, shift, component lot or supplier and shift date (a heat map)',
      description:
        'Defective units (first inspection failed) ÷ units first inspected, per key and shift date, over the hours ' +
        `starting in [from, to) (default: the 30 days before now; at most ${HEATMAP_MAX_DAYS} days). The ` +
        `${HEATMAP_KEY_LIMIT} keys with the most units are shown; totalKeys says how many there were. Lots and ` +
        "suppliers count a part for each lot of its work order's material-lot context, as /v1/metrics/lot-quality " +
        'does. Read from the aggregates kept at ingest. docs/dashboard.md#heat-map.',
      tags: ['metrics'],
      querystring: DefectHeatmapQuerySchema,
      response: { 200: DefectHeatmapResponseSchema, ...problems },
    },
    handler: async (request) => {
      const { site, by, line } = request.query;
      const to = new Date(request.query.to ?? Date.now());
      const from = new Date(request.query.from ?? to.getTime() - 30 * DAY_MS);
      if (to.getTime() - from.getTime() > HEATMAP_MAX_DAYS * DAY_MS) {
        const field = request.query.from !== undefined ? 'querystring.from' : 'querystring.to';
        throw new ProblemError(
          validationProblem([{ field, message: `the range may span at most ${HEATMAP_MAX_DAYS} days` }]),
        );
      }
      const map = await defectHeatmap(deps.pool, {
        site,
        by,
        line,
        from: from.toISOString(),
        to: to.toISOString(),
      });
      return {
        site,
        by,
        line: line ?? null,
        from: from.toISOString(),
        to: to.toISOString(),
        keyLimit: HEATMAP_KEY_LIMIT,
        ...map,
      };
    },
  });
};

export default metricsRoutes;
