/**
 * OWASP API Security Top 10 (2023) controls on the API (docs/identity.md#owasp-api-security-top-10):
 * API8 security misconfiguration: helmet's headers, a JSON-only content security policy, no CORS by default, no
 * stack traces or internal messages in a 500.
 * API4 unrestricted resource consumption: request limits per identity, a tighter one on sign-in (body size and batch
 * limits: api-ingest.test.ts).
 * API9 improper inventory: every route the API and the inference edge serve is in their OpenAPI document, but for
 * the few hidden on purpose.
 * API7 server-side request forgery: image references and escalation webhooks reach allow-listed targets only, and
 * no redirect leads elsewhere.
 * API10 unsafe consumption of APIs: a malformed MES or SAP answer fails the call for good, naming what was wrong.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import { loadConfig } from '../../infra/config/load';
import { createPool } from '../../infra/db/pool';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { DOCS_UI_CSP, UI_CSP } from '../../infra/http/security-headers';
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
import { failedInspection } from '../support/plant';
import { createImageFetcher, ImageUnavailableError } from '../../infra/vision/image-source';
import escalationWebhookConnector from '../../infra/connectors/escalation/escalation-webhook.connector';
import mesRestConnector from '../../infra/connectors/mes-rest/mes-rest.connector';
import sapS4Connector from '../../infra/connectors/sap-s4/sap-s4.connector';
import type { ConnectorContext, ConnectorInstance } from '../../infra/connectors/define';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../../infra/connectors/http-transport';
import { ConfigError, ExternalSystemError } from '../../activities/errors';
import type { ErpPort, MesPort } from '../../activities/ports';
import { classify } from '../../activities/boundary';
import { ErrorType } from '../../workflows/contracts';

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

  it('gives the dashboard under /ui its own policy: this origin only, nothing inline', async () => {
    for (const url of ['/ui', '/ui/lots/L-1', '/ui/assets/no-such.js']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.headers['content-security-policy']).toBe(UI_CSP);
    }
    expect(UI_CSP).not.toMatch(/unsafe-inline|unsafe-eval|https?:|\*/);
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

  it("answers fastify's own refusals before routing as problems, and reads ids as long as the schemas allow", async () => {
    // An eventId of 200 characters is valid (infra/ingest/inspection.schema.ts); fastify's router stopped at 100.
    const longId = `owasp-${'e'.repeat(194)}`;
    const stored = await app.inject({
      method: 'POST',
      url: '/v1/inspections',
      headers: await asAdmin(),
      payload: { ...failedInspection('L-OWASP-LONG'), eventId: longId, result: 'pass', defects: [] },
    });
    expect(stored.statusCode).toBe(202);
    const read = await app.inject({ method: 'GET', url: `/v1/defects/${longId}`, headers: await asAdmin() });
    expect(read.statusCode).toBe(200);
    expect(read.json()).toMatchObject({ eventId: longId });

    const tooLong = await app.inject({
      method: 'GET',
      url: `/v1/defects/${'x'.repeat(5_000)}`,
      headers: await asAdmin(),
    });
    expect(tooLong.statusCode).toBe(414);
    expect(tooLong.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(tooLong.json()).toMatchObject({
      status: 414,
      detail: 'a path parameter is longer than any this API accepts',
    });
    expect(tooLong.body).not.toContain('xxxxx');

    // Node's HTTP parser refuses a request line over its limit before fastify has a request: only a socket shows it.
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const res = await fetch(`http://127.0.0.1:${port}/v1/audit?recordId=${'y'.repeat(20_000)}`);
    expect(res.status).toBe(431);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({ type: 'about:blank', status: 431 });
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
    // The dashboard: a page and its bundle for people's browsers, not operations of the API.
    'GET /ui': 'the quality dashboard page',
    'GET /ui/*': 'the quality dashboard page, at a view',
    'GET /ui/assets/:file': "the quality dashboard's bundle",
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

/** A local HTTP server whose answer the test sets; it records every request it gets. */
async function localServer(answer: (req: IncomingMessage, res: ServerResponse) => void = (_, res) => res.end()) {
  const requests: string[] = [];
  const state = { answer };
  const server = createServer((req, res) => {
    requests.push(`${req.method ?? ''} ${req.url ?? ''}`);
    // The body is read whole before answering, as a real server does.
    req.resume();
    req.on('end', () => state.answer(req, res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    answerWith(next: (req: IncomingMessage, res: ServerResponse) => void) {
      state.answer = next;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
type LocalServer = Awaited<ReturnType<typeof localServer>>;

const connectorContext = (name: string, env: NodeJS.ProcessEnv = {}): ConnectorContext => ({
  name,
  env,
  log: quietLog(),
  dataDir: '/tmp',
});

async function thrown(attempt: Promise<unknown>): Promise<Error> {
  const outcome = await attempt.then(
    (value: unknown) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.err).toBeInstanceOf(Error);
  return outcome.err as Error;
}

describe('API7 server-side request forgery', () => {
  let allowed: LocalServer;
  let internal: LocalServer;

  beforeAll(async () => {
    // Stands in for an address inside the plant (a metadata service, an admin UI) that nothing may be led to.
    internal = await localServer((_, res) => res.writeHead(200, { 'content-type': 'image/png' }).end('internal'));
    allowed = await localServer();
  });
  beforeEach(() => {
    internal.requests.length = 0;
    allowed.requests.length = 0;
  });
  afterAll(async () => {
    await allowed?.close();
    await internal?.close();
  });

  describe('image sources (vision.imageSources)', () => {
    const fetcher = () => createImageFetcher({ sources: [`${allowed.url}/images/`], timeoutMs: 2_000 });

    it('refuses a reference outside every source, an escape with .. and a lookalike prefix, without a request', async () => {
      const read = fetcher();
      for (const ref of [
        `${internal.url}/images/part.png`,
        `${allowed.url}/images/../admin/config.json`,
        `${allowed.url}/images/%2e%2e/admin/config.json`,
        `${allowed.url}/images-private/part.png`,
        `${allowed.url}/images`,
        'http://169.254.169.254/latest/meta-data/',
        'file:///etc/passwd',
      ]) {
        expect((await thrown(read(ref))).message).toMatch(
          /not under a configured image source \(vision\.imageSources\)/,
        );
      }
      expect(allowed.requests).toEqual([]);
      expect(internal.requests).toEqual([]);
    });

    it.each([301, 302, 307, 308])('does not follow a %i from an allowed source to another host', async (status) => {
      allowed.answerWith((_, res) => res.writeHead(status, { location: `${internal.url}/secret.png` }).end());
      const err = await thrown(fetcher()(`${allowed.url}/images/part.png`));
      expect(err).not.toBeInstanceOf(ImageUnavailableError);
      expect(err.message).toContain(`redirects (${status})`);
      expect(allowed.requests).toEqual(['GET /images/part.png']);
      expect(internal.requests).toEqual([]);
    });
  });

  describe('escalation webhook (connectors.<name>.allowedHosts)', () => {
    const connect = (config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
      escalationWebhookConnector.connect(
        escalationWebhookConnector.configSchema.parse({ kind: 'escalation-webhook', ...config }),
        connectorContext('andon', env),
      );
    const message = {
      idempotencyKey: 'PLANT1:L-OWASP:evt-1:escalation',
      site: 'PLANT1',
      line: 'L1',
      lotId: 'L-OWASP',
      lotCaseWorkflowId: 'lot-PLANT1-L-OWASP',
      waitingSince: '2026-01-01T00:00:00Z',
      text: 'lot L-OWASP waits for a disposition',
    };

    it('refuses at connect a URL from the environment whose host is not listed, naming the keys', async () => {
      const env = { ANDON_WEBHOOK_URL: 'http://169.254.169.254/latest/meta-data/' };
      const err = await thrown(
        connect({ url: '${env:ANDON_WEBHOOK_URL}', allowedHosts: ['andon.plant1.example'] }, env),
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect(err.message).toBe(
        'connectors.andon.url: host 169.254.169.254 is not in connectors.andon.allowedHosts (andon.plant1.example)',
      );
      // A listed host on another port than the one listed is another target.
      const otherPort = await thrown(
        connect(
          { url: '${env:ANDON_WEBHOOK_URL}', allowedHosts: [`127.0.0.1:${allowed.port}`] },
          { ANDON_WEBHOOK_URL: `${internal.url}/hook` },
        ),
      );
      expect(otherPort).toBeInstanceOf(ConfigError);
      expect(otherPort.message).toContain(`host 127.0.0.1:${internal.port} is not in connectors.andon.allowedHosts`);
      expect(internal.requests).toEqual([]);
    });

    it('refuses a URL from the environment with no allow-list, and a literal URL outside a given one', async () => {
      const unlisted = await thrown(connect({ url: '${env:ANDON_WEBHOOK_URL}' }, { ANDON_WEBHOOK_URL: allowed.url }));
      expect(unlisted).toBeInstanceOf(ConfigError);
      expect(unlisted.message).toMatch(/^connectors\.andon\.allowedHosts: required when connectors\.andon\.url comes/);
      const literal = await thrown(connect({ url: `${internal.url}/hook`, allowedHosts: ['andon.plant1.example'] }));
      expect(literal).toBeInstanceOf(ConfigError);
      expect(literal.message).toMatch(/^connectors\.andon\.url: host 127\.0\.0\.1:\d+ is not in/);
      expect(() =>
        escalationWebhookConnector.configSchema.parse({ url: allowed.url, allowedHosts: ['http://andon.example/'] }),
      ).toThrow(/no scheme, login or path/);
    });

    it.each([302, 307])('does not follow a %i from the webhook: the escalation fails naming it', async (status) => {
      allowed.answerWith((_, res) => res.writeHead(status, { location: `${internal.url}/admin/hook?t=secret` }).end());
      const webhook = await connect(
        { url: '${env:ANDON_WEBHOOK_URL}', allowedHosts: [`127.0.0.1:${allowed.port}`] },
        { ANDON_WEBHOOK_URL: `${allowed.url}/hook` },
      );
      try {
        const err = await thrown(webhook.port.escalate(message));
        expect(err).toBeInstanceOf(ExternalSystemError);
        expect(err).toMatchObject({ kind: 'rejected', httpStatus: status });
        expect(err.message).toBe(
          `webhook answered HTTP ${status}, a redirect to ${internal.url}; redirects are not followed`,
        );
        expect(classify('escalate', err)).toMatchObject({ nonRetryable: true });
      } finally {
        await webhook.close();
      }
      expect(allowed.requests).toEqual(['POST /hook']);
      expect(internal.requests).toEqual([]);
    });
  });
});

describe('API10 unsafe consumption of APIs', () => {
  let vendor: LocalServer;
  let mes: ConnectorInstance<MesPort>;
  let sap: ConnectorInstance<ErpPort>;

  /** Malformed 2xx bodies, each with what the error must name. */
  const OVERSIZED = JSON.stringify({ padding: 'x'.repeat(DEFAULT_MAX_RESPONSE_BYTES) });
  const MALFORMED: [string, string, string, RegExp][] = [
    ['HTML instead of JSON', 'text/html', '<html><body>Service Unavailable</body></html>', /body is not JSON/],
    ['truncated JSON', 'application/json', '{"lotId": "L-1", ', /body is not JSON/],
    ['JSON null', 'application/json', 'null', /\(root\): /],
    ['an oversized body', 'application/json', OVERSIZED, /body larger than 8388608 bytes/],
  ];

  const answer = (contentType: string, body: string, status = 200) =>
    vendor.answerWith((req, res) => {
      // The SAP CSRF handshake succeeds, so that the malformed answer is the one to the call itself.
      if (req.method === 'HEAD') return void res.writeHead(200, { 'x-csrf-token': 'owasp-token' }).end();
      res.writeHead(status, { 'content-type': contentType }).end(body);
    });

  async function malformed(attempt: Promise<unknown>, operation: string, what: RegExp, system: string) {
    const err = await thrown(attempt);
    expect(err).toBeInstanceOf(ExternalSystemError);
    expect(err).toMatchObject({ kind: 'validation', system });
    expect(err.message).toContain(`${operation}: malformed response (HTTP 20`);
    expect(err.message).toMatch(what);
    // A wrong body does not improve on retry: the activity boundary stops it for good.
    expect(classify(operation, err)).toMatchObject({ nonRetryable: true, type: ErrorType.Validation });
    return err;
  }

  beforeAll(async () => {
    vendor = await localServer();
    mes = await mesRestConnector.connect(
      mesRestConnector.configSchema.parse({ baseUrl: vendor.url, timeoutMs: 10_000 }),
      connectorContext('mes-owasp'),
    );
    sap = await sapS4Connector.connect(
      sapS4Connector.configSchema.parse({ baseUrl: vendor.url, sapClient: '100', username: 'u', password: 'p' }),
      connectorContext('sap-owasp'),
    );
  });
  afterAll(async () => {
    await mes?.close();
    await sap?.close();
    await vendor?.close();
  });

  const holdRequest = {
    idempotencyKey: 'owasp-hold-1',
    lotId: 'L-OWASP',
    workOrder: '1000100',
    reason: 'vision: scratch',
    defectClass: 'scratch',
    line: 'L1',
    station: 'S1',
  };
  const movement = {
    idempotencyKey: 'defect:owasp-1:block',
    movementType: '344' as const,
    material: 'BRKT-200',
    plant: '1010',
    storageLocation: '0001',
    batch: 'B-OWASP',
    quantity: 1,
    unit: 'PC',
    headerText: 'Holdfast vision reject',
  };
  const notification = {
    idempotencyKey: 'lot-case:owasp-1:notification',
    notificationType: 'F3',
    text: 'Vision reject',
    material: 'BRKT-200',
    plant: '1010',
    batch: 'B-OWASP',
    quantity: 1,
    unit: 'PC',
    firstItem: { idempotencyKey: 'defect:owasp-1:item', defectCodeGroup: 'VISUAL', defectCode: '0001', text: 'x' },
  };

  /** Each read and create the tests feed malformed answers, with its operation name. */
  const CALLS: [string, string, () => Promise<unknown>][] = [
    ['MES lot read', 'getLot', () => mes.port.getLot('L-OWASP')],
    ['MES hold look-up', 'holdLot', () => mes.port.holdLot(holdRequest)],
    ['MES hold create', 'holdLot', () => mes.port.holdLot(holdRequest, { lookupFirst: false })],
    ['SAP material document read', 'postGoodsMovement 344 (look-up)', () => sap.port.postGoodsMovement(movement)],
    [
      'SAP material document create',
      'postGoodsMovement 344',
      () => sap.port.postGoodsMovement(movement, { lookupFirst: false }),
    ],
    [
      'SAP quality notification create',
      'raiseQualityNotification',
      () => sap.port.raiseQualityNotification(notification, { lookupFirst: false }),
    ],
  ];

  describe.each(CALLS)('%s', (_, operation, call) => {
    const system = () =>
      operation.startsWith('postGoods') || operation.startsWith('raise') ? 'sap-owasp' : 'mes-owasp';

    it.each(MALFORMED)('refuses %s as validation, naming it', async (__, contentType, body, what) => {
      answer(contentType, body);
      await malformed(call(), operation, what, system());
    });
  });

  it('MES: a lot with a field missing or of the wrong type names the fields, and returns nothing', async () => {
    const lot = {
      lotId: 'L-OWASP',
      sku: 'BRKT-200',
      workOrder: '1000100',
      quantity: 500,
      unit: 'PC',
      status: 'released',
      erpPlant: '1010',
      storageLocation: '0001',
      batch: 'B-OWASP',
    };
    answer('application/json', JSON.stringify(lot));
    expect(await mes.port.getLot('L-OWASP')).toMatchObject({ lotId: 'L-OWASP', quantity: 500 });
    const { batch: _, ...noBatch } = lot;
    answer('application/json', JSON.stringify({ ...noBatch, quantity: '500', status: 7 }));
    const err = await malformed(mes.port.getLot('L-OWASP'), 'getLot', /quantity: .+; status: .+; batch: /, 'mes-owasp');
    expect(err.message).toMatch(/quantity: Invalid input: expected number, received string/);
  });

  it('MES: a hold list or created hold of the wrong shape names the fields', async () => {
    answer('application/json', JSON.stringify({ items: [{ holdId: 42, lotId: 'L-OWASP' }] }));
    await malformed(mes.port.holdLot(holdRequest), 'holdLot', /items\.0\.holdId: .+items\.0\.status/, 'mes-owasp');
    answer('application/json', JSON.stringify({ holdId: '', lotId: 'L-OWASP', status: 'active' }), 201);
    await malformed(
      mes.port.holdLot(holdRequest, { lookupFirst: false }),
      'holdLot',
      /holdId: .+externalReference: /,
      'mes-owasp',
    );
  });

  it('SAP: an OData read or create of the wrong shape names the properties', async () => {
    answer('application/json', JSON.stringify({ d: { results: [{ MaterialDocumentYear: 2026 }] } }));
    await malformed(
      sap.port.postGoodsMovement(movement),
      'postGoodsMovement 344 (look-up)',
      /d\.results\.0\.MaterialDocumentYear: .+d\.results\.0\.MaterialDocument: /,
      'sap-owasp',
    );
    // V4 sends the entity bare: a V2 envelope is the wrong shape.
    answer('application/json', JSON.stringify({ d: { QualityNotification: '10000001' } }), 201);
    await malformed(
      sap.port.raiseQualityNotification(notification, { lookupFirst: false }),
      'raiseQualityNotification',
      /QualityNotification: /,
      'sap-owasp',
    );
  });
});
