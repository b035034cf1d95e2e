/**
 * The README's promise for a fresh clone: after `npm start` (the whole stack, on free ports and a new data directory,
 * as a first start), the banner's link opens the dashboard, the credentials it shows sign in, and the camera
 * simulator's defects appear on the page, live, within a minute.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { loadConfig } from '../../infra/config/load';
import { banner, startLocalStack, type LocalStack } from '../../infra/local/start';
import { CHROMIUM, screenshot, seriousAccessibilityViolations } from '../support/dashboard-rig';
import { eventually } from '../support/eventually';
import { stackEnv, writeStackConfig } from '../support/local-stack';

jest.setTimeout(240_000);

let work: string;
let stack: LocalStack | undefined;
let browser: Browser | undefined;
let bannerText: string;
const logTail: string[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'holdfast-dashboard-start-'));
  // PostgreSQL runs as the postgres OS user when we are root: it must be able to enter this directory.
  chmodSync(work, 0o755);
  const { file, ports } = await writeStackConfig(work, { workerOnFreePorts: true });
  const config = loadConfig(file);
  stack = await startLocalStack({
    config,
    env: stackEnv(file),
    dataDir: join(work, 'data'),
    ports,
    log: (line) => {
      logTail.push(line);
      if (logTail.length > 200) logTail.shift();
    },
  }).catch((err: unknown) => {
    throw new Error(`npm start failed: ${String(err)}\n${logTail.slice(-40).join('\n')}`);
  });
  bannerText = banner(stack, config);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await stack?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

test("the banner's link and credentials open the dashboard, and the cameras' defects appear within a minute", async () => {
  const link = /Quality dashboard: (\S+)/.exec(bannerText)?.[1];
  const password = /Sign in as admin, password (\S+)/.exec(bannerText)?.[1];
  expect(link).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ui$/);
  expect(password).toBeDefined();

  const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(link!);
  await page.getByLabel('User name').fill('admin');
  await page.getByLabel('Password').fill(password!);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#live-status[data-state="live"]').waitFor({ timeout: 15_000 });
  const signedInAt = Date.now();

  // A defect found after the page was open: it can only have come over the live stream.
  const shown = page.locator('#live-defects li');
  const before = new Set<string | null>();
  for (let i = 0; i < (await shown.count()); i++) before.add(await shown.nth(i).getAttribute('data-event-id'));
  const arrived = await eventually(
    'a defect pushed to the page after it was open',
    async () => {
      const fresh = page.locator('#live-defects li.fresh');
      for (let i = 0; i < (await fresh.count()); i++) {
        const id = await fresh.nth(i).getAttribute('data-event-id');
        if (!before.has(id)) return id;
      }
      return undefined;
    },
    { timeoutMs: 60_000 },
  );
  expect(arrived).toBeTruthy();
  expect(Date.now() - signedInAt).toBeLessThanOrEqual(60_000);
  expect(await seriousAccessibilityViolations(page)).toEqual([]);

  // The README's picture of Now is this page: the demo plant's lot cases open as the cameras' defects reach them.
  await eventually('an open lot case on the page', async () =>
    Number(await page.locator('[data-figure="open-lot-cases"]').textContent()) > 0 ? true : undefined,
  );
  // Every connector tile of the running stack: MES and ERP from the worker, PLC and broker from the inference worker.
  await eventually('every connector up on the page', async () => {
    const down = await page.locator('[data-connector]:not(.health-up)').count();
    return (await page.locator('[data-connector]').count()) >= 6 && down === 0 ? true : undefined;
  });
  await screenshot(page, 'now');
  await page.close();
});
