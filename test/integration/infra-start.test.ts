import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFreePort } from '../../infra/local/managed-process';
import {
  banner,
  defaultLocalProcesses,
  exampleCurl,
  restartPolicyFrom,
  startLocalStack,
  type LocalProcessSpec,
  FIRST_ADMIN_PASSWORD_FILE,
  type LocalStack,
} from '../../infra/local/start';
import { parseConfig } from '../../infra/config/load';
import { eventually } from '../support/eventually';
import { readTestEnv } from '../support/test-env';
import { isRunning } from '../support/process-alive';

jest.setTimeout(120_000);

// Fake children (plain JS, run through tsx like the real entries) record what happened to them in one events file:
// "<name> started", "<name> ready", "<name> stopping", with the environment they were given.
const fakeChild = String.raw`
const { appendFileSync, existsSync } = require('node:fs');
const http = require('node:http');
const name = process.env.FAKE_NAME;
const events = process.env.FAKE_EVENTS;
const note = (what) => appendFileSync(events, JSON.stringify({ name, what, at: Date.now(), pid: process.pid }) + '\n');
note('started');
appendFileSync(events, JSON.stringify({ name, what: 'env', env: {
  DATABASE_URL: process.env.DATABASE_URL, TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS,
  TEMPORAL_NAMESPACE: process.env.TEMPORAL_NAMESPACE, HOLDFAST_CONFIG: process.env.HOLDFAST_CONFIG,
  SAP_USER: process.env.SAP_USER, SAP_PASSWORD: process.env.SAP_PASSWORD,
  HOLDFAST_PAYLOAD_KEYS: process.env.HOLDFAST_PAYLOAD_KEYS, HOLDFAST_PAYLOAD_KEY_ID: process.env.HOLDFAST_PAYLOAD_KEY_ID } }) + '\n');
process.on('SIGTERM', () => { note('stopping'); setTimeout(() => process.exit(0), 50); });
const mode = process.env.FAKE_MODE;
if (mode === 'http') {
  // Answers 503 first, so readiness has to poll rather than take the first answer.
  let calls = 0;
  http.createServer((req, res) => { calls++; res.statusCode = calls > 2 ? 200 : 503; res.end(); })
    .listen(Number(process.env.FAKE_PORT), '127.0.0.1', () => note('listening'));
} else if (mode === 'log-line') {
  setTimeout(() => { console.log('worker ready {"pools":["fake"]}'); note('ready'); }, 300);
  setInterval(() => undefined, 1000);
} else if (mode === 'die-before-ready') {
  console.error('cannot connect to the MES: ECONNREFUSED');
  process.exit(3);
} else if (mode === 'die-after-ready') {
  console.log('worker ready');
  setTimeout(() => { console.error('lost the Temporal connection'); process.exit(7); }, Number(process.env.FAKE_DIE_MS || 1500));
} else if (mode === 'die-once') {
  console.log('worker ready');
  if (existsSync(process.env.FAKE_MARKER)) setInterval(() => undefined, 1000);
  else { appendFileSync(process.env.FAKE_MARKER, 'died'); setTimeout(() => process.exit(7), 300); }
}
`;

interface ChildEvent {
  name: string;
  what: string;
  at?: number;
  pid?: number;
  env?: Record<string, string>;
}

let dir: string;
let events: string;
let entry: string;
let stack: LocalStack | undefined;
const logLines: string[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-start-'));
  events = join(dir, 'events.jsonl');
  entry = join(dir, 'fake-child.js');
  writeFileSync(entry, fakeChild);
  writeFileSync(events, '');
  logLines.length = 0;
});

afterEach(async () => {
  await stack?.stop();
  stack = undefined;
  rmSync(dir, { recursive: true, force: true });
});

function readEvents(): ChildEvent[] {
  return readFileSync(events, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ChildEvent);
}

function fake(name: string, mode: string, extra: Partial<LocalProcessSpec> & { port?: number } = {}): LocalProcessSpec {
  const { port, ...rest } = extra;
  return {
    name,
    entry,
    readiness:
      mode === 'http'
        ? { kind: 'http', url: `http://127.0.0.1:${port}/health` }
        : { kind: 'log-line', text: 'worker ready' },
    env: {
      FAKE_NAME: name,
      FAKE_EVENTS: events,
      FAKE_MODE: mode,
      FAKE_PORT: String(port ?? 0),
      FAKE_MARKER: join(dir, `${name}.died`),
      FAKE_DIE_MS: '300',
    },
    ...rest,
  };
}

/** Uses the run's PostgreSQL and Temporal through DATABASE_URL / TEMPORAL_ADDRESS, so only the children start here. */
function stackEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const test = readTestEnv();
  return {
    ...process.env,
    DATABASE_URL: test.databaseUrl,
    TEMPORAL_ADDRESS: test.temporalAddress,
    TEMPORAL_NAMESPACE: test.namespace,
    SAP_USER: '',
    SAP_PASSWORD: '',
    // These stacks run stand-in processes that speak no MQTT: no broker on the fixed port, which another run may hold.
    MQTT_URL: 'mqtt://127.0.0.1:9',
    ...extra,
  };
}

describe('startLocalStack', () => {
  it('starts children in order, each after the previous is ready, and stops them in reverse', async () => {
    const [simPort, apiPort] = [await findFreePort(), await findFreePort()];
    const processes = [
      fake('sim', 'http', { port: simPort, url: `http://127.0.0.1:${simPort}` }),
      fake('worker', 'log-line'),
      fake('api', 'http', { port: apiPort, url: `http://127.0.0.1:${apiPort}` }),
    ];

    stack = await startLocalStack({
      env: stackEnv(),
      dataDir: join(dir, 'data'),
      processes,
      log: (l) => logLines.push(l),
    });
    const started = readEvents();
    await stack.stop();
    const all = readEvents();
    const pids = started.filter((e) => e.what === 'started').map((e) => e.pid!);

    const order = started.filter((e) => e.what === 'started').map((e) => e.name);
    expect(order).toEqual(['sim', 'worker', 'api']);
    // Each child starts only after the one before it answered its readiness check.
    const at = (name: string, what: string) => started.find((e) => e.name === name && e.what === what)!.at!;
    expect(at('worker', 'started')).toBeGreaterThanOrEqual(at('sim', 'listening'));
    expect(at('api', 'started')).toBeGreaterThanOrEqual(at('worker', 'ready'));
    expect(all.filter((e) => e.what === 'stopping').map((e) => e.name)).toEqual(['api', 'worker', 'sim']);
    expect(logLines).toEqual(expect.arrayContaining([expect.stringMatching(/^\[worker\s*\] worker ready/)]));
    expect(pids.filter(isRunning)).toEqual([]);
  });

  it('gives every child the database, Temporal, config and SAP credentials, generated once per data dir', async () => {
    const test = readTestEnv();
    const dataDir = join(dir, 'data');
    const processes = [fake('worker', 'log-line')];

    stack = await startLocalStack({ env: stackEnv(), dataDir, processes, log: () => undefined });
    await stack.stop();
    stack = await startLocalStack({ env: stackEnv(), dataDir, processes, log: () => undefined });
    await stack.stop();
    stack = await startLocalStack({
      env: stackEnv({ SAP_USER: 'OVERRIDE', SAP_PASSWORD: 'from-env' }),
      dataDir,
      processes,
      log: () => undefined,
    });

    const envs = readEvents()
      .filter((e) => e.what === 'env')
      .map((e) => e.env!);
    expect(envs).toHaveLength(3);
    expect(envs[0]).toMatchObject({
      DATABASE_URL: test.databaseUrl,
      TEMPORAL_ADDRESS: test.temporalAddress,
      TEMPORAL_NAMESPACE: test.namespace,
      SAP_USER: 'HOLDFAST_RFC',
    });
    expect(envs[0]!.HOLDFAST_CONFIG).toMatch(/temporal\.yaml$/);
    expect(envs[0]!.SAP_PASSWORD!.length).toBeGreaterThanOrEqual(20);
    expect(envs[1]!.SAP_PASSWORD).toBe(envs[0]!.SAP_PASSWORD);
    expect(envs[2]).toMatchObject({ SAP_USER: 'OVERRIDE', SAP_PASSWORD: 'from-env' });
    expect(statSync(join(dataDir, 'sap-credentials.json')).mode & 0o777).toBe(0o600);
  });

  it('gives every child a Temporal payload key generated once per data dir, unless the environment gives keys', async () => {
    const dataDir = join(dir, 'data-keys');
    const processes = [fake('worker', 'log-line')];
    const noKeys = { HOLDFAST_PAYLOAD_KEYS: '', HOLDFAST_PAYLOAD_KEY_ID: '' };
    const given = `site-2027:${randomBytes(32).toString('base64')}`;

    stack = await startLocalStack({ env: stackEnv(noKeys), dataDir, processes, log: () => undefined });
    await stack.stop();
    stack = await startLocalStack({ env: stackEnv(noKeys), dataDir, processes, log: () => undefined });
    await stack.stop();
    stack = await startLocalStack({
      env: stackEnv({ HOLDFAST_PAYLOAD_KEYS: given, HOLDFAST_PAYLOAD_KEY_ID: '' }),
      dataDir,
      processes,
      log: () => undefined,
    });

    const envs = readEvents()
      .filter((e) => e.what === 'env')
      .map((e) => e.env!);
    expect(envs).toHaveLength(3);
    expect(envs[0]!.HOLDFAST_PAYLOAD_KEYS).toMatch(/^local-\d{8}:[A-Za-z0-9+/]{43}=$/);
    expect(envs[0]!.HOLDFAST_PAYLOAD_KEY_ID).toBe(envs[0]!.HOLDFAST_PAYLOAD_KEYS!.split(':')[0]);
    expect(envs[1]).toMatchObject({
      HOLDFAST_PAYLOAD_KEYS: envs[0]!.HOLDFAST_PAYLOAD_KEYS,
      HOLDFAST_PAYLOAD_KEY_ID: envs[0]!.HOLDFAST_PAYLOAD_KEY_ID,
    });
    expect(envs[2]).toMatchObject({ HOLDFAST_PAYLOAD_KEYS: given, HOLDFAST_PAYLOAD_KEY_ID: 'site-2027' });
    expect(statSync(join(dataDir, 'payload-keys.json')).mode & 0o777).toBe(0o600);
  });

  it('refuses bad payload keys from the environment before starting anything, naming the variable', async () => {
    await expect(
      startLocalStack({
        env: stackEnv({ HOLDFAST_PAYLOAD_KEYS: 'k1:dG9vIHNob3J0' }),
        dataDir: join(dir, 'data-bad-keys'),
        processes: [fake('worker', 'log-line')],
        log: () => undefined,
      }),
    ).rejects.toThrow(/HOLDFAST_PAYLOAD_KEYS is invalid: key "k1" is not 32 bytes/);
    expect(readEvents().filter((e) => e.what === 'started')).toEqual([]);
  });

  it('refuses to start when an entry file is missing, naming it, before starting anything', async () => {
    const missing = join(dir, 'infra', 'simulators', 'nope', 'main.ts');
    const processes = [fake('worker', 'log-line'), { ...fake('ghost', 'log-line'), entry: missing }];

    await expect(startLocalStack({ env: stackEnv(), dataDir: join(dir, 'data'), processes })).rejects.toThrow(
      `ghost: entry file ${missing} not found`,
    );
    expect(readEvents()).toEqual([]);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });

  it('stops what it started and names the child that died before it was ready, with its output', async () => {
    const processes = [fake('worker', 'log-line'), fake('api', 'die-before-ready')];

    const attempt = startLocalStack({ env: stackEnv(), dataDir: join(dir, 'data'), processes, log: () => undefined });

    await expect(attempt).rejects.toThrow(/api exited with code 3 before it was ready[\s\S]*ECONNREFUSED/);
    expect(
      readEvents()
        .filter((e) => e.what === 'stopping')
        .map((e) => e.name),
    ).toEqual(['worker']);
  });

  it('restarts a child that exits after start-up and leaves the others running', async () => {
    const port = await findFreePort();
    const processes = [fake('sim', 'http', { port }), fake('worker', 'die-once')];
    stack = await startLocalStack({
      env: stackEnv(),
      dataDir: join(dir, 'data'),
      processes,
      restartPolicy: { initialDelayMs: 100 },
      log: (l) => logLines.push(l),
    });
    const simPid = stack.children().find((c) => c.name === 'sim')!.pid!;

    const back = await eventually('the worker restarted and ready', () =>
      stack!.children().find((c) => c.name === 'worker' && c.state === 'running' && c.restarts === 1),
    );

    const started = readEvents().filter((e) => e.what === 'started');
    expect(started.map((e) => e.name)).toEqual(['sim', 'worker', 'worker']);
    expect(back.pid).toBe(started[2]!.pid);
    expect(stack.children().find((c) => c.name === 'sim')).toEqual({
      name: 'sim',
      state: 'running',
      pid: simPid,
      restarts: 0,
    });
    expect(isRunning(simPid)).toBe(true);
    expect(stack.restarts()).toEqual({ sim: 0, worker: 1 });
    expect(logLines).toContain('worker exited with code 7: restart 1 in 0.1 s');
    expect(readEvents().filter((e) => e.what === 'stopping')).toEqual([]);
  });

  it('stops everything once a child keeps crashing, naming it with its last output', async () => {
    const port = await findFreePort();
    const processes = [fake('sim', 'http', { port }), fake('worker', 'die-after-ready')];

    stack = await startLocalStack({
      env: stackEnv(),
      dataDir: join(dir, 'data'),
      processes,
      restartPolicy: { initialDelayMs: 50, crashLoopLimit: 3 },
      log: (l) => logLines.push(l),
    });
    const crash = await stack.crashed;

    expect(crash).toMatchObject({
      name: 'worker',
      exit: { code: 7, signal: null },
      message: 'worker exited with code 7: 3 crashes within 120 s, not restarting it again',
    });
    expect(crash.outputTail).toContain('lost the Temporal connection');
    expect(logLines).toContain('worker exited with code 7: restart 2 in 0.1 s');
    const events = readEvents();
    expect(events.filter((e) => e.what === 'started').map((e) => e.name)).toEqual([
      'sim',
      'worker',
      'worker',
      'worker',
    ]);
    expect(events.filter((e) => e.what === 'stopping').map((e) => e.name)).toEqual(['sim']);
    const pids = events.filter((e) => e.what === 'started').map((e) => e.pid!);
    expect(pids.filter(isRunning)).toEqual([]);
  });

  it('does not start a child again when stopped during its restart delay', async () => {
    const processes = [fake('worker', 'die-after-ready')];
    stack = await startLocalStack({
      env: stackEnv(),
      dataDir: join(dir, 'data'),
      processes,
      restartPolicy: { initialDelayMs: 1_500 },
      log: (l) => logLines.push(l),
    });
    await eventually('the worker waiting to restart', () => stack!.children().find((c) => c.state === 'waiting'));

    await stack.stop();
    await new Promise((r) => setTimeout(r, 2_500));

    expect(readEvents().filter((e) => e.what === 'started')).toHaveLength(1);
    expect(logLines).toContain('worker exited with code 7: restart 1 in 1.5 s');
    expect(logLines.some((l) => l.includes('is back'))).toBe(false);
  });
});

describe('restartPolicyFrom', () => {
  it('reads the crash-loop limit from the environment, 5 exits in 120 s unless told, and names a bad value', () => {
    expect(restartPolicyFrom({})).toEqual({ crashLoopLimit: 5, crashLoopWindowMs: 120_000 });
    expect(restartPolicyFrom({ HOLDFAST_RESTART_LIMIT: '3', HOLDFAST_RESTART_WINDOW_S: '30' })).toEqual({
      crashLoopLimit: 3,
      crashLoopWindowMs: 30_000,
    });
    expect(() => restartPolicyFrom({ HOLDFAST_RESTART_WINDOW_S: '2m' })).toThrow(
      'HOLDFAST_RESTART_WINDOW_S must be a whole number above 0, not "2m"',
    );
  });
});

describe('banner', () => {
  it('names a metrics endpoint for every process npm start runs, and the worker SDK exporter', () => {
    const config = parseConfig(readFileSync(join(__dirname, '../../temporal.yaml'), 'utf8'));
    const endpoints = Object.fromEntries(defaultLocalProcesses(config).map((p) => [p.name, p.metricsUrls]));

    expect(endpoints).toEqual({
      'sap-sim': ['http://127.0.0.1:4020/metrics'],
      'mes-sim': ['http://127.0.0.1:4010/metrics'],
      worker: ['http://127.0.0.1:9470/metrics', 'http://127.0.0.1:9471/metrics'],
      api: ['http://127.0.0.1:3000/metrics'],
      'line-plc': ['http://127.0.0.1:9472/metrics'],
      inference: ['http://127.0.0.1:3100/metrics'],
      'camera-sim': ['http://127.0.0.1:4030/metrics'],
    });
  });

  it('lists the URLs and a curl that the API would accept', async () => {
    const config = parseConfig(readFileSync(join(__dirname, '../../temporal.yaml'), 'utf8'));
    const port = await findFreePort();
    stack = await startLocalStack({
      config,
      env: stackEnv(),
      dataDir: join(dir, 'data'),
      processes: [
        fake('api', 'http', { port, url: 'http://127.0.0.1:3000', metricsUrls: ['http://127.0.0.1:3000/metrics'] }),
      ],
      log: () => undefined,
    });

    // The API writes it at the first start (api/server.ts); the banner shows the dashboard's way in.
    writeFileSync(join(dir, 'data', FIRST_ADMIN_PASSWORD_FILE), 'first-start-secret\n');
    const text = banner(stack, config);

    expect(text).toContain('Quality dashboard: http://127.0.0.1:3000/ui');
    expect(text).toContain('Sign in as admin, password first-start-secret');
    expect(text).toContain('Prometheus metrics');
    expect(text).toContain('  api               http://127.0.0.1:3000/metrics');

    expect(text).toContain('API docs          http://127.0.0.1:3000/docs');
    expect(text).toContain(`Temporal          ${readTestEnv().temporalAddress}`);
    expect(text).not.toMatch(/postgres:\/\/[^:]+:(?!\*\*\*)[^@]+@/);
    const curl = exampleCurl('http://127.0.0.1:3000', new Date('2026-01-02T03:04:05Z'));
    expect(text).toContain(
      'curl -sS -X POST http://127.0.0.1:3000/v1/inspections -H "authorization: Bearer $TOKEN" ' +
        "-H 'content-type: application/json'",
    );
    expect(text).toContain('TOKEN=$(curl -sS http://127.0.0.1:3000/v1/auth/token');
    const body = JSON.parse(/-d '(.*)'$/.exec(curl)![1]!);
    expect(body).toMatchObject({ site: 'PLANT1', line: 'L1', station: 'S1', result: 'fail' });
    expect(body.inspectedAt).toBe('2026-01-02T03:04:05.000Z');
  });
});
