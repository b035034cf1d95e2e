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

  it('declares every external system under connectors, each named where it is used', () => {
    const config = parseConfig(repoYaml);

    expect(Object.fromEntries(Object.entries(config.connectors).map(([name, c]) => [name, c.kind]))).toEqual({
      'mes-sim': 'holdfast-mes-rest',
      'sap-sim': 'sap-s4-odata',
      'worker-log': 'escalation-log',
      'line-mqtt': 'mqtt',
      'line-plc': 'opcua-reject-station',
      'line-vision': 'opcua-machine-vision',
      'line-control': 'opcua-line-control',
      'recall-notices': 'recall-notice-file',
      'supplier-notices': 'supplier-notice-file',
    });
    expect(config.supplierQuality.scar).toMatchObject({ channel: 'supplier-notices', verifyReceipts: 3 });
    expect(config.sites[0]).toMatchObject({ mes: 'mes-sim', erp: 'sap-sim', escalation: 'worker-log' });
    expect(config.sites[0]!.recall.notify).toMatchObject({ target: 'recall-notices', ackWithin: '24h' });
    expect(config.vision).toMatchObject({ broker: 'line-mqtt', rejectStation: 'line-plc', topicPrefix: 'holdfast' });
    // What `npm start` relies on: the embedded broker's port and the line PLC simulator's endpoint.
    expect(config.connectors['line-mqtt']).toMatchObject({ embeddedPort: 1883, required: true });
    expect(config.connectors['line-mqtt']!.url).toBeUndefined();
    expect(config.connectors['line-plc']).toMatchObject({ endpointUrl: 'opc.tcp://127.0.0.1:4840' });
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

  it('names a connector kind nobody registered, with the kinds that are', () => {
    const err = parseError(withLine('    kind: opcua-reject-station', '    kind: opcua-x'));

    expect(err.message).toContain(
      'connectors.line-plc.kind: "opcua-x" is not a registered connector kind (known: holdfast-mes-rest, sap-s4-odata, escalation-log, escalation-webhook, opcua-reject-station, mqtt, recall-notice-webhook, recall-notice-smtp, recall-notice-file, opcua-machine-vision, opcua-line-control, supplier-notice-file, supplier-notice-webhook)',
    );
  });

  it('names a connector block nothing uses', () => {
    const err = parseError(withLine('connectors:\n', 'connectors:\n  plc-2:\n    kind: opcua-reject-station\n'));

    expect(err.message).toContain(
      'connectors.plc-2: declared but nothing uses it: name it in vision.rejectStation, or remove it',
    );
  });

  it.each([
    ['  rejectStation: line-plc', '  rejectStation: plc-typo', 'vision.rejectStation'],
    ['  broker: line-mqtt', '  broker: mqtt-typo', 'vision.broker'],
    ['    escalation: worker-log', '    escalation: andon-typo', 'sites.0.escalation'],
  ])('names a reference to a missing connector (%s)', (from, to, key) => {
    const err = parseError(withLine(from, to));

    expect(err.message).toContain(`${key}: connector "${to.split(': ')[1]}" is not declared under connectors`);
  });

  it('names a reference to a connector of another role', () => {
    const err = parseError(withLine('    erp: sap-sim', '    erp: mes-sim'));

    expect(err.message).toContain(
      'sites.0.erp: connector "mes-sim" (kind holdfast-mes-rest) has role mes; here it needs role erp',
    );
  });

  it("checks a site's recall notification target like its other connectors", () => {
    const err = parseError(withLine('        target: recall-notices', '        target: worker-log'));

    expect(err.message).toContain(
      'sites.0.recall.notify.target: connector "worker-log" (kind escalation-log) has role escalation; here it needs role recall-notice',
    );
    expect(err.message).toContain('connectors.recall-notices: declared but nothing uses it');
  });

  it("checks a site's line control and a station's vision system like its other connectors", () => {
    const config = parseConfig(repoYaml);
    expect(config.sites[0]!.lineControl).toBe('line-control');
    expect(config.sites[0]!.lines[0]!.stations.find((s) => s.id === 'S4')!.vision).toEqual({
      connector: 'line-vision',
      system: 'L1-S4-vision',
      recipes: { 'BRKT-200': 'BRKT200-A', 'HSG-310': 'HSG310-B', 'CVR-120': 'CVR120-C' },
    });

    const lineControl = parseError(withLine('    lineControl: line-control', '    lineControl: line-plc'));
    expect(lineControl.message).toContain(
      'sites.0.lineControl: connector "line-plc" (kind opcua-reject-station) has role reject-station; here it needs role line-control',
    );
    expect(lineControl.message).toContain(
      'connectors.line-control: declared but nothing uses it: name it in sites[].lineControl, or remove it',
    );

    const vision = parseError(withLine('              connector: line-vision', '              connector: vision-typo'));
    expect(vision.message).toContain(
      'sites.0.lines.0.stations.3.vision.connector: connector "vision-typo" is not declared under connectors',
    );
  });

  it('says where the settings that moved under connectors went', () => {
    const mqtt = parseError(
      withLine('  topicPrefix: holdfast', '  topicPrefix: holdfast\n  mqtt: { embeddedPort: 1883 }'),
    );
    const plc = parseError(
      withLine('  rejectStation: line-plc', '  rejectStation: { endpointUrl: "opc.tcp://127.0.0.1:4840" }'),
    );
    const escalation = parseError(
      withLine('      dispositionTimeout: 4h', '      dispositionTimeout: 4h\n      escalation: { kind: log }'),
    );

    expect(mqtt.message).toContain('vision.mqtt: moved: declare the broker under connectors (kind mqtt');
    expect(plc.message).toContain(
      'vision.rejectStation: expected the name of a reject-station (kind opcua-reject-station) connector declared under connectors',
    );
    expect(escalation.message).toContain('sites.0.policy.escalation: moved: declare the target under connectors');
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

  it("reads a site's recall drill, with defaults, and names a bad scope", () => {
    expect(parseConfig(repoYaml).sites[0]!.recall.drill).toEqual({
      enabled: true,
      every: '90d',
      scope: 'random-supplier-lot',
      completeWithin: '8m',
      grace: '7d',
    });
    const cron = parseConfig(withLine('        every: 90d\n', "        cron: '0 6 1 1,4,7,10 *'\n"));
    expect(cron.sites[0]!.recall.drill).toMatchObject({ every: '90d', cron: '0 6 1 1,4,7,10 *' });
    const scoped = parseConfig(
      withLine(
        '        scope: random-supplier-lot',
        '        scope: { kind: erp-batch, plant: "1010", material: RM-1, batch: R1 }',
      ),
    );
    expect(scoped.sites[0]!.recall.drill?.scope).toEqual({
      kind: 'erp-batch',
      plant: '1010',
      material: 'RM-1',
      batch: 'R1',
    });
    expect(
      parseError(withLine('        scope: random-supplier-lot', '        scope: { kind: delivery }')).message,
    ).toMatch(/sites\.0\.recall\.drill\.scope/);
  });
});

describe('api.dashboard.imageOrigins', () => {
  const withOrigins = (list: string) =>
    withLine('  codecAccess: local-ui\n', `  codecAccess: local-ui\n  dashboard:\n    imageOrigins: ${list}\n`);

  it('is empty by default: the API fetches no frame image', () => {
    expect(parseConfig(repoYaml).api.dashboard.imageOrigins).toEqual([]);
  });

  it('takes http and https origins, written as the URL standard serialises them', () => {
    const config = parseConfig(withOrigins(`['http://camera-store.plant1:8080', 'https://images.plant1/']`));
    expect(config.api.dashboard.imageOrigins).toEqual(['http://camera-store.plant1:8080', 'https://images.plant1']);
  });

  it.each([
    ['a path', 'http://images.plant1/frames'],
    ['credentials', 'http://user:pw@images.plant1'],
    ['another scheme', 'ftp://images.plant1'],
    ['a file URL', 'file:///srv/frames'],
    ['no URL at all', 'images.plant1'],
  ])('refuses %s, naming the key', (_what, origin) => {
    expect(parseError(withOrigins(`['${origin}']`)).message).toMatch(/api\.dashboard\.imageOrigins\.0/);
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
