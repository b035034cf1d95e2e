import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../../deps';
import { ProblemError, problemType } from '../../../infra/http/problem-details';
import { ProblemSchema } from '../../../infra/http/schemas';
import { IngestResponseSchema, inspectionBodySchema } from '../../../infra/ingest/inspection.schema';
import { ingestInspections } from '../../../infra/ingest/ingest.service';
import type { IngestRefusal } from '../../../infra/observability/ingest-metrics';

const inspectionRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.post('/v1/inspections', {
    config: {
      access: { roles: ['integrator'], machine: ['inspections:write'] },
      // Every result of a batch: a station's key may post only its own station's.
      accessTargets: (request) => {
        const body = request.body as { results?: InspectionTarget[] } & InspectionTarget;
        return (body.results ?? [body]).map(({ site, line, station }) => ({ site, line, station }));
      },
    },
    schema: {
      summary: 'Store inspection results (one, or a batch of up to api.maxBatch)',
      description:
        'Each result is stored before the answer, the whole batch in one transaction. Each failed result goes to ' +
        "its lot's case (a shadow station's to a shadow workflow) through the outbox. Re-sent eventIds with the same " +
        'payload are reported as duplicates; with a different payload the whole batch is refused with 409.',
      tags: ['inspections'],
      body: inspectionBodySchema(deps.config),
      response: { 202: IngestResponseSchema, 400: ProblemSchema, 409: ProblemSchema, 413: ProblemSchema },
    },
    // Every refusal counted here, validation's included (it answers before the handler runs).
    onResponse: async (request, reply) => {
      const reason = refusalFor(reply.statusCode);
      if (reason) deps.ingestMetrics.refused(reason, resultsIn(request.body));
    },
    handler: async (request, reply) => {
      const results = 'results' in request.body ? request.body.results : [request.body];
      const outcome = await ingestInspections(deps.pool, deps.config, results);
      if (outcome.kind === 'stored') {
        deps.ingestMetrics.stored(
          results,
          outcome.response.results.map((r) => r.status),
        );
      }
      if (outcome.kind === 'conflict') {
        throw new ProblemError({
          type: problemType('event-payload-conflict'),
          title: 'Event id re-sent with a different payload',
          status: 409,
          detail: `eventIds already stored with a different payload: ${outcome.eventIds.join(', ')}; nothing was stored`,
          conflicts: outcome.eventIds,
        });
      }
      return reply.code(202).send(outcome.response);
    },
  });
};

interface InspectionTarget {
  site: string;
  line: string;
  station: string;
}

function refusalFor(statusCode: number): IngestRefusal | undefined {
  if (statusCode === 400) return 'invalid';
  if (statusCode === 409) return 'payload-conflict';
  if (statusCode === 413) return 'too-large';
  if (statusCode === 415) return 'unsupported-media-type';
  return statusCode >= 500 ? 'unavailable' : undefined;
}

/** How many results a refused request carried; one when its body was not read (too large, not JSON). */
function resultsIn(body: unknown): number {
  const results = (body as { results?: unknown } | null | undefined)?.results;
  return Array.isArray(results) ? results.length : 1;
}

export default inspectionRoutes;
