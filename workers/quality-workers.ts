import type { DataConverter } from '@temporalio/common';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Activities } from '../activities';
import type { HoldfastConfig } from '../infra/config/schema';

export interface QualityWorkerOptions {
  config: HoldfastConfig;
  connection: NativeConnection;
  namespace: string;
  /** Payload encryption, the same as the clients' (holdfastDataConverter in infra/temporal/payload-codec.ts). */
  dataConverter: DataConverter;
  activities: Activities;
  /** A prebuilt bundle (tests bundle once per file); otherwise the worker bundles workflows/ at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Overrides every pool's task queue (tests use a unique one). */
  taskQueue?: string;
  /** Tracing's interceptors and workflow span sink (infra/observability/tracing.ts), when it is on. */
  tracing?: Pick<WorkerOptions, 'interceptors' | 'sinks'>;
}

/** One Temporal Worker per configured pool (temporal.yaml workerPools), sharing one connection. */
export async function createQualityWorkers(opts: QualityWorkerOptions): Promise<Worker[]> {
  return Promise.all(
    opts.config.workerPools.map((pool) =>
      Worker.create({
        connection: opts.connection,
        namespace: opts.namespace,
        dataConverter: opts.dataConverter,
        taskQueue: opts.taskQueue ?? pool.taskQueue,
        identity: `holdfast-${pool.name}@${process.pid}`,
        ...(pool.workflows
          ? opts.workflowBundle
            ? { workflowBundle: opts.workflowBundle }
            : { workflowsPath: require.resolve('../workflows') }
          : {}),
        ...(pool.activities ? { activities: opts.activities } : {}),
        maxConcurrentActivityTaskExecutions: pool.maxConcurrentActivityTaskExecutions,
        maxConcurrentWorkflowTaskExecutions: pool.maxConcurrentWorkflowTaskExecutions,
        maxCachedWorkflows: pool.maxCachedWorkflows,
        // Regular activities that start together (a disposition's MES release and ERP posting) all dispatch eagerly.
        maxEagerActivityReservationsPerWorkflowTask: 4,
        ...opts.tracing,
      }),
    ),
  );
}
