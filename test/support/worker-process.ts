/**
 * A Holdfast worker as its own process (workers/main.ts) over a test stack's simulators, task queue, database and
 * Temporal server: what a test kills with SIGKILL (a crash point, HOLDFAST_CRASH_AT) and replaces with another.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { eventually } from './eventually';
import type { HoldfastStack } from './stack';
import { readTestEnv } from './test-env';

const ROOT = resolve(__dirname, '../..');

export interface WorkerProcess {
  child: ChildProcess;
  output: () => string;
  ready: Promise<void>;
  /** Resolves with the signal that ended the process (null: it exited by itself). */
  exited: Promise<NodeJS.Signals | null>;
  /** SIGTERM, and waits for the exit. */
  stop(): Promise<void>;
}

export function startWorkerProcess(
  stack: Pick<HoldfastStack, 'config' | 'sapEnv'>,
  extraEnv: Record<string, string>,
): WorkerProcess {
  const env = readTestEnv();
  const dir = mkdtempSync(join(tmpdir(), 'holdfast-worker-'));
  const configFile = join(dir, 'temporal.yaml');
  // Metrics and health on free ports: a second worker, or another run on this machine, may hold the default ones.
  const observability = { ...stack.config.observability, worker: { host: '127.0.0.1', port: 0, temporalSdkPort: 0 } };
  writeFileSync(configFile, stringify({ ...stack.config, observability }));
  // `node --import tsx` keeps the worker in this very process, so the test sees the SIGKILL itself.
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...stack.sapEnv,
      HOLDFAST_CONFIG: configFile,
      DATABASE_URL: env.databaseUrl,
      TEMPORAL_ADDRESS: env.temporalAddress,
      TEMPORAL_NAMESPACE: env.namespace,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_code, signal) => r(signal)));
  // Its output says why it never got ready: a worker that exits or hangs at start is a failure with its log.
  const ready = Promise.race([
    // Bundling the workflow code takes a while on a loaded machine.
    eventually('worker process ready', () => out.includes('worker ready'), { timeoutMs: 240_000 }),
    exited.then((signal) => {
      throw new Error(`worker process ended (${signal ?? 'exit'}) before it was ready`);
    }),
  ]).then(
    () => undefined,
    (err: Error) => {
      throw new Error(`${err.message}; its output:\n${out.slice(-4000)}`);
    },
  );
  return {
    child,
    output: () => out,
    ready,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
