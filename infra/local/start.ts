/**
 * `npm start`: everything Holdfast needs on one machine, in order, and stopped in reverse order on Ctrl-C.
 * PostgreSQL (embedded) → migrations → Temporal dev server (with Web UI, persisted) → SAP S/4 simulator →
 * MES simulator → worker → API. See infra/local/README.md for ports, the data directory and environment variables.
 */
import { redactUrl } from './redact-url';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { configPath, DASHBOARD_HEALTH_ENDPOINTS_ENV, loadConfig } from '../config/load';
import type { HoldfastConfig } from '../config/schema';
import { parseConnectorSettings } from '../connectors/define';
import { embeddedBrokerTls, MqttConnectorConfig } from '../connectors/mqtt/mqtt.connector';
import { migrate } from '../db/migrate';
import { assertDurableSettings, createPool } from '../db/pool';
import { resolveTemporalCli } from '../temporal/cli';
import { describeTarget, resolveTemporalTarget, type TemporalTarget } from '../temporal/connection';
import {
  generatePayloadKeyEntry,
  PAYLOAD_KEY_ID_ENV,
  PAYLOAD_KEYS_ENV,
  payloadKeysFromEnv,
} from '../temporal/payload-codec';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/contracts';
import { consoleOutput, plainOutput, readableLines, type StackOutput } from './console-output';
import { describeExit, sleep, spawnManaged, type ManagedProcess, type ProcessExit } from './managed-process';
import {
  mesEventsReaderAccount,
  mesProductionAccount,
  startEmbeddedMqttBroker,
  visionStreamAccounts,
} from './mqtt-broker';
import { startEmbeddedPostgres } from './postgres';
import { startTemporalDevServer } from './temporal-dev-server';
import { stopWhenNpmIsGone } from './orphan-watch';
import {
  DEFAULT_RESTART_POLICY,
  LaunchError,
  Supervisor,
  type ChildStatus,
  type RestartPolicyOptions,
} from './supervisor';
import type pg from 'pg';
import { createAuditTrail } from '../audit/audit-trail';
import { createAccounts } from '../identity/accounts';

export const REPO_ROOT = resolve(__dirname, '../..');
/** Fixed so a restarted `npm start` finds its data at the same address; DATABASE_URL replaces it entirely. */
export const LOCAL_POSTGRES_PORT = 54329;
export const SAP_SIM_PORT = 4020;
export const MES_SIM_PORT = 4010;
export const LINE_PLC_PORT = 4840;
export const CAMERA_SIM_PORT = 4030;
/** The line PLC simulator's GET /metrics and /health (its OPC UA port serves no HTTP). */
export const LINE_PLC_METRICS_PORT = 9472;

/** Ports `npm start` binds that temporal.yaml does not name; the config's connector URLs must point at the simulators. */
export interface LocalPorts {
  postgres: number;
  sapSim: number;
  mesSim: number;
  linePlc: number;
  /** The line PLC simulator's GET /metrics and /health. */
  linePlcMetrics: number;
  cameraSim: number;
}

export const DEFAULT_LOCAL_PORTS: LocalPorts = {
  postgres: LOCAL_POSTGRES_PORT,
  sapSim: SAP_SIM_PORT,
  mesSim: MES_SIM_PORT,
  linePlc: LINE_PLC_PORT,
  linePlcMetrics: LINE_PLC_METRICS_PORT,
  cameraSim: CAMERA_SIM_PORT,
};

/** How start.ts knows a child is up before starting the next one. */
export type Readiness =
  | { kind: 'http'; url: string }
  /** A line the process prints once ready (the worker prints `worker ready`). */
  | { kind: 'log-line'; text: string };

export interface LocalProcessSpec {
  name: string;
  /** TypeScript entry run with tsx, relative to the repository root or absolute. */
  entry: string;
  readiness: Readiness;
  /** Extra environment for this child only. */
  env?: Record<string, string>;
  /** Shown in the banner. */
  url?: string;
  /** Prometheus scrape endpoints, shown in the banner (docs/operations.md). */
  metricsUrls?: string[];
}

/** In the data directory: admin's first-start password, written by the API (api/server.ts) for the banner. */
export const FIRST_ADMIN_PASSWORD_FILE = 'first-admin-password';

/** The processes `npm start` runs, in start order. */
export function defaultLocalProcesses(config: HoldfastConfig, at: Partial<LocalPorts> = {}): LocalProcessSpec[] {
  const ports = { ...DEFAULT_LOCAL_PORTS, ...at };
  const apiBase = `http://${config.api.host}:${config.api.port}`;
  const sapBase = `http://127.0.0.1:${ports.sapSim}`;
  const mesBase = `http://127.0.0.1:${ports.mesSim}`;
  const workerEndpoints = config.observability.worker;
  const inferenceBase = `http://${config.vision.http.host}:${config.vision.http.port}`;
  return [
    {
      name: 'sap-sim',
      entry: 'infra/simulators/sap-s4/main.ts',
      readiness: { kind: 'http', url: `${sapBase}/health` },
      env: { SAP_SIM_PORT: String(ports.sapSim) },
      url: sapBase,
      metricsUrls: [`${sapBase}/metrics`],
    },
    {
      name: 'mes-sim',
      entry: 'infra/simulators/mes/main.ts',
      readiness: { kind: 'http', url: `${mesBase}/health` },
      env: { MES_SIM_PORT: String(ports.mesSim) },
      url: mesBase,
      metricsUrls: [`${mesBase}/metrics`],
    },
    {
      name: 'worker',
      entry: 'workers/main.ts',
      readiness: { kind: 'log-line', text: 'worker ready' },
      metricsUrls: [
        `http://${workerEndpoints.host}:${workerEndpoints.port}/metrics`,
        `http://${workerEndpoints.host}:${workerEndpoints.temporalSdkPort}/metrics`,
      ],
    },
    {
      name: 'api',
      entry: 'api/server.ts',
      readiness: { kind: 'http', url: `${apiBase}/health` },
      env: {
        API_PORT: String(config.api.port),
        [DASHBOARD_HEALTH_ENDPOINTS_ENV]: JSON.stringify(
          dashboardHealthEndpoints(config, `http://${workerEndpoints.host}:${workerEndpoints.port}`, inferenceBase),
        ),
      },
      url: apiBase,
      metricsUrls: [`${apiBase}/metrics`],
    },
    {
      name: 'line-plc',
      entry: 'infra/simulators/line-plc/main.ts',
      readiness: { kind: 'log-line', text: 'line-plc ready' },
      env: { LINE_PLC_PORT: String(ports.linePlc), LINE_PLC_METRICS_PORT: String(ports.linePlcMetrics) },
      url: `opc.tcp://127.0.0.1:${ports.linePlc}`,
      metricsUrls: [`http://127.0.0.1:${ports.linePlcMetrics}/metrics`],
    },
    {
      name: 'inference',
      entry: 'workers/inference.worker.ts',
      readiness: { kind: 'log-line', text: 'inference worker ready' },
      // One-off images: POST /v1/stations/{site}/{line}/{station}/frames (infra/inference/frame-http.ts).
      url: inferenceBase,
      metricsUrls: [`${inferenceBase}/metrics`],
    },
    {
      name: 'camera-sim',
      entry: 'infra/simulators/camera/main.ts',
      readiness: { kind: 'log-line', text: 'camera-sim ready' },
      env: { CAMERA_SIM_PORT: String(ports.cameraSim) },
      url: `http://127.0.0.1:${ports.cameraSim}/truth`,
      metricsUrls: [`http://127.0.0.1:${ports.cameraSim}/metrics`],
    },
  ];
}

/**
 * The dashboard's connector tiles (api.dashboard.healthEndpoints) for the processes `npm start` runs: MES and ERP
 * from the worker's /health (its connector checks, `connector:<name>`), the PLC (reject station) and MQTT broker from
 * the inference worker's.
 */
export function dashboardHealthEndpoints(
  config: HoldfastConfig,
  workerBase: string,
  inferenceBase: string,
): { name: string; url: string; check: string }[] {
  const distinct = (names: string[]) => [...new Set(names)];
  const tiles = (tile: string, connectors: string[], url: string) =>
    connectors.map((c) => ({ name: tile, url, check: `connector:${c}` }));
  return [
    ...tiles('MES', distinct(config.sites.map((s) => s.mes)), `${workerBase}/health`),
    ...tiles('ERP', distinct(config.sites.map((s) => s.erp)), `${workerBase}/health`),
    { name: 'PLC', url: `${inferenceBase}/health`, check: 'reject-station' },
    { name: 'MQTT broker', url: `${inferenceBase}/health`, check: 'mqtt' },
  ];
}

export interface LocalStackOptions {
  config?: HoldfastConfig;
  env?: NodeJS.ProcessEnv;
  /** Default: HOLDFAST_DATA_DIR, else .holdfast/data in the repository. */
  dataDir?: string;
  processes?: LocalProcessSpec[];
  /** Ports instead of the defaults (tests: free ones); the config file's URLs must agree. */
  ports?: Partial<LocalPorts>;
  /** Restarts of children that exit on their own (defaults in supervisor.ts; the crash-loop limit from the env). */
  restartPolicy?: Partial<RestartPolicyOptions>;
  /** Every line as it comes, children's prefixed with their name (tests); ignored when `output` is given. */
  log?: (line: string) => void;
  /** Where progress and the children's output go (`npm start`: infra/local/console-output.ts). */
  output?: StackOutput;
  /** Per child (120 s unless told): tsx compiles on first start and the worker bundles workflow code. */
  readyTimeoutMs?: number;
  /** Aborting stops whatever has started and rejects. */
  signal?: AbortSignal;
}

export interface LocalStack {
  databaseUrl: string;
  temporal: TemporalTarget;
  temporalUiUrl?: string;
  dataDir: string;
  processes: LocalProcessSpec[];
  sapCredentials: SapCredentials;
  /** The Temporal payload keys the children got (the environment's, else the data directory's generated one). */
  payloadKeys: PayloadKeys;
  /**
   * Resolves once a child kept crashing, or PostgreSQL or the Temporal dev server exited, and everything else has
   * been stopped because of it. A child that exits now and then is restarted instead.
   */
  crashed: Promise<StackFailure>;
  /** Restarts so far by child name (a metric's source). */
  restarts: () => Record<string, number>;
  /** Each child's state and current pid. */
  children: () => ChildStatus[];
  /** Children in reverse order, then Temporal, then PostgreSQL. */
  stop: () => Promise<void>;
}

/** Why the whole stack stopped on its own. */
export interface StackFailure {
  name: string;
  exit?: ProcessExit;
  /** One line naming the process and what happened. */
  message: string;
  /** Its last output lines. */
  outputTail: string;
}

interface SapCredentials {
  SAP_USER: string;
  SAP_PASSWORD: string;
}

interface PayloadKeys {
  [PAYLOAD_KEYS_ENV]: string;
  [PAYLOAD_KEY_ID_ENV]: string;
}

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const env = opts.env ?? process.env;
  const output = opts.output ?? plainOutput(opts.log ?? ((line: string) => process.stdout.write(`${line}\n`)));
  const log = output.log;
  const config = opts.config ?? loadConfig(configPath(env));
  const processes = opts.processes ?? defaultLocalProcesses(config, opts.ports);
  const tsx = join(REPO_ROOT, 'node_modules', 'tsx');
  if (!existsSync(tsx)) throw new Error(`${tsx} not found: run npm ci`);
  for (const spec of processes) {
    if (!existsSync(entryPath(spec))) throw new Error(`${spec.name}: entry file ${entryPath(spec)} not found`);
  }
  const restartPolicy = { ...restartPolicyFrom(env), ...opts.restartPolicy };
  const dataDir = resolve(opts.dataDir ?? env.HOLDFAST_DATA_DIR ?? join(REPO_ROOT, '.holdfast', 'data'));
  await mkdir(dataDir, { recursive: true });

  // Everything started so far, stopped in reverse on failure, abort or stop().
  const stoppers: { name: string; stop: () => Promise<void> }[] = [];
  let stopping: Promise<void> | undefined;
  const stopAll = () => {
    stopping ??= (async () => {
      // First, so that no child in its restart delay comes back while the others are being stopped.
      supervisor.halt();
      for (const { name, stop } of stoppers.splice(0).reverse()) {
        log(`stopping ${name}`);
        await stop().catch((err: Error) => log(`stopping ${name} failed: ${err.message}`, 'warn'));
      }
    })();
    return stopping;
  };
  // Aborted by the caller (Ctrl-C) or by a child that dies while later ones are still starting.
  const abortStart = new AbortController();
  let crashedWhileStarting: string | undefined;
  const onCallerAbort = () => abortStart.abort();
  opts.signal?.addEventListener('abort', onCallerAbort);
  if (opts.signal?.aborted) abortStart.abort();
  const checkAborted = () => {
    if (crashedWhileStarting) throw new Error(crashedWhileStarting);
    if (abortStart.signal.aborted) throw new Error('start-up interrupted');
  };
  let running = false;
  let onCrash: (failure: StackFailure) => void = () => undefined;
  const crashed = new Promise<StackFailure>((resolve) => (onCrash = resolve));
  // A crash loop or PostgreSQL/Temporal gone: stop everything (or abandon start-up), naming the process.
  const fail = (failure: StackFailure) => {
    if (stopping) return;
    if (!running) {
      crashedWhileStarting = describeFailure(failure);
      abortStart.abort();
      return;
    }
    log(`${failure.message}; stopping everything`, 'error');
    void stopAll().then(() => onCrash(failure));
  };
  const supervisor = new Supervisor({
    policy: restartPolicy,
    log,
    onCrashLoop: fail,
  });

  try {
    let databaseUrl = env.DATABASE_URL;
    if (databaseUrl) {
      log(`PostgreSQL: using DATABASE_URL (${redactUrl(databaseUrl)})`);
    } else {
      const postgres = await startEmbeddedPostgres({
        dataDir: join(dataDir, 'postgres'),
        port: opts.ports?.postgres ?? LOCAL_POSTGRES_PORT,
        env,
        log: output.from('postgres'),
      });
      stoppers.push({ name: 'postgres', stop: postgres.stop });
      watchFoundation('PostgreSQL', postgres, fail);
      databaseUrl = postgres.url;
    }
    checkAborted();
    const pool = createPool(databaseUrl, { max: 2 });
    let cameraSimKeys: string;
    try {
      await assertDurableSettings(pool);
      const applied = await migrate(pool);
      log(`migrations: ${applied.length ? `applied ${applied.join(', ')}` : 'up to date'}`);
      cameraSimKeys = await cameraSimulatorKeys(pool, config);
    } finally {
      await pool.end();
    }
    checkAborted();

    const target = resolveTemporalTarget(config, env);
    let temporalUiUrl: string | undefined;
    if (env.TEMPORAL_ADDRESS || config.temporal.address) {
      log(`Temporal: using ${describeTarget(target)}`);
      temporalUiUrl = config.api.temporalUiUrl;
    } else {
      const started = Date.now();
      const cliPath = await resolveTemporalCli(output.from('temporal-cli'), env);
      log(`Temporal CLI ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${cliPath}`);
      checkAborted();
      const dev = await startTemporalDevServer({
        cliPath,
        port: config.temporal.devServer.port,
        uiPort: config.temporal.devServer.uiPort,
        dbFile: join(dataDir, 'temporal', config.temporal.devServer.dbFile),
        namespace: target.namespace,
        searchAttributes: ALL_SEARCH_ATTRIBUTES,
        // The API's codec endpoint, so the Web UI shows payloads decrypted (docs/temporal.md#codec-endpoint).
        uiCodecEndpoint: `http://${config.api.host}:${config.api.port}/codec`,
        log: output.from('temporal'),
      });
      stoppers.push({ name: 'temporal', stop: dev.stop });
      watchFoundation('the Temporal dev server', dev, fail);
      target.address = dev.address;
      temporalUiUrl = dev.uiUrl;
    }
    checkAborted();

    // The broker connector (vision.broker) names a broker, or MQTT_URL does; else one runs here, its URL in MQTT_URL.
    const brokerSettings = config.vision.broker
      ? parseConnectorSettings(MqttConnectorConfig, config, config.vision.broker)
      : undefined;
    let mqttUrl = env.MQTT_URL || brokerSettings?.url;
    /** Each MQTT client's own login, for the embedded broker (else the environment's MQTT_USERNAME/PASSWORD). */
    let mqttLogins: Partial<Record<string, NodeJS.ProcessEnv>> = {};
    if (mqttUrl) {
      log(`MQTT: using ${redactUrl(mqttUrl)}`);
    } else {
      const logins = await mqttCredentialsFor(dataDir);
      mqttLogins = {
        inference: { MQTT_USERNAME: logins.inference.username, MQTT_PASSWORD: logins.inference.password },
        'camera-sim': { MQTT_USERNAME: logins.cameraSim.username, MQTT_PASSWORD: logins.cameraSim.password },
        // The worker's MQTT client reads the MES's production and job-order events (traceability.mesEvents,
        // changeover.events) and nothing else.
        worker: { MQTT_USERNAME: logins.genealogy.username, MQTT_PASSWORD: logins.genealogy.password },
      };
      const accounts = [
        ...visionStreamAccounts({
          prefix: config.vision.topicPrefix,
          inference: logins.inference,
          // The simulator plays every station's camera; a plant camera gets an account for its own station only.
          cameras: [{ ...logins.cameraSim, stations: configuredStations(config) }],
        }),
        mesProductionAccount(logins.mesSim),
        mesEventsReaderAccount(logins.genealogy),
      ];
      // In this process: the broker is small, and stopping it last-but-two keeps workers from reconnecting in a loop.
      const broker = await startEmbeddedMqttBroker({
        host: brokerSettings?.embeddedHost,
        port: brokerSettings?.embeddedPort ?? 1883,
        access: { accounts },
        tls: brokerSettings && embeddedBrokerTls(brokerSettings, { name: config.vision.broker!, dataDir }),
        warn: (message) => log(message, 'warn'),
      });
      stoppers.push({ name: 'mqtt-broker', stop: () => broker.stop() });
      mqttUrl = broker.url;
      log(`MQTT: embedded broker (aedes) at ${mqttUrl}`);
      // The MES simulator publishes its production events on the plant's Unified Namespace there (it speaks plain
      // MQTT only, no TLS).
      if (!brokerSettings?.embeddedTls) {
        mqttLogins['mes-sim'] = {
          MES_MQTT_URL: mqttUrl,
          MES_MQTT_USERNAME: logins.mesSim.username,
          MES_MQTT_PASSWORD: logins.mesSim.password,
        };
      }
    }
    checkAborted();

    const sapCredentials = await sapCredentialsFor(dataDir, env);
    const payloadKeys = await payloadKeysFor(dataDir, env);
    const childEnv: NodeJS.ProcessEnv = {
      ...env,
      DATABASE_URL: databaseUrl,
      TEMPORAL_ADDRESS: target.address,
      TEMPORAL_NAMESPACE: target.namespace,
      HOLDFAST_CONFIG: configPath(env),
      HOLDFAST_DATA_DIR: dataDir,
      MQTT_URL: mqttUrl,
      LINE_PLC_DATA_DIR: join(dataDir, 'line-plc'),
      // The reject station connector's default pkiDir, and any the caller names (an HMI): the simulator and they trust
      // each other (line-plc/README.md).
      LINE_PLC_TRUSTED_CLIENT_PKI_DIRS: [join(dataDir, 'opcua-pki'), env.LINE_PLC_TRUSTED_CLIENT_PKI_DIRS]
        .filter(Boolean)
        .join(delimiter),
      // JSON log lines, whatever the terminal: this process renders them (console-output.ts).
      LOG_FORMAT: 'json',
      ...sapCredentials,
      ...payloadKeys,
      // Only the camera simulator reads it (its ground truth for shadow stations goes to the API's verdicts route).
      HOLDFAST_API_KEYS: cameraSimKeys,
      // Only the API reads it: where the first start keeps admin's password, for the banner.
      HOLDFAST_FIRST_ADMIN_PASSWORD_FILE: join(dataDir, FIRST_ADMIN_PASSWORD_FILE),
    };

    for (const spec of processes) {
      checkAborted();
      const launch = (signal: AbortSignal) =>
        startChild(spec, { ...childEnv, ...mqttLogins[spec.name], ...spec.env }, output.child(spec.name), log, {
          readyTimeoutMs: opts.readyTimeoutMs,
          signal,
        });
      const proc = await launch(abortStart.signal);
      // Supervised from its first readiness on, also while later children are still starting.
      supervisor.supervise(spec.name, supervisedChild(proc), async (signal) => supervisedChild(await launch(signal)));
      stoppers.push({ name: spec.name, stop: () => supervisor.stop(spec.name) });
    }
    checkAborted();
    running = true;
    opts.signal?.removeEventListener('abort', onCallerAbort);

    return {
      databaseUrl,
      temporal: target,
      temporalUiUrl,
      dataDir,
      processes,
      sapCredentials,
      payloadKeys,
      crashed,
      restarts: () => supervisor.restarts(),
      children: () => supervisor.status(),
      stop: stopAll,
    };
  } catch (err) {
    opts.signal?.removeEventListener('abort', onCallerAbort);
    await stopAll();
    if (crashedWhileStarting) throw new Error(crashedWhileStarting);
    throw err;
  }
}

/** A child as the supervisor sees it; stopping it is SIGTERM, then SIGKILL after 10 s. */
function supervisedChild(proc: ManagedProcess) {
  return {
    pid: proc.pid,
    exited: proc.exited,
    outputTail: proc.outputTail,
    stop: () => proc.stop({ signal: 'SIGTERM' }),
  };
}

/** PostgreSQL and Temporal are not restarted: every child depends on them, so their end is the stack's. */
function watchFoundation(
  what: string,
  server: { pid: number; exited: Promise<ProcessExit>; outputTail: () => string },
  fail: (failure: StackFailure) => void,
): void {
  void server.exited.then((exit) =>
    fail({
      name: what,
      exit,
      message: `${what} (pid ${server.pid}) ${describeExit(exit)}; Holdfast cannot run without it`,
      outputTail: server.outputTail(),
    }),
  );
}

/** A failure for the terminal: its line, then the process's last output. */
export function describeFailure(failure: StackFailure): string {
  return `${failure.message}\n--- ${failure.name} output (tail) ---\n${failure.outputTail || '(no output)'}`;
}

/**
 * The crash-loop limit from HOLDFAST_RESTART_LIMIT (exits, default 5) and HOLDFAST_RESTART_WINDOW_S (seconds,
 * default 120): that many unexpected exits of one child within the window stop everything.
 */
export function restartPolicyFrom(env: NodeJS.ProcessEnv): Partial<RestartPolicyOptions> {
  const read = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number above 0, not "${raw}"`);
    return value;
  };
  return {
    crashLoopLimit: read('HOLDFAST_RESTART_LIMIT', DEFAULT_RESTART_POLICY.crashLoopLimit),
    crashLoopWindowMs: read('HOLDFAST_RESTART_WINDOW_S', DEFAULT_RESTART_POLICY.crashLoopWindowMs / 1000) * 1000,
  };
}

function entryPath(spec: LocalProcessSpec): string {
  return isAbsolute(spec.entry) ? spec.entry : join(REPO_ROOT, spec.entry);
}

async function startChild(
  spec: LocalProcessSpec,
  env: NodeJS.ProcessEnv,
  childLine: (line: string, stream: 'stdout' | 'stderr') => void,
  log: (line: string) => void,
  opts: { readyTimeoutMs?: number; signal: AbortSignal },
): Promise<ManagedProcess> {
  let sawReadyLine: () => void = () => undefined;
  const readyLine = new Promise<void>((resolve) => (sawReadyLine = resolve));
  const readiness = spec.readiness;
  log(`starting ${spec.name} (${spec.entry})`);
  const proc = spawnManaged({
    name: spec.name,
    // `node --import tsx` rather than the tsx CLI: the CLI is a second process that relays signals and sends
    // SIGKILL when the child does not acknowledge one within 30 ms, which cuts a busy worker's drain short.
    command: process.execPath,
    args: ['--import', 'tsx', entryPath(spec)],
    cwd: REPO_ROOT,
    env,
    onLine: (line, stream) => {
      childLine(line, stream);
      // A JSON log line contains its message as is, so this holds for both formats.
      if (readiness.kind === 'log-line' && line.includes(readiness.text)) sawReadyLine();
    },
  });

  const timeoutMs = opts.readyTimeoutMs ?? 120_000;
  const giveUp = new AbortController();
  const abortListener = () => giveUp.abort();
  opts.signal.addEventListener('abort', abortListener);
  if (opts.signal.aborted) giveUp.abort();
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = readiness.kind === 'http' ? waitForHttp(readiness.url, giveUp.signal) : readyLine;
    const outcome = await Promise.race([
      ready.then(() => 'ready' as const),
      proc.exited,
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))),
      new Promise<'aborted'>((resolve) => {
        if (giveUp.signal.aborted) resolve('aborted');
        giveUp.signal.addEventListener('abort', () => resolve('aborted'));
      }),
    ]);
    if (outcome === 'ready') {
      log(`${spec.name} ready`);
      return proc;
    }
    const why =
      outcome === 'timeout'
        ? `was not ready within ${timeoutMs / 1000} s (${describeReadiness(readiness)})`
        : outcome === 'aborted'
          ? 'start-up interrupted'
          : `${describeExit(outcome)} before it was ready`;
    await proc.stop({ signal: 'SIGTERM' });
    throw new LaunchError(
      `${spec.name} ${why}\n--- ${spec.name} output (tail) ---\n${proc.outputTail() || '(no output)'}`,
      typeof outcome === 'object' ? outcome : undefined,
      proc.outputTail(),
    );
  } finally {
    clearTimeout(timer);
    giveUp.abort();
    opts.signal.removeEventListener('abort', abortListener);
  }
}

function describeReadiness(r: Readiness): string {
  return r.kind === 'http' ? `GET ${r.url} must answer 200` : `it must print "${r.text}"`;
}

async function waitForHttp(url: string, giveUp: AbortSignal): Promise<void> {
  while (!giveUp.aborted) {
    const status = await fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      async (res) => {
        await res.body?.cancel();
        return res.status;
      },
      () => 0,
    );
    if (status === 200) return;
    await sleep(250);
  }
}

const CAMERA_SIM_KEY_NAME = 'camera simulator (npm start)';

/**
 * The camera simulator's API keys, JSON { site: key }: one per site (a key is scoped to one site), allowed to record
 * verdicts only. New on every start, the previous start's revoked, so no key outlives the run that printed nothing.
 */
async function cameraSimulatorKeys(pool: pg.Pool, config: HoldfastConfig): Promise<string> {
  const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 1, lockForMs: 0 });
  const launcher = { kind: 'system' as const, id: 'local-launcher' };
  for (const old of await accounts.listKeys()) {
    if (old.name === CAMERA_SIM_KEY_NAME && !old.revokedAt) await accounts.revokeKey(launcher, old.id);
  }
  const keys: Record<string, string> = {};
  for (const site of config.sites) {
    const { key } = await accounts.createKey(launcher, {
      name: CAMERA_SIM_KEY_NAME,
      scope: { site: site.id },
      actions: ['verdicts:write'],
    });
    keys[site.id] = key;
  }
  return JSON.stringify(keys);
}

/**
 * SAP_USER / SAP_PASSWORD for the simulator and the connector, which must agree: from the environment when set,
 * else generated on the first start of this data directory and kept in it (file mode 0600).
 */
async function sapCredentialsFor(dataDir: string, env: NodeJS.ProcessEnv): Promise<SapCredentials> {
  const file = join(dataDir, 'sap-credentials.json');
  let generated: SapCredentials;
  if (existsSync(file)) {
    generated = JSON.parse(await readFile(file, 'utf8')) as SapCredentials;
  } else {
    generated = { SAP_USER: 'HOLDFAST_RFC', SAP_PASSWORD: randomBytes(18).toString('base64url') };
    await writeFile(file, `${JSON.stringify(generated, null, 2)}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
  }
  return {
    SAP_USER: env.SAP_USER || generated.SAP_USER,
    SAP_PASSWORD: env.SAP_PASSWORD || generated.SAP_PASSWORD,
  };
}

/**
 * The environment's HOLDFAST_PAYLOAD_KEYS (checked here, so a bad value stops the launch before any child), else a key
 * generated on first start into the data directory (mode 0600): workflows written by an earlier `npm start` stay
 * readable, and deleting the file makes them unreadable.
 */
async function payloadKeysFor(dataDir: string, env: NodeJS.ProcessEnv): Promise<PayloadKeys> {
  const given = env[PAYLOAD_KEYS_ENV];
  if (given) return { [PAYLOAD_KEYS_ENV]: given, [PAYLOAD_KEY_ID_ENV]: payloadKeysFromEnv(env).currentKeyId };
  const file = join(dataDir, 'payload-keys.json');
  if (!existsSync(file)) {
    const keyId = `local-${new Date().toISOString().slice(0, 10).replaceAll('-', '')}`;
    const generated: PayloadKeys = { [PAYLOAD_KEYS_ENV]: generatePayloadKeyEntry(keyId), [PAYLOAD_KEY_ID_ENV]: keyId };
    await writeFile(file, `${JSON.stringify(generated, null, 2)}\n`, { mode: 0o600 });
  }
  await chmod(file, 0o600);
  const stored = JSON.parse(await readFile(file, 'utf8')) as PayloadKeys;
  try {
    payloadKeysFromEnv({ ...stored });
  } catch (err) {
    throw new Error(
      `${file}: ${(err as Error).message} (fix it; a new key cannot read the workflows written with this one)`,
    );
  }
  return stored;
}

interface MqttLogins {
  inference: { username: string; password: string };
  cameraSim: { username: string; password: string };
  /** The worker's production-event subscriber (traceability.mesEvents). */
  genealogy: { username: string; password: string };
  /** The MES simulator publishing its production events. */
  mesSim: { username: string; password: string };
}

/**
 * The embedded broker's logins: generated on first start into the data directory, mode 0600, then reused; a login
 * added since the file was written is generated and added to it.
 */
async function mqttCredentialsFor(dataDir: string): Promise<MqttLogins> {
  const file = join(dataDir, 'mqtt-credentials.json');
  const stored = existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as Partial<MqttLogins>) : {};
  const login = (username: string) => ({ username, password: randomBytes(18).toString('base64url') });
  const logins: MqttLogins = {
    inference: stored.inference ?? login('holdfast-inference'),
    cameraSim: stored.cameraSim ?? login('camera-sim'),
    genealogy: stored.genealogy ?? login('holdfast-genealogy'),
    mesSim: stored.mesSim ?? login('mes-sim'),
  };
  if (Object.keys(logins).some((k) => !Object.hasOwn(stored, k))) {
    await writeFile(file, `${JSON.stringify(logins, null, 2)}\n`, { mode: 0o600 });
  }
  await chmod(file, 0o600);
  return logins;
}

function configuredStations(config: HoldfastConfig): { site: string; line: string; station: string }[] {
  return config.sites.flatMap((site) =>
    site.lines.flatMap((line) => line.stations.map((s) => ({ site: site.id, line: line.id, station: s.id }))),
  );
}

/** One failed inspection for the demo plant (PLANT1, line L1, lot L-0001), as the banner's example. */
export function exampleCurl(apiBase: string, now = new Date()): string {
  const body = {
    eventId: `demo-${now.getTime()}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${now.getTime()}`,
    sku: 'BRKT-200',
    lotId: 'L-0001',
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.94 }],
    modelVersion: 'vision-2.3.0',
    recipeVersion: 'R-17',
    inspectedAt: now.toISOString(),
  };
  return (
    `curl -sS -X POST ${apiBase}/v1/inspections -H "authorization: Bearer $TOKEN" ` +
    `-H 'content-type: application/json' -d '${JSON.stringify(body)}'`
  );
}

export function banner(stack: LocalStack, config: HoldfastConfig): string {
  const api = stack.processes.find((p) => p.name === 'api')?.url;
  const lines = ['', 'Holdfast is running (Ctrl-C stops everything)', ''];
  if (api) lines.push(`  API               ${api}`, `  API docs          ${api}/docs`);
  if (stack.temporalUiUrl) lines.push(`  Temporal Web UI   ${stack.temporalUiUrl}`);
  lines.push(`  Temporal          ${describeTarget(stack.temporal)}`);
  lines.push(`  PostgreSQL        ${redactUrl(stack.databaseUrl)}`);
  for (const p of stack.processes) {
    if (p.url && p.name !== 'api') lines.push(`  ${p.name.padEnd(18)}${p.url}`);
  }
  lines.push(`  Data directory    ${stack.dataDir}`);
  const metrics = stack.processes.flatMap((p) => (p.metricsUrls ?? []).map((url) => `  ${p.name.padEnd(18)}${url}`));
  if (metrics.length > 0) lines.push('', 'Prometheus metrics (docs/operations.md):', '', ...metrics);
  const apiBase = api ?? `http://${config.api.host}:${config.api.port}`;
  const passwordFile = join(stack.dataDir, FIRST_ADMIN_PASSWORD_FILE);
  const password = existsSync(passwordFile) ? readFileSync(passwordFile, 'utf8').trim() : undefined;
  lines.push('', `Quality dashboard: ${apiBase}/ui`, '');
  lines.push(
    password
      ? `  Sign in as admin, password ${password} (set at the first start, kept in ${passwordFile}; accounts: npm run users)`
      : '  Sign in as admin with the password the first start printed (accounts: npm run users)',
  );
  lines.push('', 'Or call the API with a token:', '');
  lines.push(
    `  TOKEN=$(curl -sS ${apiBase}/v1/auth/token -H 'content-type: application/json' ` +
      `-d '{"username":"admin","password":"${password ?? '…'}"}' | sed 's/.*"access_token":"\\([^"]*\\)".*/\\1/')`,
  );
  lines.push('', 'Post a failed inspection:', '');
  lines.push(`  ${exampleCurl(apiBase)}`, '');
  lines.push(
    'More detail: LOG_LEVEL=debug, or LOG_LEVEL_<PROCESS>=debug for one (LOG_LEVEL_API, LOG_LEVEL_SAP_SIM, …).',
  );
  lines.push('Ctrl-C stops everything.', '');
  return lines.join('\n');
}

async function main(): Promise<void> {
  const output = consoleOutput();
  const log = output.log;
  const interrupted = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (onSignal = resolve));
  let firstSignalAt = 0;
  const handleSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      // Wrappers (npm, tsx, timeout) relay the terminal's signal, so one Ctrl-C can arrive twice: only a later one
      // means "stop waiting". Then the exit hook kills every child's process group.
      if (Date.now() - firstSignalAt < 2_000) return;
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    signalled = signal;
    firstSignalAt = Date.now();
    log(`${signal}: stopping`);
    interrupted.abort();
    onSignal(signal);
  };
  process.on('SIGINT', handleSignal);
  process.on('SIGTERM', handleSignal);
  stopWhenNpmIsGone(handleSignal);

  const config = loadConfig();
  let stack: LocalStack;
  try {
    stack = await startLocalStack({ config, output, signal: interrupted.signal });
  } catch (err) {
    if (!signalled) {
      log(`npm start failed: ${readableLines((err as Error).message)}`, 'error');
      process.exitCode = 1;
      return;
    }
    log('stopped during start-up');
    process.exitCode = 130;
    return;
  }
  output.text(banner(stack, config), 'Holdfast is running (Ctrl-C stops everything)');

  const outcome = await Promise.race([stack.crashed, stopRequested]);
  if (typeof outcome === 'object') {
    log(`--- ${outcome.name} output (tail) ---\n${outcome.outputTail || '(no output)'}`, 'error');
    log(`Holdfast stopped: ${readableLines(outcome.message)}`, 'error');
    process.exitCode = 1;
    return;
  }
  await stack.stop();
  log('Holdfast stopped');
}

if (require.main === module) {
  main().then(
    () => process.exit(process.exitCode ?? 0),
    (err: Error) => {
      process.stderr.write(`npm start failed: ${err.message}\n`);
      process.exit(1);
    },
  );
}
