import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CONNECTOR_KINDS } from '../../infra/config/connector-kinds';
import { parseConfig } from '../../infra/config/load';
import { ConfigError } from '../../activities/errors';
import type { HoldfastConfig } from '../../infra/config/schema';
import { ExternalSystemError } from '../../activities/errors';
import { ConnectorStartError, openConnectors, openSiteConnectors } from '../../workers/connectors';
import { connectorRegistry } from '../../workers/registry';

const repoYaml = readFileSync(resolve(__dirname, '../../temporal.yaml'), 'utf8');
const ESCALATION_BLOCK = 'worker-log:\n    kind: escalation-log\n';

/** The repository's temporal.yaml with the sites' escalation connector replaced by `block` (YAML under its name). */
function withEscalation(block: string): HoldfastConfig {
  expect(repoYaml).toContain(ESCALATION_BLOCK);
  return parseConfig(repoYaml.replace(ESCALATION_BLOCK, `worker-log:\n${block}`));
}

interface Recorded {
  lines: { level: string; msg: string; meta?: Record<string, unknown> }[];
  info(msg: string, meta?: Record<string, unknown>): void;
  warn(msg: string, meta?: Record<string, unknown>): void;
  error(msg: string, meta?: Record<string, unknown>): void;
}
function recordingLog(): Recorded {
  const lines: Recorded['lines'] = [];
  return {
    lines,
    info: (msg, meta) => lines.push({ level: 'info', msg, meta }),
    warn: (msg, meta) => lines.push({ level: 'warn', msg, meta }),
    error: (msg, meta) => lines.push({ level: 'error', msg, meta }),
  };
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise((r) => probe.close(r));
  return port;
}

describe('connector registry', () => {
  it('has one implementation per kind, declaring the kind and the role connector-kinds.ts lists', () => {
    expect(Object.keys(connectorRegistry).sort()).toEqual(Object.keys(CONNECTOR_KINDS).sort());
    for (const [kind, role] of Object.entries(CONNECTOR_KINDS)) {
      expect(connectorRegistry[kind as keyof typeof CONNECTOR_KINDS]).toMatchObject({ kind, role });
    }
  });
});

describe('opening connectors', () => {
  it("validates each block with its connector's schema, naming the key", async () => {
    const config = parseConfig(repoYaml);
    config.connectors['sap-sim'] = { ...config.connectors['sap-sim']!, sapClient: '1' };

    const err = await openSiteConnectors(config, recordingLog(), {}).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('connectors.sap-sim.sapClient: expected a three-digit SAP client');
  });

  it('refuses a name with no block and an unregistered kind, as config validation does', async () => {
    const config = parseConfig(repoYaml);
    config.connectors['plc-2'] = { kind: 'opcua-x', required: true };
    const log = recordingLog();

    await expect(openConnectors(config, ['nowhere'], { log })).rejects.toThrow(
      'connector "nowhere" is not declared under connectors',
    );
    await expect(openConnectors(config, ['plc-2'], { log })).rejects.toThrow(
      /^connectors\.plc-2\.kind: "opcua-x" is not a registered connector kind \(known: holdfast-mes-rest, /,
    );
  });

  it('a required connector failing its health check stops start-up, naming it and the cause', async () => {
    const config = withEscalation(
      `    kind: escalation-webhook\n    url: http://127.0.0.1:${await closedPort()}/hook\n`,
    );

    const err = await openConnectors(config, ['worker-log'], { log: recordingLog() }).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(err).toBeInstanceOf(ConnectorStartError);
    expect(err).toMatchObject({ connector: 'worker-log' });
    expect((err as Error).message).toMatch(
      /^connector worker-log \(escalation-webhook\) is not healthy: worker-log health check: .*ECONNREFUSED/,
    );
  });

  it('required: false logs the failing health check and goes on; health() reports it', async () => {
    const port = await closedPort();
    const config = withEscalation(
      `    kind: escalation-webhook\n    required: false\n    url: http://127.0.0.1:${port}/hook\n`,
    );
    const log = recordingLog();

    const connectors = await openConnectors(config, ['worker-log'], { log });
    try {
      expect(log.lines).toContainEqual({
        level: 'warn',
        msg: 'connector failed its health check at start; going on (required: false)',
        meta: { connector: 'worker-log', kind: 'escalation-webhook', error: expect.stringContaining('ECONNREFUSED') },
      });
      expect(await connectors.health()).toEqual({
        'worker-log': { ok: false, detail: expect.stringContaining('ECONNREFUSED'), error: expect.any(Error) },
      });
    } finally {
      await connectors.close();
    }
  });
});

describe('escalation connectors', () => {
  let server: Server;
  let url: string;
  const received: { method: string; headers: IncomingMessage['headers']; body: string }[] = [];
  let answer = 204;

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ method: req.method ?? '', headers: req.headers, body });
        // Like many chat relays: HEAD is not a method it serves.
        res.writeHead(req.method === 'HEAD' ? 405 : answer).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const message = {
    idempotencyKey: 'PLANT1:L-1:evt-1:escalation',
    site: 'PLANT1',
    line: 'L1',
    lotId: 'L-1',
    lotCaseWorkflowId: 'lot-PLANT1-L-1',
    waitingSince: '2026-01-01T00:00:00Z',
    text: 'lot L-1 waits for a disposition',
  };

  it('webhook: the URL from the environment, a healthy HEAD, the message POSTed with its key; refused after close', async () => {
    const config = withEscalation(
      '    kind: escalation-webhook\n    url: ${env:ANDON_WEBHOOK_URL}\n    allowedHosts: [127.0.0.1]\n',
    );
    const connectors = await openConnectors(config, ['worker-log'], {
      log: recordingLog(),
      env: { ANDON_WEBHOOK_URL: url },
    });
    const webhook = connectors.port('worker-log', 'escalation');

    const health = await connectors.health();
    await webhook.escalate(message);
    answer = 503;
    const refused = await webhook.escalate(message).then(
      () => undefined,
      (e: unknown) => e,
    );
    answer = 204;
    await connectors.close();
    const closed = await webhook.escalate(message).then(
      () => undefined,
      (e: unknown) => e,
    );

    expect(health).toEqual({
      'worker-log': { ok: true, detail: expect.stringMatching(/answered HEAD with HTTP 405$/) },
    });
    const posted = received.filter((r) => r.method === 'POST');
    expect(posted[0]!.headers).toMatchObject({
      'content-type': 'application/json',
      'idempotency-key': message.idempotencyKey,
    });
    expect(JSON.parse(posted[0]!.body)).toEqual(message);
    expect(refused).toBeInstanceOf(ExternalSystemError);
    expect(refused).toMatchObject({ kind: 'transient', httpStatus: 503 });
    expect(closed).toMatchObject({ kind: 'transient' });
  });

  it('log: the message in the worker log; sites resolve their escalation connector by name', async () => {
    const log = recordingLog();
    const config = parseConfig(repoYaml);
    const connectors = await openConnectors(config, ['worker-log'], { log });
    try {
      await connectors.port('worker-log', 'escalation').escalate(message);
    } finally {
      await connectors.close();
    }

    expect(log.lines).toContainEqual({ level: 'warn', msg: `ESCALATION ${message.text}`, meta: message });
    expect(() => connectors.port('worker-log', 'mes')).toThrow(
      'connector "worker-log" (kind escalation-log) has role escalation, not mes',
    );
  });
});
