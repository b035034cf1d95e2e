import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ApiDeps } from '../../deps';
import { registerHealthRoute } from '../../../infra/observability/health-route';

const healthRoutes: FastifyPluginAsyncZod<{ deps: ApiDeps }> = async (app, { deps }) => {
  registerHealthRoute(
    app,
    deps.healthChecks,
    'PostgreSQL (required: inspections are stored there) and Temporal (reported, not required: while it is down ' +
      'the outbox keeps the workflow starts and ingest goes on).',
  );
};

export default healthRoutes;
