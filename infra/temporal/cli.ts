import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LineLog } from '../observability/log-line';

/**
 * The CLI version Holdfast builds. v1.5.1 is the newest tag that `go install` accepts (later tags carry a `replace`
 * directive) and embeds server v1.29.1; see docs/temporal.md#cli-version.
 */
export const TEMPORAL_CLI_VERSION = '1.5.1';
export const MIN_GO_VERSION = [1, 25] as const;

type Log = LineLog;

export class TemporalCliNotFoundError extends Error {
  override readonly name = 'TemporalCliNotFoundError';
}

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HOLDFAST_CACHE_DIR || join(env.HOME || homedir(), '.cache', 'holdfast');
}

export function cachedCliPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheDir(env), `temporal-${TEMPORAL_CLI_VERSION}`, 'bin', 'temporal');
}

/**
 * Returns a runnable `temporal` binary: HOLDFAST_TEMPORAL_CLI, then TEMPORAL_CLI_PATH, then `temporal` on PATH,
 * then the cached build, else builds v1.5.1 from the Go module into the cache (about 5 minutes the first time).
 */
export async function resolveTemporalCli(log: Log = () => undefined, env = process.env): Promise<string> {
  for (const variable of ['HOLDFAST_TEMPORAL_CLI', 'TEMPORAL_CLI_PATH'] as const) {
    const path = env[variable];
    if (!path) continue;
    // A path set on purpose that does not work is a mistake to report, not a reason to look elsewhere.
    const version = await cliVersion(path, env);
    if (version instanceof Error) {
      throw new TemporalCliNotFoundError(`${variable}=${path} is not a runnable temporal CLI: ${version.message}`);
    }
    log(`temporal CLI from ${variable}: ${path} (${version})`);
    return path;
  }

  const onPath = findOnPath('temporal', env);
  if (onPath) {
    const version = await cliVersion(onPath, env);
    if (!(version instanceof Error)) {
      log(`temporal CLI on PATH: ${onPath} (${version})`);
      return onPath;
    }
    log(`ignoring ${onPath} on PATH: ${version.message}`);
  }

  const cached = cachedCliPath(env);
  if (isExecutableFile(cached)) {
    const version = await cliVersion(cached, env);
    if (!(version instanceof Error)) {
      log(`temporal CLI from cache: ${cached} (${version})`);
      return cached;
    }
    log(`cached ${cached} does not run (${version.message}); rebuilding it`);
  }

  return buildTemporalCli(log, env);
}

/** `go install` of the CLI into the cache. Throws with instructions when Go is missing or too old. */
export async function buildTemporalCli(log: Log, env = process.env): Promise<string> {
  const howToFix =
    `Install Go >= ${MIN_GO_VERSION.join('.')} (https://go.dev/dl/) so Holdfast can build the Temporal CLI ` +
    `v${TEMPORAL_CLI_VERSION}, or install the temporal CLI yourself and set HOLDFAST_TEMPORAL_CLI=/path/to/temporal.`;
  const go = findOnPath('go', env);
  if (!go)
    throw new TemporalCliNotFoundError(`No temporal CLI found (not on PATH, not in ${cacheDir(env)}). ${howToFix}`);
  const goVersion = await run(go, ['env', 'GOVERSION'], env).catch((err: Error) => err);
  if (goVersion instanceof Error) {
    throw new TemporalCliNotFoundError(
      `No temporal CLI found, and ${go} does not run (${goVersion.message}). ${howToFix}`,
    );
  }
  if (!goVersionAtLeast(goVersion.trim(), MIN_GO_VERSION)) {
    throw new TemporalCliNotFoundError(
      `No temporal CLI found, and ${go} is ${goVersion.trim()}; the CLI v${TEMPORAL_CLI_VERSION} needs ` +
        `Go >= ${MIN_GO_VERSION.join('.')}. ${howToFix}`,
    );
  }

  const cache = cacheDir(env);
  const versionDir = join(cache, `temporal-${TEMPORAL_CLI_VERSION}`);
  const finalPath = cachedCliPath(env);
  // GOBIN is a private directory per build and the result is renamed into place, so neither a half-written binary
  // nor a build racing another process is ever picked up as the cached CLI.
  const partialBin = join(versionDir, `.bin-partial-${process.pid}-${Date.now()}`);
  await mkdir(join(versionDir, 'bin'), { recursive: true });
  await mkdir(partialBin, { recursive: true });

  const buildEnv: NodeJS.ProcessEnv = {
    ...env,
    CGO_ENABLED: '0',
    GOTOOLCHAIN: 'local',
    GOBIN: partialBin,
    GOMODCACHE: join(cache, 'go', 'mod'),
    GOCACHE: join(cache, 'go', 'build'),
    GOFLAGS: '-modcacherw',
  };
  const args = [
    'install',
    '-ldflags',
    `-X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
    `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`,
  ];
  log(`building the Temporal CLI v${TEMPORAL_CLI_VERSION} with ${goVersion.trim()} into ${versionDir}`);
  log('first build downloads ~240 modules and compiles the server: expect about 5 minutes');
  const started = Date.now();
  try {
    await streamCommand(go, args, buildEnv, log, started);
    await rename(join(partialBin, 'temporal'), finalPath);
  } catch (err) {
    throw new TemporalCliNotFoundError(
      `Building the Temporal CLI failed: ${(err as Error).message}. ` +
        `Retry, or install the temporal CLI yourself and set HOLDFAST_TEMPORAL_CLI=/path/to/temporal.`,
    );
  } finally {
    await rm(partialBin, { recursive: true, force: true });
  }
  const version = await cliVersion(finalPath, env);
  if (version instanceof Error) {
    throw new TemporalCliNotFoundError(`The freshly built ${finalPath} does not run: ${version.message}`);
  }
  log(`built ${finalPath} (${version}) in ${Math.round((Date.now() - started) / 1000)} s`);
  return finalPath;
}

export function goVersionAtLeast(goVersion: string, min: readonly [number, number]): boolean {
  const m = /^go(\d+)\.(\d+)/.exec(goVersion);
  if (!m) return false;
  const major = Number(m[1]);
  const minor = Number(m[2]);
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

export function findOnPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first line of `temporal --version`, or the reason the binary does not run. */
async function cliVersion(path: string, env: NodeJS.ProcessEnv): Promise<string | Error> {
  try {
    const out = await run(path, ['--version'], env);
    return out.split('\n')[0]?.trim() || 'unknown version';
  } catch (err) {
    return err as Error;
  }
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    // 30 s: the first exec of a 250 MB binary on a cold disk is slow.
    execFile(command, args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message.split('\n')[0]}${stderr ? `: ${stderr.trim().slice(-500)}` : ''}`));
      else resolve(stdout);
    });
  });
}

/** Runs the build, relaying its output and a heartbeat so a 5-minute compile does not look hung. */
function streamCommand(command: string, args: string[], env: NodeJS.ProcessEnv, log: Log, started: number) {
  return new Promise<void>((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    let downloaded = 0;
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        // About 240 of these on the first build: counted in the heartbeat, each one only at debug.
        if (line.startsWith('go: downloading ')) downloaded += 1;
        const routine = /^go: (downloading|extracting|finding) /.test(line);
        log(`go: ${line.replace(/^go: /, '')}`, routine ? 'debug' : 'info');
      });
    }
    const heartbeat = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      log(`still building the Temporal CLI (${seconds} s, ${downloaded} modules downloaded)`);
    }, 30_000);
    child.once('error', (err) => {
      clearInterval(heartbeat);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearInterval(heartbeat);
      if (code === 0) resolve();
      else reject(new Error(`go install ${signal ? `killed by ${signal}` : `exited ${code}`}\n${tail.join('\n')}`));
    });
  });
}

if (require.main === module) {
  resolveTemporalCli((msg) => process.stderr.write(`${msg}\n`)).then(
    (path) => process.stdout.write(`${path}\n`),
    (err: Error) => {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
