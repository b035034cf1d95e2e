import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { fastifyLogging } from '../infra/observability/fastify-logging';
import type { Logger } from '../infra/observability/logger';
import { Registry } from 'prom-client';
import type { ApiDeps } from './deps';
import { recordRoutes, registerOpenApi } from '../infra/http/openapi';
import { problemServerOptions, registerProblemHandlers } from '../infra/http/problem-details';
import { registerSecurityHeaders } from '../infra/http/security-headers';
import { registerRateLimit } from '../infra/http/rate-limit';
import { type HealthCheck, postgresCheck } from '../infra/observability/health-checks';
import { exposeMetrics } from '../infra/observability/http-metrics';
import { createIngestMetrics } from '../infra/observability/ingest-metrics';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { createAuditMetrics } from '../infra/observability/audit-metrics';
import { traceRequests } from '../infra/observability/trace-context';
import { createAccounts } from '../infra/identity/accounts';
import { createAuthenticator } from '../infra/identity/authenticate';
import { enforceRouteAccess } from '../infra/identity/route-access';
import { type SigningKey, generateSigningKey } from '../infra/identity/signing-key';
import { parseDurationMs } from '../infra/config/duration';
import auditRoutes from './routes/audit';
import codecRoutes from './routes/codec';
import authRoutes from './routes/auth';
import defectRoutes from './routes/defects';
import healthRoutes from './routes/health';
import inspectionRoutes from './routes/inspections';
import lotRoutes from './routes/lots';
import recordsRoutes from './routes/records';
import stationRoutes from './routes/stations';
import traceRoutes from './routes/trace';
import recallRoutes from './routes/recalls';
import qualityRoutes from './routes/quality';
import adviceRoutes from './routes/advice';
import erpFeedRoutes from './routes/erp-feed';
import { createErpFeedStore } from '../infra/erp-feed/erp-feed-store';
import { registerErpFeedMetrics } from '../infra/observability/erp-feed-metrics';
import suppliersRoutes from './routes/suppliers';
import lineRoutes from './routes/lines';
import metricsRoutes from './routes/metrics';
import qualityRuleRoutes from './routes/quality-rules';
import meRoutes from './routes/me';
import uiRoutes from './routes/ui';
import dashboardRoutes from './routes/dashboard';

export type { ApiDeps } from './deps';

export interface BuildAppOptions extends Omit<
  ApiDeps,
  'ingestMetrics' | 'healthChecks' | 'audit' | 'accounts' | 'signatureKey'
> {
  /** Holdfast's token key (infra/identity/signing-key.ts): signs local sign-ins, verifies people's local tokens. */
  signingKey: SigningKey;
  /**
   * Seals electronic signatures (api/server.ts passes the data directory's). Tests may leave it out: the app makes one
   * in memory, whose signatures verify only while that app lives.
   */
  signatureKey?: SigningKey;
  /** The process's logger (api/server.ts); tests leave it out and the app logs nothing. */
  logger?: Logger;
  /** Serve the Swagger UI at /docs (api/server.ts does); /docs/json is always served. */
  docsUi?: boolean;
  /** Served at GET /metrics with the API's own series added. Default: a registry of its own. */
  metrics?: Registry;
  /** Checked by GET /health after PostgreSQL (api/server.ts adds Temporal). */
  healthChecks?: readonly HealthCheck[];
  /** A server span per request (tracing is on in this process: infra/observability/tracing.ts). */
  tracing?: boolean;
}

/** Builds the app without listening: tests call this and use app.inject; api/server.ts listens. */
export async function buildApp(deps: BuildAppOptions): Promise<FastifyInstance> {
  const { logger, docsUi = false, metrics = new Registry(), healthChecks = [], tracing, ...routeDeps } = deps;
  const signatureKey = deps.signatureKey ?? (await generateSigningKey());
  const app = Fastify({
    ...fastifyLogging(logger),
    ...problemServerOptions,
    bodyLimit: deps.config.api.bodyLimitBytes,
  });
  recordRoutes(app);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerProblemHandlers(app);
  await registerSecurityHeaders(app);
  const audit = createAuditTrail(deps.pool, createAuditMetrics(metrics));
  const { local } = deps.config.identity;
  const accounts = createAccounts(deps.pool, audit, {
    maxFailedSignIns: local.maxFailedSignIns,
    lockForMs: parseDurationMs(local.lockFor),
  });
  // Before any route: the onRoute check sees every route, the OpenAPI document's and the metrics' included.
  enforceRouteAccess(app, {
    authenticator: createAuthenticator({ identity: deps.config.identity, signingKey: deps.signingKey, accounts }),
    publicPrefixes: ['/docs'],
  });
  // After the access hooks, so that limits count per identity; before any route, so that every route has one.
  await registerRateLimit(app, deps.config.api.rateLimit);
  if (tracing) traceRequests(app);
  exposeMetrics(app, metrics);
  registerErpFeedMetrics(metrics, deps.config, createErpFeedStore(deps.pool, deps.config));
  await registerOpenApi(app, { ui: docsUi });

  const opts = {
    deps: {
      ...routeDeps,
      ingestMetrics: createIngestMetrics(metrics, 'api'),
      healthChecks: [postgresCheck(deps.pool), ...healthChecks],
      audit,
      accounts,
      signatureKey,
    },
  };
  await app.register(healthRoutes, opts);
  await app.register(authRoutes, opts);
  await app.register(inspectionRoutes, opts);
  await app.register(defectRoutes, opts);
  await app.register(lotRoutes, opts);
  await app.register(stationRoutes, opts);
  await app.register(auditRoutes, opts);
  await app.register(traceRoutes, opts);
  await app.register(recordsRoutes, opts);
  await app.register(recallRoutes, opts);
  await app.register(qualityRoutes, opts);
  await app.register(adviceRoutes, opts);
  await app.register(erpFeedRoutes, opts);
  await app.register(suppliersRoutes, opts);
  await app.register(lineRoutes, opts);
  await app.register(metricsRoutes, opts);
  await app.register(qualityRuleRoutes, opts);
  await app.register(meRoutes, opts);
  await app.register(uiRoutes, opts);
  await app.register(dashboardRoutes, { ...opts, metrics });
  const { payloadCodec } = opts.deps;
  if (payloadCodec) await app.register(codecRoutes, { deps: { ...opts.deps, payloadCodec } });
  return app;
}
