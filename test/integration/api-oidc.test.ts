/**
 * People signed in at the plant's OpenID provider: a real provider process (test/support/oidc-provider-process.ts)
 * issues the tokens, and the API finds its keys through the discovery document, as with Keycloak or Entra ID.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { auditRecordsOf } from '../support/audit';
import { eventually } from '../support/eventually';
import { asAdmin, testSigningKey } from '../support/identity';
import { testPool } from '../support/test-env';

const AUDIENCE = 'urn:holdfast:api';
const run = `oidc-${randomUUID().slice(0, 8)}`;
const secret = randomUUID() + randomUUID();
const clients = [
  { id: 'qe-plant1', secret, name: 'Quality Engineer One', roles: ['quality-engineer'], sites: ['PLANT1'] },
  { id: 'qe-plant2', secret, name: 'Quality Engineer Two', roles: ['quality-engineer'], sites: ['PLANT2'] },
];
const gateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`unexpected Temporal call ${String(name)}`)),
});

let provider: ChildProcess;
let issuer: string;
let pool: Pool;
const apps: FastifyInstance[] = [];

async function appWith(identity: Partial<HoldfastConfig['identity']>): Promise<FastifyInstance> {
  const base = loadConfig();
  const config = { ...base, identity: { ...base.identity, ...identity } };
  const app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'default' });
  apps.push(app);
  return app;
}

async function tokenOf(clientId: string, resource = AUDIENCE): Promise<string> {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_secret: secret,
      resource,
      scope: 'holdfast',
    }),
  });
  const body = (await res.json()) as { access_token?: string };
  if (!body.access_token) throw new Error(`no token from the provider: ${JSON.stringify(body)}`);
  return body.access_token;
}

const lotOf = (app: FastifyInstance, token: string) =>
  app.inject({ method: 'GET', url: `/v1/lots/${run}-LOT`, headers: { authorization: `Bearer ${token}` } });

beforeAll(async () => {
  pool = testPool();
  let output = '';
  provider = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(__dirname, '../support/oidc-provider-process.ts'),
      JSON.stringify({ audiences: [AUDIENCE, 'urn:other:api'], clients }),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  provider.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  provider.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  issuer = await eventually(
    'the OpenID provider listening',
    async () => {
      if (provider.exitCode !== null) throw new Error(`the OpenID provider exited:\n${output}`);
      return /OIDC_READY (\S+)/.exec(output)?.[1];
    },
    { timeoutMs: 30_000 },
  );
  // A lot at PLANT1 for the site checks.
  const seed = await appWith({});
  const seeded = await seed.inject({
    method: 'POST',
    url: '/v1/inspections',
    headers: await asAdmin(),
    payload: {
      eventId: `${run}-1`,
      site: 'PLANT1',
      line: 'L1',
      station: 'S1',
      partId: 'P-1',
      sku: 'BRKT-200',
      lotId: `${run}-LOT`,
      workOrder: '1000100',
      result: 'pass',
      defects: [],
      modelVersion: 'm-1',
      recipeVersion: 'R-1',
      inspectedAt: '2026-12-06T10:00:00Z',
    },
  });
  expect(seeded.statusCode).toBe(202);
});

afterAll(async () => {
  for (const app of apps) await app.close();
  await pool?.end();
  provider?.kill('SIGTERM');
});

const oidc = () => ({ issuer, audience: AUDIENCE, rolesClaim: 'realm_access.roles', sitesClaim: 'sites' });

it("lets the provider's user in with the roles and sites of its claims, and keeps them to their site", async () => {
  const app = await appWith({ ...oidc(), algorithms: ['ES256'] });
  expect((await lotOf(app, await tokenOf('qe-plant1'))).statusCode).toBe(200);
  const elsewhere = await lotOf(app, await tokenOf('qe-plant2'));
  expect([elsewhere.statusCode, elsewhere.json<{ detail: string }>().detail]).toEqual([
    403,
    'no access to site PLANT1',
  ]);
});

it('refuses a token the provider issued for another audience', async () => {
  const app = await appWith({ ...oidc(), algorithms: ['ES256'] });
  const res = await lotOf(app, await tokenOf('qe-plant1', 'urn:other:api'));
  expect([res.statusCode, res.json<{ detail: string }>().detail]).toEqual([
    401,
    'token refused: aud claim: check_failed',
  ]);
});

it('refuses a token signed with an algorithm outside the allow-list', async () => {
  const app = await appWith({ ...oidc(), algorithms: ['RS256'] });
  const res = await lotOf(app, await tokenOf('qe-plant1'));
  expect([res.statusCode, res.json<{ detail: string }>().detail]).toEqual([
    401,
    'token algorithm ES256 is not accepted',
  ]);
});

it("refuses the provider's tokens when another issuer is configured", async () => {
  const app = await appWith({ ...oidc(), issuer: 'https://login.example.com/realms/plant', algorithms: ['ES256'] });
  const res = await lotOf(app, await tokenOf('qe-plant1'));
  expect(res.statusCode).toBe(401);
  expect(res.json<{ detail: string }>().detail).toMatch(/issuer .* is not trusted/);
});

describe("an OpenID user's electronic signature (Part 11 §11.200(a)): a recent sign-in at the provider", () => {
  const dispose = (app: FastifyInstance, token: string, signature: object) =>
    app.inject({
      method: 'POST',
      url: `/v1/lots/${run}-LOT/disposition`,
      headers: { authorization: `Bearer ${token}`, 'idempotency-key': `${run}-${randomUUID()}` },
      payload: { decision: 'scrap', reason: 'MRB 9', signature },
    });

  it('signs with a fresh sign-in (the request goes on to the lot case) and takes no password', async () => {
    const app = await appWith({ ...oidc(), algorithms: ['ES256'] });
    const token = await tokenOf('qe-plant1');
    // The stand-in gateway refuses every call: 503 means the signature was made and the update attempted.
    expect((await dispose(app, token, { meaning: 'approval' })).statusCode).toBe(503);
    const withPassword = await dispose(app, token, { meaning: 'approval', password: 'secret' });
    expect(withPassword.statusCode).toBe(400);
    expect(withPassword.json<{ errors: { field: string }[] }>().errors.map((e) => e.field)).toEqual([
      'signature.password',
    ]);
  });

  it('asks for a new sign-in (401, RFC 9470 step-up challenge) when the last one is too old, and audits it', async () => {
    const base = loadConfig().identity;
    const app = await appWith({
      ...oidc(),
      algorithms: ['ES256'],
      signatures: { ...base.signatures, maxAuthAge: '1s' },
    });
    const token = await tokenOf('qe-plant1');
    await new Promise((resolve) => setTimeout(resolve, 2_100));

    const stale = await dispose(app, token, { meaning: 'approval' });

    expect(stale.statusCode).toBe(401);
    expect(stale.json()).toMatchObject({ type: 'urn:holdfast:problem:reauthentication-required' });
    expect(stale.headers['www-authenticate']).toMatch(/^Bearer error="insufficient_user_authentication".*max_age=1$/);
    const refusals = (await auditRecordsOf(pool, 'qe-plant1')).filter((r) => r.action === 'e-signature.credentials');
    expect(refusals.at(-1)).toMatchObject({
      outcome: 'refused',
      actor: { kind: 'user', id: 'qe-plant1' },
      detail: { reason: 'reauthentication-required', maxAgeSeconds: 1 },
    });
  });
});
