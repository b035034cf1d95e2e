import { Runtime, type Worker } from '@temporalio/worker';
import { loadConfig } from '../infra/config/load';
import type { HoldfastConfig } from '../infra/config/schema';
import { createPool } from '../infra/db/pool';
import { syncSiteShifts } from '../infra/analytics/shift-calendar';
import { createConnectorObserver } from '../infra/observability/connector-metrics';
import {
  connectorHealthChecks,
  type HealthCheck,
  HealthCheckError,
  postgresCheck,
} from '../infra/observability/health-checks';
import { createProcessRegistry } from '../infra/observability/http-metrics';
import { connectorLogger, createLogger } from '../infra/observability/logger';
import { startObservabilityServer, type ObservabilityServer } from '../infra/observability/observability-server';
import { temporalLogger } from '../infra/observability/temporal-logger';
import { startTracingFromConfig } from '../infra/observability/tracing';
import { connectClient, connectNative, resolveTemporalTarget } from '../infra/temporal/connection';
import { ensureGenealogySyncs } from '../infra/temporal/genealogy-sync-starter';
import { createAuditTrail } from '../infra/audit/audit-trail';
import { createGenealogyStore } from '../infra/genealogy/genealogy-store';
import { genealogyRecorder } from '../infra/genealogy/genealogy-recorder';
import { ensureRecallDrillSchedules } from '../infra/temporal/recall-drill-schedules';
import { ensureLineQualityAdvisors } from '../infra/temporal/line-advisor-starter';
import { openReinspector } from '../infra/recall/reinspection';
import { holdfastDataConverter } from '../infra/temporal/payload-codec';
import { openSiteConnectors, type SiteConnectors } from './connectors';
import { createTemporalChangeoverControl } from '../infra/temporal/changeover-starter';
import { openChangeoverPlant, type ChangeoverPlant } from './changeover-plant';
import { startJobOrderIntake, type JobOrderIntakeService } from './job-orders';
import { startMesEventSubscription, type MesEventSubscription } from './mes-events';
import { createQualityWorkers } from './quality-workers';
import { createWorkerActivities } from './worker-activities';

const logger = createLogger('worker');

/**
 * The worker process: load config → open connectors → build activities → one Worker per pool → run until
 * SIGINT/SIGTERM (the Temporal runtime drains in-flight tasks) → close everything it opened, in reverse.
 * GET /metrics and /health on observability.worker.port; the Temporal SDK's own series on temporalSdkPort.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (npm start sets it; see infra/local/README.md)');
  const target = resolveTemporalTarget(config);
  const dataConverter = holdfastDataConverter();
  const endpoints = config.observability.worker;
  // Before the first connection, which would create the runtime bare: the SDK's and the Rust core's lines (warnings
  // and up) go through this process's logger, and the SDK's metrics to their Prometheus exporter.
  try {
    Runtime.install({
      logger: temporalLogger(logger),
      telemetryOptions: {
        logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} },
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
  // The shift calendars the aggregates count by, as this process's temporal.yaml has them. The API migrates; a worker
  // started against a database the API has not migrated yet leaves that to the API's start.
  await syncSiteShifts(pool, config).then(
    (changed) => changed && logger.info({ sites: config.sites.map((s) => s.id) }, 'shift calendars synced'),
    (err: unknown) => logger.warn({ err }, 'shift calendars not synced (the API syncs them when it starts)'),
  );
  // Opens every site's MES, ERP and escalation connector and runs their health checks: a required one that fails
  // stops start-up here, named with its cause, before anything talks to Temporal.
  const connectors = await openSiteConnectors(
    config,
    connectorLogger(logger, { component: 'connectors' }),
    process.env,
    connectorObserver.observe,
  ).catch(async (err: unknown) => {
    await pool.end();
    throw err;
  });
  const genealogy = genealogyRecorder(createGenealogyStore(createAuditTrail(pool)));
  const connection = await connectNative(target);
  let server: ObservabilityServer | undefined;
  let mesEvents: MesEventSubscription | undefined;
  let jobOrders: JobOrderIntakeService | undefined;
  let reinspection: ReturnType<typeof openReinspector> | undefined;
  let plant: ChangeoverPlant | undefined;
  // Lives as long as the worker: the job-order intake starts changeovers through it.
  const temporal = await connectClient(target, { dataConverter });
  try {
    // The MES's production events pushed over MQTT, when traceability.mesEvents.broker names a broker.
    mesEvents = await startMesEventSubscription({
      config,
      recorder: genealogy,
      registry: metrics,
      log: connectorLogger(logger, { component: 'mes-events' }),
    });
    // The MES's job-order events (MQTT when changeover.events names a broker, and the REST poll): started orders
    // start their changeover through the trigger.
    jobOrders = await startJobOrderIntake({
      config,
      pool,
      mesFor: connectors.mesFor,
      trigger: config.changeover.startOnOrderEvent
        ? createTemporalChangeoverControl(temporal.client, config, { taskQueue: config.taskQueues.quality })
        : undefined,
      registry: metrics,
      log: connectorLogger(logger, { component: 'job-orders' }),
    });
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
        ...connectorChecks(config, connectors),
        ...(mesEvents ? [mesEvents.health] : []),
        jobOrders.health,
      ],
    }).catch((err: Error) => {
      throw new Error(`observability.worker.port ${endpoints.port}: ${err.message}`);
    });
    // A model recall's models load on its first batch; closed with the worker.
    reinspection = openReinspector(pool, config);
    // The stations, vision systems and line PLCs a changeover switches; their OPC UA connectors open on first use.
    plant = openChangeoverPlant(pool, config, { log: connectorLogger(logger, { component: 'changeover' }) });
    const activities = createWorkerActivities(pool, config, connectors, {
      reinspector: reinspection.reinspector,
      genealogy,
      changeover: plant.ports,
    });
    logger.info('bundling workflow code and creating the workers');
    workers = await createQualityWorkers({
      config,
      connection,
      namespace: target.namespace,
      dataConverter,
      activities,
      ...(tracing ? { tracing: tracing.workerOptions } : {}),
    });
    // The syncs and drills run on these workers; they are started (or found running) once the workers poll.
    const { client } = temporal;
    if (config.traceability.sync.enabled) {
      logger.info({ syncs: await ensureGenealogySyncs(client, config) }, 'genealogy syncs running');
    }
    // Every start, drilling or not: a site that stopped drilling loses its schedule.
    logger.info({ schedules: await ensureRecallDrillSchedules(client, config) }, 'recall drill schedules');
    if (config.advice.enabled) {
      logger.info({ advisors: await ensureLineQualityAdvisors(client, config) }, 'scheduling-advice rules running');
    }
    // infra/local/start.ts waits for a line containing `worker ready` before starting the API.
    logger.info(
      {
        pools: config.workerPools.map((p) => p.taskQueue),
        metrics: `${server.url}/metrics`,
        health: `${server.url}/health`,
        ...(endpoints.temporalSdkPort !== 0
          ? { temporalSdkMetrics: `http://${endpoints.host}:${endpoints.temporalSdkPort}/metrics` }
          : {}),
        tracing: tracing !== undefined,
      },
      'worker ready',
    );
    await Promise.all(workers.map((w) => w.run()));
  } finally {
    // First: no event is applied once the pool is closing (an unfinished one stays unacknowledged, for next time).
    await mesEvents?.close();
    await jobOrders?.close();
    await server?.close();
    await temporal.connection.close();
    await connection.close();
    await plant?.close();
    await connectors.close();
    await reinspection?.close();
    await pool.end();
    await tracing?.shutdown();
  }
  logger.info('worker stopped');
}

/**
 * One check per connector the worker opened, from the connector's own health check, reported but not required: a
 * worker restart would not bring a MES back, and activities retry meanwhile.
 */
function connectorChecks(config: HoldfastConfig, connectors: SiteConnectors): HealthCheck[] {
  const names = [
    ...new Set(
      config.sites.flatMap((s) => [s.mes, s.erp, s.escalation, ...(s.recall.notify ? [s.recall.notify.target] : [])]),
    ),
  ];
  return connectorHealthChecks(
    () => connectors.health(),
    names.map((name) => ({ name: `connector:${name}`, connector: name, required: false })),
  );
}

main().catch((err: unknown) => {
  logger.fatal({ err }, 'worker failed');
  process.exit(1);
});
