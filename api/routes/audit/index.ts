import type { FastifyReply } from 'fastify';
import type { RouteAccess } from '../../../infra/identity/access';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { AuditRecord } from '../../../infra/audit/audit-record';
import { canonicalJson } from '../../../infra/ingest/canonical-json';
import { ProblemSchema } from '../../../infra/http/schemas';
import type { ApiDeps } from '../../deps';
import { listAuditRecords } from '../../repositories/audit.repository';
import { AUDIT_PAGE_MAX, AuditPageSchema, AuditQuerySchema } from '../../schemas/audit.schema';
import { prefersCsv, toCsv } from '../../support/csv';

/** Who may read the audit trail: auditors (and admins), never a machine key. */
const auditorsOnly: RouteAccess = { roles: ['auditor'] };

const CSV_COLUMNS = [
  'seq',
  'at',
  'actor_kind',
  'actor_id',
  'actor_display_name',
  'actor_address',
  'action',
  'record_type',
  'record_id',
  'old',
  'new',
  'reason',
  'outcome',
  'detail',
  'prev_hash',
  'hash',
  'content',
];

const auditRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/audit', {
    config: { access: auditorsOnly },
    schema: {
      summary: 'The audit trail: every create and change of Holdfast records, with who, what, when and why',
      description:
        'Filter by record, actor and time ([from, to)); pages in sequence order, at most ' +
        `${AUDIT_PAGE_MAX} records, the next page by \`after\` (also in the \`Link\` header). JSON (default) or CSV ` +
        '(`format=csv` or `Accept: text/csv`, RFC 4180). Each JSON record is the stored content with `prevHash` and ' +
        '`hash`: hash = sha256(prevHash + canonical JSON of the record without the two), so a copy is checked ' +
        'without the database; the CSV carries that exact text in its `content` column.',
      tags: ['audit'],
      querystring: AuditQuerySchema,
      response: { 200: AuditPageSchema, 400: ProblemSchema },
    },
    handler: async (request, reply) => {
      const { after, limit, format, ...filter } = request.query;
      const page = await listAuditRecords(deps.pool, { ...filter, after: after ? Number(after) : 0, limit });
      if (page.next !== null) {
        const next = new URL(request.url, 'http://holdfast');
        next.searchParams.set('after', page.next);
        reply.header('link', `<${next.pathname}${next.search}>; rel="next"`);
      }
      // Pre-serialised: the records leave exactly as stored, not re-shaped by the response schema (which documents
      // them); fastify sends a string as it is.
      const untyped: FastifyReply = reply;
      if (format === 'csv' || (format === undefined && prefersCsv(request.headers.accept))) {
        return untyped.type('text/csv; charset=utf-8').send(toCsv([CSV_COLUMNS, ...page.records.map(csvRow)]));
      }
      return untyped.type('application/json; charset=utf-8').send(JSON.stringify(page));
    },
  });
};

function csvRow(record: AuditRecord): string[] {
  const { prevHash, hash, ...content } = record;
  const json = (value: unknown) => canonicalJson(value);
  return [
    String(record.seq),
    record.at,
    record.actor.kind,
    record.actor.id,
    record.actor.displayName ?? '',
    record.actor.address ?? '',
    record.action,
    record.recordType,
    record.recordId,
    json(record.old),
    json(record.new),
    record.reason ?? '',
    record.outcome,
    json(record.detail),
    prevHash,
    hash,
    canonicalJson(content),
  ];
}

export default auditRoutes;
