/** `fpyTarget` on a site and a line (docs/dashboard.md#yield-and-defects): a fraction, the line's own winning. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ConfigError } from '../../activities/errors';
import { parseConfig } from '../../infra/config/load';

const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');
const SITE_TARGET = '    fpyTarget: 0.95\n';
const L2 = '      - id: L2\n';

function yamlWith(site: string | undefined, line2: string | undefined): string {
  expect(repoYaml).toContain(SITE_TARGET);
  expect(repoYaml).toContain(L2);
  return repoYaml
    .replace(SITE_TARGET, site === undefined ? '' : `    fpyTarget: ${site}\n`)
    .replace(L2, line2 === undefined ? L2 : `${L2}        fpyTarget: ${line2}\n`);
}

describe('fpyTarget', () => {
  test('the repository sets the site target; lines have none of their own', () => {
    const site = parseConfig(repoYaml).sites[0]!;
    expect(site.fpyTarget).toBe(0.95);
    expect(site.lines.map((l) => l.fpyTarget)).toEqual(site.lines.map(() => undefined));
  });

  test('a line may set its own, and both may be absent', () => {
    expect(parseConfig(yamlWith('0.9', '0.8')).sites[0]!.lines.find((l) => l.id === 'L2')!.fpyTarget).toBe(0.8);
    expect(parseConfig(yamlWith(undefined, undefined)).sites[0]!.fpyTarget).toBeUndefined();
  });

  test.each([
    ['1.5', undefined, 'sites.0.fpyTarget'],
    ['0', undefined, 'sites.0.fpyTarget'],
    [undefined, '97', 'sites.0.lines.1.fpyTarget'],
  ])('a target of site %s / line %s is refused, naming %s', (site, line, field) => {
    let message = '';
    try {
      parseConfig(yamlWith(site, line), 'test.yaml');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toContain(field);
  });
});
