/**
 * What an operator sees in the Temporal Web UI, in a real browser: Debian's Chromium driven by playwright-core, against
 * a Temporal CLI dev server with its UI (started here: the run's shared server is headless). The lot case and a shadow
 * defect are started by the real gateway, as the outbox dispatcher starts them; no worker polls their task queue, so
 * they stay Running, as a case waiting for its disposition does. Their payloads are encrypted, as in production: the
 * UI shows them through the API's codec endpoint (`--ui-codec-endpoint`, as `npm start` sets it).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildApp } from '../../api/app';
import { loadConfig, sitePolicy } from '../../infra/config/load';
import { findFreePort } from '../../infra/local/managed-process';
import { startTemporalDevServer, type TemporalDevServer } from '../../infra/local/temporal-dev-server';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { ENCRYPTED_ENCODING, holdfastDataConverter, holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import { ALL_SEARCH_ATTRIBUTES, lotCaseWorkflowId, type DetectionDispatch } from '../../workflows/contracts';
import { testSigningKey } from '../support/identity';
import { readTestEnv, testPool } from '../support/test-env';

/** Debian's package (npm run system-packages installs it); HOLDFAST_CHROMIUM names another build. */
const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? '/usr/bin/chromium';
const run = randomUUID().slice(0, 8);
const lotId = `L-UI-${run}`;
const eventId = `ui-${run}`;
const config = loadConfig();

let server: TemporalDevServer;
let connection: Connection;
let pool: Pool;
let api: FastifyInstance;
let browser: Browser;
let page: Page;
let shadowWorkflowId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: run \`npm run system-packages\` (Debian's chromium) or set HOLDFAST_CHROMIUM`,
    );
  }
  // The UI calls the codec from the browser, so the API must know the UI's origin and the UI the API's address.
  const [uiPort, apiPort] = [await findFreePort(), await findFreePort()];
  server = await startTemporalDevServer({
    cliPath: readTestEnv().temporalCliPath,
    uiPort,
    uiCodecEndpoint: `http://127.0.0.1:${apiPort}/codec`,
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
  });
  connection = await Connection.connect({ address: server.address });
  const payloadCodec = holdfastPayloadCodec();
  const client = new Client({ connection, dataConverter: holdfastDataConverter(payloadCodec) });
  pool = testPool();
  api = await buildApp({
    pool,
    gateway: createTemporalWorkflowGateway(client, { taskQueue: `no-worker-${run}` }),
    config: { ...config, api: { ...config.api, codecUiOrigins: [server.uiUrl!] } },
    namespace: 'default',
    payloadCodec,
    signingKey: await testSigningKey(),
  });
  await api.listen({ host: '127.0.0.1', port: apiPort });
  const gateway = createTemporalWorkflowGateway(client, { taskQueue: `no-worker-${run}` });
  const input: DetectionDispatch = {
    detection: {
      eventId,
      site: 'PLANT1',
      line: 'L3',
      station: 'S2',
      partId: `P-${run}`,
      sku: 'CVR-120',
      lotId,
      workOrder: '1000102',
      defects: [{ class: 'crack', score: 0.91 }],
      modelVersion: 'holdfast-surface@1.0.0',
      recipeVersion: 'surface-1',
      inspectedAt: new Date().toISOString(),
    },
    policy: sitePolicy(config, config.sites[0]!),
    taskQueue: `no-worker-${run}`,
  };
  await gateway.dispatchDetection(input);
  // The same lot seen by a camera under validation: a shadow workflow of its own, next to the lot case.
  const shadow = { ...input.detection, eventId: `${eventId}-shadow`, station: 'S3' };
  shadowWorkflowId = (await gateway.dispatchDetection({ ...input, detection: shadow, mode: 'shadow' })).workflowId;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await connection?.close();
  await server?.stop();
  await api?.close();
  await pool?.end();
});

/** The workflow list for a visibility query, as typed into the UI's filter. */
async function listFor(query: string): Promise<string> {
  await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  const table = page.getByRole('table');
  await table
    .getByText(/shadow-|lot-/)
    .first()
    .waitFor({ timeout: 30_000 });
  return table.innerText();
}

test('the workflow list finds the lot case by Lot, Line, WorkOrder, Sku and DefectClass, and open holds on a line', async () => {
  const lotCase = lotCaseWorkflowId('PLANT1', lotId);
  const byLot = await listFor(`Lot = "${lotId}"`);
  expect(byLot).toContain(lotCase);
  expect(byLot).toContain(shadowWorkflowId);
  expect(byLot).toMatch(/lotCaseWorkflow/);
  expect(byLot).toMatch(/shadowDefectWorkflow/);

  const byPartAttributes = await listFor(
    `WorkflowType = "lotCaseWorkflow" AND Line = "L3" AND WorkOrder = "1000102" AND Sku = "CVR-120" AND DefectClass = "crack" AND Lot = "${lotId}"`,
  );
  expect(byPartAttributes).toContain(lotCase);
  expect(byPartAttributes).not.toContain(shadowWorkflowId);

  // The README's query: every open hold on a line.
  const openHolds = await listFor(
    `WorkflowType = "lotCaseWorkflow" AND Line = "L3" AND DispositionState = "containing" AND Lot = "${lotId}"`,
  );
  expect(openHolds).toContain(lotCase);
  expect(openHolds).not.toContain(shadowWorkflowId);
}, 60_000);

test("the lot case's page shows its summary and every search attribute", async () => {
  const lotCase = lotCaseWorkflowId('PLANT1', lotId);
  await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(lotCase)}`);
  await page.getByText(`Lot ${lotId} hold case · PLANT1/L3 · CVR-120`).first().waitFor({ timeout: 30_000 });
  await page.getByRole('tab', { name: 'Search Attributes' }).click();
  const shown = page.getByText('"indexedFields"');
  await shown.waitFor({ timeout: 30_000 });
  const text = await page.locator('body').innerText();
  for (const [key, value] of Object.entries({
    Site: 'PLANT1',
    Line: 'L3',
    Lot: lotId,
    Sku: 'CVR-120',
    DispositionState: 'containing',
  })) {
    expect(text).toContain(`"${key}": "${value}"`);
  }
  // Keyword lists: a case gathers the stations, work orders and defect classes of all its parts.
  for (const [key, value] of Object.entries({ Station: 'S2', WorkOrder: '1000102', DefectClass: 'crack' })) {
    expect(text).toMatch(new RegExp(`"${key}": \\[\\s*"${value}"\\s*\\]`));
  }
}, 60_000);

test("a workflow's encrypted input is shown decoded, through the codec endpoint", async () => {
  await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(shadowWorkflowId)}`);
  // The part id is only in the (encrypted) input: the UI can show it only by calling POST /codec/decode.
  await page.getByText(`P-${run}`).first().waitFor({ timeout: 30_000 });
  const text = await page.locator('body').innerText();
  expect(text).toContain(eventId);
  expect(text).not.toContain(ENCRYPTED_ENCODING);
}, 60_000);
