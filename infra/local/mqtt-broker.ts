/**
 * MQTT brokers for development and tests: an embedded aedes broker (the `npm start` default when no broker URL is
 * configured) and a real Mosquitto from Debian (what tests also run against, and what a plant would run).
 *
 * Run the embedded broker alone: `node --import tsx infra/local/mqtt-broker.ts` (MQTT_BROKER_PORT, default 1883;
 * MQTT_BROKER_HOST, default 127.0.0.1); it prints `mqtt broker ready <url>` and stops on SIGTERM / SIGINT.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { chown, mkdir, readdir, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { delimiter, dirname, join, resolve } from 'node:path';
import { parseLogLine } from '../observability/log-line';
import { createLogger, type Logger } from '../observability/logger';
import { assertPortFree, describeExit, failOnExit, sleep, spawnManaged, type ManagedProcess } from './managed-process';

export interface MqttBroker {
  /** mqtt://host:port */
  url: string;
  stop(): Promise<void>;
}

export interface MosquittoBroker extends MqttBroker {
  pid: () => number;
  /** SIGTERM (Mosquitto writes its persistence file on a graceful exit), then start again: same port, same data. */
  restart(): Promise<void>;
}

const LOOPBACK = '127.0.0.1';
const READY_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------------------
// Embedded broker (aedes)

/**
 * aedes over plain TCP with its default in-memory persistence: persistent sessions and queued QoS 1 messages
 * survive a subscriber's reconnect, but not a restart of this process. Port 0 picks a free port (see `url`).
 */
export async function startEmbeddedMqttBroker(opts: { host?: string; port: number }): Promise<MqttBroker> {
  const host = opts.host ?? LOOPBACK;
  if (opts.port !== 0) await assertPortFree(opts.port, host, 'MQTT port');
  // aedes 1.x is ESM-only. Node 20.19+ loads it from this CommonJS module through import(); jest's module system
  // cannot (without --experimental-vm-modules), so there the same broker runs as a child process instead.
  const loaded = await import('aedes').catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG') return undefined;
    throw err;
  });
  if (!loaded) return spawnEmbeddedMqttBroker({ host, port: opts.port });
  const { Aedes } = loaded;
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(opts.port, host, () => {
        server.off('error', reject);
        resolveListen();
      });
    });
  } catch (err) {
    await new Promise<void>((done) => broker.close(() => done()));
    throw err;
  }
  const address = server.address();
  const port = address && typeof address === 'object' ? address.port : opts.port;
  await waitForTcp(host, port, READY_TIMEOUT_MS);

  let stopped: Promise<void> | undefined;
  return {
    url: `mqtt://${host}:${port}`,
    stop() {
      stopped ??= (async () => {
        const serverClosed = new Promise<void>((done) => server.close(() => done()));
        await new Promise<void>((done) => broker.close(() => done()));
        // aedes closes the clients it knows; a socket still in its CONNECT handshake is ours to end.
        for (const socket of sockets) socket.destroy();
        await serverClosed;
      })();
      return stopped;
    },
  };
}

/**
 * The embedded broker in a child process of its own (`node --import tsx` this file): for callers that cannot load
 * ESM in-process (jest), and for tests that kill the broker. Port 0 lets the child pick one (see `url`).
 */
export async function spawnEmbeddedMqttBroker(opts: {
  host?: string;
  port: number;
  log?: (line: string) => void;
}): Promise<MqttBroker & { pid: number }> {
  const host = opts.host ?? LOOPBACK;
  if (opts.port !== 0) await assertPortFree(opts.port, host, 'MQTT port');
  let announced: ((url: string) => void) | undefined;
  const ready = new Promise<string>((resolveReady) => (announced = resolveReady));
  const proc = spawnManaged({
    name: 'mqtt-broker',
    command: process.execPath,
    args: ['--import', 'tsx', __filename],
    cwd: resolve(__dirname, '../..'),
    env: { ...process.env, MQTT_BROKER_HOST: host, MQTT_BROKER_PORT: String(opts.port) },
    onLine: (line) => {
      opts.log?.(`[mqtt-broker] ${line}`);
      const url = READY_LINE.exec(parseLogLine(line)?.msg ?? line)?.[1];
      if (url) announced?.(url);
    },
  });
  let timer: NodeJS.Timeout | undefined;
  let url: string;
  try {
    url = await Promise.race([
      ready,
      failOnExit(proc, (exit) => `embedded MQTT broker ${describeExit(exit)}:\n${proc.outputTail()}`),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`embedded MQTT broker not ready within ${READY_TIMEOUT_MS} ms`)),
          READY_TIMEOUT_MS,
        );
      }),
    ]);
    // The line comes after listen(); a connect confirms it from this side of the socket too.
    await waitForTcp(host, Number(new URL(url).port), READY_TIMEOUT_MS);
  } catch (err) {
    await proc.stop({ signal: 'SIGKILL' });
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    url,
    pid: proc.pid,
    stop: async () => {
      await proc.stop({ signal: 'SIGTERM', graceMs: 5_000 });
    },
  };
}

const READY_LINE = /^mqtt broker ready (mqtt:\/\/\S+)$/;

// ---------------------------------------------------------------------------------------------------------------
// Mosquitto

export const MOSQUITTO_NOT_FOUND = 'Mosquitto not found: apt-get install mosquitto (Debian)';
const DEBIAN_MOSQUITTO = '/usr/sbin/mosquitto';

export interface MosquittoOptions {
  port: number;
  /** Holds mosquitto.conf and the persistence file; reuse it to keep sessions and queued messages. */
  dataDir: string;
  /** Default: MOSQUITTO_BIN, then `mosquitto` on PATH, then /usr/sbin/mosquitto. */
  executable?: string;
  /**
   * Unacknowledged QoS 1 messages Mosquitto keeps in flight per client (max_inflight_messages). With MQTT 3.1.1
   * this is the broker-side window; an MQTT 5 client's Receive Maximum lowers it further. Default 20 (Mosquitto's).
   */
  maxInflightMessages?: number;
  log?: (line: string) => void;
}

/** MOSQUITTO_BIN, then `mosquitto` on PATH, then Debian's /usr/sbin/mosquitto; throws MOSQUITTO_NOT_FOUND. */
export function resolveMosquittoExecutable(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MOSQUITTO_BIN) {
    if (isExecutable(env.MOSQUITTO_BIN)) return env.MOSQUITTO_BIN;
    throw new Error(`MOSQUITTO_BIN=${env.MOSQUITTO_BIN} is not an executable file. ${MOSQUITTO_NOT_FOUND}`);
  }
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'mosquitto');
    if (isExecutable(candidate)) return candidate;
  }
  if (isExecutable(DEBIAN_MOSQUITTO)) return DEBIAN_MOSQUITTO;
  throw new Error(MOSQUITTO_NOT_FOUND);
}

/**
 * The configuration Holdfast runs Mosquitto with, rewritten at every start. Mosquitto 2.0 reference:
 * https://mosquitto.org/man/mosquitto-conf-5.html
 */
/**
 * QoS 1 messages Mosquitto sends a client before it waits for PUBACKs. Mosquitto's own default, 20, caps a worker
 * that acknowledges a frame only once its result is stored at 20 / (frame → stored latency): about 80 frames/s here
 * (bench:inference). The worker bounds itself with vision.mqtt.maxInFlight.
 */
export const DEFAULT_MAX_INFLIGHT = 256;

export function mosquittoConfig(opts: { port: number; dataDir: string; maxInflightMessages: number }): string {
  return [
    '# Written by infra/local/mqtt-broker.ts at every start; edits are lost.',
    `listener ${opts.port} ${LOOPBACK}`,
    '# Local development and tests only: anonymous clients, reachable from this machine alone (loopback listener).',
    'allow_anonymous true',
    '',
    '# Sessions, subscriptions and queued QoS 1 messages are written here on a graceful exit (SIGTERM) and at every',
    '# autosave, so a restart keeps what the broker already acknowledged to publishers. A crash (SIGKILL) can lose',
    '# what arrived since the last autosave: autosave_interval is in seconds.',
    'persistence true',
    // Mosquitto requires the trailing slash.
    `persistence_location ${resolve(opts.dataDir)}/`,
    'persistence_file mosquitto.db',
    'autosave_interval 1',
    '',
    '# Frames queue for an offline persistent session; Mosquitto drops QoS 1 messages beyond max_queued_messages',
    '# (default 1000), which would lose frames during a long worker outage. 0 = no limit (bounded by memory).',
    'max_queued_messages 0',
    `max_inflight_messages ${opts.maxInflightMessages}`,
    '# Camera frames are images; Mosquitto accepts up to 256 MB per message by default, 16 MB is ample.',
    'message_size_limit 16777216',
    '',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
    'connection_messages false',
    '',
  ].join('\n');
}

/**
 * Runs Mosquitto on 127.0.0.1:`port` with its config and persistence in `dataDir`; ready once a TCP connect
 * succeeds. As root it runs as the `mosquitto` OS user (from Debian's package), which then owns `dataDir`.
 */
export async function startMosquitto(opts: MosquittoOptions): Promise<MosquittoBroker> {
  const executable = opts.executable ?? resolveMosquittoExecutable();
  if (!isExecutable(executable)) throw new Error(`${executable} is not an executable file. ${MOSQUITTO_NOT_FOUND}`);
  const dataDir = resolve(opts.dataDir);
  const log = opts.log ?? (() => undefined);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const confFile = join(dataDir, 'mosquitto.conf');
  await writeFile(
    confFile,
    mosquittoConfig({
      port: opts.port,
      dataDir,
      maxInflightMessages: opts.maxInflightMessages ?? DEFAULT_MAX_INFLIGHT,
    }),
    { mode: 0o600 },
  );
  const runAs = mosquittoOsUser();
  if (runAs) {
    assertTraversable(dirname(dataDir), runAs.uid);
    await chownTree(dataDir, runAs);
  }

  let proc: ManagedProcess | undefined;
  const launch = async () => {
    await assertPortFree(opts.port, LOOPBACK, 'Mosquitto port');
    const started = spawnManaged({
      name: 'mosquitto',
      command: executable,
      args: ['-c', confFile],
      cwd: dataDir,
      uid: runAs?.uid,
      gid: runAs?.gid,
      // SIGTERM on our own exit: Mosquitto then saves its persistence file; SIGKILL would lose the last second.
      signalOnParentExit: 'SIGTERM',
      onLine: (line) => log(`[mosquitto] ${line}`),
    });
    proc = started;
    try {
      await Promise.race([
        waitForTcp(LOOPBACK, opts.port, READY_TIMEOUT_MS),
        failOnExit(started, (exit) => `Mosquitto ${describeExit(exit)}:\n${started.outputTail()}`),
      ]);
    } catch (err) {
      // Not ready in time (a loaded machine): the caller gets no broker to stop, so this one must not outlive the throw.
      proc = undefined;
      await started.stop({ signal: 'SIGKILL' });
      throw err;
    }
  };
  const halt = async () => {
    const current = proc;
    proc = undefined;
    if (current) await current.stop({ signal: 'SIGTERM', graceMs: 10_000 });
  };

  await launch();
  return {
    url: `mqtt://${LOOPBACK}:${opts.port}`,
    pid: () => proc?.pid ?? -1,
    async restart() {
      await halt();
      await launch();
    },
    stop: halt,
  };
}

interface OsUser {
  uid: number;
  gid: number;
}

/** As root: the `mosquitto` user Debian's package creates (a broker parsing network input should not be root). */
function mosquittoOsUser(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const uid = Number(execFileSync('id', ['-u', 'mosquitto'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'mosquitto'], { encoding: 'utf8' }).trim());
    if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid };
  } catch {
    // explained below
  }
  throw new Error(
    'Running as root, but there is no `mosquitto` OS user to run Mosquitto as (Debian`s package creates it): ' +
      'apt-get install mosquitto, or run as a non-root user.',
  );
}

async function chownTree(dir: string, owner: OsUser): Promise<void> {
  await chown(dir, owner.uid, owner.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, owner);
    else await chown(path, owner.uid, owner.gid);
  }
}

/** Fails early, naming the directory, when the mosquitto user could not reach its data directory. */
function assertTraversable(dir: string, uid: number): void {
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d);
    if (st.uid !== uid && (st.mode & 0o001) === 0) {
      throw new Error(`the mosquitto OS user (uid ${uid}) cannot enter ${d}; chmod o+x ${d} or choose another dir`);
    }
    if (dirname(d) === d) return;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Readiness

/** Resolves once a TCP connection to host:port succeeds; retries every 50 ms until `timeoutMs`. */
export async function waitForTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no attempt';
  while (Date.now() < deadline) {
    try {
      await new Promise<void>((ok, fail) => {
        const socket = connect({ host, port });
        socket.setTimeout(1_000, () => socket.destroy(new Error('connect timed out')));
        socket.once('connect', () => {
          socket.destroy();
          ok();
        });
        socket.once('error', fail);
      });
      return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
      await sleep(50);
    }
  }
  throw new Error(`nothing accepted TCP connections on ${host}:${port} within ${timeoutMs} ms (${lastError})`);
}

// ---------------------------------------------------------------------------------------------------------------
// CLI: the embedded broker as its own process

async function main(logger: Logger): Promise<void> {
  const port = Number(process.env.MQTT_BROKER_PORT ?? 1883);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`MQTT_BROKER_PORT must be a port number, got "${process.env.MQTT_BROKER_PORT}"`);
  }
  const broker = await startEmbeddedMqttBroker({ host: process.env.MQTT_BROKER_HOST || LOOPBACK, port });
  logger.info(`mqtt broker ready ${broker.url}`);
  const stop = () => {
    broker.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'mqtt broker did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  const logger = createLogger('mqtt-broker');
  main(logger).catch((err: unknown) => {
    logger.fatal({ err }, 'mqtt broker failed to start');
    process.exit(1);
  });
}
