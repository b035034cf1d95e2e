import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../infra/config/load';
import { ConfigError } from '../../activities/errors';
import type { HoldfastConfig } from '../../infra/config/schema';
import { describeTarget, resolveTemporalTarget } from '../../infra/temporal/connection';

const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');

/** The repository config with its `temporal:` block replaced. */
function configWithTemporal(temporalBlock: string): HoldfastConfig {
  const start = repoYaml.indexOf('\ntemporal:\n');
  const end = repoYaml.indexOf('\ntaskQueues:');
  expect(start).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return parseConfig(`${repoYaml.slice(0, start)}\ntemporal:\n${temporalBlock}\n${repoYaml.slice(end)}`);
}

let dir: string;
let certs: { cert: string; key: string; ca: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'holdfast-tls-'));
  certs = { cert: join(dir, 'client.pem'), key: join(dir, 'client.key'), ca: join(dir, 'ca.pem') };
  writeFileSync(certs.cert, 'CLIENT CERT');
  writeFileSync(certs.key, 'CLIENT KEY');
  writeFileSync(certs.ca, 'ROOT CA');
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('resolveTemporalTarget', () => {
  it('defaults to the local dev server on the configured port, plaintext', () => {
    const target = resolveTemporalTarget(configWithTemporal('  devServer:\n    port: 7999'), {});

    expect(target).toEqual({ address: '127.0.0.1:7999', namespace: 'default' });
    expect(describeTarget(target)).toBe('127.0.0.1:7999 (namespace default, plaintext)');
  });

  it('takes address and namespace from temporal.yaml', () => {
    const config = configWithTemporal('  address: temporal.plant.local:7233\n  namespace: quality-prod');

    expect(resolveTemporalTarget(config, {})).toEqual({
      address: 'temporal.plant.local:7233',
      namespace: 'quality-prod',
    });
  });

  it('lets the environment override temporal.yaml', () => {
    const config = configWithTemporal('  address: temporal.plant.local:7233\n  namespace: quality-prod');
    const env = { TEMPORAL_ADDRESS: 'other:7233', TEMPORAL_NAMESPACE: 'other-ns' };

    expect(resolveTemporalTarget(config, env)).toEqual({ address: 'other:7233', namespace: 'other-ns' });
  });

  it('turns on TLS for a Temporal Cloud API key from the environment', () => {
    const env = {
      TEMPORAL_ADDRESS: 'eu-west-1.aws.api.temporal.io:7233',
      TEMPORAL_NAMESPACE: 'holdfast.a1b2c',
      TEMPORAL_API_KEY: 'key-123',
    };

    const target = resolveTemporalTarget(configWithTemporal('  namespace: default'), env);

    expect(target).toEqual({
      address: 'eu-west-1.aws.api.temporal.io:7233',
      namespace: 'holdfast.a1b2c',
      tls: true,
      apiKey: 'key-123',
    });
    expect(describeTarget(target)).not.toContain('key-123');
  });

  it('resolves temporal.apiKey through its ${env:NAME} reference, naming it when unset', () => {
    const config = configWithTemporal('  address: x.tmprl.cloud:7233\n  apiKey: ${env:HOLDFAST_CLOUD_KEY}');

    expect(resolveTemporalTarget(config, { HOLDFAST_CLOUD_KEY: 'from-env-ref' })).toMatchObject({
      apiKey: 'from-env-ref',
      tls: true,
    });
    expect(() => resolveTemporalTarget(config, {})).toThrow(
      'temporal.apiKey: environment variable HOLDFAST_CLOUD_KEY is not set',
    );
  });

  it('reads mTLS files named in temporal.yaml', () => {
    const config = configWithTemporal(
      [
        '  address: temporal.plant.local:7233',
        '  tls:',
        `    clientCertPath: ${certs.cert}`,
        `    clientKeyPath: ${certs.key}`,
        `    serverRootCaCertPath: ${certs.ca}`,
        '    serverName: temporal.internal',
      ].join('\n'),
    );

    const { tls } = resolveTemporalTarget(config, {});

    expect(tls).not.toBe(true);
    const cfg = tls as Exclude<typeof tls, true | undefined>;
    expect(cfg.serverNameOverride).toBe('temporal.internal');
    expect(Buffer.from(cfg.serverRootCACertificate!).toString()).toBe('ROOT CA');
    expect(Buffer.from(cfg.clientCertPair!.crt).toString()).toBe('CLIENT CERT');
    expect(Buffer.from(cfg.clientCertPair!.key).toString()).toBe('CLIENT KEY');
  });

  it('lets TEMPORAL_TLS_* variables replace the file paths', () => {
    const other = join(dir, 'other-ca.pem');
    writeFileSync(other, 'OTHER CA');
    const env = {
      TEMPORAL_ADDRESS: 'secure:7233',
      TEMPORAL_TLS_CERT: certs.cert,
      TEMPORAL_TLS_KEY: certs.key,
      TEMPORAL_TLS_CA: other,
      TEMPORAL_TLS_SERVER_NAME: 'sni.example',
    };

    const { tls } = resolveTemporalTarget(
      configWithTemporal('  tls:\n    serverRootCaCertPath: /nonexistent.pem'),
      env,
    );

    const cfg = tls as Exclude<typeof tls, true | undefined>;
    expect(Buffer.from(cfg.serverRootCACertificate!).toString()).toBe('OTHER CA');
    expect(cfg.serverNameOverride).toBe('sni.example');
    expect(Buffer.from(cfg.clientCertPair!.crt).toString()).toBe('CLIENT CERT');
  });

  it('refuses a client certificate without its key', () => {
    expect(() =>
      resolveTemporalTarget(configWithTemporal('  namespace: default'), { TEMPORAL_TLS_CERT: certs.cert }),
    ).toThrow(/TEMPORAL_TLS_CERT is set but no client key/);
  });

  it('names the setting whose file cannot be read', () => {
    const config = configWithTemporal('  tls:\n    serverRootCaCertPath: /nonexistent/ca.pem');

    expect(() => resolveTemporalTarget(config, {})).toThrow(ConfigError);
    expect(() => resolveTemporalTarget(config, {})).toThrow(
      /temporal\.tls\.serverRootCaCertPath: cannot read \/nonexistent\/ca\.pem/,
    );
  });
});
