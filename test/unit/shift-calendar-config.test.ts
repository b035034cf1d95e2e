import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../../activities/errors';
import { siteShiftRows } from '../../infra/analytics/shift-calendar';
import { parseConfig } from '../../infra/config/load';

const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');
const SHIFTS = `    shifts:
      - { id: A, name: early, start: '06:00', end: '14:00' }
      - { id: B, name: late, start: '14:00', end: '22:00' }
      - { id: C, name: night, start: '22:00', end: '06:00' }
`;

/** temporal.yaml with PLANT1's shifts replaced by `lines` (YAML list items at the shifts' indentation). */
function withShifts(lines: string[] | undefined): string {
  expect(repoYaml).toContain(SHIFTS);
  return repoYaml.replace(SHIFTS, lines ? `    shifts:\n${lines.map((l) => `      - ${l}\n`).join('')}` : '');
}

function parseError(text: string): string {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected parseConfig to throw');
}

describe('sites[].shifts', () => {
  test('the repository calendar: three shifts, the night one across midnight, in the site time zone', () => {
    const config = parseConfig(repoYaml);
    expect(config.sites[0]!.shifts.map((s) => [s.id, s.start, s.end])).toEqual([
      ['A', '06:00', '14:00'],
      ['B', '14:00', '22:00'],
      ['C', '22:00', '06:00'],
    ]);
    expect(siteShiftRows(config)).toContainEqual({
      site: 'PLANT1',
      shift: 'C',
      starts: '22:00',
      ends: '06:00',
      timeZone: 'America/Chicago',
    });
  });

  test('absent: one shift, all, from midnight to midnight', () => {
    const config = parseConfig(withShifts(undefined));
    expect(config.sites[0]!.shifts).toEqual([{ id: 'all', start: '00:00', end: '00:00' }]);
  });

  test('a single shift may span the whole day from any time, and shifts may be listed in any order', () => {
    expect(parseConfig(withShifts(["{ id: D, start: '06:30', end: '06:30' }"])).sites[0]!.shifts).toHaveLength(1);
    const config = parseConfig(
      withShifts(["{ id: N, start: '18:00', end: '06:00' }", "{ id: D, start: '06:00', end: '18:00' }"]),
    );
    expect(config.sites[0]!.shifts.map((s) => s.id)).toEqual(['N', 'D']);
  });

  test.each<[string, string[], RegExp]>([
    [
      'overlapping shifts',
      ["{ id: A, start: '06:00', end: '14:30' }", "{ id: B, start: '14:00', end: '06:00' }"],
      /sites\.0\.shifts\.1\.start.*shift B \(14:00–06:00\) overlaps shift A at 14:00/s,
    ],
    [
      'a gap',
      ["{ id: A, start: '06:00', end: '14:00' }", "{ id: B, start: '15:00', end: '06:00' }"],
      /sites\.0\.shifts.*14:00–15:00 belongs to no shift/s,
    ],
    [
      'a gap across midnight',
      ["{ id: A, start: '06:00', end: '22:00' }", "{ id: B, start: '22:00', end: '23:00' }"],
      /sites\.0\.shifts.*23:00–06:00 belongs to no shift/s,
    ],
    [
      'a duplicate id',
      ["{ id: A, start: '06:00', end: '18:00' }", "{ id: A, start: '18:00', end: '06:00' }"],
      /sites\.0\.shifts\.1\.id.*"A" is used twice/s,
    ],
    ['a clock time out of range', ["{ id: A, start: '24:00', end: '24:00' }"], /sites\.0\.shifts\.0\.start.*HH:MM/s],
    ['a clock time without minutes', ["{ id: A, start: '6', end: '6' }"], /sites\.0\.shifts\.0\.start.*HH:MM/s],
    ['an unknown key', ["{ id: A, start: '00:00', end: '00:00', length: 8h }"], /sites\.0\.shifts\.0.*length/s],
  ])('refuses %s, naming the field', (_, lines, message) => {
    expect(parseError(withShifts(lines))).toMatch(message);
  });

  test('refuses an empty list and an unknown time zone', () => {
    expect(parseError(repoYaml.replace(SHIFTS, '    shifts: []\n'))).toMatch(/sites\.0\.shifts/);
    expect(parseError(repoYaml.replace('timezone: America/Chicago', 'timezone: America/Springfield'))).toMatch(
      /sites\.0\.timezone.*IANA time zone/s,
    );
  });
});
