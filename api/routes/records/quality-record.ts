import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { RouteAccess } from '../../../infra/identity/access';
import { authorizeSite } from '../../../infra/identity/route-access';
import { ProblemError, notFound, validationProblem } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { Identifier } from '../../../infra/ingest/inspection.schema';
import type { ApiDeps } from '../../deps';
import { lotCasesOf } from '../../repositories/lot-case.repository';
import type { SignatureView } from '../../schemas/disposition.schema';
import { verifiedSignatures } from '../../services/e-signature.service';
import { toCsv } from '../../support/csv';
import { escapeHtml, htmlTable, htmlToPdf, printablePage } from '../../support/printable';
import { READERS } from '../../support/access';

const qualityReaders: RouteAccess = { roles: READERS, machine: ['lots:read'] };

interface InspectionEntry {
  eventId: string;
  partId: string;
  workOrder: string;
  /** The vision recipe, the nearest thing Holdfast has to the control plan revision the inspection followed. */
  recipeVersion: string;
  modelVersion: string;
  line: string;
  station: string;
  inspectedAt: string;
  result: string;
  defects: { class: string; score: number }[];
}

interface DecisionEntry {
  decision: string;
  reason: string;
  decidedBy: string;
  signatures: SignatureView[];
}

interface CaseEntry {
  workflowId: string;
  stage: string;
  holdId: string | null;
  notification: string | null;
  openedAt: string;
  closedAt: string | null;
  decision: DecisionEntry | null;
  disposition: DecisionEntry | null;
}

export interface LotQualityRecord {
  site: string;
  lotId: string;
  generatedAt: string;
  inspections: InspectionEntry[];
  cases: CaseEntry[];
}

const ParamsSchema = z.strictObject({ lotId: Identifier });
const QuerySchema = z.strictObject({
  site: Identifier.optional().describe('required when the lot id is known at more than one site'),
  format: z.enum(['json', 'csv', 'html', 'pdf']).default('json'),
});

async function readRecord(deps: ApiDeps, site: string, lotId: string): Promise<LotQualityRecord> {
  const { rows } = await deps.pool.query<InspectionEntry>(
    `SELECT event_id AS "eventId", part_id AS "partId", work_order AS "workOrder", recipe_version AS "recipeVersion",
            model_version AS "modelVersion", line, station, to_char(inspected_at AT TIME ZONE 'UTC',
            'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "inspectedAt", result, defects
       FROM holdfast.inspection WHERE site = $1 AND lot_id = $2 ORDER BY inspected_at, event_id`,
    [site, lotId],
  );
  const cases = await Promise.all(
    (await lotCasesOf(deps.pool, site, lotId)).map(async (c): Promise<CaseEntry> => {
      const place = { site, lotId, lotCaseWorkflowId: c.workflowId };
      const signed = async (field: 'decision' | 'disposition'): Promise<DecisionEntry | null> => {
        const recorded = c.state[field] as Parameters<typeof verifiedSignatures>[2] | undefined;
        if (!recorded || typeof recorded !== 'object') return null;
        return {
          decision: String(recorded.decision),
          reason: String(recorded.reason),
          decidedBy: String(recorded.decidedBy),
          signatures: await verifiedSignatures(deps, place, recorded),
        };
      };
      return {
        workflowId: c.workflowId,
        stage: c.stage,
        holdId: c.holdId ?? null,
        notification: c.notification ?? null,
        openedAt: c.openedAt,
        closedAt: c.closedAt ?? null,
        decision: await signed('decision'),
        disposition: await signed('disposition'),
      };
    }),
  );
  return { site, lotId, generatedAt: new Date().toISOString(), inspections: rows, cases };
}

const CSV_COLUMNS = ['kind', 'id', 'time', 'work_order', 'recipe', 'model', 'line', 'station', 'result', 'detail'];

/** One row per inspection, per nonconformance and per signature, so an auditor can sort and filter them together. */
export function qualityRecordCsv(record: LotQualityRecord): string {
  const rows: string[][] = [CSV_COLUMNS];
  for (const i of record.inspections) {
    const defects = i.defects.map((d) => `${d.class} ${d.score}`).join('; ');
    rows.push([
      'inspection',
      i.eventId,
      i.inspectedAt,
      i.workOrder,
      i.recipeVersion,
      i.modelVersion,
      i.line,
      i.station,
      i.result,
      defects,
    ]);
  }
  for (const c of record.cases) {
    rows.push([
      'nonconformance',
      c.workflowId,
      c.openedAt,
      '',
      '',
      '',
      '',
      '',
      c.stage,
      c.disposition?.decision ?? c.decision?.decision ?? '',
    ]);
    for (const d of [c.decision, c.disposition]) {
      for (const s of d?.signatures ?? []) {
        rows.push([
          'signature',
          s.signatureId,
          s.signedAt,
          '',
          '',
          '',
          '',
          '',
          s.valid ? 'valid' : 'INVALID',
          `${s.signer.name} (${s.meaning})`,
        ]);
      }
    }
  }
  return toCsv(rows);
}

/** The printable record: every signature with its signer's printed name, time and meaning (21 CFR 11.50). */
export function qualityRecordHtml(record: LotQualityRecord): string {
  const e = escapeHtml;
  const inspections = htmlTable(
    ['Time', 'Part', 'Work order', 'Recipe', 'Model', 'Station', 'Result', 'Defects'],
    record.inspections.map((i) => [
      i.inspectedAt,
      i.partId,
      i.workOrder,
      i.recipeVersion,
      i.modelVersion,
      `${i.line}/${i.station}`,
      i.result,
      i.defects.map((d) => `${d.class} ${d.score}`).join(', '),
    ]),
  );
  const decision = (title: string, d: DecisionEntry | null) =>
    d === null
      ? ''
      : `<h3>${e(title)}: ${e(d.decision)}</h3><p>${e(d.reason)} (decided by ${e(d.decidedBy)})</p><ul>` +
        d.signatures
          .map(
            (s) =>
              `<li>Signed by ${e(s.signer.name)} on ${e(s.signedAt)}, meaning: ${e(s.meaning)} — ` +
              `${s.valid ? 'signature verified' : `SIGNATURE INVALID${s.problem ? `: ${e(s.problem)}` : ''}`}</li>`,
          )
          .join('') +
        '</ul>';
  const cases = record.cases
    .map(
      (c) =>
        `<section><h2>Nonconformance ${e(c.workflowId)}</h2><p>Stage ${e(c.stage)}; opened ${e(c.openedAt)}` +
        `${c.closedAt ? `; closed ${e(c.closedAt)}` : ''}${c.holdId ? `; hold ${e(c.holdId)}` : ''}` +
        `${c.notification ? `; notification ${e(c.notification)}` : ''}</p>` +
        decision('Decision', c.decision) +
        decision('Disposition', c.disposition) +
        '</section>',
    )
    .join('');
  return printablePage(
    `Lot quality record ${record.lotId}`,
    `<h1>Lot quality record: lot ${e(record.lotId)} at ${e(record.site)}</h1>` +
      `<p>Generated ${e(record.generatedAt)}. ${record.inspections.length} inspections, ${record.cases.length} ` +
      `nonconformances.</p><h2>Inspections</h2>${inspections}${cases}`,
  );
}

const qualityRecordRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/v1/lots/:lotId/quality-record', {
    config: { access: qualityReaders },
    schema: {
      summary: 'Lot quality record: every inspection and every nonconformance with its disposition and signatures',
      description:
        'For IATF 16949 and AS9100 audits. JSON (default), CSV, HTML or PDF (`format`). Signatures are verified on ' +
        'every read. The recipe version stands for the control plan revision.',
      tags: ['lots', 'records'],
      params: ParamsSchema,
      querystring: QuerySchema,
      response: { 200: z.unknown(), 400: ProblemSchema, 403: ProblemSchema, 404: ProblemSchema },
    },
    handler: async (request, reply) => {
      const { lotId } = request.params;
      const { site: asked, format } = request.query;
      const { rows } = await deps.pool.query<{ site: string }>(
        `SELECT site FROM holdfast.inspection WHERE lot_id = $1 AND ($2::text IS NULL OR site = $2)
         UNION SELECT site FROM holdfast.lot_case WHERE lot_id = $1 AND ($2::text IS NULL OR site = $2) ORDER BY 1`,
        [lotId, asked ?? null],
      );
      const [first, second] = rows;
      if (!first) throw notFound(`lot ${lotId} has no inspections${asked ? ` at site ${asked}` : ''}`);
      if (second) {
        throw new ProblemError(
          validationProblem([
            { field: 'querystring.site', message: 'required: this lot id is known at more than one site' },
          ]),
        );
      }
      authorizeSite(request, { site: first.site });
      const record = await readRecord(deps, first.site, lotId);
      const untyped: FastifyReply = reply;
      switch (format) {
        case 'csv':
          return untyped.type('text/csv; charset=utf-8').send(qualityRecordCsv(record));
        case 'html':
          return untyped.type('text/html; charset=utf-8').send(qualityRecordHtml(record));
        case 'pdf':
          return untyped.type('application/pdf').send(await htmlToPdf(qualityRecordHtml(record)));
        default:
          return record;
      }
    },
  });
};

export default qualityRecordRoutes;
