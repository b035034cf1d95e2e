import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { defectRates } from '../../../infra/genealogy/material-context';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { ApiDeps } from '../../deps';
import { DefectRateQuerySchema, DefectRatesSchema } from '../../schemas/quality.schema';
import { READERS } from '../../support/access';

const qualityRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/quality/defect-rates', {
    config: {
      access: { roles: READERS, machine: ['lots:read'] },
      accessTargets: (request) => {
        const { site, line } = request.query as { site: string; line?: string };
        return [{ site, ...(line !== undefined ? { line } : {}) }];
      },
    },
    schema: {
      summary: 'Defect rate of the parts made from each component lot, supplier lot or supplier',
      description:
        "From each inspection's material context, joined at ingest or completed when the work order's consumption " +
        'arrived: distinct parts inspected in [from, to) at the site (and line), defective when any station failed ' +
        'them, per key; highest rate first. Parts whose context is still pending are counted apart ' +
        '(`pendingParts`). docs/changeover.md#material-lot-context.',
      tags: ['quality'],
      querystring: DefectRateQuerySchema,
      response: { 200: DefectRatesSchema, 400: ProblemSchema, 401: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request) => {
      const { site, line, by, from, to } = request.query;
      const rates = await defectRates(deps.pool, { site, by, from, to, ...(line !== undefined ? { line } : {}) });
      return { site, line: line ?? null, by, from, to, ...rates };
    },
  });
};

export default qualityRoutes;
