import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../../deps';
import { ProblemSchema } from '../../../infra/http/schemas';
import { ProblemError, httpProblem } from '../../../infra/http/problem-details';

const healthRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  app.get('/health', {
    schema: {
      summary: 'Liveness and database reachability',
      tags: ['health'],
      response: { 200: z.object({ status: z.literal('ok') }), 503: ProblemSchema },
    },
    handler: async () => {
      try {
        await deps.pool.query('SELECT 1');
      } catch {
        throw new ProblemError(httpProblem(503, 'database unreachable'));
      }
      return { status: 'ok' as const };
    },
  });
};

export default healthRoutes;
