/**
 * Composition root of the inference worker, shared by the process entry (workers/inference.worker.ts), the
 * integration tests and `bench:inference`: open everything the pipeline needs, subscribe to frames, and close it all
 * in reverse on `close()`.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type pg from 'pg';
import { Registry } from 'prom-client';
import { parseDurationMs } from '../../infra/config/duration';
import { ConfigError } from '../../activities/errors';
import type { HoldfastConfig } from '../../infra/config/schema';
import type { ConnectorLogger } from '../../infra/connectors/define';
import type { Logger } from '../../infra/observability/logger';
import type { FrameSubscriber } from '../../infra/connectors/mqtt/frame-subscriber';
import { openModelCatalog, type ModelCatalog } from '../../infra/vision/onnx/model-catalog';
import { createImageFetcher } from '../../infra/vision/image-source';
import { preprocessImage } from '../../infra/vision/preprocess';
import { applyRecipe } from '../../infra/vision/recipe';
import { createRecipeCache, saveRecipe, seedRecipesFromConfig } from '../../infra/vision/recipe.repository';
import {
  createPgDeferredFrameAdmin,
  createPgDeferredFrameStore,
  startDeferredFrameRetry,
} from '../../infra/inference/deferred-frames';
import { openFrameHttp, type FrameHttpServer } from '../../infra/inference/frame-http';
import { createInferencePipeline, type InferencePipeline } from '../../infra/inference/inference-pipeline';
import type { ResultSink } from '../../infra/inference/ports';
import { createPgInspectionStore } from '../../infra/inference/pg-inspection-store';
import {
  createStationAssignmentCache,
  type StationAssignmentCache,
} from '../../infra/inference/station-assignment-cache';
import { createStationAssignmentStore } from '../../infra/vision/station-assignment.store';
import { openConnectors, type ConnectorSet } from '../connectors';
import {
  connectorHealthChecks,
  type HealthCheck,
  HealthCheckError,
  postgresCheck,
} from '../../infra/observability/health-checks';
import { createInferenceMetrics } from '../../infra/observability/inference-metrics';
import { createIngestMetrics } from '../../infra/observability/ingest-metrics';
import { createAuditMetrics } from '../../infra/observability/audit-metrics';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createAccounts } from '../../infra/identity/accounts';
import { createAuthenticator } from '../../infra/identity/authenticate';
import { type SigningKey, loadOrCreateSigningKey, signingKeyFile } from '../../infra/identity/signing-key';

export interface InferenceWorkerOptions {
  config: HoldfastConfig;
  /** Verifies people's local tokens on the HTTP edge. Default: the API's key file (identity.local.signingKeyFile). */
  signingKey?: Pick<SigningKey, 'publicKey'>;
  pool: pg.Pool;
  /** Overrides the broker connector's url, as MQTT_URL does (tests and benchmarks start their own broker). */
  mqttUrl?: string;
  /** Where connectors keep local state (the OPC UA client's certificate and trust lists). */
  dataDir: string;
  /** Default process.env: MQTT_URL and the connectors' ${env:NAME} secrets. */
  env?: NodeJS.ProcessEnv;
  log: ConnectorLogger;
  /** The HTTP edge's fastify logger (requests at debug); without it fastify logs nothing. */
  httpLogger?: Logger;
  /** Default: config.vision.modelsDir, relative to the repository root. */
  modelsDir?: string;
  /** Default: the broker connector's clientId. Two workers sharing one id share one broker session. */
  clientId?: string;
  /** Default true: publish every result on `<prefix>/<site>/<line>/<station>/inspection`. */
  publishResults?: boolean;
  /** Default true: make sure the recipes temporal.yaml declares exist and are active. */
  seedRecipes?: boolean;
  /** Where the worker's series go, served at GET /metrics on its HTTP edge. Default: a registry of its own. */
  metrics?: Registry;
  /** How often the stations' changeover assignments are reloaded in full (NOTIFY reloads at once). Default 30 s. */
  assignmentRefreshMs?: number;
}

export interface InferenceWorker {
  pipeline: InferencePipeline;
  subscriber: FrameSubscriber;
  /** One-off images over HTTP (config.vision.http). */
  http: FrameHttpServer;
  models: ModelCatalog;
  /** What changeovers assigned each station, as this worker applies it (docs/changeover.md#holdfast-stations). */
  stations: StationAssignmentCache;
  /** The broker and the reject station, as temporal.yaml declares them; `health()` for the process's /health. */
  connectors: ConnectorSet;
  /** Graceful: finished frames are acknowledged, unfinished ones stay with the broker. `force`: as a crash would. */
  close(opts?: { force?: boolean }): Promise<void>;
}

const REPO_ROOT = resolve(__dirname, '../..');

/**
 * onnxruntime's intra-op threads. Default: every core but one. The other core decodes and preprocesses the next
 * frames, writes rejects and results and talks to the broker while the model computes; giving the model every core
 * makes those wait for CPU, which costs more throughput and reject latency than the extra model thread gains
 * (BENCHMARKS.md, bench:inference).
 */
export function inferenceThreads(config: HoldfastConfig): number {
  return config.vision.inference.intraOpThreads ?? Math.max(1, availableParallelism() - 1);
}

export async function startInferenceWorker(opts: InferenceWorkerOptions): Promise<InferenceWorker> {
  const { config, pool, log } = opts;
  const registry = opts.metrics ?? new Registry();
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.splice(0).reverse()) {
      await close().catch((err: unknown) => log.warn('close failed', { error: String(err) }));
    }
  };

  try {
    const brokerName = config.vision.broker;
    if (brokerName === undefined) {
      throw new ConfigError(
        'vision.broker: the inference worker needs the broker frames arrive on (a connector of kind mqtt)',
      );
    }
    const rejectName = config.vision.rejectStation;
    // First, so a PLC or broker that is not there stops start-up before the models load; health-checked on opening.
    const connectors = await openConnectors(config, [brokerName, ...(rejectName ? [rejectName] : [])], {
      log,
      env: { ...(opts.env ?? process.env), ...(opts.mqttUrl ? { MQTT_URL: opts.mqttUrl } : {}) },
      dataDir: opts.dataDir,
    });
    closers.push(() => connectors.close());
    const broker = connectors.port(brokerName, 'vision-broker');
    const reject = rejectName ? connectors.port(rejectName, 'reject-station') : undefined;
    if (!reject) {
      log.warn('no reject station configured (vision.rejectStation): fails are recorded but nothing is diverted');
    }

    if (opts.seedRecipes ?? true) {
      let added = 0;
      for (const recipe of seedRecipesFromConfig(config)) {
        if (await saveRecipe(pool, recipe, 'temporal.yaml')) added += 1;
      }
      if (added > 0) log.info('recipes added from temporal.yaml', { added });
    }

    const modelsDir = opts.modelsDir ?? config.vision.modelsDir;
    const catalog = await openModelCatalog(isAbsolute(modelsDir) ? modelsDir : join(REPO_ROOT, modelsDir), {
      // onnxruntime holds the thread it runs on for a whole batch; reject writes and acks must not wait behind it.
      inThread: true,
      intraOpNumThreads: inferenceThreads(config),
    });
    const models = announceModelLoads(catalog, log);
    closers.push(() => models.close());
    for (const bad of models.rejected) log.warn('model manifest refused', { ...bad });
    log.info('models available', { models: models.list().map((m) => m.key) });

    // Before frames arrive: a station changed over must never inspect a frame as if it had not been.
    const stations = createStationAssignmentCache({
      pool,
      store: createStationAssignmentStore(pool),
      models,
      log,
      ...(opts.assignmentRefreshMs !== undefined ? { refreshIntervalMs: opts.assignmentRefreshMs } : {}),
    });
    await stations.start();
    closers.push(() => stations.close());

    const prefix = config.vision.topicPrefix;
    const clientId = opts.clientId;
    let results: ResultSink | undefined;
    if (opts.publishResults ?? true) {
      const publisher = await broker.openResultPublisher({ prefix, ...(clientId ? { clientId } : {}) });
      results = { publish: (a, result) => publisher.publish(a.site, a.line, a.station, result) };
    }

    const byReference = config.vision.imageSources.length > 0;
    const retryIntervalMs = parseDurationMs(config.vision.imageRetryInterval);
    const pipeline = createInferencePipeline({
      config,
      recipes: createRecipeCache(pool),
      stations,
      models,
      preprocess: preprocessImage,
      applyRecipe,
      store: createPgInspectionStore(pool, config, log, createIngestMetrics(registry, 'inference')),
      ...(byReference
        ? {
            fetchImage: createImageFetcher({
              sources: config.vision.imageSources,
              timeoutMs: parseDurationMs(config.vision.imageFetchTimeout),
            }),
            deferred: createPgDeferredFrameStore(pool, { firstRetryMs: retryIntervalMs }),
          }
        : {}),
      ...(reject ? { reject } : {}),
      ...(results ? { results } : {}),
      log,
      metrics: createInferenceMetrics(registry, pool),
    });

    const subscriber = await broker.subscribeFrames({
      prefix,
      ...(clientId ? { clientId } : {}),
      onFrame: async (msg) => void (await pipeline.handleFrame(msg)),
    });
    // Operators' retries and drops of kept frames, and the loop's give-ups, are audited (docs/audit-trail.md).
    const audit = createAuditTrail(pool, createAuditMetrics(registry));
    // Closed first in close(): HTTP stops taking frames, then MQTT does, then the batches drain.
    const http = await openFrameHttp({
      config,
      pipeline,
      deferredFrames: createPgDeferredFrameAdmin(pool, pipeline, audit),
      log,
      httpLogger: opts.httpLogger,
      metrics: registry,
      health: healthChecks({ pool, connectors, brokerName, rejectName, models }),
      authenticator: createAuthenticator({
        identity: config.identity,
        signingKey: opts.signingKey ?? (await loadOrCreateSigningKey(signingKeyFile(config, opts.env))),
        accounts: createAccounts(pool, audit, { maxFailedSignIns: 1, lockForMs: 0 }),
      }),
    }).catch(async (err: unknown) => {
      await subscriber.close({ force: true });
      throw err;
    });
    log.info('one-off images over HTTP', { url: `${http.url}/v1/stations/{site}/{line}/{station}/frames` });
    // Frames kept while their image source was down (any worker's: the table is shared), inspected once it is back.
    const retry = byReference
      ? startDeferredFrameRetry({
          pool,
          pipeline,
          audit,
          intervalMs: retryIntervalMs,
          maxBackoffMs: parseDurationMs(config.vision.imageRetryMaxBackoff),
          maxAgeMs: parseDurationMs(config.vision.imageRetryMaxAge),
          log,
        })
      : undefined;
    let closed = false;
    return {
      pipeline,
      subscriber,
      http,
      models,
      stations,
      connectors,
      async close(closeOpts) {
        if (closed) return;
        closed = true;
        await http.close();
        await retry?.close();
        await subscriber.close(closeOpts?.force ? { force: true } : {});
        if (!closeOpts?.force) await pipeline.drain();
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** A model loads when its first frame arrives, which takes seconds: say so, and when it is done. */
function announceModelLoads(catalog: ModelCatalog, log: ConnectorLogger): ModelCatalog {
  const announced = new Set<string>();
  return {
    rejected: catalog.rejected,
    list: () => catalog.list(),
    close: () => catalog.close(),
    get(name, version) {
      const loading = catalog.get(name, version);
      const model = `${name}@${version}`;
      if (announced.has(model)) return loading;
      announced.add(model);
      const started = Date.now();
      log.info('loading model', { model });
      void loading.then(
        () => log.info('model loaded', { model, ms: Date.now() - started }),
        (err: unknown) => {
          announced.delete(model);
          log.warn('model did not load', { model, error: String(err) });
        },
      );
      return loading;
    },
  };
}

/**
 * What the worker's GET /health reports: without any of these (a configured reject station included) it cannot do its
 * job. The broker and the reject station answer from their connectors' own health checks.
 */
function healthChecks(deps: {
  pool: pg.Pool;
  connectors: ConnectorSet;
  brokerName: string;
  rejectName: string | undefined;
  models: ModelCatalog;
}): HealthCheck[] {
  const { connectors, brokerName, rejectName, models } = deps;
  return [
    postgresCheck(deps.pool),
    ...connectorHealthChecks(
      () => connectors.health(),
      [
        { name: 'mqtt', connector: brokerName },
        ...(rejectName ? [{ name: 'reject-station', connector: rejectName }] : []),
      ],
    ),
    ...(rejectName
      ? []
      : [
          {
            name: 'reject-station',
            required: false,
            async check(): Promise<void> {
              throw new HealthCheckError('not configured (vision.rejectStation): fails are not diverted');
            },
          },
        ]),
    {
      name: 'models',
      async check() {
        const loaded = models.list().map((m) => m.key);
        if (loaded.length === 0) throw new HealthCheckError('no model loaded');
        const refused = models.rejected.length > 0 ? `; ${models.rejected.length} manifest(s) refused` : '';
        return `${loaded.join(', ')}${refused}`;
      },
    },
  ];
}
