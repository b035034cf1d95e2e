import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { fastifyLogging } from '../infra/observability/fastify-logging';
import type { Logger } from '../infra/observability/logger';
import type { ApiDeps } from './deps';
import { registerOpenApi } from '../infra/http/openapi';
import { registerProblemHandlers } from '../infra/http/problem-details';
import defectRoutes from './routes/defects';
import healthRoutes from './routes/health';
import inspectionRoutes from './routes/inspections';
import lotRoutes from './routes/lots';
import stationRoutes from './routes/stations';

export type { ApiDeps } from './deps';

export interface BuildAppOptions extends ApiDeps {
  /** The process's logger (api/server.ts); tests leave it out and the app logs nothing. */
  logger?: Logger;
  /** Serve the Swagger UI at /docs (api/server.ts does); /docs/json is always served. */
  docsUi?: boolean;
}

/** Builds the app without listening: tests call this and use app.inject; api/server.ts listens. */
export async function buildApp(deps: BuildAppOptions): Promise<FastifyInstance> {
  const { logger, docsUi = false, ...routeDeps } = deps;
  const app = Fastify({ ...fastifyLogging(logger), bodyLimit: deps.config.api.bodyLimitBytes });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);
  await registerOpenApi(app, { ui: docsUi });

  const opts = { deps: routeDeps };
  await app.register(healthRoutes, opts);
  await app.register(inspectionRoutes, opts);
  await app.register(defectRoutes, opts);
  await app.register(lotRoutes, opts);
  await app.register(stationRoutes, opts);
  return app;
}
