/**
 * The changeover routes on a real API, Temporal dev server and PostgreSQL, with a worker whose plant ports are typed
 * fakes (test/support/changeover-fakes.ts): a signed manual changeover starts once (a repeat answers
 * `already-running`), an unsigned one is 400 naming the field, an operator may not start one (403), the status shows
 * every station and a Web UI link, a quality engineer's signed approval releases the order and verifies on read, a
 * cancel reverts, every change is audited, and without Temporal the routes answer 503.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../api/app';
import type { ChangeoverStatusView, ChangeoverView } from '../../api/schemas/changeover.schema';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createTemporalChangeoverControl } from '../../infra/temporal/changeover-starter';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { changeoverKeys, changeoverWorkflowId } from '../../workflows/contracts';
import { type ApiClient, apiClient } from '../support/api-client';
import { auditRecordsOf } from '../support/audit';
import {
  FakeFirstArticles,
  FakeLineInterlock,
  FakeRecipes,
  FakeStationControl,
  FakeVisionSystem,
  ReleasingMes,
} from '../support/changeover-fakes';
import { eventually } from '../support/eventually';
import { FakeErp, RecordingEscalation } from '../support/fake-ports';
import { bearerFor, signerAccount, testSigningKey } from '../support/identity';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
const run = randomUUID().slice(0, 8);
const site = `CHG-${run}`;

beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

function configFor(taskQueue: string): HoldfastConfig {
  const base = harness.config;
  return {
    ...base,
    taskQueues: { quality: taskQueue },
    sites: [
      {
        ...base.sites[0]!,
        id: site,
        lineControl: 'line-plc',
        lines: [
          {
            id: 'L1',
            stations: [
              { id: 'S1', mode: 'production' },
              {
                id: 'V1',
                mode: 'production',
                vision: { connector: 'vision-opc', system: 'cam-a', recipes: { 'SKU-B': 'EXT-B' } },
              },
            ],
          },
        ],
      },
    ],
    changeover: { ...base.changeover, verifyAttempts: 2, firstArticleParts: 1 },
  };
}

/** The API over a worker with fake plant ports; `temporal: false`, the API without a changeover control and no worker. */
async function stack(opts: { temporal: boolean } = { temporal: true }) {
  const ports = {
    stations: new FakeStationControl(),
    vision: new FakeVisionSystem(),
    interlock: new FakeLineInterlock(),
    firstArticles: new FakeFirstArticles(),
    recipes: new FakeRecipes().set('S1', 'SKU-B', { version: 'R-B1', model: { name: 'surface', version: '2.0.0' } }),
    mes: new ReleasingMes(),
  };
  const { worker, taskQueue } = opts.temporal
    ? await harness.worker({
        mes: ports.mes,
        erp: new FakeErp(),
        escalation: new RecordingEscalation(),
        changeover: {
          stationControl: ports.stations,
          firstArticles: ports.firstArticles,
          visionFor: () => ports.vision,
          lineControlFor: () => ports.interlock,
          changeoverRecipes: ports.recipes,
        },
      })
    : { worker: undefined, taskQueue: `test-${randomUUID()}` };
  const config = configFor(taskQueue);
  const app = await buildApp({
    signingKey: await testSigningKey(),
    pool: harness.pool,
    gateway: createTemporalWorkflowGateway(harness.client, { taskQueue }),
    ...(opts.temporal ? { changeovers: createTemporalChangeoverControl(harness.client, config, { taskQueue }) } : {}),
    config,
    namespace: harness.namespace,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const http: ApiClient = apiClient(() => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
  const running = (fn: () => Promise<void>) => {
    if (!worker) throw new Error('this stack has no worker');
    return worker.runUntil(fn);
  };
  return { ports, running, http, close: () => app.close() };
}

const linePath = `/v1/lines/${site}/L1`;

test('a signed manual changeover runs to its first article, a signed approval releases it, both audited', async () => {
  const s = await stack();
  const engineer = await signerAccount(harness.pool, { username: `${run}-qe`, roles: ['quality-engineer'] });
  const operator = await bearerFor({ username: `${run}-op`, roles: ['operator'] });
  const workOrder = `WO-${run}-1`;
  const workflowId = changeoverWorkflowId(site, 'L1', workOrder);
  const body = { workOrder, sku: 'SKU-B', reason: 'line trial of the new bracket' };
  try {
    await s.running(async () => {
      // Unsigned: 400 naming the field. An operator: 403 before anything is signed.
      const unsigned = await s.http('POST', `${linePath}/changeover`, body, {
        ...engineer.headers,
        'idempotency-key': `${run}-1`,
      });
      expect(unsigned.status).toBe(400);
      expect(unsigned.contentType).toContain('application/problem+json');
      expect(unsigned.json<{ errors: { field: string }[] }>().errors).toEqual([
        expect.objectContaining({ field: 'signature' }),
      ]);
      const forbidden = await s.http(
        'POST',
        `${linePath}/changeover`,
        { ...body, signature: engineer.signature() },
        { ...operator, 'idempotency-key': `${run}-1` },
      );
      expect(forbidden.status).toBe(403);

      const start = () =>
        s.http(
          'POST',
          `${linePath}/changeover`,
          { ...body, signature: engineer.signature() },
          { ...engineer.headers, 'idempotency-key': `${run}-1` },
        );
      const started = await start();
      expect(started.status).toBe(202);
      expect(started.json()).toMatchObject({
        workflowId,
        outcome: 'started',
        signature: { signer: { id: engineer.id }, meaning: 'approval', method: 'password' },
        links: { self: `${linePath}/changeovers/${workOrder}` },
      });
      expect((await start()).json()).toMatchObject({ workflowId, outcome: 'already-running' });

      const waiting = await eventually(
        'the changeover awaiting its first article',
        async () => (await s.http('GET', `${linePath}/changeovers/${workOrder}`)).json<ChangeoverView>(),
        (v) => v.status?.stage === 'first-article',
      );
      expect(waiting).toMatchObject({ workflowId, execution: 'RUNNING' });
      expect(waiting.links.temporalUi).toContain(`/workflows/${workflowId}/${waiting.runId}`);
      expect(waiting.status!.stations).toEqual([
        expect.objectContaining({ station: 'S1', kind: 'holdfast', verified: true, target: 'R-B1 (surface@2.0.0)' }),
        expect.objectContaining({ station: 'V1', kind: 'opc40100', verified: true, target: 'EXT-B' }),
      ]);
      expect(s.ports.interlock.calls.map((c) => c.released)).toEqual([false]);

      // An operator may read it but not approve; a wrong password signs nothing.
      const approvePath = `${linePath}/changeovers/${workOrder}/first-article/approve`;
      const approval = { reason: 'measured on the CMM' };
      expect(
        (
          await s.http(
            'POST',
            approvePath,
            { ...approval, signature: engineer.signature() },
            {
              ...operator,
              'idempotency-key': `${run}-a`,
            },
          )
        ).status,
      ).toBe(403);
      const wrong = await s.http(
        'POST',
        approvePath,
        { ...approval, signature: { meaning: 'approval', password: 'nope' } },
        { ...engineer.headers, 'idempotency-key': `${run}-a` },
      );
      expect(wrong.status).toBe(401);

      const approved = await s.http(
        'POST',
        approvePath,
        { ...approval, signature: engineer.signature() },
        { ...engineer.headers, 'idempotency-key': `${run}-a` },
      );
      expect(approved.status).toBe(200);
      expect(approved.json<ChangeoverStatusView>().firstArticle).toMatchObject({
        outcome: 'approved',
        approval: { approvedBy: engineer.id, signature: { valid: true, signer: { id: engineer.id } } },
      });

      const released = await eventually(
        'the order released',
        async () => (await s.http('GET', `${linePath}/changeovers/${workOrder}`)).json<ChangeoverView>(),
        (v) => v.execution === 'COMPLETED',
      );
      expect(released.status).toMatchObject({ stage: 'released', interlock: 'released' });
      expect(released.status!.firstArticle!.approval!.signature.valid).toBe(true);
      expect(s.ports.mes.releaseRequests.has(changeoverKeys.release(workflowId))).toBe(true);

      // Approved once: a second approval is refused, the changeover being closed.
      const late = await s.http(
        'POST',
        approvePath,
        { ...approval, signature: engineer.signature() },
        { ...engineer.headers, 'idempotency-key': `${run}-b` },
      );
      expect(late.status).toBe(404);
    });
    const audit = await auditRecordsOf(harness.pool, workflowId);
    expect(audit.map((r) => [r.action, r.outcome, r.actor.id])).toEqual([
      ['changeover.start', 'accepted', engineer.id],
      ['changeover.start', 'refused', engineer.id],
      ['changeover.first-article.approve', 'accepted', engineer.id],
    ]);
  } finally {
    await s.close();
  }
});

test('a cancel reverts the stations and is audited; an unknown line is 404', async () => {
  const s = await stack();
  const engineer = await signerAccount(harness.pool, { username: `${run}-qe2`, roles: ['quality-engineer'] });
  const operator = await bearerFor({ username: `${run}-op2`, roles: ['operator'] });
  const workOrder = `WO-${run}-2`;
  const workflowId = changeoverWorkflowId(site, 'L1', workOrder);
  try {
    await s.running(async () => {
      const unknown = await s.http(
        'POST',
        `/v1/lines/${site}/L9/changeover`,
        { workOrder, sku: 'SKU-B', reason: 'trial', signature: engineer.signature() },
        { ...engineer.headers, 'idempotency-key': `${run}-c0` },
      );
      expect(unknown.status).toBe(404);
      const started = await s.http(
        'POST',
        `${linePath}/changeover`,
        { workOrder, sku: 'SKU-B', reason: 'trial', signature: engineer.signature() },
        { ...engineer.headers, 'idempotency-key': `${run}-c1` },
      );
      expect(started.status).toBe(202);
      await eventually(
        'the first article awaited',
        async () => (await s.http('GET', `${linePath}/changeovers/${workOrder}`)).json<ChangeoverView>(),
        (v) => v.status?.stage === 'first-article',
      );
      const cancelled = await s.http(
        'POST',
        `${linePath}/changeovers/${workOrder}/cancel`,
        { reason: 'wrong material staged' },
        operator,
      );
      expect(cancelled.status).toBe(202);
      expect(cancelled.json()).toEqual({ workflowId, state: 'cancelling' });
      const view = await eventually(
        'the changeover cancelled',
        async () => (await s.http('GET', `${linePath}/changeovers/${workOrder}`)).json<ChangeoverView>(),
        (v) => v.execution === 'CANCELED' || v.execution === 'CANCELLED',
      );
      expect(view.status).toMatchObject({ stage: 'cancelled', interlock: 'held' });
      expect(view.status!.stations.every((st) => st.reverted)).toBe(true);
      expect(s.ports.vision.calls).toEqual(['prepare cam-a EXT-B', 'unprepare cam-a int-EXT-B']);
      expect((await s.http('POST', `${linePath}/changeovers/${workOrder}/cancel`, { reason: 'again' })).status).toBe(
        404,
      );
    });
    const audit = await auditRecordsOf(harness.pool, workflowId);
    expect(audit.map((r) => [r.action, r.reason])).toEqual([
      ['changeover.start', 'trial'],
      ['changeover.cancel', 'wrong material staged'],
    ]);
  } finally {
    await s.close();
  }
});

test('without the workflow service the changeover routes answer 503', async () => {
  const s = await stack({ temporal: false });
  try {
    const answer = await s.http('GET', `${linePath}/changeovers/WO-none`);
    expect(answer.status).toBe(503);
    expect(answer.contentType).toContain('application/problem+json');
  } finally {
    await s.close();
  }
});
