/**
 * The MES's job-order events into Holdfast (docs/changeover.md#order-events), on real PostgreSQL, a real broker (aedes,
 * with the MES's and Holdfast's accounts) and the real MES simulator: MQTT delivery, the REST fallback catching what
 * the stream missed, a replayed and an out-of-order event changing nothing, and the changeover trigger answered once
 * per started order, also when it failed or the process died before it answered.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { Registry } from 'prom-client';
import type { ChangeoverTrigger, JobOrderEvent, MesPort } from '../../activities/ports';
import { createJobOrderIntake, startJobOrderPolling } from '../../infra/changeover/job-order-intake';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import type { ConnectorInstance } from '../../infra/connectors/define';
import mesRestConnector from '../../infra/connectors/mes-rest/mes-rest.connector';
import { createPool } from '../../infra/db/pool';
import { findFreePort } from '../../infra/local/managed-process';
import {
  mesEventsReaderAccount,
  mesProductionAccount,
  spawnEmbeddedMqttBroker,
  type MqttBroker,
} from '../../infra/local/mqtt-broker';
import { createJobOrderMetrics } from '../../infra/observability/job-order-metrics';
import type { JobOrderEvent as MesJobOrderEvent } from '../../infra/simulators/mes/job-order.schema';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { startJobOrderIntake, type JobOrderIntakeService } from '../../workers/job-orders';
import { eventually } from '../support/eventually';
import { FakeMes } from '../support/fake-ports';
import { quietLog } from '../support/quiet-log';
import { readTestEnv } from '../support/test-env';

const pool: Pool = createPool(readTestEnv().databaseUrl, { max: 5 });
const tag = randomBytes(3).toString('hex');
const site = `J${tag.toUpperCase()}`;
const mesName = `jo-mes-${tag}`;
const login = (username: string) => ({ username, password: randomUUID() });
const mesLogin = login('mes');
const holdfastLogin = login('holdfast-job-orders');

/** The changeover trigger as H5's starter behaves: idempotent by line and order, every call recorded. */
function recordingTrigger() {
  const calls: JobOrderEvent[] = [];
  const started = new Set<string>();
  let failNext = 0;
  const trigger: ChangeoverTrigger = {
    async orderStarted(event) {
      calls.push(event);
      if (failNext > 0) {
        failNext -= 1;
        throw new Error('Temporal unavailable (test)');
      }
      const id = `changeover-${event.site}-${event.line}-${event.workOrder}`;
      if (started.has(id)) return 'already-running';
      started.add(id);
      return 'started';
    },
  };
  return { trigger, calls, started, failTimes: (n: number) => (failNext += n) };
}

async function eventRow(mes: string, eventId: string) {
  const { rows } = await pool.query<{ source: string; outcome: string; trigger_state: string | null }>(
    `SELECT source, outcome, trigger_state FROM holdfast.job_order_event WHERE mes_system = $1 AND event_id = $2`,
    [mes, eventId],
  );
  return rows[0];
}

describe('job-order intake rules (PostgreSQL, the fake MES feed)', () => {
  const mes = `fake-${tag}`;
  const metrics = createJobOrderMetrics(new Registry());

  it('applies an event once: a duplicate changes nothing, a lower revision is recorded stale, a higher one applies', async () => {
    const fake = new FakeMes();
    const { trigger, calls } = recordingTrigger();
    const intake = createJobOrderIntake({ pool, trigger, startOnOrderEvent: true, metrics, log: quietLog() });
    const wo = `R-${tag}-1`;
    const released = fake.orderEvent('released', { workOrder: wo, site, line: 'L1' });
    const started = fake.orderEvent('started', { workOrder: wo });
    const changed = fake.orderEvent('changed', { workOrder: wo, customerCriticality: 9 });

    const outcomes = [
      await intake.apply(mes, started, 'mqtt'),
      await intake.apply(mes, started, 'rest'),
      await intake.apply(mes, released, 'mqtt'),
      await intake.apply(mes, changed, 'mqtt'),
    ];
    await intake.drainTriggers();
    await intake.close();

    expect(outcomes).toEqual(['applied', 'duplicate', 'stale', 'applied']);
    expect(await intake.order(mes, wo)).toEqual(
      expect.objectContaining({ status: 'changed', revision: 3, lastEventId: changed.eventId }),
    );
    expect(await eventRow(mes, released.eventId)).toEqual({ source: 'mqtt', outcome: 'stale', trigger_state: null });
    expect(await eventRow(mes, started.eventId)).toEqual({
      source: 'mqtt',
      outcome: 'applied',
      trigger_state: 'started',
    });
    expect(calls.map((e) => e.eventId)).toEqual([started.eventId]);
  });

  it('a stale started event (out of order) starts nothing; startOnOrderEvent false starts nothing either', async () => {
    const fake = new FakeMes();
    const { trigger, calls } = recordingTrigger();
    const intake = createJobOrderIntake({ pool, trigger, startOnOrderEvent: true, metrics, log: quietLog() });
    const manual = createJobOrderIntake({ pool, trigger, startOnOrderEvent: false, metrics, log: quietLog() });
    const wo = `R-${tag}-2`;
    fake.orderEvent('released', { workOrder: wo, site });
    const started = fake.orderEvent('started', { workOrder: wo });
    const completed = fake.orderEvent('completed', { workOrder: wo });
    const other = fake.orderEvent('started', { workOrder: `R-${tag}-3`, site });

    expect(await intake.apply(mes, completed, 'mqtt')).toBe('applied');
    expect(await intake.apply(mes, started, 'mqtt')).toBe('stale');
    expect(await manual.apply(mes, other, 'mqtt')).toBe('applied');
    await intake.drainTriggers();
    await intake.close();
    await manual.close();

    expect(calls).toEqual([]);
    expect(await eventRow(mes, other.eventId)).toEqual(expect.objectContaining({ trigger_state: null }));
  });

  it('polls the feed from its stored cursor: each event once, across restarts', async () => {
    const fake = new FakeMes();
    const feedMes = `fake-feed-${tag}`;
    const { trigger, calls } = recordingTrigger();
    for (let i = 0; i < 3; i += 1) {
      fake.orderEvent('released', { workOrder: `P-${tag}-${i}`, site });
      fake.orderEvent('started', { workOrder: `P-${tag}-${i}` });
    }
    const first = createJobOrderIntake({ pool, trigger, startOnOrderEvent: true, metrics, log: quietLog() });
    const read = await first.poll(feedMes, fake.jobOrders, 4);
    await first.drainTriggers();
    await first.close();
    fake.orderEvent('completed', { workOrder: `P-${tag}-0` });

    const second = createJobOrderIntake({ pool, trigger, startOnOrderEvent: true, metrics, log: quietLog() });
    const more = await second.poll(feedMes, fake.jobOrders, 4);
    await second.close();

    expect([read, more]).toEqual([6, 1]);
    expect(fake.calls.filter((c) => c.startsWith('jobOrders.read')).at(-1)).toBe('jobOrders.read 6');
    expect(calls.map((e) => e.workOrder).sort()).toEqual([0, 1, 2].map((i) => `P-${tag}-${i}`));
  });

  it('a start whose trigger never answered (failure, or the process died) is triggered by the next drain, once', async () => {
    const fake = new FakeMes();
    const died = recordingTrigger();
    // Never answers while this "process" lives.
    died.failTimes(1_000);
    const before = createJobOrderIntake({
      pool,
      trigger: died.trigger,
      startOnOrderEvent: true,
      metrics,
      log: quietLog(),
    });
    const wo = `C-${tag}`;
    fake.orderEvent('released', { workOrder: wo, site });
    const started = fake.orderEvent('started', { workOrder: wo });

    await before.apply(mes, started, 'mqtt');
    await before.drainTriggers();
    await before.close();
    const pendingAfterCrash = await eventRow(mes, started.eventId);

    const restarted = recordingTrigger();
    const after = createJobOrderIntake({
      pool,
      trigger: restarted.trigger,
      startOnOrderEvent: true,
      metrics,
      log: quietLog(),
    });
    const polling = startJobOrderPolling({
      intake: after,
      feeds: [],
      intervalMs: 0,
      retryMs: 60_000,
      metrics,
      log: quietLog(),
    });
    await polling.tickNow();
    await polling.stop();
    await after.close();

    expect(pendingAfterCrash?.trigger_state).toBe('pending');
    expect(restarted.calls.filter((e) => e.workOrder === wo)).toHaveLength(1);
    expect(await eventRow(mes, started.eventId)).toEqual(expect.objectContaining({ trigger_state: 'started' }));
  });

  it('a pending start whose order completed meanwhile is skipped, not started', async () => {
    const fake = new FakeMes();
    const down = recordingTrigger();
    down.failTimes(1_000);
    const intake = createJobOrderIntake({
      pool,
      trigger: down.trigger,
      startOnOrderEvent: true,
      metrics,
      log: quietLog(),
    });
    const wo = `K-${tag}`;
    fake.orderEvent('released', { workOrder: wo, site });
    const started = fake.orderEvent('started', { workOrder: wo });
    await intake.apply(mes, started, 'rest');
    await intake.drainTriggers();
    await intake.apply(mes, fake.orderEvent('completed', { workOrder: wo }), 'rest');
    await intake.close();

    const up = recordingTrigger();
    const after = createJobOrderIntake({
      pool,
      trigger: up.trigger,
      startOnOrderEvent: true,
      metrics,
      log: quietLog(),
    });
    await after.drainTriggers();
    await after.close();

    expect(up.calls.filter((e) => e.workOrder === wo)).toEqual([]);
    expect(await eventRow(mes, started.eventId)).toEqual(expect.objectContaining({ trigger_state: 'skipped' }));
  });
});

describe('job-order intake against the MES simulator and a real broker', () => {
  let broker: MqttBroker;
  let sim: Awaited<ReturnType<typeof buildMesSimulator>>;
  let simUrl: string;
  let mesConnector: ConnectorInstance<MesPort>;
  let service: JobOrderIntakeService;
  const registry = new Registry();
  const recorder = recordingTrigger();

  async function drive(path: string, body: unknown = {}): Promise<MesJobOrderEvent> {
    const res = await fetch(`${simUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    const json = (await res.json()) as MesJobOrderEvent | { event: MesJobOrderEvent };
    return 'event' in json ? json.event : json;
  }
  const release = (workOrder: string, publish = true) =>
    drive('/__sim/job-orders', { workOrder, sku: 'HSG-310', site, line: 'L2', plannedQuantity: 250, publish });
  const counter = async (source: string, outcome: string) => {
    const metric = await registry.getSingleMetric('holdfast_job_order_events_total')!.get();
    return metric.values.find((v) => v.labels.source === source && v.labels.outcome === outcome)?.value ?? 0;
  };
  const orderOf = async (workOrder: string) => {
    const { rows } = await pool.query<{ status: string; revision: number }>(
      `SELECT status, revision FROM holdfast.job_order WHERE mes_system = $1 AND work_order = $2`,
      [mesName, workOrder],
    );
    return rows[0];
  };

  beforeAll(async () => {
    broker = await spawnEmbeddedMqttBroker({
      port: await findFreePort(),
      access: { accounts: [mesProductionAccount(mesLogin), mesEventsReaderAccount(holdfastLogin)] },
    });
    sim = await buildMesSimulator({
      pool,
      schema: `mes_jo_${tag}`,
      productionEventBroker: { url: broker.url, ...mesLogin, clientId: `mes-jo-${tag}` },
    });
    simUrl = await sim.listen({ host: '127.0.0.1', port: 0 });
    mesConnector = await mesRestConnector.connect(mesRestConnector.configSchema.parse({ baseUrl: simUrl }), {
      name: mesName,
      env: {},
      log: quietLog(),
      dataDir: '/nonexistent',
    });
    const base = loadConfig();
    const config: HoldfastConfig = {
      ...base,
      sites: [{ ...base.sites[0]!, id: site, mes: mesName }],
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
      changeover: {
        ...base.changeover,
        events: {
          broker: 'uns-mqtt',
          clientId: `holdfast-jo-${tag}`,
          topicFilter: `plant/${site}/+/+/production/job-orders`,
        },
        // The test polls (pollNow); the timer would only race it.
        pollInterval: '1h',
      },
    };
    service = await startJobOrderIntake({
      config,
      pool,
      mesFor: () => mesConnector.port,
      trigger: recorder.trigger,
      registry,
      log: quietLog(),
      env: { UNS_MQTT_USERNAME: holdfastLogin.username, UNS_MQTT_PASSWORD: holdfastLogin.password },
    });
    // The first tick (at start) read what the MES already had: nothing of this run's site.
    await service.pollNow();
  }, 60_000);

  afterAll(async () => {
    await service?.close();
    await mesConnector?.close();
    await sim?.close();
    await broker?.stop();
    await pool.query(`DROP SCHEMA IF EXISTS "mes_jo_${tag}" CASCADE`);
    await pool.end();
  });

  it('MQTT: a released then started order is applied as it is published, and its changeover triggered', async () => {
    const wo = `M-${tag}`;
    await release(wo);
    const started = await drive(`/__sim/job-orders/${wo}/start`);

    await eventually(
      'the started event applied and triggered',
      async () => ({
        order: await orderOf(wo),
        row: await eventRow(mesName, started.eventId),
      }),
      (s) => s.row?.trigger_state === 'started',
    );

    expect(await orderOf(wo)).toEqual({ status: 'started', revision: 2 });
    expect(await eventRow(mesName, started.eventId)).toEqual({
      source: 'mqtt',
      outcome: 'applied',
      trigger_state: 'started',
    });
    expect(await service.health.check()).toContain('acknowledged');
  });

  it('REST fallback: events the stream never carried are read by the poll and applied', async () => {
    const wo = `F-${tag}`;
    await release(wo, false);
    const started = await drive(`/__sim/job-orders/${wo}/start`, { publish: false });
    // The same MES serves a plant this worker does not know.
    const foreign = `X-${tag}`;
    await drive('/__sim/job-orders', {
      workOrder: foreign,
      sku: 'HSG-310',
      site: `OTHER${tag}`,
      line: 'L2',
      plannedQuantity: 5,
      publish: false,
    });
    const beforePoll = await orderOf(wo);

    await service.pollNow();

    expect(beforePoll).toBeUndefined();
    expect(await orderOf(foreign)).toBeUndefined();
    expect(await orderOf(wo)).toEqual({ status: 'started', revision: 2 });
    expect(await eventRow(mesName, started.eventId)).toEqual({
      source: 'rest',
      outcome: 'applied',
      trigger_state: 'started',
    });
  });

  it('a replayed event and an out-of-order event change nothing; the later revision stands', async () => {
    const wo = `O-${tag}`;
    await release(wo, false);
    const change = await drive(`/__sim/job-orders/${wo}/change`, { customerCriticality: 9, publish: false });
    const started = await drive(`/__sim/job-orders/${wo}/start`, { publish: false });
    const stale = await counter('mqtt', 'stale');
    const duplicates = await counter('mqtt', 'duplicate');

    // Out of order: the start (r3) goes out before the change (r2); then the start is replayed.
    await drive(`/__sim/job-order-events/${started.eventId}/republish`);
    await drive(`/__sim/job-order-events/${change.eventId}/republish`);
    await drive(`/__sim/job-order-events/${started.eventId}/republish`);
    await eventually(
      'all three messages recorded',
      async () => ({
        stale: await counter('mqtt', 'stale'),
        duplicates: await counter('mqtt', 'duplicate'),
      }),
      (c) => c.stale === stale + 1 && c.duplicates === duplicates + 1,
    );
    await service.pollNow();

    expect(await orderOf(wo)).toEqual({ status: 'started', revision: 3 });
    expect(await eventRow(mesName, change.eventId)).toEqual({ source: 'mqtt', outcome: 'stale', trigger_state: null });
    expect(await eventRow(mesName, started.eventId)).toEqual(expect.objectContaining({ outcome: 'applied' }));
  });

  it('the trigger answered exactly once per started order, whichever path and however often it came', async () => {
    await service.pollNow();

    const mine = [`M-${tag}`, `F-${tag}`, `O-${tag}`];
    const byOrder = new Map<string, number>();
    // Only this run's orders: the drain also takes up pending starts another test left in the shared database.
    for (const e of recorder.calls.filter((c) => mine.includes(c.workOrder))) {
      byOrder.set(e.workOrder, (byOrder.get(e.workOrder) ?? 0) + 1);
    }
    const pending = await pool.query(
      `SELECT 1 FROM holdfast.job_order_event WHERE mes_system = $1 AND trigger_state = 'pending'`,
      [mesName],
    );

    expect(Object.fromEntries(byOrder)).toEqual(Object.fromEntries(mine.map((wo) => [wo, 1])));
    expect(pending.rowCount).toBe(0);
  });
});
