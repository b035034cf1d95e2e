import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker, type WorkerOptions } from '@temporalio/worker';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import { buildApp } from '../../api/app';
import { openSiteConnectors, type SiteConnectors } from '../../workers/connectors';
import { createQualityWorkers } from '../../workers/quality-workers';
import { createWorkerActivities } from '../../workers/worker-activities';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import type { ConnectorLogger } from '../../infra/connectors/define';
import { createConnectorObserver } from '../../infra/observability/connector-metrics';
import type { Tracing } from '../../infra/observability/tracing';
import { startOutboxDispatcher, type OutboxDispatcher } from '../../infra/outbox/dispatcher';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import type { ProductionEventBroker } from '../../infra/simulators/mes/production-events';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { createTemporalWorkflowGateway, type WorkflowGateway } from '../../infra/temporal/gateway';
import { holdfastDataConverter, holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import type { SigningKey } from '../../infra/identity/signing-key';
import { asAdmin, signerAccount, stationKey, testSigningKey } from './identity';
import { openReinspector } from '../../infra/recall/reinspection';
import { createTemporalChangeoverControl, type ChangeoverControl } from '../../infra/temporal/changeover-starter';
import { openChangeoverPlant } from '../../workers/changeover-plant';
import { syncSiteShifts } from '../../infra/analytics/shift-calendar';

export interface StackOptions {
  pool: Pool;
  /** The simulators' own pool (default: `pool`), so that a test can tell Holdfast's statements from theirs. */
  simulatorPool?: Pool;
  temporalAddress: string;
  namespace: string;
  /** Base topology (default: temporal.yaml); connector URLs and task queues are rewritten to this stack's. */
  config?: HoldfastConfig;
  /** Default: a unique queue, so stacks sharing one Temporal server never steal each other's tasks. */
  taskQueue?: string;
  /** Simulator schemas get this suffix; default a random one (isolated state per stack). */
  schemaSuffix?: string;
  seedDemo?: boolean;
  /** The MES simulator also publishes its production and job-order events to this broker (default: REST only). */
  mesEventBroker?: ProductionEventBroker;
  /** false: no in-process worker (a test runs worker processes itself). */
  worker?: boolean;
  workflowBundle?: WorkerOptions['workflowBundle'];
  log?: ConnectorLogger;
  /**
   * Traces the API, dispatcher, client and worker as the processes do with tracing on. Leave `workflowBundle` out
   * with it: the worker then bundles the workflow interceptors in.
   */
  tracing?: Tracing;
}

export interface HoldfastStack {
  config: HoldfastConfig;
  taskQueue: string;
  api: FastifyInstance;
  sap: FastifyInstance;
  mes: FastifyInstance;
  sapUrl: string;
  mesUrl: string;
  /** SAP_USER / SAP_PASSWORD for connectors and worker processes of this stack. */
  sapEnv: { SAP_USER: string; SAP_PASSWORD: string };
  client: Client;
  gateway: WorkflowGateway;
  /** Starts and reads changeovers, as the API and the worker's job-order intake do. */
  changeovers: ChangeoverControl;
  dispatcher: OutboxDispatcher;
  workers: Worker[];
  connectors: SiteConnectors;
  /** The in-process worker's connector series (holdfast_connector_*), as the worker process serves them. */
  workerMetrics: Registry;
  /** Signs this stack's people's tokens (test/support/identity.ts bearerFor). */
  signingKey: SigningKey;
  /** An admin's `Authorization` header for this stack's API. */
  adminHeaders: { authorization: string };
  /**
   * A quality engineer with a real local account, who signs dispositions: `headers` to send, and the body's
   * `signature` with the re-entered password (docs/e-signatures.md).
   */
  engineer: Awaited<ReturnType<typeof signerAccount>>;
  /** A new key for one station (inspections and frames there only): its `X-Api-Key` header. */
  stationKey(scope: { site: string; line: string; station: string }): Promise<{ 'x-api-key': string }>;
  /** Resolves when the in-process workers have stopped (after stop()). */
  stop(): Promise<void>;
}

const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/**
 * All of Holdfast in one process over a given PostgreSQL and Temporal server: both simulators, the worker, the
 * API and the outbox dispatcher, wired exactly as the separate processes of `npm start` are. Integration tests
 * and benchmarks use it; everything it starts is closed by stop(), in reverse order.
 */
export async function startHoldfastStack(opts: StackOptions): Promise<HoldfastStack> {
  const base = opts.config ?? loadConfig();
  const suffix = opts.schemaSuffix ?? randomBytes(4).toString('hex');
  const taskQueue = opts.taskQueue ?? `holdfast-${randomUUID()}`;
  const log = opts.log ?? quiet;
  const closers: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
  };

  try {
    const sapEnv = { SAP_USER: 'HOLDFAST', SAP_PASSWORD: randomBytes(12).toString('base64url') };
    const simulatorPool = opts.simulatorPool ?? opts.pool;
    const sap = await buildSapS4Simulator({
      pool: simulatorPool,
      schema: `sap_${suffix}`,
      credentials: { username: sapEnv.SAP_USER, password: sapEnv.SAP_PASSWORD },
      seedDemo: opts.seedDemo ?? true,
    });
    closers.push(() => sap.close());
    const mes = await buildMesSimulator({
      pool: simulatorPool,
      schema: `mes_${suffix}`,
      seedDemo: opts.seedDemo ?? true,
      ...(opts.mesEventBroker ? { productionEventBroker: opts.mesEventBroker } : {}),
    });
    closers.push(() => mes.close());
    const sapUrl = await sap.listen({ host: '127.0.0.1', port: 0 });
    const mesUrl = await mes.listen({ host: '127.0.0.1', port: 0 });

    const config = pointConfigAt(base, { sapUrl, mesUrl, taskQueue });
    // As the API and worker processes do at start: the sites' shift calendars, read by the aggregates (0020).
    await syncSiteShifts(opts.pool, config);
    const connection = await Connection.connect({ address: opts.temporalAddress });
    closers.push(() => connection.close());
    const payloadCodec = holdfastPayloadCodec();
    const dataConverter = holdfastDataConverter(payloadCodec);
    const client = new Client({
      connection,
      namespace: opts.namespace,
      dataConverter,
      ...(opts.tracing ? { interceptors: opts.tracing.clientInterceptors } : {}),
    });
    const gateway = createTemporalWorkflowGateway(client, { taskQueue });

    const workerMetrics = new Registry();
    const connectors = await openSiteConnectors(
      config,
      log,
      { ...process.env, ...sapEnv },
      createConnectorObserver(workerMetrics).observe,
    );
    closers.push(() => connectors.close());
    let workers: Worker[] = [];
    if (opts.worker !== false) {
      const native = await NativeConnection.connect({ address: opts.temporalAddress });
      closers.push(() => native.close());
      const reinspection = openReinspector(opts.pool, config);
      closers.push(() => reinspection.close());
      // Lazy: a stack whose test never changes over never reaches the vision systems or line PLC temporal.yaml names.
      const plant = openChangeoverPlant(opts.pool, config, { log });
      closers.push(() => plant.close());
      const activities = createWorkerActivities(opts.pool, config, connectors, {
        reinspector: reinspection.reinspector,
        changeover: plant.ports,
      });
      workers = await createQualityWorkers({
        config,
        connection: native,
        namespace: opts.namespace,
        dataConverter,
        activities,
        ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : {}),
        ...(opts.tracing ? { tracing: opts.tracing.workerOptions } : {}),
      });
      const running = workers.map((w) => w.run());
      closers.push(async () => {
        workers.forEach((w) => w.shutdown());
        await Promise.allSettled(running);
      });
    }

    const signingKey = await testSigningKey();
    const changeovers = createTemporalChangeoverControl(client, config, { taskQueue });
    const api = await buildApp({
      changeovers,
      signingKey,
      pool: opts.pool,
      gateway,
      config,
      namespace: opts.namespace,
      tracing: opts.tracing !== undefined,
      payloadCodec,
    });
    closers.push(() => api.close());
    const dispatcher = startOutboxDispatcher({ pool: opts.pool, gateway, config });
    closers.push(() => dispatcher.stop());

    return {
      config,
      taskQueue,
      signingKey,
      adminHeaders: await asAdmin(signingKey),
      engineer: await signerAccount(
        opts.pool,
        { username: `qe-${randomUUID().slice(0, 8)}`, roles: ['quality-engineer'] },
        signingKey,
      ),
      stationKey: async (scope) => (await stationKey(opts.pool, scope)).headers,
      api,
      sap,
      mes,
      sapUrl,
      mesUrl,
      sapEnv,
      client,
      gateway,
      changeovers,
      dispatcher,
      workers,
      connectors,
      workerMetrics,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The same topology with this stack's simulator URLs and task queue. */
export function pointConfigAt(
  base: HoldfastConfig,
  at: { sapUrl: string; mesUrl: string; taskQueue: string },
): HoldfastConfig {
  const connectors = Object.fromEntries(
    Object.entries(base.connectors).map(([name, c]) => [
      name,
      c.kind === 'sap-s4-odata'
        ? { ...c, baseUrl: at.sapUrl }
        : c.kind === 'holdfast-mes-rest'
          ? { ...c, baseUrl: at.mesUrl }
          : c,
    ]),
  );
  return {
    ...base,
    connectors,
    taskQueues: { quality: at.taskQueue },
    workerPools: base.workerPools.map((p) => ({ ...p, taskQueue: at.taskQueue })),
  };
}
