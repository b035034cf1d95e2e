/**
 * The API process: the only file that listens. Loads temporal.yaml, migrates PostgreSQL, connects to Temporal,
 * runs the outbox dispatcher beside the HTTP server and closes everything in reverse order on SIGTERM/SIGINT.
 *
 * Temporal being unreachable at start does not stop the API: inspections are stored (the outbox holds their
 * workflow starts) while the connection is retried in the background.
 *
 * GET /metrics (Prometheus) and GET /health are served on the API's port (docs/operations.md); tracing is on when an
 * OTLP endpoint is configured (infra/observability/tracing.ts). The audit chain's head is anchored to a file in the
 * data directory every `audit.anchorInterval` (docs/audit-trail.md#anchors).
 *
 * Env: DATABASE_URL (required), API_PORT (overrides api.port), HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS (overrides
 * api.dashboard.healthEndpoints), HOLDFAST_CONFIG, HOLDFAST_DATA_DIR, TEMPORAL_*
 * (infra/temporal/connection), HOLDFAST_PAYLOAD_KEYS and HOLDFAST_PAYLOAD_KEY_ID (infra/temporal/payload-codec),
 * OTEL_EXPORTER_OTLP_ENDPOINT.
 */
import { writeFile } from 'node:fs/promises';
import type { Connection } from '@temporalio/client';
import { auditAnchorFile, startAuditAnchoring } from '../infra/audit/audit-anchor';
import { parseDurationMs } from '../infra/config/duration';
import { loadConfig, withDashboardHealthEndpoints } from '../infra/config/load';
import { migrate } from '../infra/db/migrate';
import { createPool } from '../infra/db/pool';
import { syncSiteShifts } from '../infra/analytics/shift-calendar';
import { createLogger } from '../infra/observability/logger';
import { HealthCheckError } from '../infra/observability/health-checks';
import { createProcessRegistry } from '../infra/observability/http-metrics';
import { createAnchorMetrics } from '../infra/observability/audit-metrics';
import { registerLotCaseGauge } from '../infra/observability/lot-case-metrics';
import { createOutboxMetrics } from '../infra/observability/outbox-metrics';
import { startTracingFromConfig } from '../infra/observability/tracing';
import { startOutboxDispatcher } from '../infra/outbox/dispatcher';
import { createDeferredSupplierControl, createTemporalSupplierControl } from '../infra/temporal/supplier-control';
import { connectClient, describeTarget, resolveTemporalTarget } from '../infra/temporal/connection';
import { createDeferredWorkflowGateway, createTemporalWorkflowGateway } from '../infra/temporal/gateway';
import { createDeferredChangeoverControl, createTemporalChangeoverControl } from '../infra/temporal/changeover-starter';
import { holdfastDataConverter, holdfastPayloadCodec } from '../infra/temporal/payload-codec';
import { createAccounts } from '../infra/identity/accounts';
import { loadOrCreateSigningKey, signatureKeyFile, signingKeyFile } from '../infra/identity/signing-key';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { buildApp } from './app';
import { uiBundle } from './support/ui-bundle';
import { closeApp } from '../infra/http/close-app';

const TEMPORAL_RETRY_MAX_MS = 30_000;
const logger = createLogger('api');

async function main(): Promise<void> {
  const config = withDashboardHealthEndpoints(loadConfig());
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (postgres://user:password@host:port/database)');
  const port = process.env.API_PORT ? Number(process.env.API_PORT) : config.api.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`API_PORT is not a port: ${process.env.API_PORT}`);
  }

  const pool = createPool(databaseUrl, { applicationName: 'holdfast-api' });
  const applied = await migrate(pool);
  if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  // The shift calendars the aggregates count by (docs/analytics.md#first-pass-yield), as temporal.yaml has them now.
  if (await syncSiteShifts(pool, config))
    logger.info({ sites: config.sites.map((s) => s.id) }, 'shift calendars synced');
  const target = resolveTemporalTarget(config);
  const payloadCodec = holdfastPayloadCodec();
  const dataConverter = holdfastDataConverter(payloadCodec);
  const deferred = createDeferredWorkflowGateway();
  const gateway = deferred.gateway;
  const changeovers = createDeferredChangeoverControl();
  const suppliers = createDeferredSupplierControl();
  const tracing = startTracingFromConfig(config, 'holdfast-api');
  const metrics = createProcessRegistry();
  registerLotCaseGauge(metrics, pool);

  let stopping = false;
  let connection: Connection | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  const temporalCheck = {
    name: 'temporal',
    // Not required: ingest goes on without Temporal (the outbox keeps the starts), so the API stays in service.
    required: false,
    async check() {
      if (!connection) throw new HealthCheckError('not connected yet (retrying in the background)');
      await connection.workflowService.getSystemInfo({});
    },
  };
  const signingKey = await loadOrCreateSigningKey(signingKeyFile(config));
  const signatureKey = await loadOrCreateSigningKey(signatureKeyFile(config));
  const app = await buildApp({
    pool,
    signingKey,
    signatureKey,
    gateway,
    changeovers: changeovers.control,
    suppliers: suppliers.control,
    config,
    namespace: target.namespace,
    logger,
    docsUi: true,
    metrics,
    healthChecks: [temporalCheck],
    tracing: tracing !== undefined,
    payloadCodec,
  });
  const anchoring = startAuditAnchoring({
    pool,
    file: auditAnchorFile(config),
    intervalMs: parseDurationMs(config.audit.anchorInterval),
    log: app.log,
    observer: createAnchorMetrics(metrics),
  });
  const dispatcher = startOutboxDispatcher({
    pool,
    gateway,
    config,
    log: app.log,
    observer: createOutboxMetrics(metrics, pool),
  });

  const connectTemporal = async (attempt: number): Promise<void> => {
    try {
      const connected = await connectClient(target, { dataConverter, interceptors: tracing?.clientInterceptors });
      if (stopping) {
        await connected.connection.close();
        return;
      }
      connection = connected.connection;
      deferred.connect(createTemporalWorkflowGateway(connected.client, { taskQueue: config.taskQueues.quality }));
      changeovers.connect(
        createTemporalChangeoverControl(connected.client, config, { taskQueue: config.taskQueues.quality }),
      );
      suppliers.connect(createTemporalSupplierControl(connected.client, { taskQueue: config.taskQueues.quality }));
      app.log.info({ temporal: describeTarget(target) }, 'connected to Temporal');
    } catch (err) {
      if (stopping) return;
      const retryInMs = Math.min(TEMPORAL_RETRY_MAX_MS, 1_000 * 2 ** attempt);
      app.log.warn({ err, temporal: describeTarget(target), retryInMs }, 'Temporal unreachable; ingest continues');
      retryTimer = setTimeout(() => void connectTemporal(attempt + 1), retryInMs);
    }
  };
  void connectTemporal(0);

  let closing: Promise<void> | undefined;
  const shutdown = (signal: NodeJS.Signals) => {
    closing ??= (async () => {
      app.log.info({ signal }, 'shutting down');
      stopping = true;
      clearTimeout(retryTimer);
      // Stop taking work first: the dispatcher finishes its batch, the app drains in-flight requests.
      await dispatcher.stop();
      await closeApp(app);
      // After the last request, so the records of this run's last requests are anchored too.
      await anchoring.stop();
      await pool.end();
      await connection?.close();
      await tracing?.shutdown();
    })().then(
      () => process.exit(0),
      (err: unknown) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  await app.listen({ host: config.api.host, port });
  // The first start's only way in: printed once, to the console that started it (docs/identity.md#first-start).
  const firstPassword = config.identity.local.enabled
    ? await createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 1, lockForMs: 0 }).ensureFirstAdmin()
    : undefined;
  if (firstPassword) {
    app.log.warn(`first start: sign in as admin with password ${firstPassword} (shown once; docs/identity.md)`);
    // `npm start` only (it names the file, in its data directory): its banner shows the demo's way in on every start.
    const keepIn = process.env.HOLDFAST_FIRST_ADMIN_PASSWORD_FILE;
    if (keepIn) await writeFile(keepIn, `${firstPassword}\n`, { mode: 0o600 });
  }
  // The dashboard's bundle is built now, not by the first person who opens the page.
  uiBundle().catch((err: unknown) => app.log.error({ err }, 'dashboard bundle failed to build; /ui will retry'));
  app.log.info(
    `Holdfast API on http://${config.api.host}:${port} (docs at /docs, metrics at /metrics, health at /health)` +
      (tracing ? '; tracing on' : ''),
  );
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'api failed to start');
  process.exit(1);
});
