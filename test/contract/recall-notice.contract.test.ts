/**
 * The contract every connector of role `recall-notice` passes (docs/recall.md#notify), each against a real receiver
 * in process: an HTTP server for the webhook, smtp-server for the e-mail relay, a directory for the file drop.
 * What each does with a repeated delivery differs by what the target can tell (README.md of
 * infra/connectors/recall-notice); what they share: the same reference for the same notice, a health check that
 * fails as `transient` when the target is gone, deliveries refused by the target classified for Temporal's retry, and
 * nothing left open after close().
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import type { ExternalErrorKind } from '../../activities/errors';
import type { RecallNotice, RecallNoticePort } from '../../activities/ports';
import type { ConnectorInstance } from '../../infra/connectors/define';
import recallNoticeFile from '../../infra/connectors/recall-notice/recall-notice-file.connector';
import recallNoticeSmtp from '../../infra/connectors/recall-notice/recall-notice-smtp.connector';
import recallNoticeWebhook from '../../infra/connectors/recall-notice/recall-notice-webhook.connector';
import { eventually } from '../support/eventually';
import { externalError, watchClientSockets } from './contract-support';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const ctx = (name: string, dataDir = tmpdir()) => ({ name, env: process.env, log, dataDir });
let seq = 0;
const kindOf = async (attempt: Promise<unknown>): Promise<ExternalErrorKind> => (await externalError(attempt)).kind;

function notice(): RecallNotice {
  seq += 1;
  const notificationId = `C${seq}-S1`;
  return {
    idempotencyKey: `recall:contract-${process.pid}:notify:${notificationId}`,
    recallId: `contract-${process.pid}`,
    site: 'PLANT1',
    reason: 'contract',
    notificationId,
    customer: `C${seq}`,
    shipTo: 'S1',
    lots: [
      {
        lotKey: 'L1',
        material: 'M',
        unit: 'PC',
        quantity: 3,
        deliveries: [{ delivery: '8000001', item: '10', quantity: 3 }],
      },
    ],
    deliveries: ['8000001/10'],
    quantities: [{ unit: 'PC', quantity: 3 }],
  };
}

/** A receiver and the connector in front of it. */
interface Sandbox {
  connect(): Promise<ConnectorInstance<RecallNoticePort>>;
  /** The connector in front of a receiver that is not there (nothing listening, the directory gone). */
  connectToNothing(): Promise<ConnectorInstance<RecallNoticePort>>;
  /** How many deliveries the receiver holds under the notice's key. */
  received(n: RecallNotice): Promise<number>;
  /** What a delivery repeated with `lookupFirst: true` leaves at the receiver. */
  afterRepeat: number;
  /** The receiver refuses the next delivery in each way it can, and the kind the connector must name. */
  refusals: { what: string; arrange(n: RecallNotice): void | Promise<void>; kind: ExternalErrorKind }[];
  /** The receiver's port, for the socket check; undefined where no socket is involved. */
  port: number | undefined;
  stop(): Promise<void>;
}

async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function webhookSandbox(): Promise<Sandbox> {
  const keys: string[] = [];
  let answer: { status: number; headers?: Record<string, string> } | undefined;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const next = answer ?? { status: 202 };
      answer = undefined;
      if (next.status < 300) keys.push(String(req.headers['idempotency-key']));
      res.writeHead(next.status, next.headers).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const at = (p: number) =>
    recallNoticeWebhook.connect(
      recallNoticeWebhook.configSchema.parse({ url: `http://127.0.0.1:${p}/recalls`, timeoutMs: 5000 }),
      ctx('customer-portal'),
    );
  return {
    connect: () => at(port),
    connectToNothing: async () => at(await deadPort()),
    received: async (n) => keys.filter((k) => k === n.idempotencyKey).length,
    afterRepeat: 2,
    refusals: [
      { what: 'HTTP 503', arrange: () => void (answer = { status: 503 }), kind: 'transient' },
      { what: 'HTTP 400', arrange: () => void (answer = { status: 400 }), kind: 'validation' },
      {
        what: 'a redirect',
        arrange: () => void (answer = { status: 302, headers: { location: 'http://elsewhere.example/x' } }),
        kind: 'rejected',
      },
    ],
    port,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function smtpSandbox(): Promise<Sandbox> {
  const mails: string[] = [];
  let refuse: { code: number } | undefined;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      const next = refuse;
      refuse = undefined;
      if (!next) return callback();
      callback(Object.assign(new Error('refused by the contract'), { responseCode: next.code }));
    },
    onData(stream, _session, callback) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (raw += chunk));
      stream.on('end', () => {
        mails.push(raw);
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  const at = (p: number) =>
    recallNoticeSmtp.connect(
      recallNoticeSmtp.configSchema.parse({
        host: '127.0.0.1',
        port: p,
        tls: 'none',
        from: 'quality@plant.example',
        to: ['recalls@customers.example'],
        timeoutMs: 5000,
      }),
      ctx('smtp-relay'),
    );
  return {
    connect: () => at(port),
    connectToNothing: async () => at(await deadPort()),
    received: async (n) => mails.filter((m) => m.includes(n.idempotencyKey)).length,
    afterRepeat: 2,
    refusals: [
      { what: 'a 451 reply', arrange: () => void (refuse = { code: 451 }), kind: 'transient' },
      { what: 'a 550 reply', arrange: () => void (refuse = { code: 550 }), kind: 'rejected' },
    ],
    port,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function fileSandbox(): Promise<Sandbox> {
  const dataDir = await mkdtemp(join(tmpdir(), 'holdfast-notice-contract-'));
  const at = (dir: string) =>
    recallNoticeFile.connect(recallNoticeFile.configSchema.parse({ directory: dir }), ctx('file-drop', dataDir));
  const files = async () => readdir(join(dataDir, 'drop'));
  return {
    connect: () => at('drop'),
    async connectToNothing() {
      const connector = await at('gone');
      await rm(join(dataDir, 'gone'), { recursive: true });
      return connector;
    },
    received: async (n) => (await files()).filter((f) => f.includes(n.notificationId)).length,
    afterRepeat: 1,
    refusals: [
      {
        // Another notice under a name already taken: the plan changed under its key.
        what: 'another notice under a taken name',
        async arrange(n) {
          const connector = await at('drop');
          await connector.port.deliver({ ...n, reason: 'another reason' }, { lookupFirst: false });
          await connector.close();
        },
        kind: 'validation',
      },
    ],
    port: undefined,
    stop: () => rm(dataDir, { recursive: true, force: true }),
  };
}

describe.each([
  ['recall-notice-webhook', webhookSandbox],
  ['recall-notice-smtp', smtpSandbox],
  ['recall-notice-file', fileSandbox],
] as const)('%s', (_kind, start) => {
  let sandbox: Sandbox;
  let connector: ConnectorInstance<RecallNoticePort>;

  beforeAll(async () => {
    sandbox = await start();
    connector = await sandbox.connect();
  });
  afterAll(async () => {
    await connector?.close();
    await sandbox?.stop();
  });

  it('delivers a notice; a repeat under its key answers the same reference', async () => {
    const n = notice();
    const first = await connector.port.deliver(n, { lookupFirst: false });
    expect(await sandbox.received(n)).toBe(1);
    const repeated = await connector.port.deliver(n, { lookupFirst: true });
    expect(repeated).toEqual(first);
    expect(await sandbox.received(n)).toBe(sandbox.afterRepeat);
  });

  it('passes its health check, and fails it and deliveries as transient when the receiver is gone', async () => {
    await expect(connector.healthCheck()).resolves.toEqual(expect.any(String));
    const nowhere = await sandbox.connectToNothing();
    try {
      expect(await kindOf(nowhere.healthCheck())).toBe('transient');
      expect(await kindOf(nowhere.port.deliver(notice(), { lookupFirst: false }))).toBe('transient');
    } finally {
      await nowhere.close();
    }
  });

  it('classifies what the receiver refuses', async () => {
    for (const refusal of sandbox.refusals) {
      const n = notice();
      await refusal.arrange(n);
      expect([refusal.what, await kindOf(connector.port.deliver(n, { lookupFirst: false }))]).toEqual([
        refusal.what,
        refusal.kind,
      ]);
    }
  });

  it('leaves no socket open after close, and refuses deliveries then', async () => {
    const watch = watchClientSockets();
    try {
      const instance = await sandbox.connect();
      await instance.port.deliver(notice(), { lookupFirst: false });
      await instance.close();
      await instance.close();
      const port = sandbox.port;
      // A socket closes a moment after close() returns (the SMTP QUIT, the FIN); what stays open is a leak.
      if (port !== undefined)
        await eventually('no socket open after close()', () => watch.openTo(port) === 0, { timeoutMs: 3_000 });
      expect(await kindOf(instance.port.deliver(notice(), { lookupFirst: false }))).toBe('transient');
    } finally {
      watch.stop();
    }
  });
});
