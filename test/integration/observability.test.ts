/**
 * Metrics and health of the real processes, as `npm start` runs them (each its own `node --import tsx <entry>`, on
 * free ports, over the run's PostgreSQL and Temporal dev server and an embedded MQTT broker): the MES and SAP
 * simulators, the Temporal worker, the API with its outbox dispatcher, the line PLC simulator and the inference worker.
 * A failed inspection is posted to the API and a failed frame to the inference worker, and every process's
 * GET /metrics is scraped to see its counters move; GET /health must name each dependency. A verdict posted to the
 * API is counted as an audit record and anchored in the API's data directory. Every process logs at debug, and no
 * secret the run used (passwords, keys, the MES API key, an API key's secret) may appear in any line.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { freePort } from '../../infra/local/free-port';
import { spawnManaged, type ManagedProcess } from '../../infra/local/managed-process';
import mqtt from 'mqtt';
import { spawnEmbeddedMqttBroker, visionStreamAccounts, type MqttBroker } from '../../infra/local/mqtt-broker';
import { createAccounts } from '../../infra/identity/accounts';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { PAYLOAD_KEYS_ENV } from '../../infra/temporal/payload-codec';
import { frameTopic } from '../../infra/vision/frame.schema';
import { SPOT_MODEL, spotFrame, writeBrightSpotModel } from '../support/vision-fixtures';
import { eventually } from '../support/eventually';
import { createLot, failedInspection, getJson } from '../support/plant';
import { type Sample, sampleValue, scrape } from '../support/prometheus';
import { pointConfigAt } from '../support/stack';
import { readTestEnv, testPool } from '../support/test-env';
import { auditRecordsOf } from '../support/audit';
import { readAnchors } from '../../infra/audit/audit-anchor';
import { verifyAuditTrail } from '../../infra/audit/audit-chain';
import { loadOrCreateSigningKey } from '../../infra/identity/signing-key';
import { asAdmin, stationKey } from '../support/identity';

/** An admin's bearer token, signed with the processes' own key (written to their data directory first). */
let admin: { authorization: string };

jest.setTimeout(240_000);

const ROOT = resolve(__dirname, '../..');
const env = readTestEnv();
const run = randomUUID().slice(0, 8);
const sku = `SKU-OBS-${run}`;
const sapEnv = { SAP_USER: 'HOLDFAST_OBS', SAP_PASSWORD: randomUUID() };
const mqttLogin = { username: 'inference-obs', password: randomUUID() };
const cameraLogin = { username: 'camera-obs', password: randomUUID() };
/** The MES connector's credential (X-API-Key), which the MES simulator then requires. */
const mesApiKey = `mes-${randomUUID()}`;
/** Used by the test 'the credentials …' below; checked by the secrets test. */
const used = {} as Record<'apiKey' | 'apiKeySecret' | 'password' | 'wrongPassword' | 'wrongMqttPassword', string>;
/** Every line every process printed, for the secrets check. */
const logLines: { name: string; line: string }[] = [];

let workDir: string;
let broker: MqttBroker;
const processes: ManagedProcess[] = [];
const urls = {} as Record<
  'api' | 'mesSim' | 'sapSim' | 'worker' | 'workerSdk' | 'inference' | 'linePlc' | 'linePlcMetrics',
  string
>;

interface HealthBody {
  status?: string;
  checks: Record<string, { ok: boolean; required: boolean; detail: string }>;
}

/** Starts an entry as npm start does, and waits until it is ready (an HTTP 200 or a line it prints). */
async function start(
  name: string,
  entry: string,
  childEnv: Record<string, string>,
  ready: { url: string } | { line: string },
): Promise<ManagedProcess> {
  let sawLine = false;
  const proc = spawnManaged({
    name,
    command: process.execPath,
    args: ['--import', 'tsx', entry],
    cwd: ROOT,
    env: { ...process.env, ...childEnv },
    onLine: (line) => {
      logLines.push({ name, line });
      if ('line' in ready && line.includes(ready.line)) sawLine = true;
    },
  });
  processes.push(proc);
  await eventually(
    `${name} ready`,
    async () => {
      if (proc.hasExited()) throw new Error(`${name} exited:\n${proc.outputTail()}`);
      if ('line' in ready) return sawLine || undefined;
      const res = await fetch(ready.url).catch(() => undefined);
      await res?.body?.cancel();
      return res?.status === 200 || undefined;
    },
    { timeoutMs: 150_000 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${name} output ---\n${proc.outputTail()}`);
  });
  return proc;
}

beforeAll(async () => {
  workDir = mkdtempSync(join(tmpdir(), 'holdfast-observability-'));
  const mesPort = await freePort();
  const sapPort = await freePort();
  const apiPort = await freePort();
  const workerPort = await freePort();
  const sdkPort = await freePort();
  const inferencePort = await freePort();
  const plcPort = await freePort();
  const plcMetricsPort = await freePort();
  broker = await spawnEmbeddedMqttBroker({
    port: 0,
    access: {
      accounts: visionStreamAccounts({
        prefix: `obs${run}`,
        inference: mqttLogin,
        cameras: [{ ...cameraLogin, stations: [{ site: 'PLANT1', line: 'L1', station: 'S1' }] }],
      }),
    },
    log: (line) => logLines.push({ name: 'mqtt-broker', line }),
  });
  urls.mesSim = `http://127.0.0.1:${mesPort}`;
  urls.sapSim = `http://127.0.0.1:${sapPort}`;
  urls.api = `http://127.0.0.1:${apiPort}`;
  urls.worker = `http://127.0.0.1:${workerPort}`;
  urls.workerSdk = `http://127.0.0.1:${sdkPort}`;
  urls.inference = `http://127.0.0.1:${inferencePort}`;
  urls.linePlc = `opc.tcp://127.0.0.1:${plcPort}`;
  urls.linePlcMetrics = `http://127.0.0.1:${plcMetricsPort}`;

  const modelsDir = join(workDir, 'models');
  writeBrightSpotModel(modelsDir);
  const base = loadConfig();
  const pointed = pointConfigAt(base, { sapUrl: urls.sapSim, mesUrl: urls.mesSim, taskQueue: `holdfast-obs-${run}` });
  const brokerName = base.vision.broker!;
  const mesName = base.sites[0]!.mes;
  const plc = base.vision.rejectStation!;
  const config: HoldfastConfig = {
    ...pointed,
    connectors: {
      ...pointed.connectors,
      [brokerName]: { ...pointed.connectors[brokerName]!, clientId: `inference-obs-${run}` },
      [mesName]: { ...pointed.connectors[mesName]!, apiKey: '${env:MES_API_KEY}' },
      [plc]: { ...pointed.connectors[plc]!, endpointUrl: urls.linePlc },
    },
    api: { ...base.api, port: apiPort },
    audit: { ...base.audit, anchorInterval: '1s' },
    observability: {
      ...base.observability,
      worker: { host: '127.0.0.1', port: workerPort, temporalSdkPort: sdkPort },
    },
    vision: {
      ...base.vision,
      modelsDir,
      topicPrefix: `obs${run}`,
      http: { ...base.vision.http, port: inferencePort },
      recipes: [
        {
          site: 'PLANT1',
          skus: [sku],
          version: `obs-${run}`,
          model: { name: SPOT_MODEL.name, version: SPOT_MODEL.version },
          thresholds: {},
          minDefectAreaPx: 100,
        },
      ],
    },
  };
  const configFile = join(workDir, 'temporal.yaml');
  writeFileSync(configFile, stringify(config));
  // The processes' token key, made here first so that the test can sign an admin's token the API and the edge trust.
  admin = await asAdmin(await loadOrCreateSigningKey(join(workDir, 'data', 'identity', 'signing-key.json')));
  const common = {
    HOLDFAST_CONFIG: configFile,
    HOLDFAST_DATA_DIR: join(workDir, 'data'),
    DATABASE_URL: env.databaseUrl,
    TEMPORAL_ADDRESS: env.temporalAddress,
    TEMPORAL_NAMESPACE: env.namespace,
    MQTT_URL: broker.url,
    MES_API_KEY: mesApiKey,
    // Debug lines too: a secret logged at debug is as much a leak once someone turns it on.
    LOG_LEVEL: 'debug',
    ...sapEnv,
  };

  // In npm start's order, each after the one before is ready.
  await start(
    'sap-sim',
    'infra/simulators/sap-s4/main.ts',
    { ...common, SAP_SIM_PORT: String(sapPort) },
    {
      url: `${urls.sapSim}/health`,
    },
  );
  await start(
    'mes-sim',
    'infra/simulators/mes/main.ts',
    { ...common, MES_SIM_PORT: String(mesPort) },
    {
      url: `${urls.mesSim}/health`,
    },
  );
  await start('worker', 'workers/main.ts', common, { line: 'worker ready' });
  await start('api', 'api/server.ts', common, { url: `${urls.api}/health` });
  await start(
    'line-plc',
    'infra/simulators/line-plc/main.ts',
    {
      ...common,
      LINE_PLC_PORT: String(plcPort),
      LINE_PLC_METRICS_PORT: String(plcMetricsPort),
      LINE_PLC_DATA_DIR: join(workDir, 'line-plc'),
      LINE_PLC_TRUSTED_CLIENT_PKI_DIRS: join(workDir, 'data', 'opcua-pki'),
    },
    { line: 'line-plc ready' },
  );
  await start(
    'inference',
    'workers/inference.worker.ts',
    { ...common, MQTT_USERNAME: mqttLogin.username, MQTT_PASSWORD: mqttLogin.password },
    { line: 'inference worker ready' },
  );
}, 600_000);

afterAll(async () => {
  for (const proc of processes.reverse()) await proc.stop({ signal: 'SIGTERM' });
  await broker?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

async function health(url: string): Promise<{ status: number; contentType: string; body: HealthBody }> {
  const res = await fetch(`${url}/health`);
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    body: (await res.json()) as HealthBody,
  };
}

/** Scrapes until `probe` finds what it waits for in the samples. */
function scrapeUntil(what: string, url: string, probe: (s: Sample[]) => boolean): Promise<Sample[]> {
  return eventually(
    what,
    async () => {
      const samples = await scrape(url);
      return probe(samples) ? samples : undefined;
    },
    { timeoutMs: 90_000 },
  );
}

const atLeastOne = (n: number | undefined) => (n ?? 0) >= 1;

test('every process reports its dependencies on /health', async () => {
  const api = await health(urls.api);
  expect(api.status).toBe(200);
  expect(api.body.status).toBe('ok');
  expect(api.body.checks).toMatchObject({
    postgres: { ok: true, required: true },
    temporal: { ok: true, required: false },
  });

  const worker = await health(urls.worker);
  expect(worker.status).toBe(200);
  expect(worker.body.checks).toMatchObject({
    temporal: { ok: true, required: true },
    postgres: { ok: true, required: false },
    'connector:mes-sim': { ok: true, required: false },
    'connector:sap-sim': { ok: true, required: false },
  });

  const inference = await health(urls.inference);
  expect(inference.status).toBe(200);
  expect(inference.body.checks).toMatchObject({
    postgres: { ok: true, required: true },
    mqtt: { ok: true, required: true },
    'reject-station': { ok: true, required: true },
    models: { ok: true, required: true, detail: `${SPOT_MODEL.name}@${SPOT_MODEL.version}` },
  });

  expect((await health(urls.linePlcMetrics)).status).toBe(200);
});

test('the API counts accepted and refused inspections, and the dispatcher its latency; the worker its MES and ERP calls', async () => {
  const lotId = `L-OBS-${run}-1`;
  await createLot({ mesUrl: urls.mesSim, sapUrl: urls.sapSim, mesApiKey }, { lotId });
  const before = await scrape(`${urls.api}/metrics`);
  const accepted = (s: Sample[]) =>
    sampleValue(s, 'holdfast_inspections_accepted_total', { source: 'api', result: 'fail' }) ?? 0;
  const invalid = (s: Sample[]) =>
    sampleValue(s, 'holdfast_inspections_refused_total', { source: 'api', reason: 'invalid' }) ?? 0;

  const post = (body: unknown) =>
    fetch(`${urls.api}/v1/inspections`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...admin },
      body: JSON.stringify(body),
    });
  expect((await post(failedInspection(lotId))).status).toBe(202);
  const bad = {
    results: [failedInspection(lotId), { ...failedInspection(lotId), defects: [{ class: 'x', score: 7 }] }],
  };
  expect((await post(bad)).status).toBe(400);

  const api = await scrapeUntil(
    'the defect dispatched and its lot case on record',
    `${urls.api}/metrics`,
    (s) =>
      atLeastOne(sampleValue(s, 'holdfast_outbox_dispatch_latency_seconds_count')) &&
      atLeastOne(sampleValue(s, 'holdfast_lot_cases', { stage: 'awaiting-disposition' })),
  );
  expect(accepted(api) - accepted(before)).toBe(1);
  // A refused batch counts each result it carried.
  expect(invalid(api) - invalid(before)).toBe(2);
  expect(sampleValue(api, 'holdfast_outbox_backlog')).toBeGreaterThanOrEqual(0);
  expect(sampleValue(api, 'holdfast_outbox_oldest_pending_age_seconds')).toBeGreaterThanOrEqual(0);
  expect(sampleValue(api, 'holdfast_lot_cases', { stage: 'needs-attention' })).toBeGreaterThanOrEqual(0);
  expect(
    sampleValue(api, 'holdfast_http_requests_total', { route: '/v1/inspections', method: 'POST', status_code: '202' }),
  ).toBeGreaterThanOrEqual(1);
  expect(sampleValue(api, 'process_cpu_seconds_total')).toBeGreaterThan(0);

  // The lot's hold and notification were MES and ERP calls of the worker.
  const worker = await scrapeUntil(
    'the MES hold and the ERP notification counted',
    `${urls.worker}/metrics`,
    (s) =>
      atLeastOne(
        sampleValue(s, 'holdfast_connector_call_duration_seconds_count', {
          role: 'mes',
          system: 'mes-sim',
          operation: 'holdLot',
          outcome: 'ok',
        }),
      ) &&
      atLeastOne(
        sampleValue(s, 'holdfast_connector_call_duration_seconds_count', {
          role: 'erp',
          system: 'sap-sim',
          operation: 'raiseQualityNotification',
          outcome: 'ok',
        }),
      ),
  );
  expect(sampleValue(worker, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  const workerHealth = await health(urls.worker);
  // Each connector's own health check, reported but not required (activities retry while a system is down).
  for (const connector of ['connector:mes-sim', 'connector:sap-sim', 'connector:worker-log']) {
    expect(workerHealth.body.checks[connector]).toMatchObject({ ok: true, required: false });
  }

  // The Temporal SDK's own exporter, with Prometheus' conventions (base units, _total).
  const sdk = await scrapeUntil(
    'the SDK counted workflow tasks',
    `${urls.workerSdk}/metrics`,
    (s) =>
      atLeastOne(sampleValue(s, 'temporal_workflow_completed_total')) ||
      atLeastOne(sampleValue(s, 'temporal_request_total')),
  );
  expect(sdk.some((s) => s.name.startsWith('temporal_') && s.name.endsWith('_seconds_bucket'))).toBe(true);

  // The simulators count the requests they answered.
  const mes = await scrape(`${urls.mesSim}/metrics`);
  expect(sampleValue(mes, 'holdfast_http_requests_total', { method: 'POST' })).toBeGreaterThanOrEqual(2);
  expect(sampleValue(mes, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  const sap = await scrape(`${urls.sapSim}/metrics`);
  expect(sampleValue(sap, 'holdfast_http_requests_total', { method: 'POST' })).toBeGreaterThanOrEqual(1);
});

test('the inference worker counts frames, their latency, refusals and reject writes; the PLC counts the write', async () => {
  const before = await scrape(`${urls.inference}/metrics`);
  const frames = (s: Sample[]) => sampleValue(s, 'holdfast_inference_frames_total') ?? 0;
  const lotId = `L-OBS-${run}-2`;
  const postFrame = async (frameSku: string) => {
    const query = new URLSearchParams({
      frameId: `f-${randomUUID()}`,
      partId: `P-${randomUUID().slice(0, 8)}`,
      lotId,
      workOrder: '1000100',
      sku: frameSku,
      divert: 'true',
    });
    return fetch(`${urls.inference}/v1/stations/PLANT1/L1/S1/frames?${query.toString()}`, {
      method: 'POST',
      headers: { 'content-type': 'image/png', ...admin },
      body: new Uint8Array(await spotFrame(true)),
    });
  };

  const inspected = await postFrame(sku);
  expect(inspected.status).toBe(200);
  expect(await inspected.json()).toMatchObject({ result: 'fail', ingest: 'accepted', rejectSignal: 'written' });
  expect((await postFrame(`NO-RECIPE-${run}`)).status).toBe(422);

  // Requests are counted once answered (fastify's onResponse), so the second may land just after its answer.
  const framesRoute = { route: '/v1/stations/:site/:line/:station/frames' };
  const after = await scrapeUntil(
    'both frame requests counted',
    `${urls.inference}/metrics`,
    (s) => (sampleValue(s, 'holdfast_http_requests_total', framesRoute) ?? 0) >= 2,
  );
  expect(frames(after) - frames(before)).toBe(2);
  expect(sampleValue(after, 'holdfast_inference_frames_inspected_total', { result: 'fail' })).toBeGreaterThanOrEqual(1);
  expect(sampleValue(after, 'holdfast_inference_frame_latency_seconds_count')).toBeGreaterThanOrEqual(1);
  expect(sampleValue(after, 'holdfast_inference_frames_refused_total', { reason: 'no-recipe' })).toBe(1);
  expect(sampleValue(after, 'holdfast_inference_reject_write_latency_seconds_count')).toBe(1);
  expect(sampleValue(after, 'holdfast_inspections_accepted_total', { source: 'inference', result: 'fail' })).toBe(1);
  expect(sampleValue(after, 'holdfast_inference_deferred_frames')).toBe(0);
  expect(sampleValue(after, 'holdfast_http_requests_total', framesRoute)).toBe(2);

  const plc = await scrape(`${urls.linePlcMetrics}/metrics`);
  expect(sampleValue(plc, 'holdfast_plc_reject_commands_total', { station: 'PLANT1/L1/S1', duplicate: 'false' })).toBe(
    1,
  );
});

test('the API counts the audit records it writes and anchors the chain head in its data directory', async () => {
  const frameId = `obs-${run}-verdict`;
  const posted = await fetch(`${urls.api}/v1/stations/PLANT1/L1/S1/verdicts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...admin },
    body: JSON.stringify({ verdicts: [{ frameId, verdict: 'fail', source: 'manual', decidedBy: 'qe.obs' }] }),
  });
  expect(posted.status).toBe(200);

  const api = await scrapeUntil('the verdict counted as an audit record', `${urls.api}/metrics`, (s) =>
    atLeastOne(sampleValue(s, 'holdfast_audit_records_written_total', { action: 'station-verdict.record' })),
  );
  expect(sampleValue(api, 'holdfast_audit_verify_failures_total')).toBe(0);
  const pool = testPool();
  try {
    const [record] = await auditRecordsOf(pool, `PLANT1/L1/S1/${frameId}/manual`);
    // Anchored within audit.anchorInterval (1 s here), by the API process, in its data directory.
    const anchors = await eventually(
      `an anchor at or after record ${record!.seq}`,
      async () => (await readAnchors(join(workDir, 'data', 'audit', 'anchors.jsonl'))).anchors,
      (list) => list.some((a) => a.seq >= record!.seq),
    );
    expect((await verifyAuditTrail(pool, { anchors })).problem).toBeUndefined();
    expect(
      sampleValue(await scrape(`${urls.api}/metrics`), 'holdfast_audit_anchors_written_total'),
    ).toBeGreaterThanOrEqual(1);
  } finally {
    await pool.end();
  }
});

test('the credentials the secrets check looks for are used: a sign-in, a station key, MQTT logins', async () => {
  const pool = testPool();
  let password: string;
  let station: Awaited<ReturnType<typeof stationKey>>;
  const username = `qe-obs-${run}`;
  try {
    const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 5, lockForMs: 60_000 });
    ({ password } = await accounts.addUser(
      { kind: 'system', id: 'test' },
      { username, roles: ['quality-engineer'], sites: ['PLANT1'] },
    ));
    station = await stationKey(pool, { site: 'PLANT1', line: 'L1', station: 'S1' });
  } finally {
    await pool.end();
  }
  used.password = password;
  used.wrongPassword = `wrong-${randomUUID()}`;
  const signIn = (pw: string) =>
    fetch(`${urls.api}/v1/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: pw }),
    });
  expect((await signIn(used.wrongPassword)).status).toBe(401);
  const signedIn = await signIn(password);
  expect(signedIn.status).toBe(200);
  const { access_token: token } = (await signedIn.json()) as { access_token: string };
  const lot = await fetch(`${urls.api}/v1/lots/L-OBS-${run}-1`, { headers: { authorization: `Bearer ${token}` } });
  expect(lot.status).toBe(200);

  used.apiKey = station.headers['x-api-key'];
  used.apiKeySecret = used.apiKey.split('_')[2]!;
  const withKey = { ...station.headers, 'content-type': 'application/json' };
  const body = JSON.stringify({ results: 'none' });
  expect((await fetch(`${urls.api}/v1/inspections`, { method: 'POST', headers: withKey, body })).status).toBe(400);
  const frame = await fetch(`${urls.inference}/v1/stations/PLANT1/L1/S1/frames`, {
    method: 'POST',
    headers: withKey,
    body,
  });
  expect(frame.status).toBe(400);

  // The camera's login publishes a (bad) frame the worker refuses; a wrong password is refused at CONNECT.
  const camera = await mqtt.connectAsync(broker.url, {
    ...cameraLogin,
    clientId: `camera-obs-${run}`,
    reconnectPeriod: 0,
  });
  await camera.publishAsync(frameTopic(`obs${run}`, 'PLANT1', 'L1', 'S1'), 'not a frame', { qos: 1 });
  await camera.endAsync();
  used.wrongMqttPassword = `wrong-${randomUUID()}`;
  await expect(
    mqtt.connectAsync(broker.url, {
      username: cameraLogin.username,
      password: used.wrongMqttPassword,
      reconnectPeriod: 0,
    }),
  ).rejects.toThrow();

  // Their log lines are in before the check reads them.
  await scrapeUntil('the bad MQTT frame refused', `${urls.inference}/metrics`, (s) =>
    atLeastOne(sampleValue(s, 'holdfast_inference_frames_refused_total', { reason: 'bad-payload' })),
  );
  await eventually(
    'the sign-in and the keyed requests logged',
    () =>
      ['/v1/auth/token', '/v1/inspections'].every((url) =>
        logLines.some((l) => l.name === 'api' && l.line.includes(url) && l.line.includes('request completed')),
      ) &&
      logLines.some(
        (l) => l.name === 'inference' && l.line.includes('/frames') && l.line.includes('request completed'),
      ),
  );
});

test('no secret appears in any log line: passwords, keys, the MES API key, an API key, a sign-in', () => {
  // A middle line of each PEM body: long enough to be unique, and what a logged key or buffer would contain.
  const keyLine = (file: string) => {
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
    expect(lines.length).toBeGreaterThan(2);
    return lines[Math.floor(lines.length / 2)]!;
  };
  expect(Object.keys(used)).toHaveLength(5);
  const secrets = {
    SAP_PASSWORD: sapEnv.SAP_PASSWORD,
    MQTT_PASSWORD: mqttLogin.password,
    "the camera's MQTT password": cameraLogin.password,
    'a wrong MQTT password': used.wrongMqttPassword,
    MES_API_KEY: mesApiKey,
    ...Object.fromEntries(
      process.env[PAYLOAD_KEYS_ENV]!.split(',').map((entry) => [
        `payload key ${entry.split(':')[0]}`,
        entry.split(':')[1],
      ]),
    ),
    'an API key': used.apiKey,
    "an API key's secret": used.apiKeySecret,
    'a password at sign-in': used.password,
    'a wrong password at sign-in': used.wrongPassword,
    'reject station private key': keyLine(join(workDir, 'data', 'opcua-pki', 'own', 'private', 'private_key.pem')),
    'line PLC private key': keyLine(join(workDir, 'line-plc', 'pki', 'server', 'own', 'private', 'private_key.pem')),
  };
  // Every process did log: the check is not vacuous.
  expect(new Set(logLines.map((l) => l.name))).toEqual(
    new Set(['mqtt-broker', 'sap-sim', 'mes-sim', 'worker', 'api', 'line-plc', 'inference']),
  );
  const leaks = Object.entries(secrets).flatMap(([what, secret]) =>
    logLines.filter((l) => l.line.includes(secret)).map((l) => `${what} in ${l.name}: ${l.line.slice(0, 200)}`),
  );
  expect(leaks).toEqual([]);
});

test('/health answers 503 naming the required dependency that is down', async () => {
  const plc = processes.find((p) => p.name === 'line-plc')!;
  await plc.stop({ signal: 'SIGTERM' });

  const down = await eventually(
    'the inference worker to report the reject station down',
    async () => {
      const answer = await health(urls.inference);
      return answer.status === 503 ? answer : undefined;
    },
    { timeoutMs: 60_000 },
  );
  expect(down.contentType).toContain('application/problem+json');
  expect(down.body).toMatchObject({
    status: 503,
    detail: 'down: reject-station',
    checks: { 'reject-station': { ok: false, required: true }, postgres: { ok: true }, mqtt: { ok: true } },
  });
  // The connector's own check failed: /health shows its classification, never the driver's message or the address.
  expect(down.body.checks['reject-station']?.detail).toMatch(/^down \(/);
  expect(down.body.checks['reject-station']?.detail).not.toContain('opc.tcp');
  // The API does not depend on the PLC.
  expect((await getJson<HealthBody>(`${urls.api}/health`)).status).toBe('ok');
});
