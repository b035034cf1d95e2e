import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import ExcelJS from 'exceljs';
import type { RouteAccess } from '../../../infra/identity/access';
import { ProblemSchema } from '../../../infra/http/schemas';
import {
  FSMA204_COLUMNS,
  type Fsma204Filter,
  type Fsma204Row,
  buildFsma204Rows,
  readFsma204Facts,
} from '../../../infra/genealogy/fsma204';
import type { ApiDeps } from '../../deps';
import { Fsma204QuerySchema, SpreadsheetSchema } from '../../schemas/records.schema';
import { toCsv } from '../../support/csv';
import { READERS } from '../../support/access';
import qualityRecordRoutes from './quality-record';

const recordReaders: RouteAccess = { roles: READERS, machine: ['lots:read'] };

const DAY = 86_400_000;

/** The sheet as a workbook: one worksheet, the header row frozen and filterable, every cell text as in the CSV. */
export async function fsma204Workbook(rows: readonly Fsma204Row[]): Promise<Buffer> {
  const workbook = new ExcelJS.Workbook();
  const sheet = workbook.addWorksheet('FSMA 204', { views: [{ state: 'frozen', ySplit: 1 }] });
  sheet.addRow([...FSMA204_COLUMNS]);
  for (const row of rows) sheet.addRow(FSMA204_COLUMNS.map((c) => row[c]));
  sheet.autoFilter = { from: { row: 1, column: 1 }, to: { row: 1, column: FSMA204_COLUMNS.length } };
  return Buffer.from(await workbook.xlsx.writeBuffer());
}

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
      const untyped: FastifyReply = reply;
      // Header values must be Latin-1: a site named in other letters would make writing the header throw.
      const name = `fsma204-${site}-${from}-${to}`.replace(/[^\w.-]/g, '_');
      if (format === 'xlsx') {
        return untyped
          .type('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet')
          .header('content-disposition', `attachment; filename="${name}.xlsx"`)
          .send(await fsma204Workbook(rows));
      }
      return untyped
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}.csv"`)
        .send(toCsv([[...FSMA204_COLUMNS], ...rows.map((r) => FSMA204_COLUMNS.map((c) => r[c]))]));
    },
  });
};

export default recordsRoutes;
