import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { ProblemSchema } from '../http/schemas';
import { type HealthCheck, healthAnswer, runHealthChecks } from './health-checks';

const ChecksSchema = z.record(z.string(), z.object({ ok: z.boolean(), required: z.boolean(), detail: z.string() }));

/** GET /health on a fastify edge (the API, the inference worker): the shared answer, documented in OpenAPI. */
export function registerHealthRoute(app: FastifyInstance, checks: readonly HealthCheck[], description: string): void {
  app.withTypeProvider<ZodTypeProvider>().get('/health', {
    // Load balancers and orchestrators probe it without credentials; it names dependencies, not data.
    config: { access: 'public' },
    schema: {
      summary: 'Which dependencies are up',
      description: `${description} 503 while a required one is down.`,
      tags: ['health'],
      response: {
        200: z.object({ status: z.literal('ok'), checks: ChecksSchema }),
        503: ProblemSchema.extend({ checks: ChecksSchema }),
      },
    },
    handler: async (_request, reply) => {
      const answer = healthAnswer(await runHealthChecks(checks));
      reply.type(answer.contentType);
      return answer.statusCode === 200 ? reply.code(200).send(answer.body) : reply.code(503).send(answer.body);
    },
  });
}
