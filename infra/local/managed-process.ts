import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

export interface ManagedProcessOptions {
  /** Used in log prefixes and error messages. */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run as another OS user (PostgreSQL refuses to run as root). */
  uid?: number;
  gid?: number;
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Sent to the process group if this (parent) process exits while the child still runs. SIGKILL by default;
   * PostgreSQL uses SIGQUIT, its own immediate-shutdown signal, so its backends go down with it.
   */
  signalOnParentExit?: NodeJS.Signals;
  /** Lines kept for error messages. */
  tailLines?: number;
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the process has exited, for whatever reason. */
  readonly exited: Promise<ProcessExit>;
  hasExited: () => boolean;
  /** The last lines of output, oldest first, for error messages. */
  outputTail: () => string;
  /**
   * Sends `signal` (SIGTERM) to the process group; after `graceMs` (10 s) without an exit, `thenSignal` and another
   * `graceMs`; finally SIGKILL.
   */
  stop: (opts?: { signal?: NodeJS.Signals; graceMs?: number; thenSignal?: NodeJS.Signals }) => Promise<ProcessExit>;
}

// One 'exit' listener for every child, however many are running: a parent that exits (normally or through
// process.exit) must not leave servers behind. 'exit' listeners may only do synchronous work; kill() is.
const running = new Map<number, NodeJS.Signals>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const [pid, signal] of running) killGroup(pid, signal);
  });
}

/** Signals the whole process group, so wrappers (tsx, the Temporal CLI) and their own children go too. */
function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/**
 * Spawns a long-running child in its own process group. Its own group means a Ctrl-C in the terminal reaches only
 * this process, which then stops children in order instead of all of them at once.
 */
export function spawnManaged(opts: ManagedProcessOptions): ManagedProcess {
  const tailLimit = opts.tailLines ?? 60;
  const tail: string[] = [];
  const child: ChildProcess = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    uid: opts.uid,
    gid: opts.gid,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let exitInfo: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('error', (err) => {
      remember(`[${opts.name}] failed to start: ${err.message}`);
      exitInfo ??= { code: null, signal: null };
      if (child.pid !== undefined) running.delete(child.pid);
      resolve(exitInfo);
    });
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (child.pid !== undefined) {
        running.delete(child.pid);
        // Grandchildren left in the group (a wrapper's child, a backend) go with their leader.
        killGroup(child.pid, 'SIGKILL');
      }
      resolve(exitInfo);
    });
  });

  function remember(line: string): void {
    tail.push(line);
    if (tail.length > tailLimit) tail.shift();
  }

  for (const stream of ['stdout', 'stderr'] as const) {
    const readable = child[stream];
    if (!readable) continue;
    createInterface({ input: readable, crlfDelay: Infinity }).on('line', (line) => {
      remember(line);
      opts.onLine?.(line, stream);
    });
  }

  if (child.pid !== undefined) {
    installExitHook();
    running.set(child.pid, opts.signalOnParentExit ?? 'SIGKILL');
  }

  return {
    name: opts.name,
    pid: child.pid ?? -1,
    exited,
    hasExited: () => exitInfo !== undefined,
    outputTail: () => tail.join('\n'),
    async stop({ signal = 'SIGTERM', graceMs = 10_000, thenSignal = 'SIGKILL' } = {}) {
      if (exitInfo) return exitInfo;
      const pid = child.pid;
      if (pid === undefined) return exited;
      const sequence: NodeJS.Signals[] = thenSignal === 'SIGKILL' ? [signal] : [signal, thenSignal];
      for (const sig of sequence) {
        killGroup(pid, sig);
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), graceMs);
        });
        const outcome = await Promise.race([exited, graceOver]);
        clearTimeout(timer);
        if (outcome !== 'timeout') return outcome;
        opts.onLine?.(`[${opts.name}] still running ${graceMs} ms after ${sig}`, 'stderr');
      }
      killGroup(pid, 'SIGKILL');
      return exited;
    },
  };
}

/** A port that was free a moment ago on `host`; the caller binds it right away (a small race we accept locally). */
export async function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/** Rejects with `message` when `exited` resolves first, so a crashed child fails a readiness wait at once. */
export function failOnExit(proc: ManagedProcess, describe: (exit: ProcessExit) => string): Promise<never> {
  return proc.exited.then((exit) => {
    throw new Error(describe(exit));
  });
}

export function describeExit(exit: ProcessExit): string {
  if (exit.signal) return `killed by ${exit.signal}`;
  if (exit.code === null) return 'could not be started';
  return `exited with code ${exit.code}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Fails, naming the port, when something already listens there. Readiness checks connect to host:port, so without
 * this a second server would "start" by reaching the first one while its own process dies on bind.
 */
export async function assertPortFree(port: number, host = '127.0.0.1', what = 'port'): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new Error(
          err.code === 'EADDRINUSE'
            ? `${what} ${host}:${port} is already in use (another instance running?)`
            : `${what} ${host}:${port} cannot be bound: ${err.message}`,
        ),
      );
    });
    server.listen(port, host, () => server.close(() => resolve()));
  });
}
