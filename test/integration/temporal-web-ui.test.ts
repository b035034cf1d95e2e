/**
 * What an operator sees in the Temporal Web UI, in a real browser: Debian's Chromium driven by playwright-core, against
 * a Temporal CLI dev server with its UI (started here: the run's shared server is headless). The workflows are started
 * by the real gateway, as the outbox dispatcher starts them; no worker polls their task queue, so they stay Running,
 * as a case waiting for its disposition does.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadConfig, sitePolicy } from '../../infra/config/load';
import { startTemporalDevServer, type TemporalDevServer } from '../../infra/local/temporal-dev-server';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { ALL_SEARCH_ATTRIBUTES, lotCaseWorkflowId, type DefectWorkflowInput } from '../../workflows/contracts';
import { readTestEnv } from '../support/test-env';

/** Debian's package (npm run system-packages installs it); HOLDFAST_CHROMIUM names another build. */
const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? '/usr/bin/chromium';
const run = randomUUID().slice(0, 8);
const lotId = `L-UI-${run}`;
const eventId = `ui-${run}`;
const config = loadConfig();

let server: TemporalDevServer;
let connection: Connection;
let browser: Browser;
let page: Page;
let defectWorkflowId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: run \`npm run system-packages\` (Debian's chromium) or set HOLDFAST_CHROMIUM`,
    );
  }
  server = await startTemporalDevServer({
    cliPath: readTestEnv().temporalCliPath,
    searchAttributes: ALL_SEARCH_ATTRIBUTES,
  });
  connection = await Connection.connect({ address: server.address });
  const gateway = createTemporalWorkflowGateway(new Client({ connection }), { taskQueue: `no-worker-${run}` });
  const input: DefectWorkflowInput = {
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
  defectWorkflowId = (await gateway.startDefectWorkflow(input)).workflowId;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage();
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await connection?.close();
  await server?.stop();
});

/** The workflow list for a visibility query, as typed into the UI's filter. */
async function listFor(query: string): Promise<string> {
  await page.goto(`${server.uiUrl}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
  const table = page.getByRole('table');
  await table
    .getByText(/defect-|lot-/)
    .first()
    .waitFor({ timeout: 30_000 });
  return table.innerText();
}

test('the workflow list finds the defect and its lot case by Lot, and open holds on a line by type, Line and state', async () => {
  const byLot = await listFor(`Lot = "${lotId}"`);
  expect(byLot).toContain(defectWorkflowId);
  expect(byLot).toContain(lotCaseWorkflowId('PLANT1', lotId));
  expect(byLot).toMatch(/defectWorkflow/);
  expect(byLot).toMatch(/lotCaseWorkflow/);

  // The README's query: every open hold on a line.
  const openHolds = await listFor(
    `WorkflowType = "lotCaseWorkflow" AND Line = "L3" AND DispositionState = "containing" AND Lot = "${lotId}"`,
  );
  expect(openHolds).toContain(lotCaseWorkflowId('PLANT1', lotId));
  expect(openHolds).not.toContain(defectWorkflowId);
}, 60_000);

test("the defect workflow's page shows its summary and every search attribute", async () => {
  await page.goto(`${server.uiUrl}/namespaces/default/workflows/${encodeURIComponent(defectWorkflowId)}`);
  await page.getByText(`crack on PLANT1/L3/S2 · lot ${lotId}`).first().waitFor({ timeout: 30_000 });
  await page.getByRole('tab', { name: 'Search Attributes' }).click();
  const shown = page.getByText('"indexedFields"');
  await shown.waitFor({ timeout: 30_000 });
  const text = await page.locator('body').innerText();
  for (const [key, value] of Object.entries({
    Site: 'PLANT1',
    Line: 'L3',
    Station: 'S2',
    Lot: lotId,
    WorkOrder: '1000102',
    Sku: 'CVR-120',
    DefectClass: 'crack',
    DispositionState: 'containing',
  })) {
    expect(text).toContain(`"${key}": "${value}"`);
  }
}, 60_000);
