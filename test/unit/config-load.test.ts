import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { configPath, loadConfig, parseConfig, resolveEnvRef } from '../../infra/config/load';
import { ConfigError } from '../../activities/errors';

const repoConfigPath = resolve(__dirname, '../../temporal.yaml');
const repoYaml = readFileSync(repoConfigPath, 'utf8');

/** The repository's temporal.yaml with one line replaced; fails the test if the line is not there. */
function withLine(from: string, to: string): string {
  expect(repoYaml).toContain(from);
  return repoYaml.replace(from, to);
}

function parseError(text: string): ConfigError {
  try {
    parseConfig(text, 'test.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected parseConfig to throw');
}

describe('temporal.yaml loading', () => {
  it('accepts the repository temporal.yaml and fills defaults', () => {
    const config = parseConfig(repoYaml);

    expect(config.temporal.namespace).toBe('default');
    expect(config.temporal.devServer).toEqual({ port: 7233, uiPort: 8233, dbFile: 'temporal.sqlite' });
    expect(config.temporal.address).toBeUndefined();
    expect(config.sites.map((s) => s.id)).toEqual(['PLANT1']);
  });

  it('names an unknown key and where it is', () => {
    const err = parseError(withLine('  namespace: default', '  namespace: default\n  adress: 10.0.0.5:7233'));

    expect(err.message).toMatch(/test\.yaml is invalid/);
    expect(err.message).toMatch(/- temporal: .*adress/);
  });

  it('names the full path of a value with the wrong shape', () => {
    const err = parseError(withLine('startToCloseTimeout: 10s', 'startToCloseTimeout: ten seconds'));

    expect(err.message).toContain('activityPresets.mesCall.startToCloseTimeout: expected a duration');
  });

  it('names an out-of-range port', () => {
    const err = parseError(withLine('    port: 7233', '    port: 72330'));

    expect(err.message).toContain('temporal.devServer.port');
  });

  it('names a site that refers to an undeclared connector', () => {
    const err = parseError(withLine('    mes: mes-sim', '    mes: mes-typo'));

    expect(err.message).toContain('sites.0.mes: connector "mes-typo" is not declared under connectors');
  });

  it('rejects a secret written in the file instead of an environment reference', () => {
    const err = parseError(withLine('  namespace: default', '  namespace: default\n  apiKey: plain-secret'));

    expect(err.message).toContain('temporal.apiKey: expected ${env:NAME}');
  });

  it('reports YAML syntax errors with the source name', () => {
    expect(() => parseConfig('temporal: [unclosed', 'broken.yaml')).toThrow(/broken\.yaml is not valid YAML/);
  });

  it('reports a missing file with its path', () => {
    expect(() => loadConfig('/nonexistent/holdfast.yaml')).toThrow(/cannot read config \/nonexistent\/holdfast\.yaml/);
  });

  it('reads HOLDFAST_CONFIG when set', () => {
    const dir = mkdtempSync(join(tmpdir(), 'holdfast-config-'));
    try {
      const file = join(dir, 'plant.yaml');
      writeFileSync(file, withLine('  namespace: default', '  namespace: plant-b'));

      expect(configPath({ HOLDFAST_CONFIG: file })).toBe(file);
      expect(loadConfig(configPath({ HOLDFAST_CONFIG: file })).temporal.namespace).toBe('plant-b');
      expect(configPath({})).toBe(repoConfigPath);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('resolveEnvRef', () => {
  it('returns the variable behind ${env:NAME}', () => {
    expect(resolveEnvRef('${env:SAP_PASSWORD}', 'connectors.sap-sim.password', { SAP_PASSWORD: 's3cret' })).toBe(
      's3cret',
    );
  });

  it('names the key and the variable when it is unset', () => {
    expect(() => resolveEnvRef('${env:SAP_PASSWORD}', 'connectors.sap-sim.password', {})).toThrow(
      'connectors.sap-sim.password: environment variable SAP_PASSWORD is not set',
    );
  });

  it('passes plain values through', () => {
    expect(resolveEnvRef('plain', 'k', {})).toBe('plain');
  });
});
