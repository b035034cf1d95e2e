import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteAccess } from '../../../infra/identity/access';
import { ProblemSchema } from '../../../infra/http/schemas';
import { type Fsma204Filter, buildFsma204Rows, readFsma204Facts } from '../../../infra/genealogy/fsma204';
import type { ApiDeps } from '../../deps';
import { Fsma204QuerySchema, SpreadsheetSchema } from '../../schemas/records.schema';
import { sendFsma204 } from '../../support/fsma204-sheet';
import { READERS } from '../../support/access';
import qualityRecordRoutes from './quality-record';

const recordReaders: RouteAccess = { roles: READERS, machine: ['lots:read'] };

const DAY = 86_400_000;

const recordsRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  await app.register(qualityRecordRoutes, { deps });
  app.get('/v1/records/fsma204', {
    config: { access: recordReaders, accessTargets: (request) => [{ site: (request.query as { site: string }).site }] },
    schema: {
      summary: 'FSMA 204 electronic sortable spreadsheet: every critical tracking event of a site in a date range',
      description:
        'One row per receiving, transformation (one row per input lot, sharing `event_id`) and shipping event between ' +
        '`from` and `to` (whole UTC days), optionally only those naming a lot (`lot`) or product (`product`). CSV ' +
        '(default) or XLSX (`format=xlsx`). docs/fsma-204.md.',
      tags: ['records'],
      querystring: Fsma204QuerySchema,
      response: { 200: SpreadsheetSchema, 400: ProblemSchema, 403: ProblemSchema },
    },
    handler: async (request, reply) => {
      const { site, from, to, lot, product, format } = request.query;
      const filter: Fsma204Filter = {
        site,
        from: new Date(`${from}T00:00:00Z`),
        to: new Date(new Date(`${to}T00:00:00Z`).getTime() + DAY),
        ...(lot !== undefined ? { lots: lot } : {}),
        ...(product !== undefined ? { products: product } : {}),
      };
      const rows = buildFsma204Rows(await readFsma204Facts(deps.pool, filter), filter);
      return sendFsma204(reply, rows, format, `fsma204-${site}-${from}-${to}`);
    },
  });
};

export default recordsRoutes;
