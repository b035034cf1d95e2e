import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../../activities/errors';
import { confirmationsFrom, costsFrom } from '../../activities/erp-feed/erp-feed.activities';
import type { ErpFeedSettings, InspectionCounts } from '../../activities/ports';
import { parseConfig } from '../../infra/config/load';
import { erpFeedSpec } from '../../infra/temporal/erp-feed-schedules';

const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');
const ANCHOR = "    erpPlant: '1010'\n";

/** The repository's temporal.yaml with an erpFeed block (YAML lines under the site) added to PLANT1. */
function withFeed(lines: string[]): string {
  expect(repoYaml).toContain(ANCHOR);
  return repoYaml.replace(ANCHOR, `${ANCHOR}    erpFeed:\n${lines.map((l) => `      ${l}`).join('\n')}\n`);
}

const FEED = [
  'every: 15m',
  "companyCode: '1010'",
  "costCentre: '4100'",
  "accounts: { scrap: '52100000', rework: '52200000', inspection: '52300000', externalFailure: '52400000', offset: '89000000' }",
  'rates: { reworkPerHour: 48, reworkMinutesPerPart: 12, inspectionPerPart: 0.35 }',
  'currency: EUR',
];

function errorOf(text: string): string {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected parseConfig to throw');
}

describe('sites[].erpFeed', () => {
  it('is optional: the repository site has no feed', () => {
    expect(parseConfig(repoYaml).sites[0]!.erpFeed).toBeUndefined();
  });

  it('reads a feed with its defaults', () => {
    expect(parseConfig(withFeed(FEED)).sites[0]!.erpFeed).toEqual({
      every: '15m',
      settle: '1m',
      confirmingStations: {},
      operation: '0010',
      unit: 'PC',
      companyCode: '1010',
      costCentre: '4100',
      accounts: {
        scrap: '52100000',
        rework: '52200000',
        inspection: '52300000',
        externalFailure: '52400000',
        offset: '89000000',
      },
      rates: { reworkPerHour: 48, reworkMinutesPerPart: 12, inspectionPerPart: 0.35 },
      currency: 'EUR',
      startBack: '1d',
    });
    expect(parseConfig(withFeed(['every: shift-end', ...FEED.slice(1)])).sites[0]!.erpFeed?.every).toBe('shift-end');
  });

  it.each([
    ['an interval under a minute', ['every: 30s', ...FEED.slice(1)], /sites\.0\.erpFeed\.every: at least 1m/],
    ['a word that is no interval', ['every: hourly', ...FEED.slice(1)], /sites\.0\.erpFeed\.every/],
    [
      'a missing offset account',
      [
        ...FEED.slice(0, 3),
        "accounts: { scrap: '1', rework: '2', inspection: '3', externalFailure: '4' }",
        ...FEED.slice(4),
      ],
      /sites\.0\.erpFeed\.accounts\.offset/,
    ],
    [
      'a negative rate',
      [
        ...FEED.slice(0, 4),
        'rates: { reworkPerHour: -1, reworkMinutesPerPart: 12, inspectionPerPart: 0.35 }',
        FEED[5]!,
      ],
      /sites\.0\.erpFeed\.rates\.reworkPerHour/,
    ],
    ['a currency that is no ISO code', [...FEED.slice(0, 5), 'currency: euro'], /sites\.0\.erpFeed\.currency/],
    [
      'an unknown line',
      [...FEED, 'confirmingStations: { L9: S1 }'],
      /sites\.0\.erpFeed\.confirmingStations\.L9: unknown line "L9"/,
    ],
    [
      'an unknown station',
      [...FEED, 'confirmingStations: { L1: S9 }'],
      /confirmingStations\.L1: unknown station "S9" on line "L1"/,
    ],
    [
      'a shadow station',
      [...FEED, 'confirmingStations: { L1: S3 }'],
      /confirmingStations\.L1: station "S3" is in shadow mode/,
    ],
    ['an operation that is not four digits', [...FEED, "operation: '10'"], /sites\.0\.erpFeed\.operation/],
  ])('names %s', (_what, lines, message) => {
    expect(errorOf(withFeed(lines))).toMatch(message);
  });

  it('fires at each interval end plus the settle time; a shift-end feed wakes every 15 minutes', () => {
    const feed = parseConfig(withFeed([...FEED, 'settle: 2m'])).sites[0]!.erpFeed!;
    expect(erpFeedSpec(feed)).toEqual({ everyMs: 15 * 60_000, offsetMs: 2 * 60_000 });
    expect(erpFeedSpec({ ...feed, every: 'shift-end' })).toEqual({ everyMs: 15 * 60_000, offsetMs: 2 * 60_000 });
  });
});

describe('what an interval confirms and costs', () => {
  const settings: ErpFeedSettings = {
    site: 'S',
    plant: '1010',
    timezone: 'UTC',
    operation: '0010',
    unit: 'PC',
    companyCode: '1010',
    costCentre: '4100',
    currency: 'EUR',
    accounts: { scrap: 'SC', rework: 'RW', inspection: 'IN', externalFailure: 'EF', offset: 'OF' },
    rates: { reworkPerHour: 60, reworkMinutesPerPart: 6, inspectionPerPart: 0.5 },
    confirmingStations: { L1: 'S2' },
  };
  const interval = { from: '2026-12-01T00:00:00.000Z', to: '2026-12-01T00:15:00.000Z' };
  const row = (r: Partial<InspectionCounts>): InspectionCounts => ({
    line: 'L1',
    station: 'S2',
    sku: 'A',
    workOrder: 'W1',
    supplierLot: null,
    inspections: 0,
    passed: 0,
    reworked: 0,
    scrapped: 0,
    ...r,
  });
  // W1 at S2: a part from lots X and Y (half in each), 3 whole parts without lots; S1 is not the confirming station.
  const counts = [
    row({ supplierLot: 'X', inspections: 0.5, passed: 0.5 }),
    row({ supplierLot: 'Y', inspections: 0.5, passed: 0.5 }),
    row({ inspections: 3, passed: 1, reworked: 1, scrapped: 1 }),
    row({ station: 'S1', inspections: 4, passed: 2, reworked: 2, scrapped: 2 }),
    row({ workOrder: 'W2', inspections: 2 }),
  ];

  it('confirms each order from its confirming station only, leaving out an order with nothing to confirm', () => {
    expect(confirmationsFrom(settings, interval, counts)).toEqual([
      {
        workOrder: 'W1',
        line: 'L1',
        station: 'S2',
        sku: 'A',
        yieldQuantity: 2,
        scrapQuantity: 1,
        reworkQuantity: 1,
        idempotencyKey: 'erp-feed:S:W1:2026-12-01T00:00:00.000Z/2026-12-01T00:15:00.000Z',
      },
    ]);
  });

  it('costs scrap at the price, rework at minutes × rate, every inspection, and a recall once per material', () => {
    const rows = costsFrom(
      settings,
      { counts, recalls: [{ recallId: 'R1', material: 'A', shipped: 10 }] },
      new Map([['A', 7.5]]),
    );
    const total = (category: string) => rows.filter((r) => r.category === category).reduce((s, r) => s + r.amount, 0);
    expect(total('scrap')).toBeCloseTo(7.5, 2); // 1 part at 7.50 (S1's failures are not confirmed scrap)
    expect(total('rework')).toBeCloseTo(6, 2); // 1 part × 6 min × 60/h
    expect(total('inspection')).toBeCloseTo(5, 2); // (0.5 + 0.5 + 3 + 4 + 2) inspections × 0.50
    expect(total('external-failure')).toBeCloseTo(75, 2);
    expect(rows.find((r) => r.category === 'external-failure')).toMatchObject({ recallId: 'R1', glAccount: 'EF' });
    expect(rows.filter((r) => r.supplierLot === 'X').map((r) => [r.category, r.amount])).toEqual([
      ['inspection', 0.25],
    ]);
  });
});
