/**
 * The lot quality record: a lot's inspections (ingested through the API) and its lot case with a signed disposition
 * (the workflow's PostgreSQL projection, written here as the workflow would) read back as JSON, CSV, HTML and a PDF
 * printed by headless Chromium. A signature whose record changed after signing shows as invalid on every copy.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import type { LotQualityRecord } from '../../api/routes/records/quality-record';
import { CHROMIUM } from '../../api/support/printable';
import { dispositionContent } from '../../api/services/e-signature.service';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import { signContent } from '../../infra/identity/e-signature';
import { generateSigningKey } from '../../infra/identity/signing-key';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { lotCaseWorkflowId } from '../../workflows/contracts';
import { asAdmin, bearerFor, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';

const run = `qrec-${randomUUID().slice(0, 8)}`;
const lotId = `${run}-LOT`;
const workflowId = lotCaseWorkflowId('PLANT1', lotId);
let pool: Pool;
let app: FastifyInstance;

/** Reads touch no workflow: every call is a failure of the test. */
const noWorkflows = new Proxy({} as WorkflowGateway, {
  get: (_, call) => () => Promise.reject(new Error(`the quality record called the gateway (${String(call)})`)),
});

const inspection = (n: number, result: 'pass' | 'fail') => ({
  eventId: `${run}-${n}`,
  site: 'PLANT1',
  line: 'L1',
  station: `S${n}`,
  partId: `P-${n}`,
  sku: 'BRKT-200',
  lotId,
  workOrder: '1000100',
  result,
  defects: result === 'fail' ? [{ class: 'scratch', score: 0.91 }] : [],
  modelVersion: 'yolo-scratch-1.4.2',
  recipeVersion: 'R-17',
  inspectedAt: `2025-03-04T10:1${n}:00Z`,
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is needed to print the record to PDF: ${CHROMIUM} is missing`);
  pool = createPool(readTestEnv().databaseUrl, { max: 3 });
  const signatureKey = await generateSigningKey();
  app = await buildApp({
    signingKey: await testSigningKey(),
    signatureKey,
    pool,
    gateway: noWorkflows,
    config: loadConfig(),
    namespace: 'holdfast-test-ns',
  });
  const res = await app.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: await asAdmin(),
    payload: { results: [inspection(1, 'pass'), inspection(2, 'fail')] },
  });
  expect(res.statusCode).toBe(202);

  const place = { site: 'PLANT1', lotId, lotCaseWorkflowId: workflowId };
  const signer = { id: 'u-qm', displayName: 'Quinn Manager', roles: ['quality-manager' as const] };
  const disposition = {
    decision: 'scrap' as 'scrap' | 'rework',
    reason: 'scratch on the sealing face',
    decidedBy: 'u-qm',
    requestId: 'r1',
  };
  const decision = { decision: 'rework' as const, reason: 'polish', decidedBy: 'u-qm', requestId: 'r0' };
  const sign = async (d: typeof disposition) =>
    signContent(signatureKey, {
      signer,
      meaning: 'approval',
      method: 'password',
      content: dispositionContent(place, d),
    });
  const state = {
    disposition: { ...disposition, signatures: [await sign(disposition)] },
    // Changed after it was signed: the signature no longer covers what the record says.
    decision: { ...decision, signatures: [await sign({ ...decision, reason: 'as found' })] },
  };
  await pool.query(
    `INSERT INTO holdfast.lot_case (workflow_id, run_id, site, line, lot_id, sku, stage, hold_id, notification, state)
     VALUES ($1, 'run-1', 'PLANT1', 'L1', $2, 'BRKT-200', 'closed', 'H-9', '200000777', $3::jsonb)`,
    [workflowId, lotId, JSON.stringify(state)],
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
  if (pool) {
    await pool.query(`DELETE FROM holdfast.lot_case WHERE lot_id = $1`, [lotId]);
    await pool.query(`DELETE FROM holdfast.outbox WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.query(`DELETE FROM holdfast.inspection WHERE event_id LIKE $1`, [`${run}-%`]);
    await pool.end();
  }
});

const get = async (format: string) =>
  app.inject({
    method: 'GET',
    url: `/v1/lots/${lotId}/quality-record?format=${format}`,
    headers: await bearerFor({ roles: ['auditor'], sites: ['PLANT1'] }),
  });

test('JSON: every inspection with its work order, recipe, model and station; the case with verified signatures', async () => {
  const res = await get('json');

  expect(res.statusCode).toBe(200);
  const record = res.json<LotQualityRecord>();
  expect(record.inspections).toEqual([
    expect.objectContaining({ eventId: `${run}-1`, workOrder: '1000100', recipeVersion: 'R-17', station: 'S1' }),
    expect.objectContaining({ eventId: `${run}-2`, result: 'fail', defects: [{ class: 'scratch', score: 0.91 }] }),
  ]);
  expect(record.inspections[0]!.inspectedAt).toBe('2025-03-04T10:11:00.000Z');
  const [nc] = record.cases;
  expect(nc).toMatchObject({ workflowId, stage: 'closed', holdId: 'H-9', notification: '200000777' });
  expect(nc!.disposition!.signatures).toEqual([
    expect.objectContaining({ signer: expect.objectContaining({ name: 'Quinn Manager' }), valid: true }),
  ]);
  expect(nc!.decision!.signatures).toEqual([expect.objectContaining({ valid: false })]);
});

test('CSV: one row per inspection, nonconformance and signature', async () => {
  const res = await get('csv');

  expect(res.statusCode).toBe(200);
  const kinds = res.body
    .trim()
    .split('\r\n')
    .slice(1)
    .map((l) => l.split(',')[0]);
  expect(kinds).toEqual(['inspection', 'inspection', 'nonconformance', 'signature', 'signature']);
  expect(res.body).toContain('Quinn Manager (approval)');
});

test('HTML shows each signature manifestation; the PDF is printed from it by Chromium', async () => {
  const html = await get('html');
  expect(html.statusCode).toBe(200);
  expect(html.body).toContain(`Lot quality record: lot ${lotId} at PLANT1`);
  expect(html.body).toMatch(/Signed by Quinn Manager on [^,]+, meaning: approval — signature verified/);
  expect(html.body).toContain('SIGNATURE INVALID');
  expect(html.body).toContain('scratch on the sealing face');

  const pdf = await get('pdf');
  expect(pdf.statusCode).toBe(200);
  expect(pdf.headers['content-type']).toBe('application/pdf');
  expect(pdf.rawPayload.subarray(0, 5).toString('latin1')).toBe('%PDF-');
  expect(pdf.rawPayload.length).toBeGreaterThan(1000);
  // Its text is in subset fonts (no pdftotext here to read it), but Chromium copies the page title as it is.
  expect(pdf.rawPayload.toString('latin1')).toContain(`/Title (Lot quality record ${lotId})`);
}, 90_000);

test('a lot nobody inspected is a 404; another site is a 403', async () => {
  const missing = await app.inject({
    method: 'GET',
    url: `/v1/lots/${run}-NONE/quality-record`,
    headers: await asAdmin(),
  });
  expect(missing.statusCode).toBe(404);
  const elsewhere = await app.inject({
    method: 'GET',
    url: `/v1/lots/${lotId}/quality-record`,
    headers: await bearerFor({ roles: ['auditor'], sites: ['PLANT2'] }),
  });
  expect(elsewhere.statusCode).toBe(403);
});
