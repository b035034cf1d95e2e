/**
 * The MES's job-order events as the connector normalises them (both the REST feed and the MQTT subscriber use this),
 * checked against the simulator's own schema, and the MQTT handler's refusals and routing by site.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JobOrderEvent } from '../../activities/ports';
import { parseConfig } from '../../infra/config/load';
import { parseJobOrderEvent } from '../../infra/connectors/mes-rest/mes-job-orders';
import { jobOrderEventHandler, type JobOrderEventSink } from '../../infra/connectors/mqtt/job-order-subscriber';
import { JobOrderEvent as SimJobOrderEvent, jobOrderTopic } from '../../infra/simulators/mes/job-order.schema';

const started = SimJobOrderEvent.parse({
  eventId: 'JO-2000417-r2',
  eventType: 'JobOrderStarted',
  publishedDate: '2026-12-07T01:00:00.000Z',
  hierarchyScope: { site: 'PLANT1', area: 'ASSEMBLY', line: 'L2' },
  jobOrder: {
    id: '2000417',
    workMasterId: 'WM-HSG-310',
    sequence: 1,
    dispatchStatus: 'Running',
    customerCriticality: 8,
    revision: 2,
    materialRequirements: [
      {
        materialUse: 'Consumed',
        materialDefinitionId: 'RM-0003',
        quantity: { quantityString: '12.5', unitOfMeasure: 'KG' },
      },
      {
        materialUse: 'Produced',
        materialDefinitionId: 'HSG-310',
        quantity: { quantityString: '400', unitOfMeasure: 'PC' },
      },
    ],
  },
});

const message = (payload: unknown) => ({
  topic: jobOrderTopic({ site: 'PLANT1', area: 'ASSEMBLY', line: 'L2' }),
  payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  receivedAt: process.hrtime.bigint(),
  redelivered: false,
});

function recordingSink() {
  const applied: { mes: string; event: JobOrderEvent }[] = [];
  const refused: string[] = [];
  const sink: JobOrderEventSink = {
    async apply(mes, event) {
      applied.push({ mes, event });
    },
    refused: (_source, reason) => refused.push(reason),
  };
  return { sink, applied, refused };
}

describe('job-order event normalisation', () => {
  it('takes the SKU and quantity from the produced material requirement, and keeps revision and criticality', () => {
    const parsed = parseJobOrderEvent(started);

    expect(parsed).toEqual({
      ok: true,
      event: {
        eventId: 'JO-2000417-r2',
        eventType: 'started',
        revision: 2,
        publishedAt: '2026-12-07T01:00:00.000Z',
        site: 'PLANT1',
        line: 'L2',
        workOrder: '2000417',
        sku: 'HSG-310',
        plannedQuantity: 400,
        customerCriticality: 8,
      },
    });
  });

  it.each([
    ['JobOrderReleased', 'released'],
    ['JobOrderChanged', 'changed'],
    ['JobOrderCompleted', 'completed'],
  ])('maps %s to %s', (eventType, expected) => {
    const parsed = parseJobOrderEvent({ ...started, eventType });

    expect(parsed.ok && parsed.event.eventType).toBe(expected);
  });

  it('refuses an event without revision, an unknown type or no produced material, naming each field', () => {
    const { revision: _dropped, ...withoutRevision } = started.jobOrder;
    const bad = parseJobOrderEvent({
      ...started,
      eventType: 'JobOrderExploded',
      jobOrder: { ...withoutRevision, materialRequirements: [started.jobOrder.materialRequirements[0]] },
    });

    expect(bad.ok).toBe(false);
    const reason = bad.ok ? '' : bad.reason;
    expect(reason).toContain('eventType');
    expect(reason).toContain('jobOrder.revision');
    expect(reason).toContain('no Produced material requirement');
  });
});

describe('job-order MQTT handler', () => {
  const mesOfSite = new Map([['PLANT1', 'mes-plant1']]);

  it("records the event under its site's MES", async () => {
    const { sink, applied, refused } = recordingSink();

    await jobOrderEventHandler({ mesOfSite, sink })(message(started));

    expect(refused).toEqual([]);
    expect(applied).toEqual([{ mes: 'mes-plant1', event: expect.objectContaining({ eventId: 'JO-2000417-r2' }) }]);
  });

  it('acknowledges and refuses what it cannot record: not JSON, not an event, an unknown site', async () => {
    const { sink, applied, refused } = recordingSink();
    const handle = jobOrderEventHandler({ mesOfSite, sink });

    await handle(message('{not json'));
    await handle(message({ hello: 'world' }));
    await handle(message({ ...started, hierarchyScope: { ...started.hierarchyScope, site: 'ELSEWHERE' } }));

    expect(applied).toEqual([]);
    expect(refused).toEqual([
      expect.stringContaining('not JSON'),
      expect.stringContaining('eventId'),
      'unknown site ELSEWHERE',
    ]);
  });

  it('rejects (so the PUBACK is held and the message retried) when recording fails', async () => {
    const sink: JobOrderEventSink = {
      apply: () => Promise.reject(new Error('PostgreSQL down')),
      refused: () => undefined,
    };

    await expect(jobOrderEventHandler({ mesOfSite, sink })(message(started))).rejects.toThrow('PostgreSQL down');
  });
});

describe('changeover.events in temporal.yaml', () => {
  const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');
  const withEvents = (broker: string) => `${repoYaml}\nchangeover:\n  events: { broker: ${broker} }\n`;

  it('takes a broker connector, with the session and topic defaults', () => {
    const config = parseConfig(withEvents('line-mqtt'));

    expect(config.changeover.events).toEqual({
      broker: 'line-mqtt',
      clientId: 'holdfast-job-orders',
      topicFilter: 'plant/+/+/+/production/job-orders',
    });
    expect(config.changeover.pollInterval).toBe('5s');
  });

  it.each([
    ['mqtt-typo', 'changeover.events.broker: connector "mqtt-typo" is not declared under connectors'],
    ['mes-sim', 'changeover.events.broker: connector "mes-sim" (kind holdfast-mes-rest) has role mes'],
  ])('refuses %s as the broker, naming the key', (broker, message) => {
    expect(() => parseConfig(withEvents(broker), 'test.yaml')).toThrow(message);
  });
});
