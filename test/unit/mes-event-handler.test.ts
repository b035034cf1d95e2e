/**
 * The production-event handler's decisions without a broker: what it records for a site (parts only when the ERP
 * states production), what it acknowledges without recording, and what it leaves to be retried.
 */
import type { GenealogyFacts } from '../../activities/ports';
import type { FrameMessage } from '../../infra/connectors/mqtt/frame-subscriber';
import {
  productionEventHandler,
  type ProductionEventMetrics,
  type ProductionEventRefusal,
} from '../../infra/connectors/mqtt/production-event-subscriber';
import { GenealogyInputError } from '../../infra/genealogy/genealogy-store';
import { quietLog } from '../support/quiet-log';

const event = {
  eventId: 'PR-C0001',
  eventType: 'production',
  hierarchyScope: { site: 'PLANT1', area: 'A1', line: 'L1' },
  productionRequestId: '2000001',
  segmentResponse: {
    actualEndTime: '2026-01-05T10:00:00Z',
    materialActuals: [
      {
        materialUse: 'Consumed',
        materialDefinitionId: 'RM-1',
        materialLotId: 'R1',
        quantity: { quantityString: '2', unitOfMeasure: 'KG' },
      },
      {
        materialUse: 'Produced',
        materialDefinitionId: 'CMP-1',
        materialLotId: 'C1',
        quantity: { quantityString: '2', unitOfMeasure: 'PC' },
        materialSubLotIds: ['C1-1', 'C1-2'],
      },
    ],
  },
};
const message = (payload: unknown): FrameMessage => ({
  topic: 'plant/PLANT1/A1/L1/production/performance',
  payload: Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)),
  receivedAt: process.hrtime.bigint(),
  redelivered: false,
});

function setup(production: 'erp' | 'mes', record: (facts: GenealogyFacts) => Promise<void> = async () => undefined) {
  const recorded: { source: string; facts: GenealogyFacts }[] = [];
  const counts = { applied: 0, failed: 0, refused: [] as ProductionEventRefusal[] };
  const metrics: ProductionEventMetrics = {
    applied: () => void (counts.applied += 1),
    failed: () => void (counts.failed += 1),
    refused: (reason) => void counts.refused.push(reason),
  };
  const handle = productionEventHandler({
    sites: [{ id: 'PLANT1', erpPlant: '1010' }],
    production,
    recorder: {
      async record(source, facts) {
        await record(facts);
        recorded.push({ source, facts });
        return { added: 0, updated: 0, unchanged: 0, gapsOpened: 0, gapsResolved: 0 };
      },
    },
    metrics,
    log: quietLog(),
  });
  return { handle, recorded, counts };
}

test('records the lots, movements and parts of a known site, under the site and the ERP plant', async () => {
  const { handle, recorded, counts } = setup('mes');
  await handle(message(event));
  expect(recorded).toHaveLength(1);
  expect(recorded[0]!.source).toBe('mes-events:PLANT1');
  const { lots, movements, parts } = recorded[0]!.facts;
  expect(lots.map((l) => l.lotKey)).toEqual(['erp:1010/CMP-1/C1']);
  expect(movements.map((m) => [m.edgeKey, m.kind])).toEqual([
    ['mes:PLANT1%2FPR-C0001#0', 'consumed'],
    ['mes:PLANT1%2FPR-C0001#1', 'produced'],
  ]);
  expect(parts.map((p) => p.partId)).toEqual(['C1-1', 'C1-2']);
  expect(counts).toEqual({ applied: 1, failed: 0, refused: [] });
});

test('with the ERP stating production, records only the parts', async () => {
  const { handle, recorded } = setup('erp');
  await handle(message(event));
  expect(recorded[0]!.facts.lots).toEqual([]);
  expect(recorded[0]!.facts.movements).toEqual([]);
  expect(recorded[0]!.facts.parts).toHaveLength(2);
});

test.each<[string, unknown, ProductionEventRefusal]>([
  ['bad JSON', '{"eventId":', 'bad-payload'],
  [
    'a missing field',
    { ...event, segmentResponse: { actualEndTime: event.segmentResponse.actualEndTime } },
    'bad-payload',
  ],
  ['an unknown site', { ...event, hierarchyScope: { ...event.hierarchyScope, site: 'ELSEWHERE' } }, 'unknown-site'],
])('resolves without recording for %s (so it is acknowledged), counted', async (_what, payload, reason) => {
  const { handle, recorded, counts } = setup('mes');
  await expect(handle(message(payload))).resolves.toBeUndefined();
  expect(recorded).toEqual([]);
  expect(counts.refused).toEqual([reason]);
});

test('facts the store refuses are acknowledged as bad-facts; a store failure rejects, to be retried', async () => {
  const refusing = setup('mes', () => Promise.reject(new GenealogyInputError('a second lot key for C1')));
  await expect(refusing.handle(message(event))).resolves.toBeUndefined();
  expect(refusing.counts.refused).toEqual(['bad-facts']);

  const down = setup('mes', () => Promise.reject(new Error('connection refused')));
  await expect(down.handle(message(event))).rejects.toThrow('connection refused');
  expect(down.counts).toEqual({ applied: 0, failed: 1, refused: [] });
});
