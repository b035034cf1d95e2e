import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { asAdmin, testSigningKey } from '../support/identity';

/**
 * The error contract without a database: validation and framework errors never reach a repository. The pool points
 * nowhere and is never connected; a route that did touch it would fail these tests with a 500.
 */
const config = loadConfig();
const unusedGateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`gateway.${String(name)} must not be called`)),
});
let app: FastifyInstance;
let pool: Pool;
let baseUrl: string;

async function request(method: string, path: string, body?: string, contentType = 'application/json') {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { ...(await asAdmin()), ...(body !== undefined ? { 'content-type': contentType } : {}) },
    ...(body !== undefined ? { body } : {}),
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text,
    json: <T = Record<string, unknown>>() => JSON.parse(text) as T,
  };
}

const valid = {
  eventId: 'e-1',
  site: 'PLANT1',
  line: 'L1',
  station: 'S1',
  partId: 'P-1',
  sku: 'BRKT-200',
  lotId: 'L-1',
  workOrder: '1000100',
  result: 'fail',
  defects: [{ class: 'scratch', score: 0.9 }],
  modelVersion: 'm',
  recipeVersion: 'r',
  inspectedAt: '2025-03-04T10:15:00Z',
};

beforeAll(async () => {
  pool = new Pool({ connectionString: 'postgres://nobody@127.0.0.1:1/none', connectionTimeoutMillis: 200 });
  app = await buildApp({
    signingKey: await testSigningKey(),
    pool,
    gateway: unusedGateway,
    config,
    namespace: 'default',
  });
  app.get('/test/boom', { schema: { hide: true }, config: { access: 'public' } }, async () => {
    throw new Error('duplicate key value violates unique constraint "inspection_pkey" at SELECT * FROM holdfast.x');
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

describe('problem+json error contract', () => {
  it('names the fields of a single result, not the union branches zod tried', async () => {
    const res = await request('POST', '/v1/inspections', JSON.stringify({ ...valid, partId: '', extra: true }));

    expect(res.status).toBe(400);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({
      type: 'urn:holdfast:problem:validation',
      title: 'Request validation failed',
      status: 400,
      errors: [
        { field: 'partId', message: expect.any(String) },
        { field: 'extra', message: 'unknown property (not allowed)' },
      ],
    });
  });

  it('names batch fields as results.N.<path>', async () => {
    const res = await request(
      'POST',
      '/v1/inspections',
      JSON.stringify({ results: [valid, { ...valid, defects: [{ class: 'x', score: 0.5, bbox: { x: -1 } }] }] }),
    );

    expect(res.status).toBe(400);
    const fields = res.json<{ errors: { field: string }[] }>().errors.map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(['results.1.defects.0.bbox.x', 'results.1.defects.0.bbox.width']));
    expect(fields.every((f) => f.startsWith('results.1.'))).toBe(true);
  });

  it('answers 400 problem+json for malformed JSON and 415 for another media type', async () => {
    const bad = await request('POST', '/v1/inspections', '{"eventId":');
    const xml = await request('POST', '/v1/inspections', '<x/>', 'application/xml');

    expect(bad.status).toBe(400);
    expect(bad.contentType).toMatch(/^application\/problem\+json/);
    expect(xml.status).toBe(415);
    expect(xml.contentType).toMatch(/^application\/problem\+json/);
  });

  it('answers 404 problem+json for an unknown route', async () => {
    const res = await request('GET', '/v2/nothing');

    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ type: 'about:blank', title: 'Not Found', status: 404 });
  });

  it('hides the cause of a 500: no message, SQL or stack trace', async () => {
    const res = await request('GET', '/test/boom');

    expect(res.status).toBe(500);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(res.json()).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'internal error; the request was not completed',
    });
    expect(res.text).not.toMatch(/SELECT|constraint|\.ts:|at /);
  });

  it('publishes every API route in the OpenAPI document', async () => {
    const res = await request('GET', '/docs/json');

    expect(res.status).toBe(200);
    const doc = res.json<{ paths: Record<string, Record<string, { parameters?: unknown[] }>> }>();
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/health',
        '/v1/audit',
        '/v1/auth/token',
        '/v1/defects/{id}',
        '/v1/defects/{id}/image',
        '/v1/lots/{lotId}/defects',
        '/v1/inspections',
        '/v1/lots/{lotId}',
        '/v1/lots/{lotId}/disposition',
        '/v1/lots/{lotId}/disposition/countersign',
        '/v1/lots/{lotId}/retry',
        '/v1/me',
        '/v1/lots/{lotId}/genealogy',
        '/v1/trace/backward',
        '/v1/trace/forward',
        '/v1/trace/gaps',
        '/v1/records/fsma204',
        '/v1/lots/{lotId}/quality-record',
        '/v1/recalls',
        '/v1/recalls/{recallId}',
        '/v1/recall-drills',
        '/v1/recalls/{recallId}/report',
        '/v1/recalls/{recallId}/fsma204',
        '/v1/recalls/{recallId}/reinspections',
        '/v1/recalls/{recallId}/cancel',
        '/v1/recalls/{recallId}/notifications',
        '/v1/recalls/{recallId}/notifications/{notificationId}/acknowledge',
        '/v1/stations/{site}/{line}/{station}/shadow-report',
        '/v1/stations/{site}/{line}/{station}/verdicts',
        '/v1/lines/{site}/{line}/changeover',
        '/v1/lines/{site}/{line}/changeovers/{workOrder}',
        '/v1/lines/{site}/{line}/changeovers/{workOrder}/first-article/approve',
        '/v1/lines/{site}/{line}/changeovers/{workOrder}/cancel',
        '/v1/lines/{site}/{line}/advice',
        '/v1/lines/{site}/{line}/advice/{id}/accept',
        '/v1/lines/{site}/{line}/advice/{id}/reject',
        '/v1/quality/defect-rates',
        '/v1/erp-feed/{site}',
        '/v1/metrics/cost-of-quality',
        '/v1/metrics/fpy',
        '/v1/metrics/defects',
        '/v1/metrics/lot-quality',
        '/v1/metrics/defect-heatmap',
        '/v1/quality-rules',
        '/v1/quality-rules/{site}/{ruleId}',
        '/v1/quality-rules/{site}/{ruleId}/limits',
        '/v1/quality-rules/{site}/{ruleId}/chart',
        '/v1/quality-escalations',
        '/v1/quality-escalations/{id}/release',
        '/v1/suppliers',
        '/v1/suppliers/{supplier}/scorecard',
        '/v1/suppliers/{supplier}/scars',
        '/v1/scars',
        '/v1/scars/{id}',
        '/v1/scars/{id}/response',
        '/v1/scars/{id}/accept',
        '/v1/scars/{id}/reject',
        '/v1/dashboard/now',
        '/v1/live',
      ].sort(),
    );
    for (const path of [
      '/v1/lots/{lotId}/disposition',
      '/v1/recalls',
      '/v1/lines/{site}/{line}/changeover',
      '/v1/lines/{site}/{line}/changeovers/{workOrder}/first-article/approve',
    ]) {
      expect(doc.paths[path]!.post!.parameters).toEqual(
        expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key', required: true })]),
      );
    }
  });
});
