import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { RouteAccess } from '../../../infra/identity/access';
import { authorizeSite, mayActAt } from '../../../infra/identity/route-access';
import { ProblemError, notFound, validationProblem } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import {
  type StartNode,
  TraceCursorError,
  type TraceDirection,
  type TracedLot,
  lotDetails,
  listGaps,
  resolveStart,
  traceGenealogy,
} from '../../../infra/genealogy/trace-queries';
import { lotKeyOfNode } from '../../../infra/genealogy/genealogy-keys';
import type { ApiDeps } from '../../deps';
import {
  GapPageSchema,
  GapQuerySchema,
  LotGenealogyParamsSchema,
  LotGenealogyQuerySchema,
  LotGenealogySchema,
  TRACE_PAGE_MAX,
  TracePageSchema,
  TraceQuerySchema,
  traceStartOf,
} from '../../schemas/trace.schema';
import { prefersCsv, toCsv } from '../../support/csv';
import { READERS } from '../../support/access';

const traceReaders: RouteAccess = { roles: READERS, machine: ['lots:read'] };

const CSV_COLUMNS = [
  'depth',
  'lot_key',
  'site',
  'material',
  'origin',
  'quantity',
  'unit',
  'mes_site',
  'mes_lot_id',
  'erp_plant',
  'erp_material',
  'erp_batch',
  'supplier',
  'supplier_batch',
  'work_order',
  'reached_via',
  'inspections_pass',
  'inspections_fail',
  'defects',
  'deliveries',
];

/** `cursor` problems are the caller's: a 400 naming the field, like any other bad query value. */
function badCursor(err: unknown): never {
  if (err instanceof TraceCursorError) {
    throw new ProblemError(validationProblem([{ field: 'querystring.cursor', message: err.message }]));
  }
  throw err;
}

/** The start nodes the caller may trace from: none visible of some found is a 403 naming the first one's site. */
function visibleStart(request: FastifyRequest, start: StartNode[]): StartNode[] {
  const visible = start.filter((s) => mayActAt(request, { site: s.site }));
  if (visible.length === 0 && start[0]) authorizeSite(request, { site: start[0].site });
  return visible;
}

const traceRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  const traceRoute = (direction: TraceDirection) =>
    app.get(`/v1/trace/${direction}`, {
      config: { access: traceReaders },
      schema: {
        summary:
          direction === 'forward'
            ? 'Forward trace: every lot made from the start, and where each was delivered'
            : 'Backward trace: every lot the start was made from, down to the supplier lots',
        description:
          '`by` says what names the start and which fields it needs (a 400 names the missing one). Lots come nearest ' +
          `first, at most \`limit\` (≤ ${TRACE_PAGE_MAX}) a page, the next page by \`cursor\`. Lots at sites the ` +
          'caller may not see are counted in `hiddenLots`, never shown. JSON (default) or CSV (`format=csv` or ' +
          '`Accept: text/csv`, one row per lot). docs/traceability.md#routes.',
        tags: ['trace'],
        querystring: TraceQuerySchema,
        response: { 200: TracePageSchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
      },
      handler: async (request, reply) => {
        const { depth, limit, cursor, format } = request.query;
        const found = await resolveStart(deps.pool, traceStartOf(request.query));
        if (found.length === 0) throw notFound(`nothing in the genealogy matches by=${request.query.by}`);
        const start = visibleStart(request, found);
        const page = await traceGenealogy(deps.pool, start, {
          direction,
          depth,
          limit,
          ...(cursor !== undefined ? { after: cursor } : {}),
          maySee: (site) => mayActAt(request, { site }),
        }).catch(badCursor);
        page.hiddenLots += found.length - start.length;
        if (page.next !== null) {
          const next = new URL(request.url, 'http://holdfast');
          next.searchParams.set('cursor', page.next);
          reply.header('link', `<${next.pathname}${next.search}>; rel="next"`);
        }
        if (format === 'csv' || (format === undefined && prefersCsv(request.headers.accept))) {
          const untyped: FastifyReply = reply;
          return untyped.type('text/csv; charset=utf-8').send(toCsv([CSV_COLUMNS, ...page.lots.map(csvRow)]));
        }
        return page;
      },
    });
  traceRoute('backward');
  traceRoute('forward');

  app.get('/v1/trace/gaps', {
    config: { access: traceReaders, accessTargets: (request) => [{ site: (request.query as { site: string }).site }] },
    schema: {
      summary: 'What the genealogy cannot explain yet (or should not contain) at a site',
      description:
        'Open gaps by default (`state=all` adds resolved ones), oldest first, the next page by `cursor`. ' +
        'docs/traceability.md#gaps.',
      tags: ['trace'],
      querystring: GapQuerySchema,
      response: { 200: GapPageSchema, 400: ProblemSchema },
    },
    handler: async (request) => {
      const { site, kind, state, limit, cursor } = request.query;
      const rows = await listGaps(deps.pool, {
        sites: [site],
        open: state === 'open',
        ...(kind !== undefined ? { kind } : {}),
        ...(cursor !== undefined ? { after: cursor } : {}),
        limit: limit + 1,
      }).catch(badCursor);
      const gaps = rows.slice(0, limit);
      return {
        gaps: gaps.map(({ cursor: _cursor, ...gap }) => gap),
        next: rows.length > limit ? (gaps[gaps.length - 1]?.cursor ?? null) : null,
      };
    },
  });

  app.get('/v1/lots/:lotId/genealogy', {
    config: { access: traceReaders },
    schema: {
      summary: 'A lot in the genealogy: where it came from, what it went into, what the cameras saw, what was decided',
      description:
        'The lot by its MES lot id (`site` when the id is known at more than one site). The first page of each ' +
        'trace; page further with GET /v1/trace/backward and /forward.',
      tags: ['lots', 'trace'],
      params: LotGenealogyParamsSchema,
      querystring: LotGenealogyQuerySchema,
      response: { 200: LotGenealogySchema, 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request) => {
      const { lotId } = request.params;
      const { site, depth } = request.query;
      const res = await deps.pool.query<{ lot_key: string; site: string }>(
        `SELECT lot_key, site FROM holdfast.material_lot
          WHERE mes_lot_id = $1 AND ($2::text IS NULL OR mes_site = $2) ORDER BY mes_site`,
        [lotId, site ?? null],
      );
      const [first, second] = res.rows;
      if (!first) throw notFound(`lot ${lotId} is not in the genealogy${site ? ` of site ${site}` : ''}`);
      if (second) {
        throw new ProblemError(
          validationProblem([
            { field: 'querystring.site', message: 'required: this lot id is known at more than one site' },
          ]),
        );
      }
      authorizeSite(request, { site: first.site });
      const start = [{ node: `lot:${first.lot_key}`, site: first.site }];
      const maySee = (s: string) => mayActAt(request, { site: s });
      const summary = async (direction: TraceDirection) => {
        const page = await traceGenealogy(deps.pool, start, { direction, depth, limit: 100, maySee });
        const { lots, totalLots, hiddenLots, workOrders, cycles, truncated } = page;
        // The lot itself is the answer's `lot`; the traces list the others.
        return {
          lots: lots.filter((l) => l.depth > 0),
          totalLots: totalLots - 1,
          hiddenLots,
          workOrders,
          cycles,
          truncated,
        };
      };
      const [[lot], cameFrom, wentInto] = await Promise.all([
        lotDetails(deps.pool, [lotKeyOfNode(start[0]?.node ?? '')]),
        summary('backward'),
        summary('forward'),
      ]);
      if (!lot) throw notFound(`lot ${lotId} is not in the genealogy`);
      return { lot, cameFrom, wentInto };
    },
  });
};

function csvRow(lot: TracedLot): string[] {
  const text = (v: string | number | null | undefined) => (v === null || v === undefined ? '' : String(v));
  return [
    String(lot.depth),
    lot.lotKey,
    lot.site,
    text(lot.material),
    lot.origin,
    text(lot.quantity),
    text(lot.unit),
    text(lot.mes?.site),
    text(lot.mes?.lotId),
    text(lot.erp?.plant),
    text(lot.erp?.material),
    text(lot.erp?.batch),
    text(lot.supplier),
    text(lot.supplierBatch),
    text(lot.workOrder),
    lot.reachedVia.map((e) => `${e.kind} ${e.from} ${text(e.quantity)} ${text(e.unit)} (${e.edgeKey})`).join('; '),
    String(lot.inspections.pass),
    String(lot.inspections.fail),
    Object.entries(lot.inspections.defects)
      .map(([c, n]) => `${c}=${n}`)
      .join('; '),
    lot.deliveries
      .map((d) => `${d.delivery}/${d.item} ${d.customer} ${d.shipTo} ${text(d.quantity)} ${text(d.unit)}`)
      .join('; '),
  ];
}

export default traceRoutes;
