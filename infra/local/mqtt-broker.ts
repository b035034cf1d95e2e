/**
 * MQTT brokers for development and tests: an embedded aedes broker (the `npm start` default when no broker URL is
 * configured) and a real Mosquitto from Debian (what tests also run against, and what a plant would run).
 *
 * Run the embedded broker alone: `node --import tsx infra/local/mqtt-broker.ts` (MQTT_BROKER_PORT, default 1883;
 * MQTT_BROKER_HOST, default 127.0.0.1); it prints `mqtt broker ready <url>` and stops on SIGTERM / SIGINT.
 */
import { execFileSync } from 'node:child_process';
import { createHash, timingSafeEqual } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { chown, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { delimiter, dirname, join, resolve } from 'node:path';
import { levelValue, parseLogLine } from '../observability/log-line';
import { createLogger, type Logger } from '../observability/logger';
import { assertPortFree, describeExit, failOnExit, sleep, spawnManaged, type ManagedProcess } from './managed-process';

export interface MqttBroker {
  /** mqtt://host:port, or mqtts:// with TLS */
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

/** One broker login and what it may do; topic filters use MQTT's wildcards (+ one level, # the rest). */
export interface MqttAccount {
  username: string;
  password: string;
  /** Topics it may publish to; a publish elsewhere is dropped (aedes: the client is disconnected). */
  publish: string[];
  /** Filters it may subscribe to (a subscription is allowed when one of these covers it). */
  subscribe: string[];
}

/**
 * Who may connect: the accounts, or 'anonymous' (anyone, anything; for tests of unrelated behaviour only). No default,
 * so an open broker is always a visible choice.
 */
export type MqttBrokerAccess = { accounts: MqttAccount[] } | 'anonymous';

/**
 * The vision stream's accounts (topics in infra/vision/frame.schema.ts): each camera publishes only its own station's
 * frames; the inference worker subscribes to every station's frames and is the only one to publish results.
 */
export function visionStreamAccounts(opts: {
  prefix: string;
  inference: { username: string; password: string };
  cameras: { username: string; password: string; stations: { site: string; line: string; station: string }[] }[];
}): MqttAccount[] {
  const stationTopic = (s: { site: string; line: string; station: string }, leaf: string) =>
    `${opts.prefix}/${s.site}/${s.line}/${s.station}/${leaf}`;
  return [
    {
      ...opts.inference,
      publish: [`${opts.prefix}/+/+/+/inspection`],
      subscribe: [`${opts.prefix}/+/+/+/frames`],
    },
    ...opts.cameras.map((camera) => ({
      username: camera.username,
      password: camera.password,
      publish: camera.stations.map((s) => stationTopic(s, 'frames')),
      subscribe: [],
    })),
  ];
}

/** The production-event topics of every line (infra/simulators/mes/production-event.schema.ts productionEventTopic). */
export const PRODUCTION_EVENT_TOPICS = 'plant/+/+/+/production/performance';

/** The job-order topics of every line (infra/simulators/mes/job-order.schema.ts jobOrderTopic). */
export const JOB_ORDER_TOPICS = 'plant/+/+/+/production/job-orders';

/**
 * The MES's account on the Unified Namespace: it publishes every line's production-performance events
 * (`plant/<site>/<area>/<line>/production/performance`, infra/simulators/mes/production-event.schema.ts) and
 * job-order events (`plant/<site>/<area>/<line>/production/job-orders`, job-order.schema.ts), and reads nothing.
 */
export function mesProductionAccount(login: { username: string; password: string }): MqttAccount {
  return { ...login, publish: [PRODUCTION_EVENT_TOPICS, JOB_ORDER_TOPICS], subscribe: [] };
}

/**
 * Holdfast's account for the MES's events (the worker's traceability.mesEvents and changeover.events subscribers):
 * it reads those topics and nothing else, and writes nothing.
 */
export function mesEventsReaderAccount(login: { username: string; password: string }): MqttAccount {
  return { ...login, publish: [], subscribe: [PRODUCTION_EVENT_TOPICS, JOB_ORDER_TOPICS] };
}

/** True when every topic `filter` matches is also matched by `allowed` (both MQTT topic filters; a topic is one too). */
export function topicFilterCovers(allowed: string, filter: string): boolean {
  const a = allowed.split('/');
  const f = filter.split('/');
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '#') return true;
    if (i >= f.length) return false;
    if (a[i] === '+') {
      if (f[i] === '#') return false;
      continue;
    }
    if (a[i] !== f[i]) return false;
  }
  return a.length === f.length;
}

/** aedes' authenticate/authorize hooks for `accounts`; the password is compared in constant time. */
function aedesAccessHooks(accounts: MqttAccount[]) {
  const byName = new Map(accounts.map((a) => [a.username, a]));
  const loggedIn = new WeakMap<object, MqttAccount>();
  const digest = (value: Buffer | string) => createHash('sha256').update(value).digest();
  return {
    authenticate(
      client: object,
      username: string | undefined,
      password: Buffer | undefined,
      done: (error: (Error & { returnCode: number }) | null, success: boolean | null) => void,
    ) {
      const account = username === undefined ? undefined : byName.get(username);
      if (!account || !password || !timingSafeEqual(digest(password), digest(account.password))) {
        // 4: bad user name or password (MQTT 3.1.1 §3.2.2.3).
        done(Object.assign(new Error('bad user name or password'), { returnCode: 4 }), false);
        return;
      }
      loggedIn.set(client, account);
      done(null, true);
    },
    authorizePublish(client: object | null, packet: { topic: string }, done: (error?: Error | null) => void) {
      if (client === null) return done(null); // the broker's own $SYS messages
      const account = loggedIn.get(client);
      const allowed = account?.publish.some((topic) => topicFilterCovers(topic, packet.topic)) ?? false;
      done(allowed ? null : new Error(`not allowed to publish to ${packet.topic}`));
    },
    authorizeSubscribe<S extends { topic: string }>(
      client: object,
      subscription: S,
      done: (error: Error | null, subscription?: S | null) => void,
    ) {
      const account = loggedIn.get(client);
      const allowed = account?.subscribe.some((topic) => topicFilterCovers(topic, subscription.topic)) ?? false;
      // null: the SUBACK says failure (0x80) for this filter, the connection stays.
      done(null, allowed ? subscription : null);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Embedded broker (aedes)

/** The embedded broker's own certificate and key (PEM contents): with them it listens for mqtts:// only. */
export interface EmbeddedBrokerTls {
  cert: string | Buffer;
  key: string | Buffer;
}

export interface EmbeddedBrokerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  port: number;
  access: MqttBrokerAccess;
  tls?: EmbeddedBrokerTls;
  /** Told when the broker listens without TLS beyond this machine (passwords and frames would cross the network in
   *  clear). */
  warn?: (message: string) => void;
}

/** True for an address only this machine reaches: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** The warning for a plain listener reachable from other machines; undefined when there is nothing to warn about. */
export function plainListenerWarning(host: string, tls: boolean): string | undefined {
  if (tls || isLoopbackHost(host)) return undefined;
  return (
    `embedded MQTT broker listens on ${host} without TLS: MQTT passwords and frames cross the network in clear; ` +
    'configure embeddedTls (docs: infra/connectors/mqtt/README.md)'
  );
}

/**
 * aedes over TCP (or TLS, with `tls`) with its default in-memory persistence: persistent sessions and queued QoS 1
 * messages survive a subscriber's reconnect, but not a restart of this process. Port 0 picks a free port (see `url`).
 */
export async function startEmbeddedMqttBroker(opts: EmbeddedBrokerOptions): Promise<MqttBroker> {
  const host = opts.host ?? LOOPBACK;
  if (opts.port !== 0) await assertPortFree(opts.port, host, 'MQTT port');
  // aedes 1.x is ESM-only. Node 20.19+ loads it from this CommonJS module through import(); jest's module system
  // cannot (without --experimental-vm-modules), so there the same broker runs as a child process instead.
  const loaded = await import('aedes').catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG') return undefined;
    throw err;
  });
  if (!loaded) return spawnEmbeddedMqttBroker({ ...opts, host });
  const warning = plainListenerWarning(host, opts.tls !== undefined);
  if (warning) opts.warn?.(warning);
  const { Aedes } = loaded;
  const broker = await Aedes.createBroker(opts.access === 'anonymous' ? {} : aedesAccessHooks(opts.access.accounts));
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  let server: Server;
  if (opts.tls) {
    // A plain client's CONNECT is not a TLS ClientHello: the handshake fails and the socket is closed.
    const tlsServer = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, (socket) => broker.handle(socket));
    tlsServer.on('connection', track);
    server = tlsServer;
  } else {
    server = createServer((socket) => {
      track(socket);
      broker.handle(socket);
    });
  }
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
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://${urlHost(host)}:${port}`,
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
export async function spawnEmbeddedMqttBroker(
  opts: EmbeddedBrokerOptions & { log?: (line: string) => void },
): Promise<MqttBroker & { pid: number }> {
  const host = opts.host ?? LOOPBACK;
  if (opts.port !== 0) await assertPortFree(opts.port, host, 'MQTT port');
  // The accounts and the TLS key reach the child in files only their owner reads (secrets stay out of its environment
  // and argv).
  const accessDir = await mkdtemp(join(tmpdir(), 'holdfast-mqtt-access-'));
  const accessFile = join(accessDir, 'access.json');
  await writeFile(accessFile, JSON.stringify(opts.access), { mode: 0o600 });
  const tlsFile = opts.tls && join(accessDir, 'tls.json');
  if (tlsFile) {
    const pem = (v: string | Buffer) => (typeof v === 'string' ? v : v.toString('utf8'));
    await writeFile(tlsFile, JSON.stringify({ cert: pem(opts.tls!.cert), key: pem(opts.tls!.key) }), { mode: 0o600 });
  }
  let announced: ((url: string) => void) | undefined;
  const ready = new Promise<string>((resolveReady) => (announced = resolveReady));
  const proc = spawnManaged({
    name: 'mqtt-broker',
    command: process.execPath,
    args: ['--import', 'tsx', __filename],
    cwd: resolve(__dirname, '../..'),
    env: {
      ...process.env,
      MQTT_BROKER_HOST: host,
      MQTT_BROKER_PORT: String(opts.port),
      MQTT_BROKER_ACCESS_FILE: accessFile,
      ...(tlsFile ? { MQTT_BROKER_TLS_FILE: tlsFile } : {}),
    },
    onLine: (line) => {
      opts.log?.(`[mqtt-broker] ${line}`);
      const parsed = parseLogLine(line);
      if (parsed?.level === levelValue('warn') && parsed.msg) opts.warn?.(parsed.msg);
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
    await rm(accessDir, { recursive: true, force: true });
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return {
    url,
    pid: proc.pid,
    stop: async () => {
      await proc.stop({ signal: 'SIGTERM', graceMs: 5_000 });
      await rm(accessDir, { recursive: true, force: true });
    },
  };
}

const READY_LINE = /^mqtt broker ready (mqtts?:\/\/\S+)$/;

/** The host clients of this machine dial: a wildcard listener (every interface) is reached on loopback. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return LOOPBACK;
  return isIP(host) === 6 ? `[${host}]` : host;
}

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
  /** Accounts: written to a password file (mosquitto_passwd) and an ACL file in `dataDir`, both mode 0600. */
  access: MqttBrokerAccess;
  /** TLS on the listener (PEM contents, written to `dataDir/tls`, mode 0600); the URL becomes mqtts://. */
  tls?: { ca: string | Buffer; cert: string | Buffer; key: string | Buffer };
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

export function mosquittoConfig(opts: {
  port: number;
  dataDir: string;
  maxInflightMessages: number;
  anonymous: boolean;
  tls?: boolean;
}): string {
  const dir = resolve(opts.dataDir);
  return [
    '# Written by infra/local/mqtt-broker.ts at every start; edits are lost.',
    `listener ${opts.port} ${LOOPBACK}`,
    ...(opts.tls ? [`cafile ${dir}/tls/ca.pem`, `certfile ${dir}/tls/cert.pem`, `keyfile ${dir}/tls/key.pem`] : []),
    ...(opts.anonymous
      ? ['# Anonymous clients (a test that asked for it), reachable from this machine alone.', 'allow_anonymous true']
      : [
          '# Only the accounts in the password file; each may use only the topics its ACL entry names.',
          'allow_anonymous false',
          `password_file ${dir}/passwords`,
          `acl_file ${dir}/acl`,
        ]),
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
      anonymous: opts.access === 'anonymous',
      tls: opts.tls !== undefined,
    }),
    { mode: 0o600 },
  );
  if (opts.tls) {
    await mkdir(join(dataDir, 'tls'), { recursive: true, mode: 0o700 });
    for (const name of ['ca', 'cert', 'key'] as const) {
      await writeFile(join(dataDir, 'tls', `${name}.pem`), opts.tls[name], { mode: 0o600 });
    }
  }
  if (opts.access !== 'anonymous') await writeMosquittoAccounts(dataDir, opts.access.accounts, executable);
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
    url: `${opts.tls ? 'mqtts' : 'mqtt'}://${LOOPBACK}:${opts.port}`,
    pid: () => proc?.pid ?? -1,
    async restart() {
      await halt();
      await launch();
    },
    stop: halt,
  };
}

/**
 * The password file, hashed by Debian's mosquitto_passwd, and the ACL file. Batch mode (-b) puts the password in the
 * tool's argv for the few milliseconds it runs: acceptable for tests and development on one machine; a plant broker's
 * password file is made by its administrator.
 */
async function writeMosquittoAccounts(dataDir: string, accounts: MqttAccount[], mosquitto: string): Promise<void> {
  const passwords = join(dataDir, 'passwords');
  await writeFile(passwords, '', { mode: 0o600 });
  const tool = [join(dirname(mosquitto), 'mosquitto_passwd'), '/usr/bin/mosquitto_passwd'].find(isExecutable);
  if (!tool) throw new Error(`mosquitto_passwd not found beside ${mosquitto} or in /usr/bin. ${MOSQUITTO_NOT_FOUND}`);
  for (const account of accounts) {
    if (/[\s:]/.test(account.username)) throw new Error(`MQTT user name "${account.username}" has a space or ":"`);
    execFileSync(tool, ['-b', passwords, account.username, account.password], { stdio: 'pipe' });
  }
  const acl = accounts.flatMap((account) => [
    `user ${account.username}`,
    ...account.publish.map((topic) => `topic write ${topic}`),
    ...account.subscribe.map((topic) => `topic read ${topic}`),
    '',
  ]);
  await writeFile(
    join(dataDir, 'acl'),
    [`# Written by infra/local/mqtt-broker.ts at every start.`, ...acl].join('\n'),
    {
      mode: 0o600,
    },
  );
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
  const accessFile = process.env.MQTT_BROKER_ACCESS_FILE;
  if (!accessFile) throw new Error('MQTT_BROKER_ACCESS_FILE must name the accounts file (spawnEmbeddedMqttBroker)');
  const access = JSON.parse(readFileSync(accessFile, 'utf8')) as MqttBrokerAccess;
  const tlsFile = process.env.MQTT_BROKER_TLS_FILE;
  const tls = tlsFile ? (JSON.parse(readFileSync(tlsFile, 'utf8')) as EmbeddedBrokerTls) : undefined;
  const broker = await startEmbeddedMqttBroker({
    host: process.env.MQTT_BROKER_HOST || LOOPBACK,
    port,
    access,
    tls,
    warn: (message) => logger.warn(message),
  });
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
