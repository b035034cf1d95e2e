/**
 * The quality dashboard in a real browser: the API app listening on a free port (real PostgreSQL of the run; the
 * gateway the test gives, or the run's Temporal dev server), local accounts with passwords for each role, Debian's
 * Chromium through playwright-core, the axe-core accessibility check, and the README's screenshots.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { type Browser, type Page, chromium } from 'playwright-core';
import { buildApp } from '../../api/app';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createAccounts } from '../../infra/identity/accounts';
import type { Role } from '../../infra/identity/principal';
import { type WorkflowGateway, createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import { holdfastDataConverter, holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import { testSigningKey } from './identity';
import { readTestEnv, testPool } from './test-env';

/** Debian's package (npm run system-packages installs it); HOLDFAST_CHROMIUM names another build. */
export const CHROMIUM = process.env.HOLDFAST_CHROMIUM ?? '/usr/bin/chromium';

/** The README's images: written when HOLDFAST_UPDATE_SCREENSHOTS=1, else beside the run's other outputs. */
const SCREENSHOT_DIR =
  process.env.HOLDFAST_UPDATE_SCREENSHOTS === '1'
    ? resolve(__dirname, '../../docs/images')
    : resolve(__dirname, '../../.holdfast/screenshots');

export type RigRole = 'operator' | 'quality-engineer' | 'quality-manager' | 'second-quality-manager' | 'auditor';

const ROLE_OF: Record<RigRole, Role> = {
  operator: 'operator',
  'quality-engineer': 'quality-engineer',
  'quality-manager': 'quality-manager',
  'second-quality-manager': 'quality-manager',
  auditor: 'auditor',
};

export interface RigUser {
  username: string;
  password: string;
  displayName: string;
}

export interface DashboardRig {
  baseUrl: string;
  pool: Pool;
  app: FastifyInstance;
  config: HoldfastConfig;
  browser: Browser;
  /** Unique per rig: prefix the test's business ids with it. */
  run: string;
  users: Record<RigRole, RigUser>;
  /** A new browser page (desktop size unless given), signed in through the page's form as this person. */
  signedInPage(role: RigRole, viewport?: { width: number; height: number }): Promise<Page>;
  close(): Promise<void>;
}

export interface RigOptions {
  /** The workflow gateway the API uses; default: the run's Temporal dev server, on a queue no worker polls. */
  gateway?: WorkflowGateway;
  config?: HoldfastConfig;
  /** Who may read which sites (default every site). */
  sites?: string[] | 'all';
}

export async function startDashboardRig(opts: RigOptions = {}): Promise<DashboardRig> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: run \`npm run system-packages\` (Debian's chromium) or set HOLDFAST_CHROMIUM`,
    );
  }
  const run = randomUUID().slice(0, 8);
  const config = opts.config ?? loadConfig();
  const pool = testPool();
  const env = readTestEnv();
  let connection: Connection | undefined;
  let gateway = opts.gateway;
  if (!gateway) {
    connection = await Connection.connect({ address: env.temporalAddress });
    const client = new Client({
      connection,
      namespace: env.namespace,
      dataConverter: holdfastDataConverter(holdfastPayloadCodec()),
    });
    gateway = createTemporalWorkflowGateway(client, { taskQueue: `dashboard-no-worker-${run}` });
  }
  const app = await buildApp({
    pool,
    gateway,
    config,
    namespace: env.namespace,
    signingKey: await testSigningKey(),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const accounts = createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 5, lockForMs: 60_000 });
  const users = {} as Record<RigRole, RigUser>;
  for (const role of Object.keys(ROLE_OF) as RigRole[]) {
    const username = `${role}-${run}`;
    const displayName = `${role.replace(/-/g, ' ')} ${run}`;
    const { password } = await accounts.addUser(
      { kind: 'system', id: 'dashboard-rig' },
      { username, displayName, roles: [ROLE_OF[role]], sites: opts.sites ?? 'all' },
    );
    users[role] = { username, password, displayName };
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });

  return {
    baseUrl,
    pool,
    app,
    config,
    browser,
    run,
    users,
    async signedInPage(role, viewport = { width: 1440, height: 1000 }) {
      const page = await browser.newPage({ viewport });
      await page.goto(`${baseUrl}/ui/sign-in`);
      await page.getByLabel('User name').fill(users[role].username);
      await page.getByLabel('Password').fill(users[role].password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('#user-name').waitFor({ timeout: 15_000 });
      return page;
    },
    async close() {
      await browser.close().catch(() => undefined);
      await app.close();
      await connection?.close();
      await pool.end();
    },
  };
}

let axeSource: string | undefined;
const AXE_SOURCE = () => (axeSource ??= readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8'));

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/** axe-core's WCAG 2 A/AA rules on the page as it is now; the violations of impact serious or critical. */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  // Evaluated, not added as a script tag: the page's policy refuses inline scripts, as it should.
  if (!(await page.evaluate('typeof axe !== "undefined"'))) await page.evaluate(AXE_SOURCE());
  // A string, so that this file (Node types only) needs no DOM types: it runs in the page.
  const violations = await page.evaluate<
    Array<{ id: string; impact: string | null; help: string; nodes: Array<{ target: string[] }> }>
  >(`axe
    .run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
    .then((result) => result.violations)`);
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.flatMap((n) => n.target).slice(0, 5) }));
}

/** A screenshot of the page as it is, for the README (docs/images/dashboard-<name>.png with the update switch). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = resolve(SCREENSHOT_DIR, `dashboard-${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
