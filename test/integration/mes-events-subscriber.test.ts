/**
 * The MES's production events pushed over MQTT into the genealogy, on a real broker (aedes, with the MES's and
 * Holdfast's accounts) and real PostgreSQL: the MES simulator publishes a small plant history, the worker's subscriber
 * applies it, and the genealogy equals what the REST pull makes of the same events. Replays and out-of-order events
 * change nothing, whichever path brings them first; a bad message is acknowledged and counted; a store failure holds
 * the PUBACK until the event is applied.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import type { GenealogyRecorder } from '../../activities/ports';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createMesGenealogyFeed } from '../../infra/connectors/mes-rest/mes-genealogy';
import { createMesRestClient } from '../../infra/connectors/mes-rest/mes-rest.client';
import { createPool } from '../../infra/db/pool';
import { genealogyRecorder } from '../../infra/genealogy/genealogy-recorder';
import { createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { findFreePort } from '../../infra/local/managed-process';
import { defaultLocalProcesses, startLocalStack, type LocalStack } from '../../infra/local/start';
import {
  mesEventsReaderAccount,
  mesProductionAccount,
  spawnEmbeddedMqttBroker,
  type MqttBroker,
} from '../../infra/local/mqtt-broker';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import type { ProductionPerformanceEvent } from '../../infra/simulators/mes/production-event.schema';
import { connectProductionEventPublisher } from '../../infra/simulators/mes/production-events';
import { generatePlantHistory } from '../../infra/simulators/plant-history/plant-history';
import { stringify } from 'yaml';
import { startMesEventSubscription, type MesEventSubscription } from '../../workers/mes-events';
import { eventually } from '../support/eventually';
import { quietLog } from '../support/quiet-log';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
const tag = randomBytes(3).toString('hex').toUpperCase();
/**
 * Two copies of one history, each with a site, an ERP plant and event ids of its own, so their facts never meet in
 * the shared database: `push` arrives over MQTT first, `pull` over REST first.
 */
const copies = {
  push: { site: `UP${tag}`, erpPlant: `P${tag.slice(0, 3)}`, ids: `push${tag}` },
  pull: { site: `UQ${tag}`, erpPlant: `Q${tag.slice(0, 3)}`, ids: `pull${tag}` },
} as const;
type Copy = (typeof copies)[keyof typeof copies];

function eventsOf(copy: Copy): ProductionPerformanceEvent[] {
  const history = generatePlantHistory({
    seed: 20261207,
    parts: 40,
    lots: 10,
    supplierLots: 4,
    days: 5,
    site: copy.site,
    erpPlant: copy.erpPlant,
    outOfOrderEvents: 2,
    replayedEvents: 2,
  });
  return [...history.productionEvents()].map((e) => ({ ...e, eventId: `${copy.ids}-${e.eventId}` }));
}
const events = { push: eventsOf(copies.push), pull: eventsOf(copies.pull) };

const login = (username: string) => ({ username, password: randomUUID() });
const mesLogin = login('mes');
const holdfastLogin = login('holdfast-genealogy');

const realRecorder = genealogyRecorder(createGenealogyStore(createAuditTrail(pool)));
/** While set, the store "fails" as PostgreSQL down would: the subscriber must hold the PUBACK and retry. */
let storeDown = false;
const recorder: Pick<GenealogyRecorder, 'record'> = {
  async record(source, facts) {
    if (storeDown) throw new Error('connection terminated unexpectedly (test: PostgreSQL down)');
    return realRecorder.record(source, facts);
  },
};

let broker: MqttBroker;
let mesPush: Awaited<ReturnType<typeof buildMesSimulator>>;
let mesPull: Awaited<ReturnType<typeof buildMesSimulator>>;
let mesPullUrl: string;
let mesPushUrl: string;
let subscription: MesEventSubscription;
let config: HoldfastConfig;
const registry = new Registry();
const subscribe = async (metrics = new Registry()) => {
  const started = await startMesEventSubscription({
    config,
    recorder,
    // A restarted worker process has a registry of its own.
    registry: metrics,
    log: quietLog(),
    env: { UNS_MQTT_USERNAME: holdfastLogin.username, UNS_MQTT_PASSWORD: holdfastLogin.password },
  });
  if (!started) throw new Error('traceability.mesEvents.broker is set, yet no subscription was opened');
  return started;
};

beforeAll(async () => {
  broker = await spawnEmbeddedMqttBroker({
    port: await findFreePort(),
    access: { accounts: [mesProductionAccount(mesLogin), mesEventsReaderAccount(holdfastLogin)] },
  });
  // The MES that publishes what it records, and one without a broker (its events reach Holdfast over REST first).
  mesPush = await buildMesSimulator({
    pool,
    schema: `mes_uns_push_${tag.toLowerCase()}`,
    productionEventBroker: { url: broker.url, ...mesLogin, clientId: `mes-${tag}` },
  });
  mesPull = await buildMesSimulator({ pool, schema: `mes_uns_pull_${tag.toLowerCase()}` });
  mesPushUrl = await mesPush.listen({ host: '127.0.0.1', port: 0 });
  mesPullUrl = await mesPull.listen({ host: '127.0.0.1', port: 0 });

  const base = loadConfig();
  const template = base.sites[0]!;
  config = {
    ...base,
    sites: [
      { ...template, id: copies.push.site, erpPlant: copies.push.erpPlant },
      { ...template, id: copies.pull.site, erpPlant: copies.pull.erpPlant },
    ],
    connectors: {
      ...base.connectors,
      'uns-mqtt': {
        kind: 'mqtt',
        required: true,
        url: broker.url,
        username: '${env:UNS_MQTT_USERNAME}',
        password: '${env:UNS_MQTT_PASSWORD}',
      },
    },
    traceability: {
      ...base.traceability,
      mesEvents: {
        broker: 'uns-mqtt',
        clientId: `holdfast-genealogy-${tag}`,
        topicFilter: 'plant/+/+/+/production/performance',
      },
    },
  };
  subscription = await subscribe(registry);
}, 60_000);

afterAll(async () => {
  await subscription?.close();
  await mesPush?.close();
  await mesPull?.close();
  await broker?.stop();
  await pool.end();
});

async function postEvents(mesUrl: string, list: ProductionPerformanceEvent[]): Promise<void> {
  const res = await fetch(`${mesUrl}/__sim/production-events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ events: list }),
  });
  if (res.status !== 201) throw new Error(`POST /__sim/production-events: ${res.status} ${await res.text()}`);
}

/** What the MES sync's activity does, without Temporal: pages of the REST feed into the same recorder. */
async function pullOverRest(mesUrl: string, copy: Copy): Promise<void> {
  const client = createMesRestClient({ system: 'mes-sim', baseUrl: mesUrl, timeoutMs: 10_000 });
  const feed = createMesGenealogyFeed(client);
  try {
    let after: string | undefined;
    for (;;) {
      const page = await feed.readGenealogy({ site: copy.site, erpPlant: copy.erpPlant, production: 'mes' }, after, 7);
      await realRecorder.record(`mes-sync:${copy.site}`, page);
      after = page.cursor;
      if (!page.more) break;
    }
  } finally {
    client.close();
  }
}

/** A copy's genealogy with its own names replaced, so the two copies' rows can be compared. */
async function genealogyOf(copy: Copy): Promise<{ lots: string[]; edges: string[]; parts: string[] }> {
  const neutral = (row: unknown) =>
    JSON.stringify(row)
      .replaceAll(copy.ids, '<ids>')
      .replaceAll(copy.site, '<site>')
      .replaceAll(copy.erpPlant, '<plant>');
  // A lot known only by reference names the first document that mentioned it: which one that is depends on how the
  // events were batched (one per message, or a REST page of several), not on what they say.
  const lots = await pool.query(
    `SELECT to_jsonb(l) - 'recorded_at' - 'updated_at' - CASE WHEN origin = 'unknown' THEN 'document' ELSE '' END AS row
       FROM holdfast.material_lot l
      WHERE lot_key LIKE $1 ORDER BY lot_key`,
    [`erp:${copy.erpPlant}/%`],
  );
  const edges = await pool.query(
    `SELECT to_jsonb(e) - 'recorded_at' AS row FROM holdfast.genealogy_edge e WHERE site = $1 ORDER BY edge_key`,
    [copy.site],
  );
  const parts = await pool.query(
    `SELECT to_jsonb(p) - 'recorded_at' AS row FROM holdfast.produced_part p WHERE site = $1 ORDER BY part_id`,
    [copy.site],
  );
  return {
    lots: lots.rows.map((r) => neutral(r.row)),
    edges: edges.rows.map((r) => neutral(r.row)),
    parts: parts.rows.map((r) => neutral(r.row)),
  };
}

async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const found = (await registry.getSingleMetric(name)?.get())?.values.find((v) =>
    Object.entries(labels).every(([k, value]) => v.labels[k] === value),
  );
  return found?.value ?? 0;
}

const acknowledged = () => subscription.subscriber.stats().acknowledged;

test('pushed events make the genealogy the REST pull makes, whichever arrives first or twice', async () => {
  expect(events.push.length).toBeGreaterThan(10);
  // Over MQTT: the MES simulator publishes each event as it records it (replays and late events included).
  const before = acknowledged();
  await postEvents(mesPushUrl, events.push);
  await eventually(
    'every pushed event acknowledged',
    async () => acknowledged(),
    (n) => n - before >= events.push.length,
    { timeoutMs: 60_000 },
  );
  expect(await metric('holdfast_mes_events_applied_total', { site: copies.push.site })).toBe(events.push.length);
  // Over REST: the other copy, the way the MES sync reads it.
  await postEvents(mesPullUrl, events.pull);
  await pullOverRest(mesPullUrl, copies.pull);

  const pushed = await genealogyOf(copies.push);
  const pulled = await genealogyOf(copies.pull);
  expect(pushed.edges.length).toBeGreaterThan(10);
  expect(pushed.lots.length).toBeGreaterThan(5);
  expect(pushed.parts.length).toBeGreaterThan(10);
  expect(pushed).toEqual(pulled);

  // The other way round: the REST pull of what was pushed, and the push of what was pulled, change nothing.
  await pullOverRest(mesPushUrl, copies.push);
  const publisher = await connectProductionEventPublisher({ url: broker.url, ...mesLogin, clientId: `mes2-${tag}` });
  try {
    const again = acknowledged();
    await publisher.publish(events.pull);
    await eventually(
      'the pulled events pushed too',
      async () => acknowledged(),
      (n) => n - again >= events.pull.length,
      { timeoutMs: 60_000 },
    );
  } finally {
    await publisher.close();
  }
  expect(await genealogyOf(copies.push)).toEqual(pushed);
  expect(await genealogyOf(copies.pull)).toEqual(pulled);
  expect(await metric('holdfast_mes_events_refused_total', { reason: 'bad-payload' })).toBe(0);
}, 180_000);

test('a malformed or unknown-site message is acknowledged and counted, and the stream goes on', async () => {
  const client = await mqtt.connectAsync(broker.url, { ...mesLogin, clientId: `mes3-${tag}`, reconnectPeriod: 0 });
  const topic = `plant/${copies.push.site}/A1/L1/production/performance`;
  const [good] = events.push;
  const late = { ...good!, eventId: `${copies.push.ids}-after-the-bad-ones` };
  const before = acknowledged();
  try {
    await client.publishAsync(topic, '{"eventId": "not json', { qos: 1 });
    await client.publishAsync(topic, JSON.stringify({ ...good, segmentResponse: { actualEndTime: 'yesterday' } }), {
      qos: 1,
    });
    await client.publishAsync(
      topic,
      JSON.stringify({ ...good, hierarchyScope: { ...good!.hierarchyScope, site: 'NOWHERE' } }),
      { qos: 1 },
    );
    await client.publishAsync(topic, JSON.stringify(late), { qos: 1 });
  } finally {
    await client.endAsync();
  }
  await eventually(
    'all four acknowledged',
    async () => acknowledged(),
    (n) => n - before >= 4,
    { timeoutMs: 30_000 },
  );
  expect(await metric('holdfast_mes_events_refused_total', { reason: 'bad-payload' })).toBe(2);
  expect(await metric('holdfast_mes_events_refused_total', { reason: 'unknown-site' })).toBe(1);
  // The good event after them was applied: its edges are keyed by its id.
  const { rows } = await pool.query(`SELECT count(*)::int AS n FROM holdfast.genealogy_edge WHERE document = $1`, [
    late.eventId,
  ]);
  expect(rows[0].n).toBe(good!.segmentResponse.materialActuals.length);
}, 60_000);

test('a store failure holds the PUBACK; the event is applied once the store is back', async () => {
  const [first] = events.push;
  const event = { ...first!, eventId: `${copies.push.ids}-while-down` };
  const edges = async () =>
    (await pool.query(`SELECT count(*)::int AS n FROM holdfast.genealogy_edge WHERE document = $1`, [event.eventId]))
      .rows[0].n as number;
  const before = subscription.subscriber.stats();
  const failuresBefore = await metric('holdfast_mes_events_apply_failures_total');
  storeDown = true;
  const publisher = await connectProductionEventPublisher({ url: broker.url, ...mesLogin, clientId: `mes4-${tag}` });
  try {
    await publisher.publish([event]);
    await eventually(
      'two failed attempts',
      async () => subscription.subscriber.stats().retries,
      (n) => n - before.retries >= 2,
      { timeoutMs: 30_000 },
    );
    expect(subscription.subscriber.stats().acknowledged).toBe(before.acknowledged);
    expect(subscription.subscriber.stats().inFlight).toBe(1);
    expect(await edges()).toBe(0);
    expect(await metric('holdfast_mes_events_apply_failures_total')).toBeGreaterThanOrEqual(failuresBefore + 2);
  } finally {
    storeDown = false;
    await publisher.close();
  }
  await eventually(
    'acknowledged after recovery',
    async () => subscription.subscriber.stats().acknowledged,
    (n) => n === before.acknowledged + 1,
    { timeoutMs: 30_000 },
  );
  expect(await edges()).toBe(event.segmentResponse.materialActuals.length);
  expect(subscription.subscriber.stats().inFlight).toBe(0);
}, 60_000);

test("Holdfast's account reads the production topics only, and writes none", async () => {
  const client = await mqtt.connectAsync(broker.url, {
    ...holdfastLogin,
    clientId: `hf-probe-${tag}`,
    reconnectPeriod: 0,
  });
  try {
    // SUBACK 0x80 (refused), which MQTT.js turns into an error.
    await expect(client.subscribeAsync('holdfast/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    // aedes disconnects a client whose publish is denied.
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(`plant/${copies.push.site}/A1/L1/production/performance`, '{}', { qos: 1 });
    await closed;
  } finally {
    await client.endAsync(true);
  }
  expect(await subscription.health.check()).toMatch(/acknowledged/);
}, 30_000);

test('a worker that dies before the commit gets the event again from its session; one down meanwhile misses none', async () => {
  const [first] = events.push;
  const inFlight = { ...first!, eventId: `${copies.push.ids}-at-the-crash` };
  const whileDown = { ...first!, eventId: `${copies.push.ids}-while-stopped` };
  const edgesOf = async (document: string) =>
    (await pool.query(`SELECT count(*)::int AS n FROM holdfast.genealogy_edge WHERE document = $1`, [document])).rows[0]
      .n as number;
  const publisher = await connectProductionEventPublisher({ url: broker.url, ...mesLogin, clientId: `mes5-${tag}` });
  try {
    storeDown = true;
    const retries = subscription.subscriber.stats().retries;
    await publisher.publish([inFlight]);
    await eventually(
      'the event failing in the store',
      async () => subscription.subscriber.stats().retries,
      (n) => n > retries,
    );
    // As a crash would: the socket dropped, no PUBACK, no DISCONNECT.
    await subscription.subscriber.close({ force: true });
    await subscription.close();
    storeDown = false;
    await publisher.publish([whileDown]);
    subscription = await subscribe();
    await eventually(
      'both applied after the restart',
      async () => [await edgesOf(inFlight.eventId), await edgesOf(whileDown.eventId)],
      ([a, b]) => a! > 0 && b! > 0,
    );
    await eventually(
      'both acknowledged',
      async () => subscription.subscriber.stats().acknowledged,
      (n) => n >= 2,
    );
  } finally {
    storeDown = false;
    await publisher.close();
  }
  expect(await edgesOf(inFlight.eventId)).toBe(inFlight.segmentResponse.materialActuals.length);
}, 60_000);

describe('npm start', () => {
  let stack: LocalStack | undefined;
  let dir: string | undefined;
  afterAll(async () => {
    await stack?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('with mesEvents on, the MES simulator publishes on the embedded broker and the worker applies', async () => {
    dir = mkdtempSync(join(tmpdir(), 'holdfast-mes-events-start-'));
    const base = loadConfig();
    const [brokerPort, mesPort] = [await findFreePort(), await findFreePort()];
    const erpPlant = `S${tag.slice(0, 3)}`;
    const site = base.sites[0]!.id;
    // temporal.yaml with the one line uncommented, on free ports (another run may hold the default ones).
    const config: HoldfastConfig = {
      ...base,
      observability: { ...base.observability, worker: { host: '127.0.0.1', port: 0, temporalSdkPort: 0 } },
      connectors: {
        ...base.connectors,
        'line-mqtt': { ...base.connectors['line-mqtt']!, embeddedPort: brokerPort },
        'mes-sim': { ...base.connectors['mes-sim']!, baseUrl: `http://127.0.0.1:${mesPort}` },
      },
      sites: base.sites.map((s) => ({ ...s, erpPlant })),
      traceability: {
        ...base.traceability,
        mesEvents: {
          broker: 'line-mqtt',
          clientId: `holdfast-genealogy-${tag}`,
          topicFilter: 'plant/+/+/+/production/performance',
        },
      },
    };
    const configFile = join(dir, 'temporal.yaml');
    writeFileSync(configFile, stringify(config));
    const testEnv = readTestEnv();
    const { MQTT_URL: _noExternalBroker, ...inherited } = process.env;
    stack = await startLocalStack({
      config: loadConfig(configFile),
      env: {
        ...inherited,
        DATABASE_URL: testEnv.databaseUrl,
        TEMPORAL_ADDRESS: testEnv.temporalAddress,
        TEMPORAL_NAMESPACE: testEnv.namespace,
        SAP_USER: '',
        SAP_PASSWORD: '',
        HOLDFAST_CONFIG: configFile,
      },
      dataDir: join(dir, 'data'),
      processes: defaultLocalProcesses(config, { mesSim: mesPort }).filter((p) =>
        ['mes-sim', 'worker'].includes(p.name),
      ),
      log: () => undefined,
      readyTimeoutMs: 180_000,
    });
    const history = generatePlantHistory({ seed: 5, parts: 10, lots: 4, supplierLots: 2, days: 2, site, erpPlant });
    const published = [...history.productionEvents()].map((e) => ({ ...e, eventId: `start${tag}-${e.eventId}` }));
    await postEvents(`http://127.0.0.1:${mesPort}`, published);
    const distinct = new Map(published.map((e) => [e.eventId, e]));
    const expected = [...distinct.values()].reduce((n, e) => n + e.segmentResponse.materialActuals.length, 0);
    await eventually(
      "every event's edges in the genealogy",
      async () =>
        (
          await pool.query(`SELECT count(*)::int AS n FROM holdfast.genealogy_edge WHERE document LIKE $1`, [
            `start${tag}-%`,
          ])
        ).rows[0].n as number,
      (n) => n === expected,
      { timeoutMs: 60_000 },
    );
  }, 300_000);
});
