import { Client } from '@temporalio/client';
import { Runtime, type Worker } from '@temporalio/worker';
import { createActivities } from '../activities';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import type { ConnectorLogger } from '../infra/connectors/define';
import { createPool } from '../infra/db/pool';
import { type ConnectorObserver, createConnectorObserver } from '../infra/observability/connector-metrics';
import { type HealthCheck, HealthCheckError, postgresCheck } from '../infra/observability/health-checks';
import { createProcessRegistry } from '../infra/observability/http-metrics';
import { startObservabilityServer, type ObservabilityServer } from '../infra/observability/observability-server';
import { oncePerScrape } from '../infra/observability/scrape';
import { startTracingFromConfig } from '../infra/observability/tracing';
import { connectNative, resolveTemporalTarget } from '../infra/temporal/connection';
import { createTemporalLotCaseStarter } from '../infra/temporal/gateway';
import { openSiteConnectors, type SiteConnectors } from './connectors';
import { createQualityWorkers } from './quality-workers';

const log: ConnectorLogger = {
  info: (msg, meta) => console.log(msg, meta ?? ''),
  warn: (msg, meta) => console.warn(msg, meta ?? ''),
  error: (msg, meta) => console.error(msg, meta ?? ''),
};

/**
 * The worker process: load config → open connectors → build activities → one Worker per pool → run until
 * SIGINT/SIGTERM (the Temporal runtime drains in-flight tasks) → close everything it opened, in reverse.
 *
 * Observability (docs/operations.md): GET /metrics and GET /health on `observability.worker.port`, the Temporal
 * SDK's own Prometheus series on `observability.worker.temporalSdkPort`, tracing when an OTLP endpoint is configured.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const target = resolveTemporalTarget(config);
  const endpoints = config.observability.worker;
  // Before any connection: the SDK's exporter belongs to the runtime, which the first connection would create bare.
  try {
    Runtime.install({
      telemetryOptions: {
        metrics: {
          metricPrefix: 'temporal_',
          prometheus: {
            bindAddress: `${endpoints.host}:${endpoints.temporalSdkPort}`,
            // Prometheus' conventions, as Holdfast's own series follow them: base units and _total on counters.
            countersTotalSuffix: true,
            unitSuffix: true,
            useSecondsForDurations: true,
          },
        },
      },
    });
  } catch (err) {
    throw new Error(`observability.worker.temporalSdkPort ${endpoints.temporalSdkPort}: ${(err as Error).message}`);
  }
  const tracing = startTracingFromConfig(config, 'holdfast-worker');
  const metrics = createProcessRegistry();
  const connectorObserver = createConnectorObserver(metrics);
  const pool = createPool(databaseUrl);
  const connectors = await openSiteConnectors(config, log, process.env, connectorObserver.observe);
  const connection = await connectNative(target);
  let server: ObservabilityServer | undefined;
  try {
    let workers: Worker[] = [];
    // Up before the Workers (bundling the workflows takes a while): /health says they are starting meanwhile.
    server = await startObservabilityServer({
      host: endpoints.host,
      port: endpoints.port,
      registry: metrics,
      health: [
        {
          name: 'temporal',
          async check() {
            if (workers.length === 0) throw new HealthCheckError('workers starting');
            const stopped = workers.filter((w) => w.getState() !== 'RUNNING').map((w) => w.getState());
            if (stopped.length > 0) throw new HealthCheckError(`worker not running (${stopped.join(', ')})`);
            await connection.workflowService.getSystemInfo({});
            return `${target.address}, ${workers.length} worker(s) running`;
          },
        },
        { ...postgresCheck(pool), required: false },
        ...connectorChecks(config, connectors, connectorObserver),
      ],
    }).catch((err: Error) => {
      throw new Error(`observability.worker.port ${endpoints.port}: ${err.message}`);
    });
    const client = new Client({
      connection,
      namespace: target.namespace,
      ...(tracing ? { interceptors: tracing.clientInterceptors } : {}),
    });
    const activities = createActivities({
      pool,
      mesFor: connectors.mesFor,
      erpFor: connectors.erpFor,
      escalationFor: connectors.escalationFor,
      lotCases: createTemporalLotCaseStarter(client),
    });
    workers = await createQualityWorkers({
      config,
      connection,
      namespace: target.namespace,
      activities,
      ...(tracing ? { tracing: tracing.workerOptions } : {}),
    });
    // infra/local/start.ts waits for this exact line before starting the API.
    console.log(
      'worker ready',
      JSON.stringify({
        pools: config.workerPools.map((p) => p.taskQueue),
        pid: process.pid,
        metrics: `${server.url}/metrics`,
        health: `${server.url}/health`,
        ...(endpoints.temporalSdkPort !== 0
          ? { temporalSdkMetrics: `http://${endpoints.host}:${endpoints.temporalSdkPort}/metrics` }
          : {}),
        tracing: tracing !== undefined,
      }),
    );
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    await server?.close();
    await connection.close();
    await connectors.close();
    await pool.end();
    await tracing?.shutdown();
  }
}

/** What the opened set of connectors answers for its health, once it has such a method: name → result. */
type ConnectorHealth = () => Promise<Record<string, { ok: boolean; detail?: string }>>;

/**
 * One check per MES and ERP connector, reported but not required: a worker restart would not bring a MES back, and
 * activities retry meanwhile. The seam: when the opened set offers `health()` (each connector's own health check)
 * it is asked; until then the checks are passive, from the latest call each connector's wrapper saw.
 */
function connectorChecks(
  config: HoldfastConfig,
  connectors: SiteConnectors,
  observer: ConnectorObserver,
): HealthCheck[] {
  const names = [...new Set(config.sites.flatMap((s) => [s.mes, s.erp]))];
  const health = (connectors as SiteConnectors & { health?: ConnectorHealth }).health?.bind(connectors);
  if (health) {
    const probe = oncePerScrape(health);
    return names.map((name) => ({
      name: `connector:${name}`,
      required: false,
      async check() {
        const result = (await probe())?.[name];
        if (!result) throw new HealthCheckError('no answer from its health check');
        if (!result.ok) throw new HealthCheckError(result.detail ?? 'down');
        return result.detail;
      },
    }));
  }
  return names.map((name) => ({
    name: `connector:${name}`,
    required: false,
    async check() {
      const last = observer.lastCalls().find((c) => c.system === name);
      if (last?.at === undefined) return 'no call yet (not checked actively)';
      const ago = `${Math.round((Date.now() - last.at) / 1000)} s ago`;
      if (!last.ok) throw new HealthCheckError(`latest call failed (${last.kind}) ${ago}`);
      return `latest call succeeded ${ago} (not checked actively)`;
    },
  }));
}

main().catch((err: unknown) => {
  console.error('worker failed:', err instanceof Error ? err.message : err);
  process.exit(1);
});
