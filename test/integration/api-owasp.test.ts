/**
 * OWASP API Security Top 10 (2023) controls on the API (docs/identity.md#owasp-api-security-top-10):
 * API8 security misconfiguration: helmet's headers, a JSON-only content security policy, no CORS by default, no
 * stack traces or internal messages in a 500.
 * API4 unrestricted resource consumption: request limits per identity, a tighter one on sign-in (body size and batch
 * limits: api-ingest.test.ts).
 * API9 improper inventory: every route the API and the inference edge serve is in their OpenAPI document, but for
 * the few hidden on purpose.
 */
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { DOCS_UI_CSP } from '../../infra/http/security-headers';
import { type ListedRoute, registeredRoutes } from '../../infra/http/openapi';
import { openFrameHttp } from '../../infra/inference/frame-http';
import { createAuthenticator } from '../../infra/identity/authenticate';
import { createAccounts } from '../../infra/identity/accounts';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createPgDeferredFrameAdmin } from '../../infra/inference/deferred-frames';
import { holdfastPayloadCodec } from '../../infra/temporal/payload-codec';
import { quietLog } from '../support/quiet-log';
import { Registry } from 'prom-client';
import { readTestEnv } from '../support/test-env';
import { asAdmin, bearerFor, stationKey, testSigningKey } from '../support/identity';

const INTERNAL_MESSAGE = 'relation "holdfast.secret_table" does not exist at owasp-probe';

const unusedGateway = new Proxy({} as WorkflowGateway, {
  get: (_, call) => () => Promise.reject(new Error(`the OWASP tests never call the gateway (${String(call)})`)),
});

let pool: Pool;
let app: FastifyInstance;

async function appWith(config: ReturnType<typeof loadConfig>): Promise<FastifyInstance> {
  return buildApp({
    signingKey: await testSigningKey(),
    pool,
    gateway: unusedGateway,
    config,
    namespace: 'holdfast-test-ns',
  });
}

beforeAll(async () => {
  pool = createPool(readTestEnv().databaseUrl, { max: 2 });
  app = await appWith(loadConfig());
  // A route that fails like a driver error would: its message and stack must stay in the log.
  app.get('/v1/owasp-probe/throws', { config: { access: 'public' } }, async () => {
    throw new Error(INTERNAL_MESSAGE);
  });
  // Stands in for the Swagger UI's pages (jest cannot load @fastify/swagger-ui: infra/http/openapi.ts).
  app.get('/docs/static/probe.html', async (_, reply) => reply.type('text/html').send('<html></html>'));
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

describe('API8 security misconfiguration', () => {
  it('sends helmet headers and a CSP that lets a JSON answer load nothing, without HSTS on plain HTTP', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/defects/owasp-no-such-event', headers: await asAdmin() });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(res.headers['content-security-policy']).toMatch(/^default-src 'none';/);
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.headers['strict-transport-security']).toBeUndefined();
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  it('keeps the strict policy on the OpenAPI document and on problem answers', async () => {
    const doc = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    expect(doc.headers['content-security-policy']).toMatch(/^default-src 'none';/);
    expect(doc.headers['content-security-policy']).not.toContain('script-src');
    const unauthenticated = await app.inject({ method: 'GET', url: '/v1/defects/owasp-no-such-event' });
    expect(unauthenticated.statusCode).toBe(401);
    expect(unauthenticated.headers['content-security-policy']).toMatch(/^default-src 'none';/);
  });

  it('gives the Swagger UI pages under /docs a policy for their own scripts and styles only', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs/static/probe.html' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(DOCS_UI_CSP);
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['content-security-policy']).not.toMatch(/https?:|\*/);
  });

  it('answers a failing route with a bare 500 problem: no stack, no internal message', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/owasp-probe/throws' });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toEqual({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      detail: 'internal error; the request was not completed',
    });
    expect(res.body).not.toContain('owasp-probe');
    expect(res.body).not.toMatch(/\bat .+\.ts:\d+/);
  });

  it('grants no other origin CORS on ordinary routes, preflight included', async () => {
    const origin = 'https://evil.example';
    const get = await app.inject({
      method: 'GET',
      url: '/v1/defects/owasp-no-such-event',
      headers: { ...(await asAdmin()), origin },
    });
    expect(get.statusCode).toBe(404);
    expect(get.headers['access-control-allow-origin']).toBeUndefined();
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/v1/inspections',
      headers: { origin, 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(preflight.headers['access-control-allow-methods']).toBeUndefined();
  });
});

describe('API4 unrestricted resource consumption', () => {
  const base = loadConfig();
  let limited: FastifyInstance;

  beforeAll(async () => {
    limited = await appWith({
      ...base,
      api: {
        ...base.api,
        rateLimit: { max: 3, machineMax: 5, timeWindow: '1h', signIn: { max: 2, timeWindow: '1h' } },
      },
    });
    await limited.ready();
  });
  afterAll(() => limited?.close());

  const statuses = async (n: number, request: () => Promise<{ statusCode: number }>) => {
    const seen: number[] = [];
    for (let i = 0; i < n; i += 1) seen.push((await request()).statusCode);
    return seen;
  };

  it('limits each person by identity and answers 429 problem+json with Retry-After', async () => {
    const alice = await bearerFor({ username: 'owasp-alice', roles: ['admin'] });
    const read = (headers: Record<string, string>) => () =>
      limited.inject({ method: 'GET', url: '/v1/defects/owasp-no-such-event', headers });
    expect(await statuses(3, read(alice))).toEqual([404, 404, 404]);
    const refused = await limited.inject({ method: 'GET', url: '/v1/defects/owasp-no-such-event', headers: alice });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    expect(refused.json()).toMatchObject({ type: 'about:blank', title: 'Too Many Requests', status: 429 });
    // Same address, another person: a count of their own.
    const bob = await bearerFor({ username: 'owasp-bob', roles: ['admin'] });
    expect(await statuses(1, read(bob))).toEqual([404]);
  });

  it('gives machine keys their own, higher limit', async () => {
    const station = await stationKey(pool, { site: 'PLANT1', line: 'OWASP', station: 'S1' });
    const post = () =>
      limited.inject({
        method: 'POST',
        url: '/v1/inspections',
        headers: station.headers,
        payload: { results: 'none' },
      });
    expect(await statuses(6, post)).toEqual([400, 400, 400, 400, 400, 429]);
  });

  it('limits callers without credentials by address', async () => {
    const doc = () => limited.inject({ method: 'GET', url: '/docs/json', remoteAddress: '192.0.2.7' });
    expect(await statuses(4, doc)).toEqual([200, 200, 200, 429]);
    const other = await limited.inject({ method: 'GET', url: '/docs/json', remoteAddress: '192.0.2.8' });
    expect(other.statusCode).toBe(200);
  });

  it('bounds sign-in tries per address across usernames, before the account lock-out', async () => {
    const signIn = (username: string) => () =>
      limited.inject({
        method: 'POST',
        url: '/v1/auth/token',
        remoteAddress: '198.51.100.9',
        payload: { username, password: 'not-the-password' },
      });
    expect(await statuses(2, signIn('owasp-nobody-1'))).toEqual([401, 401]);
    const refused = await signIn('owasp-nobody-2')();
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('limits each key on the inference edge (vision.http.rateLimit)', async () => {
    const audit = createAuditTrail(pool);
    const edge = await openFrameHttp({
      config: {
        ...base,
        vision: {
          ...base.vision,
          http: { ...base.vision.http, port: 0, rateLimit: { max: 3, machineMax: 2, timeWindow: '1h' } },
        },
      },
      // Refuses every frame as the real pipeline refuses a bad payload: a 400 is a request the limit let through.
      pipeline: {
        handleFrame: () => Promise.resolve({ kind: 'refused', reason: 'bad-payload', detail: 'the limit test' }),
      },
      log: quietLog(),
      authenticator: createAuthenticator({
        identity: base.identity,
        signingKey: await testSigningKey(),
        accounts: createAccounts(pool, audit, { maxFailedSignIns: 5, lockForMs: 60_000 }),
      }),
    });
    try {
      const post = (key: { headers: Record<string, string> }) => () =>
        fetch(`${edge.url}/v1/stations/PLANT1/L1/S1/frames`, {
          method: 'POST',
          headers: { ...key.headers, 'content-type': 'application/json' },
          body: JSON.stringify({ frameId: 'owasp-not-a-frame' }),
        }).then(async (res) => ({ statusCode: res.status, res, body: await res.text() }));
      const camera = await stationKey(pool, { site: 'PLANT1', line: 'L1', station: 'S1' });
      expect(await statuses(2, post(camera))).toEqual([400, 400]);
      const refused = await post(camera)();
      expect(refused.statusCode).toBe(429);
      expect(refused.res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(refused.res.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(JSON.parse(refused.body)).toMatchObject({ title: 'Too Many Requests', status: 429 });
      // Another key, even for the same station: a count of its own.
      const other = await stationKey(pool, { site: 'PLANT1', line: 'L1', station: 'S1' });
      expect(await statuses(1, post(other))).toEqual([400]);
    } finally {
      await edge.close();
    }
  });
});

describe('API9 improper inventory', () => {
  /** Left out of the OpenAPI documents on purpose, each for a reason a reader of the document would accept. */
  const HIDDEN_ON_PURPOSE: Record<string, string> = {
    // The document itself.
    'GET /docs/json': 'the OpenAPI document does not describe itself',
    // A scrape for Prometheus, not part of the business API.
    'GET /metrics': 'Prometheus scrape, text exposition format',
    // Browser CORS preflights of the codec endpoint: a browser detail, not an operation.
    'OPTIONS /codec/decode': 'CORS preflight for the Temporal Web UI',
    'OPTIONS /codec/encode': 'CORS preflight for the Temporal Web UI',
  };

  const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

  async function undocumented(routes: readonly ListedRoute[], baseUrl: string) {
    const doc = (await (await fetch(`${baseUrl}/docs/json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    // HEAD is fastify's automatic twin of each GET.
    const served = routes.filter((r) => r.method !== 'HEAD');
    expect(served.length).toBeGreaterThan(3);
    const missing = served
      .filter((r) => doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()] === undefined)
      .map((r) => `${r.method} ${r.url}`);
    const hidden = served.filter((r) => r.hidden).map((r) => `${r.method} ${r.url}`);
    return { missing, hidden };
  }

  it('the API: every route is in /docs/json but for those hidden on purpose', async () => {
    const api = await buildApp({
      signingKey: await testSigningKey(),
      pool,
      gateway: unusedGateway,
      config: loadConfig(),
      namespace: 'holdfast-test-ns',
      payloadCodec: holdfastPayloadCodec(),
    });
    try {
      await api.listen({ host: '127.0.0.1', port: 0 });
      const { port } = api.server.address() as { port: number };
      const { missing, hidden } = await undocumented(registeredRoutes(api), `http://127.0.0.1:${port}`);
      expect(missing.filter((r) => !(r in HIDDEN_ON_PURPOSE))).toEqual([]);
      expect(hidden.filter((r) => !(r in HIDDEN_ON_PURPOSE))).toEqual([]);
      expect(missing).toContain('OPTIONS /codec/decode');
    } finally {
      await api.close();
    }
  });

  it('the inference edge: every route is in /docs/json but for those hidden on purpose', async () => {
    const base = loadConfig();
    const audit = createAuditTrail(pool);
    const pipeline = {
      handleFrame: () => Promise.reject(new Error('the inventory test sends no frames')),
      countRefused: () => undefined,
    };
    const edge = await openFrameHttp({
      config: { ...base, vision: { ...base.vision, http: { ...base.vision.http, port: 0 } } },
      pipeline,
      deferredFrames: createPgDeferredFrameAdmin(pool, pipeline, audit),
      metrics: new Registry(),
      health: [],
      log: quietLog(),
      authenticator: createAuthenticator({
        identity: base.identity,
        signingKey: await testSigningKey(),
        accounts: createAccounts(pool, audit, { maxFailedSignIns: 5, lockForMs: 60_000 }),
      }),
    });
    try {
      const { missing, hidden } = await undocumented(edge.routes, edge.url);
      expect(missing.filter((r) => !(r in HIDDEN_ON_PURPOSE))).toEqual([]);
      expect(hidden.filter((r) => !(r in HIDDEN_ON_PURPOSE))).toEqual([]);
      expect(missing).toContain('GET /metrics');
    } finally {
      await edge.close();
    }
  });
});
