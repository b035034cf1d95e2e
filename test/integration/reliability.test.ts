/**
 * Faults that need real processes: a worker process killed between an ERP posting and Temporal hearing of it,
 * and Temporal unreachable while inspections keep arriving.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { stringify } from 'yaml';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { startOutboxDispatcher } from '../../infra/outbox/dispatcher';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { lotCaseStateQuery, lotCaseWorkflowId } from '../../workflows/contracts';
import { createLot, failedInspection, simulatorCounts, waitFor } from '../support/plant';
import { TcpProxy } from '../support/tcp-proxy';
import { readTestEnv, testPool } from '../support/test-env';
import { installQuietRuntime } from '../support/workflow-harness';

const ROOT = resolve(__dirname, '../..');
const env = readTestEnv();
const pool = testPool();
let stack: HoldfastStack;

/** Short activity timeouts: a dead worker is only noticed when startToClose runs out (reliability.md §2.2). */
function fastFailoverConfig(): HoldfastConfig {
  const base = loadConfig();
  const fast = {
    startToCloseTimeout: '3s',
    retry: { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '1s' },
  };
  return { ...base, activityPresets: { mesCall: fast, erpPost: fast, traceWrite: fast, notify: fast } };
}

beforeAll(async () => {
  installQuietRuntime();
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config: fastFailoverConfig(),
    worker: false,
  });
}, 120_000);
afterAll(async () => {
  await stack?.stop();
  await pool.end();
});

function startWorkerProcess(extraEnv: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  ready: Promise<void>;
} {
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
  const ready = waitFor('worker process ready', async () => (out.includes('worker ready') ? true : undefined), 90_000);
  return { child, output: () => out, ready: ready.then(() => undefined) };
}

test('a worker killed right after the ERP stock block posts loses nothing and posts nothing twice', async () => {
  const lotId = `L-KILL-${randomUUID().slice(0, 8)}`;
  await createLot(stack, { lotId });
  const before = await simulatorCounts(stack);

  const doomed = startWorkerProcess({ HOLDFAST_CRASH_AT: 'after-erp-goods-movement' });
  await doomed.ready;
  const exited = new Promise<NodeJS.Signals | null>((r) => doomed.child.on('exit', (_code, signal) => r(signal)));
  const inspection = failedInspection(lotId);
  const res = await stack.api.inject({ method: 'POST', url: '/v1/inspections', payload: inspection });
  expect(res.statusCode).toBe(202);
  expect(await exited).toBe('SIGKILL');
  // The posting happened; Temporal never heard of it.
  expect((await simulatorCounts(stack)).materialDocuments - before.materialDocuments).toBe(1);

  const survivor = startWorkerProcess({});
  try {
    await survivor.ready;
    const handle = stack.client.workflow.getHandle(lotCaseWorkflowId('PLANT1', lotId));
    await waitFor(
      'lot case awaiting disposition after fail-over',
      async () => {
        const state = await handle.query(lotCaseStateQuery);
        return state.stage === 'awaiting-disposition' ? state : undefined;
      },
      60_000,
    );
    const after = await simulatorCounts(stack);
    expect(after.materialDocuments - before.materialDocuments).toBe(1);
    expect(after.notifications - before.notifications).toBe(1);
    expect(after.notificationItems - before.notificationItems).toBe(1);
    expect(after.holds - before.holds).toBe(1);
    expect(after.qualityEvents - before.qualityEvents).toBe(1);
  } finally {
    survivor.child.kill('SIGTERM');
    await new Promise((r) => survivor.child.on('exit', r));
  }
}, 180_000);

test('inspections are accepted while Temporal is unreachable and their workflows start once it is back', async () => {
  const [host, port] = env.temporalAddress.split(':');
  const proxy = new TcpProxy({ host: host!, port: Number(port) });
  await proxy.start();
  const connection = Connection.lazy({ address: `127.0.0.1:${proxy.port}` });
  const gateway = createTemporalWorkflowGateway(new Client({ connection, namespace: env.namespace }), {
    taskQueue: stack.taskQueue,
    rpcTimeoutMs: 1_000,
  });
  // A second dispatcher that reaches Temporal only through the proxy; the stack's own one is stopped for this test.
  await stack.dispatcher.stop();
  const dispatcher = startOutboxDispatcher({
    pool,
    gateway,
    config: { ...stack.config, outbox: { ...stack.config.outbox, maxBackoff: '1s' } },
  });
  try {
    await proxy.cut();
    const lotId = `L-OUT-${randomUUID().slice(0, 8)}`;
    const batch = { results: [failedInspection(lotId), failedInspection(lotId), failedInspection(lotId)] };
    const res = await stack.api.inject({ method: 'POST', url: '/v1/inspections', payload: batch });
    expect(res.statusCode).toBe(202);
    const ids = batch.results.map((r) => r.eventId);
    const pending = await waitFor('dispatch attempts to fail while Temporal is cut off', async () => {
      const { rows } = await pool.query(
        'SELECT event_id, attempts, last_error FROM holdfast.outbox WHERE event_id = ANY($1) AND dispatched_at IS NULL',
        [ids],
      );
      return rows.length === 3 && rows.some((r) => r.attempts > 0) ? rows : undefined;
    });
    expect(pending.find((r) => r.attempts > 0)!.last_error).toBeTruthy();

    await proxy.restore();
    const dispatched = await waitFor(
      'outbox rows dispatched after Temporal is back',
      async () => {
        const { rows } = await pool.query(
          'SELECT workflow_id FROM holdfast.outbox WHERE event_id = ANY($1) AND dispatched_at IS NOT NULL',
          [ids],
        );
        return rows.length === 3 ? rows : undefined;
      },
      30_000,
    );
    for (const { workflow_id } of dispatched) {
      const description = await stack.client.workflow.getHandle(workflow_id as string).describe();
      expect(description.type).toBe('defectWorkflow');
    }
  } finally {
    await dispatcher.stop();
    await connection.close();
    await proxy.cut();
  }
}, 120_000);
