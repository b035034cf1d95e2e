/**
 * The dashboard's shell in Debian's Chromium: sign-in through the page's form, the Now view's figures against the API
 * and PostgreSQL, a defect posted to the API showing live without a reload, filters kept in the URL, the page's
 * content security policy holding, a tablet's viewport, and the accessibility check (docs/dashboard.md).
 */
import type { Page } from 'playwright-core';
import type { NowResponse } from '../../api/schemas/dashboard.schema';
import {
  type DashboardRig,
  screenshot,
  seriousAccessibilityViolations,
  startDashboardRig,
} from '../support/dashboard-rig';
import { bearerFor } from '../support/identity';

let rig: DashboardRig;
/** Everything the browser logged as refused by the content security policy, or as an error. */
const consoleProblems: string[] = [];

beforeAll(async () => {
  rig = await startDashboardRig();
}, 60_000);

afterAll(async () => {
  await rig?.close();
});

/** Records policy refusals, script errors and failed requests, but for the refused sign-in the first test asks for. */
function watchConsole(page: Page): Page {
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      consoleProblems.push(message.text());
    }
  });
  page.on('pageerror', (error) => consoleProblems.push(error.message));
  page.on('requestfailed', (request) => {
    // Reads cancelled by leaving a view are the page's own doing.
    if (request.failure()?.errorText !== 'net::ERR_ABORTED') consoleProblems.push(`${request.url()} failed`);
  });
  page.on('response', (response) => {
    const refusedSignIn = response.status() === 401 && response.url().endsWith('/v1/auth/token');
    if (response.status() >= 400 && !refusedSignIn) consoleProblems.push(`${response.url()}: ${response.status()}`);
  });
  return page;
}

async function apiGet<T>(path: string): Promise<T> {
  const res = await fetch(`${rig.baseUrl}${path}`, {
    headers: await bearerFor({ username: 'dashboard-reader', roles: ['quality-engineer'] }),
  });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

test('a wrong password is refused in the page, the right one signs in and shows who is signed in', async () => {
  const page = watchConsole(await rig.browser.newPage());
  await page.goto(`${rig.baseUrl}/ui`);
  await page.getByLabel('User name').fill(rig.users.operator.username);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page
    .getByRole('alert')
    .getByText(/unknown user, wrong password/)
    .waitFor();
  expect(await seriousAccessibilityViolations(page)).toEqual([]);
  await screenshot(page, 'sign-in');

  await page.getByLabel('Password').fill(rig.users.operator.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#user-name').waitFor();
  expect(await page.locator('#user-name').textContent()).toBe(rig.users.operator.displayName);
  // The first view is Now, at the person's first site.
  expect(new URL(page.url()).pathname).toBe('/ui/now');
  await page.close();
}, 60_000);

test('the page is served under its own policy and loads without a refused resource', async () => {
  const shell = await fetch(`${rig.baseUrl}/ui/now`);
  expect(shell.status).toBe(200);
  const csp = shell.headers.get('content-security-policy') ?? '';
  expect(csp).toContain("script-src 'self'");
  expect(csp).not.toContain('unsafe-inline');
  const js = await fetch(`${rig.baseUrl}/ui/assets/app.js`, { headers: { 'accept-encoding': 'gzip' } });
  expect(js.status).toBe(200);
  expect(js.headers.get('content-type')).toMatch(/javascript/);
  // The charting library is in the bundle, not on a CDN.
  expect(await js.text()).toContain('echarts');
  const again = await fetch(`${rig.baseUrl}/ui/assets/app.js`, {
    headers: { 'if-none-match': js.headers.get('etag')! },
  });
  expect(again.status).toBe(304);
  expect((await fetch(`${rig.baseUrl}/ui/assets/nothing.js`)).status).toBe(404);
  // The data is not public: the shell is.
  expect((await fetch(`${rig.baseUrl}/v1/me`)).status).toBe(401);
});

/** A failed inspection as a station posts it. */
function failedInspection(n: number, lotId: string) {
  const now = new Date();
  return {
    eventId: `dash-${rig.run}-${n}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-dash-${rig.run}-${n}`,
    sku: 'BRKT-200',
    lotId,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.94 }],
    modelVersion: 'vision-2.3.0',
    recipeVersion: 'R-17',
    inspectedAt: now.toISOString(),
  };
}

async function postInspection(body: unknown): Promise<void> {
  const res = await fetch(`${rig.baseUrl}/v1/inspections`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await bearerFor({ roles: ['admin'] })) },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(202);
}

test("Now shows the API's and PostgreSQL's figures, and a posted defect appears within 2 s without a reload", async () => {
  const page = watchConsole(await rig.signedInPage('operator'));
  await page.goto(`${rig.baseUrl}/ui/now?site=PLANT1`);
  await page.locator('[data-figure="open-lot-cases"]').waitFor();

  const api = await apiGet<NowResponse>('/v1/dashboard/now?site=PLANT1');
  const figure = async (id: string) => Number(await page.locator(`[data-figure="${id}"]`).textContent());
  expect(await figure('open-lot-cases')).toBe(api.lotCases.open);
  expect(await figure('overdue-lot-cases')).toBe(api.lotCases.overdue);
  expect(await figure('outbox-pending')).toBe(api.backlogs.outboxPending);
  expect(await figure('deferred-frames')).toBe(api.backlogs.deferredFrames);
  const sql = await rig.pool.query<{ open: string; outbox: string; deferred: string }>(
    `SELECT (SELECT count(*) FROM holdfast.lot_case WHERE site = 'PLANT1' AND closed_at IS NULL) AS open,
            (SELECT count(*) FROM holdfast.outbox WHERE dispatched_at IS NULL) AS outbox,
            (SELECT count(*) FROM holdfast.frame_deferred) AS deferred`,
  );
  expect(await figure('open-lot-cases')).toBe(Number(sql.rows[0]!.open));
  for (const stage of api.lotCases.byStage) {
    expect(Number(await page.locator(`[data-stage="${stage.stage}"]`).textContent())).toBe(stage.count);
  }

  // Live: the page has the stream open; the defect must show without a reload, within 2 s of the API's answer.
  await page.locator('#live-status[data-state="live"]').waitFor({ timeout: 10_000 });
  const lotId = `L-DASH-${rig.run}`;
  const inspection = failedInspection(1, lotId);
  const posted = Date.now();
  await postInspection(inspection);
  const item = page.locator(`#live-defects [data-event-id="${inspection.eventId}"]`);
  await item.waitFor({ timeout: 2_000 });
  const shownAfterMs = Date.now() - posted;
  expect(shownAfterMs).toBeLessThanOrEqual(2_000);
  expect(await item.textContent()).toContain('scratch');
  await expect(item.getByRole('link', { name: lotId }).getAttribute('href')).resolves.toContain(`/ui/lots/${lotId}`);
  expect(await seriousAccessibilityViolations(page)).toEqual([]);
  await page.close();
}, 90_000);

test('filters live in the URL: a shared link opens the same view, and the form rewrites it', async () => {
  const page = watchConsole(await rig.signedInPage('quality-engineer'));
  await page.goto(`${rig.baseUrl}/ui/now?site=PLANT1&line=L1&from=2026-01-01&to=2026-01-31`);
  await page.locator('[data-figure="open-lot-cases"]').waitFor();
  await expect(page.getByLabel('Line').inputValue()).resolves.toBe('L1');
  await expect(page.getByLabel('From').inputValue()).resolves.toBe('2026-01-01');
  await page.getByLabel('Line').selectOption('');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL((url) => !url.searchParams.has('line'));
  const url = new URL(page.url());
  expect(url.searchParams.get('from')).toBe('2026-01-01');
  expect(url.searchParams.get('site')).toBe('PLANT1');
  // After a view change focus is on the content, as after a page load; on a fresh load the skip link is the first stop.
  await expect(page.evaluate('document.activeElement.id')).resolves.toBe('main');
  await page.reload();
  await page.locator('[data-figure="open-lot-cases"]').waitFor();
  await page.keyboard.press('Tab');
  await expect(page.evaluate('document.activeElement.className')).resolves.toBe('skip-link');
  await page.close();
}, 60_000);

test('on a tablet at the line the page reflows without sideways scrolling', async () => {
  const page = watchConsole(await rig.signedInPage('operator', { width: 820, height: 1180 }));
  await page.goto(`${rig.baseUrl}/ui/now?site=PLANT1`);
  await page.locator('[data-figure="open-lot-cases"]').waitFor();
  const overflow = await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth');
  expect(overflow).toBeLessThanOrEqual(0);
  await screenshot(page, 'now-tablet');
  await page.close();
}, 60_000);

test('no resource was refused by the policy and no script failed on any page of this file', () => {
  expect(consoleProblems).toEqual([]);
});
