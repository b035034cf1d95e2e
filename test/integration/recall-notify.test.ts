/**
 * A real recall's notify stage against real receivers: an HTTP server for the webhook, an SMTP server (smtp-server)
 * behind the e-mail target, a directory for the file drop; real Temporal and PostgreSQL. The stage runs on its own in a
 * test workflow (test/support/recall-notify.workflows.ts) over recall rows written here, as the classify stage leaves
 * them. Every send is retried (the first attempt fails after the notice went out), and for the webhook and the file
 * drop the first attempt also loses its ledger record, so the retry cannot know the notice went out.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { SMTPServer } from 'smtp-server';
import { createActivities } from '../../activities';
import type { EscalationMessage, IntentLedger, RecallNotice, RecallNoticePort } from '../../activities/ports';
import type { ConnectorInstance } from '../../infra/connectors/define';
import recallNoticeFile from '../../infra/connectors/recall-notice/recall-notice-file.connector';
import recallNoticeSmtp from '../../infra/connectors/recall-notice/recall-notice-smtp.connector';
import recallNoticeWebhook from '../../infra/connectors/recall-notice/recall-notice-webhook.connector';
import { createPgIntentLedger } from '../../infra/ledger/pg-intent-ledger';
import { createRecallNotificationStore } from '../../infra/recall/recall-notification-store';
import {
  recallAcknowledgedSignal,
  recallNotificationId,
  recallNotificationStatusQuery,
  type ActivityPreset,
  type RecallNotifyPolicy,
} from '../../workflows/contracts';
import type { recallNotificationWorkflow } from '../../workflows/recall/recall-notification.workflow';
import { eventually } from '../support/eventually';
import { quietLog } from '../support/quiet-log';
import type { notifyStageWorkflow } from '../support/recall-notify.workflows';
import { WorkflowHarness } from '../support/workflow-harness';
import { buildApp } from '../../api/app';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { bearerFor, testSigningKey } from '../support/identity';

const harness = new WorkflowHarness();
const run = randomBytes(3).toString('hex').toUpperCase();
const sites = { webhook: `NTF-${run}-W`, smtp: `NTF-${run}-S`, file: `NTF-${run}-F` } as const;
type Target = keyof typeof sites;
const recallOf = (target: Target) => `ntf-${run.toLowerCase()}-${target}`;
const taskQueue = `recall-notify-${run}`;
const preset: ActivityPreset = {
  startToCloseTimeout: '20s',
  retry: { initialInterval: '200ms', backoffCoefficient: 1, maximumInterval: '1s', maximumAttempts: 6 },
};
const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

const webhookCalls: { key: string | undefined; body: RecallNotice }[] = [];
const mails: string[] = [];
const escalations: EscalationMessage[] = [];
let http: Server;
let smtp: SMTPServer;
let dropDir: string;
const connectors: ConnectorInstance<RecallNoticePort>[] = [];
let worker: Worker;
let running: Promise<void>;

/** Customer C1 has two ship-tos; lot A reaches C1/S1 in two delivery items; lot B reaches both of C1's ship-tos. */
function lotRows(recallId: string) {
  const lot = (name: string) => `${recallId}/${name}`;
  return [
    {
      lotKey: lot('A'),
      reachedBy: 'scope',
      deliveries: [
        { delivery: '8100001', item: '10', customer: 'C1', shipTo: 'S1', quantity: 10 },
        { delivery: '8100002', item: '10', customer: 'C1', shipTo: 'S1', quantity: 5 },
        { delivery: '8100003', item: '20', customer: 'C 2', shipTo: 'S9', quantity: 4 },
      ],
    },
    {
      lotKey: lot('B'),
      reachedBy: 'forward',
      deliveries: [
        { delivery: '8100002', item: '20', customer: 'C1', shipTo: 'S1', quantity: 7 },
        { delivery: '8100004', item: '10', customer: 'C1', shipTo: 'S2', quantity: 3 },
      ],
    },
    // Reached backward (a supplier's lot): what came from it is not the customers' concern.
    {
      lotKey: lot('SUP'),
      reachedBy: 'backward',
      deliveries: [{ delivery: '8100009', item: '10', customer: 'C9', shipTo: 'S9', quantity: 99 }],
    },
  ];
}

/** What each ship-to must be told, as the notice's lots. */
function expectedLots(recallId: string): Record<string, RecallNotice['lots']> {
  const lot = (name: string) => `${recallId}/${name}`;
  return {
    'C1|S1': [
      {
        lotKey: lot('A'),
        material: 'MAT-1',
        unit: 'PC',
        quantity: 15,
        deliveries: [
          { delivery: '8100001', item: '10', quantity: 10 },
          { delivery: '8100002', item: '10', quantity: 5 },
        ],
      },
      {
        lotKey: lot('B'),
        material: 'MAT-1',
        unit: 'PC',
        quantity: 7,
        deliveries: [{ delivery: '8100002', item: '20', quantity: 7 }],
      },
    ],
    'C1|S2': [
      {
        lotKey: lot('B'),
        material: 'MAT-1',
        unit: 'PC',
        quantity: 3,
        deliveries: [{ delivery: '8100004', item: '10', quantity: 3 }],
      },
    ],
    'C 2|S9': [
      {
        lotKey: lot('A'),
        material: 'MAT-1',
        unit: 'PC',
        quantity: 4,
        deliveries: [{ delivery: '8100003', item: '20', quantity: 4 }],
      },
    ],
  };
}

async function seedRecall(target: Target): Promise<void> {
  const recallId = recallOf(target);
  await harness.pool.query(
    `INSERT INTO holdfast.recall (recall_id, site, kind, scope, reason, requested_by, idempotency_key, request_sha256,
                                  workflow_id)
     VALUES ($1, $2, 'real', '{}', 'cracked housings', 'qe-notify', $1, 'test', $1)`,
    [recallId, sites[target]],
  );
  for (const r of lotRows(recallId)) {
    await harness.pool.query(
      `INSERT INTO holdfast.recall_lot (recall_id, lot_key, reached_by, depth, site, material, quantity, unit, class,
                                        deliveries)
       VALUES ($1, $2, $3, 0, $4, 'MAT-1', 100, 'PC', 'shipped', $5)`,
      [recallId, r.lotKey, r.reachedBy, sites[target], JSON.stringify(r.deliveries)],
    );
  }
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });

/** The notice in an e-mail's JSON attachment (base64, as nodemailer encodes a non-text part). */
function attachedNotice(raw: string): RecallNotice {
  const part = /Content-Type: application\/json[^]*?\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(raw);
  if (!part) throw new Error(`no JSON attachment in:\n${raw}`);
  return JSON.parse(Buffer.from(part[1]!.replace(/\r\n/g, ''), 'base64').toString('utf8')) as RecallNotice;
}

const header = (raw: string, name: string) => new RegExp(`^${name}: (.+)$`, 'mi').exec(raw)?.[1]?.trim();

beforeAll(async () => {
  await harness.setUp();
  http = createServer((req, res) => {
    void readBody(req).then((body) => {
      webhookCalls.push({ key: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(body) });
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
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
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  dropDir = await mkdtemp(join(tmpdir(), 'holdfast-recall-notices-'));

  const ctx = (name: string) => ({ name, env: process.env, log, dataDir: dropDir });
  const ports: Record<Target, RecallNoticePort> = {
    webhook: (
      await recallNoticeWebhook
        .connect(
          recallNoticeWebhook.configSchema.parse({
            url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/in`,
          }),
          ctx('customer-portal'),
        )
        .then((c) => (connectors.push(c), c))
    ).port,
    smtp: (
      await recallNoticeSmtp
        .connect(
          recallNoticeSmtp.configSchema.parse({
            host: '127.0.0.1',
            port: (smtp.server.address() as AddressInfo).port,
            tls: 'none',
            from: 'quality@plant.example',
            to: ['recalls@customers.example'],
            recipients: { C1: ['quality@c1.example'] },
          }),
          ctx('smtp-relay'),
        )
        .then((c) => (connectors.push(c), c))
    ).port,
    file: (
      await recallNoticeFile
        .connect(recallNoticeFile.configSchema.parse({ directory: 'drop' }), ctx('file-drop'))
        .then((c) => (connectors.push(c), c))
    ).port,
  };
  const policyOf = (target: Target): RecallNotifyPolicy => ({
    target: `${target}-target`,
    // The file site's notifications escalate quickly; the others wait an hour and are acknowledged or terminated.
    ackWithin: target === 'file' ? '2s' : '1h',
    escalateEvery: target === 'file' ? '2s' : '1h',
    escalationLimit: 2,
    concurrency: 2,
  });
  const targetOf = (site: string) => (Object.keys(sites) as Target[]).find((t) => sites[t] === site)!;

  const ledger = createPgIntentLedger(harness.pool);
  const lostOnce = new Set<string>();
  // The webhook's and the file drop's first attempt dies between the delivery and the ledger's record of it.
  const lossy: IntentLedger = {
    begin: (intent) => ledger.begin(intent),
    async complete(key, outcome) {
      const loses = [recallOf('webhook'), recallOf('file')].some((id) => key.startsWith(`recall:${id}:`));
      if (loses && !lostOnce.has(key)) {
        lostOnce.add(key);
        throw new Error('worker lost between the delivery and its ledger record');
      }
      await ledger.complete(key, outcome);
    },
  };
  const unused = () => {
    throw new Error('no MES or ERP in this test');
  };
  const real = createActivities({
    pool: harness.pool,
    ledger: lossy,
    mesFor: unused,
    erpFor: unused,
    escalationFor: () => ({ target: 'test-escalations', port: { escalate: async (m) => void escalations.push(m) } }),
    recallNotifications: createRecallNotificationStore(harness.pool),
    recallNoticeFor: (site) => ({ port: ports[targetOf(site)], policy: policyOf(targetOf(site)) }),
  });
  const activities = {
    ...real,
    // Every send's first attempt is lost after it returned, before Temporal heard of it: the retry must not resend.
    async sendRecallNotification(input: { recallId: string; notificationId: string }) {
      const sent = await real.sendRecallNotification(input);
      if (Context.current().info.attempt === 1) throw new Error('worker lost after the send');
      return sent;
    },
  };
  worker = await Worker.create({
    connection: harness.native,
    namespace: harness.namespace,
    taskQueue,
    dataConverter: harness.dataConverter,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: require.resolve('../support/recall-notify.workflows'),
      logger: quietLog(),
    }),
    activities,
  });
  running = worker.run();
  for (const target of Object.keys(sites) as Target[]) await seedRecall(target);
}, 180_000);

afterAll(async () => {
  // The children still waiting for an acknowledgement outlive the test otherwise.
  for await (const wf of harness.client.workflow.list({
    query: `WorkflowId STARTS_WITH 'recall-ntf-${run.toLowerCase()}' AND ExecutionStatus = 'Running'`,
  })) {
    // Visibility lags: a child listed as running may have completed meanwhile.
    await harness.client.workflow
      .getHandle(wf.workflowId)
      .terminate('test over')
      .catch((err: unknown) => {
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      });
  }
  worker?.shutdown();
  await running;
  await Promise.all(connectors.map((c) => c.close()));
  await new Promise((resolve) => http?.close(resolve));
  await new Promise<void>((resolve) => smtp?.close(() => resolve()));
  await rm(dropDir, { recursive: true, force: true });
  await harness.tearDown();
});

const notify = (target: Target) =>
  harness.client.workflow.execute<typeof notifyStageWorkflow>('notifyStageWorkflow', {
    workflowId: `recall-${recallOf(target)}`,
    taskQueue,
    args: [{ recallId: recallOf(target), site: sites[target], preset }],
  });

const byShipTo = (notices: RecallNotice[]) =>
  Object.fromEntries(notices.map((n) => [`${n.customer}|${n.shipTo}`, n.lots]));

test('the webhook receives one notification per customer and ship-to, all retries under one Idempotency-Key', async () => {
  const recallId = recallOf('webhook');
  const counts = await notify('webhook');
  expect(counts).toEqual({ customers: 2, shipTos: 3, notifications: 3, sent: 3 });
  // The retry after the lost ledger record cannot know the POST arrived, so it POSTs again under the same key;
  // the retry after the lost completion finds the ledger's record and POSTs nothing.
  const keys = new Set(webhookCalls.map((c) => c.key));
  expect([...keys].sort()).toEqual(
    ['C 2|S9', 'C1|S1', 'C1|S2']
      .map((k) => {
        const [customer, shipTo] = k.split('|') as [string, string];
        return `recall:${recallId}:notify:${recallNotificationId(customer, shipTo)}`;
      })
      .sort(),
  );
  for (const key of keys) {
    const calls = webhookCalls.filter((c) => c.key === key);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.body).toEqual(calls[0]!.body);
  }
  const notices = [...keys].map((key) => webhookCalls.find((c) => c.key === key)!.body);
  expect(byShipTo(notices)).toEqual(expectedLots(recallId));
  const c1s1 = notices.find((n) => n.customer === 'C1' && n.shipTo === 'S1')!;
  expect(c1s1).toMatchObject({
    recallId,
    site: sites.webhook,
    reason: 'cracked housings',
    deliveries: ['8100001/10', '8100002/10', '8100002/20'],
    quantities: [{ unit: 'PC', quantity: 22 }],
  });
  const { rows } = await harness.pool.query<{ sent: boolean; reference: string }>(
    `SELECT sent_at IS NOT NULL AS sent, reference FROM holdfast.recall_notification WHERE recall_id = $1`,
    [recallId],
  );
  expect(rows).toHaveLength(3);
  expect(rows.every((r) => r.sent && r.reference.startsWith('HTTP 202'))).toBe(true);

  // A second run of the stage (a retried recall) sends nothing more.
  const before = webhookCalls.length;
  await harness.client.workflow.execute<typeof notifyStageWorkflow>('notifyStageWorkflow', {
    workflowId: `recall-${recallId}-again`,
    taskQueue,
    args: [{ recallId, site: sites.webhook, preset }],
  });
  expect(webhookCalls.length).toBe(before);
}, 180_000);

test('the SMTP relay receives one e-mail per customer and ship-to, with a Message-ID of its own', async () => {
  const recallId = recallOf('smtp');
  await notify('smtp');
  const ours = mails.filter((m) => m.includes(`recall:${recallId}:notify:`));
  expect(ours).toHaveLength(3);
  const notices = ours.map(attachedNotice);
  expect(byShipTo(notices)).toEqual(expectedLots(recallId));
  const ids = ours.map((m) => header(m, 'Message-ID'));
  expect(new Set(ids).size).toBe(3);
  expect(ids).toContain(`<recall.${recallId}.${recallNotificationId('C1', 'S2')}@plant.example>`);
  const toC1 = ours.filter((m) => header(m, 'To') === 'quality@c1.example');
  expect(toC1).toHaveLength(2);
  expect(ours.filter((m) => header(m, 'To') === 'recalls@customers.example')).toHaveLength(1);
  expect(header(ours[0]!, 'Subject')).toMatch(new RegExp(`^Recall ${recallId}: `));
}, 180_000);

test('the file drop holds one file per customer and ship-to; an acknowledgement completes its child', async () => {
  const recallId = recallOf('file');
  await notify('file');
  const files = (await readdir(join(dropDir, 'drop'))).filter((f) => f.includes(recallId));
  // Written once each, under its own name, and no temporary file left behind.
  expect(files.sort()).toEqual(
    [recallNotificationId('C 2', 'S9'), recallNotificationId('C1', 'S1'), recallNotificationId('C1', 'S2')]
      .map((id) => `recall-${recallId}-${id}.json`)
      .sort(),
  );
  const notices = await Promise.all(
    files.map(async (f) => JSON.parse(await readFile(join(dropDir, 'drop', f), 'utf8')) as RecallNotice),
  );
  expect(byShipTo(notices)).toEqual(expectedLots(recallId));

  // Nobody acknowledges C1/S2 within ackWithin (2 s): it escalates, again after escalateEvery, then stops at the limit.
  const s2 = recallNotificationId('C1', 'S2');
  const child = harness.client.workflow.getHandle<typeof recallNotificationWorkflow>(`recall-${recallId}-notify-${s2}`);
  const escalated = await eventually(
    'two escalations of C1/S2',
    () => escalations.filter((e) => e.lotCaseWorkflowId === child.workflowId),
    (e) => e.length === 2,
    { timeoutMs: 60_000 },
  );
  expect(escalated.map((e) => e.idempotencyKey)).toEqual([1, 2].map((l) => `${child.workflowId}:escalation:${l}`));
  expect(escalated[0]!.text).toContain('C1 (ship-to S2) has not acknowledged');
  // The child records each escalation after sending it: its status holds both once both are recorded.
  const status = await eventually(
    'both escalations of C1/S2 recorded',
    () => child.query(recallNotificationStatusQuery),
    (s) => s.escalations.length === 2,
    { timeoutMs: 30_000 },
  );
  expect(status.stage).toBe('escalated');
  const row = await harness.pool.query<{ escalations: { level: number }[] }>(
    `SELECT escalations FROM holdfast.recall_notification WHERE recall_id = $1 AND notification_id = $2`,
    [recallId, s2],
  );
  expect(row.rows[0]!.escalations.map((e) => e.level)).toEqual([1, 2]);

  const ack = {
    recordedBy: 'qe-notify',
    contact: 'J. Doe, quality lead at C1',
    channel: 'phone',
    acknowledgedAt: new Date().toISOString(),
  };
  await child.signal(recallAcknowledgedSignal, ack);
  // A repeated acknowledgement changes nothing.
  await child.signal(recallAcknowledgedSignal, { ...ack, contact: 'someone else' });
  const final = await child.result();
  expect(final.stage).toBe('acknowledged');
  expect(final.acknowledgement).toEqual(ack);
  expect(final.escalations).toHaveLength(2);
  const acked = await harness.pool.query(
    `SELECT acknowledged_by, acknowledgement FROM holdfast.recall_notification
      WHERE recall_id = $1 AND notification_id = $2`,
    [recallId, s2],
  );
  expect(acked.rows[0]).toEqual({
    acknowledged_by: 'qe-notify',
    acknowledgement: { contact: 'J. Doe, quality lead at C1', channel: 'phone' },
  });
  // No escalation after the limit, however long the child waited.
  expect(escalations.filter((e) => e.lotCaseWorkflowId === child.workflowId)).toHaveLength(2);
}, 180_000);

test('the API lists the notifications and records an acknowledgement once, which completes the child', async () => {
  const recallId = recallOf('webhook');
  const app = await buildApp({
    signingKey: await testSigningKey(),
    pool: harness.pool,
    gateway: createTemporalWorkflowGateway(harness.client, { taskQueue }),
    config: harness.config,
    namespace: harness.namespace,
  });
  try {
    const qe = await bearerFor({ username: 'qe-notify', roles: ['quality-engineer'], sites: [sites.webhook] });
    const list = await app.inject({ method: 'GET', url: `/v1/recalls/${recallId}/notifications`, headers: qe });
    expect(list.statusCode).toBe(200);
    const { notifications } = list.json<{
      notifications: { notificationId: string; customer: string; shipTo: string; quantity: number; sentAt: string }[];
    }>();
    expect(notifications.map((n) => [n.customer, n.shipTo, n.quantity])).toEqual([
      ['C 2', 'S9', 4],
      ['C1', 'S1', 22],
      ['C1', 'S2', 3],
    ]);
    expect(notifications.every((n) => n.sentAt !== null)).toBe(true);

    const s1 = recallNotificationId('C1', 'S1');
    const url = `/v1/recalls/${recallId}/notifications/${s1}/acknowledge`;
    const missing = await app.inject({ method: 'POST', url, headers: qe, payload: { channel: 'phone' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toEqual(['contact']);
    const body = { contact: 'A. Smith, receiving at C1 S1', channel: 'e-mail', note: 'quarantined on arrival' };
    const first = await app.inject({ method: 'POST', url, headers: qe, payload: body });
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({
      recorded: true,
      acknowledgedBy: 'local:qe-notify',
      acknowledgement: { contact: body.contact, channel: 'e-mail', note: body.note },
    });
    const child = harness.client.workflow.getHandle<typeof recallNotificationWorkflow>(
      `recall-${recallId}-notify-${s1}`,
    );
    expect(await child.result()).toMatchObject({
      stage: 'acknowledged',
      acknowledgement: { recordedBy: 'local:qe-notify', contact: body.contact, channel: 'e-mail' },
    });
    // Repeated: the first acknowledgement stands, nothing more is recorded or audited.
    const again = await app.inject({ method: 'POST', url, headers: qe, payload: { ...body, contact: 'someone else' } });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toMatchObject({ recorded: false, acknowledgement: { contact: body.contact } });
    const audit = await harness.pool.query<{ actor_id: string }>(
      `SELECT actor_id FROM holdfast.audit_record WHERE record_type = 'recall-notification' AND record_id = $1`,
      [`${recallId}/${s1}`],
    );
    expect(audit.rows.map((r) => r.actor_id)).toHaveLength(1);
    // Another site's quality engineer sees neither.
    const other = await bearerFor({ username: 'qe-other', roles: ['quality-engineer'], sites: ['PLANT1'] });
    expect((await app.inject({ method: 'POST', url, headers: other, payload: body })).statusCode).toBe(403);
  } finally {
    await app.close();
  }
}, 180_000);
