/**
 * What the Temporal service stores for a lot case is ciphertext: its history read by a client without the codec shows
 * no detection, no disposition and no signer, only payloads labelled binary/encrypted with the current key id. The
 * API's codec endpoint (the Web UI's remote codec) turns them back into the originals.
 */
import { Client, Connection } from '@temporalio/client';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../api/app';
import { createTemporalWorkflowGateway } from '../../infra/temporal/gateway';
import {
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  PAYLOAD_KEY_ID_ENV,
  type JsonPayload,
  generatePayloadKeyEntry,
  holdfastPayloadCodec,
  payloadToJson,
} from '../../infra/temporal/payload-codec';
import { dispositionUpdate, lotCaseStateQuery, lotCaseWorkflowId } from '../../workflows/contracts';
import { eventually } from '../support/eventually';
import { FakeErp, FakeMes, RecordingEscalation } from '../support/fake-ports';
import { asAdmin, bearerFor, caseSignature, testSigningKey } from '../support/identity';
import { readTestEnv } from '../support/test-env';
import { WorkflowHarness, detection } from '../support/workflow-harness';

const harness = new WorkflowHarness();
let rawConnection: Connection;
let api: FastifyInstance;
let authorization: { authorization: string };
const UI_ORIGIN = 'http://127.0.0.1:8233';

beforeAll(async () => {
  await harness.setUp();
  rawConnection = await Connection.connect({ address: readTestEnv().temporalAddress });
  api = await buildApp({
    pool: harness.pool,
    gateway: createTemporalWorkflowGateway(harness.client, { taskQueue: 'unused' }),
    // Signed in, as in production: the Web UI passes the user's token on.
    config: {
      ...harness.config,
      api: { ...harness.config.api, codecUiOrigins: [UI_ORIGIN], codecAccess: 'signed-in' },
    },
    namespace: harness.namespace,
    payloadCodec: harness.payloadCodec,
    signingKey: await testSigningKey(),
  });
  authorization = await asAdmin();
});

afterAll(async () => {
  await api?.close();
  await rawConnection?.close();
  await harness.tearDown();
});

/**
 * Every payload of a history, as the codec protocol's JSON, except search attributes (indexed, so never encrypted) and
 * the local-activity markers' `data` note, which the SDK's core writes itself (ids, attempt, times; never the inputs).
 */
function payloadsIn(node: unknown, found: JsonPayload[] = [], notes: JsonPayload[] = []): JsonPayload[] {
  if (Array.isArray(node)) node.forEach((n) => payloadsIn(n, found, notes));
  else if (node !== null && typeof node === 'object' && !(node instanceof Uint8Array)) {
    const record = node as Record<string, unknown>;
    const metadata = record.metadata as Record<string, unknown> | undefined;
    if (metadata && typeof metadata === 'object' && metadata.encoding instanceof Uint8Array) {
      found.push(payloadToJson(record));
      return found;
    }
    for (const [key, value] of Object.entries(record)) {
      if (key === 'searchAttributes') continue;
      if (key === 'details' && 'markerName' in record) {
        const { data, ...rest } = value as Record<string, unknown>;
        payloadsIn(data, notes);
        payloadsIn(rest, found, notes);
      } else payloadsIn(value, found, notes);
    }
  }
  return found;
}

const utf8 = (base64: string | null | undefined) => Buffer.from(base64 ?? '', 'base64').toString('utf8');

async function decodeOverHttp(payloads: JsonPayload[], headers: Record<string, string> = {}) {
  return api.inject({
    method: 'POST',
    url: '/codec/decode',
    headers: { 'x-namespace': harness.namespace, ...authorization, ...headers },
    payload: { payloads },
  });
}

test('a lot case stores only ciphertext, and the codec endpoint decodes it for the Web UI', async () => {
  const mes = new FakeMes();
  const { worker, taskQueue } = await harness.worker({
    mes,
    erp: new FakeErp(),
    escalation: new RecordingEscalation(),
  });
  const part = detection({ lotId: `L-ENC-${Date.now()}` });
  mes.addLot({ lotId: part.lotId });
  const workflowId = lotCaseWorkflowId('PLANT1', part.lotId);

  await worker.runUntil(async () => {
    const handle = await harness.enrol(part, harness.policy(), taskQueue);
    await eventually('the case awaits its disposition', async () => {
      return (await handle.query(lotCaseStateQuery)).stage === 'awaiting-disposition';
    });
    await handle.executeUpdate(dispositionUpdate, {
      args: [
        {
          decision: 'scrap',
          reason: 'MRB decision 7',
          decidedBy: 'qe.jane.doe',
          signatures: [caseSignature({ id: 'qe.jane.doe', roles: ['quality-engineer'] })],
          requestId: `req-${part.eventId}`,
        },
      ],
    });
  });

  // A client without the codec: what the Temporal service, its database and a bare `temporal workflow show` see.
  const raw = new Client({ connection: rawConnection, namespace: harness.namespace });
  const history = await raw.workflow.getHandle(workflowId).fetchHistory();
  const markerNotes: JsonPayload[] = [];
  const stored = payloadsIn(history.events, [], markerNotes);
  // Start input, the part's signal, activity inputs and results, the update and its outcome.
  expect(stored.length).toBeGreaterThan(6);
  for (const payload of stored) {
    expect(utf8(payload.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(utf8(payload.metadata![KEY_ID_METADATA])).toBe(process.env[PAYLOAD_KEY_ID_ENV]);
    expect(() => JSON.parse(utf8(payload.data)) as unknown).toThrow();
  }
  const everything = [...stored, ...markerNotes].map((p) => utf8(p.data)).join('\n');
  for (const secret of ['qe.jane.doe', part.eventId, part.partId, 'MRB decision 7']) {
    expect(everything).not.toContain(secret);
  }
  // Indexed for search, so plain; they carry plant, lot and product identities only (docs/temporal.md).
  const indexed = await raw.workflow.getHandle(workflowId).describe();
  const indexedValues = JSON.stringify(indexed.typedSearchAttributes.getAll().map((pair) => pair.value));
  expect(indexedValues).toContain(part.lotId);
  for (const secret of ['qe.jane.doe', part.eventId, part.partId]) expect(indexedValues).not.toContain(secret);

  const reply = await decodeOverHttp(stored, { origin: UI_ORIGIN });
  expect(reply.statusCode).toBe(200);
  expect(reply.headers['access-control-allow-origin']).toBe(UI_ORIGIN);
  const decoded = reply.json<{ payloads: JsonPayload[] }>().payloads;
  expect(decoded).toHaveLength(stored.length);
  expect(decoded.every((p) => utf8(p.metadata!.encoding) !== ENCRYPTED_ENCODING)).toBe(true);
  const plain = decoded.map((p) => utf8(p.data)).join('\n');
  for (const secret of ['qe.jane.doe', part.eventId, part.partId, 'MRB decision 7']) expect(plain).toContain(secret);
});

test('the codec endpoint encodes what it decodes, and passes unencrypted payloads through', async () => {
  const original = { metadata: { encoding: Buffer.from('json/plain').toString('base64') }, data: btoa('"hello"') };
  const encoded = await api.inject({
    method: 'POST',
    url: '/codec/encode',
    headers: authorization,
    payload: { payloads: [original] },
  });
  expect(encoded.statusCode).toBe(200);
  const [sealed] = encoded.json<{ payloads: JsonPayload[] }>().payloads;
  expect(utf8(sealed!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);

  const decoded = await decodeOverHttp([sealed!, original]);
  expect(decoded.json<{ payloads: JsonPayload[] }>().payloads).toEqual([original, original]);
});

test('a preflight from the Web UI origin may send Authorization and X-Namespace; other origins get no CORS grant', async () => {
  const preflight = (origin: string) =>
    api.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-namespace',
      },
    });
  const allowed = await preflight(UI_ORIGIN);
  expect(allowed.statusCode).toBe(204);
  expect(allowed.headers['access-control-allow-origin']).toBe(UI_ORIGIN);
  expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/Authorization/);
  expect(String(allowed.headers['access-control-allow-headers'])).toMatch(/X-Namespace/);
  expect(String(allowed.headers['access-control-allow-methods'])).toMatch(/POST/);

  const other = await preflight('https://elsewhere.example');
  expect(other.headers['access-control-allow-origin']).toBeUndefined();
});

test('decoding needs a signed-in quality engineer, quality manager, auditor or admin', async () => {
  const anonymous = await api.inject({ method: 'POST', url: '/codec/decode', payload: { payloads: [] } });
  expect(anonymous.statusCode).toBe(401);
  const operator = await decodeOverHttp(
    [],
    await bearerFor({ username: 'op', roles: ['operator'], sites: ['PLANT1'] }),
  );
  expect(operator.statusCode).toBe(403);
  const auditor = await decodeOverHttp([], await bearerFor({ username: 'aud', roles: ['auditor'], sites: ['PLANT1'] }));
  expect(auditor.statusCode).toBe(200);
});

test('bad requests are refused naming the field; a payload under an unknown key id is 422 naming the id', async () => {
  const wrongNamespace = await decodeOverHttp([], { 'x-namespace': 'someone-else' });
  expect(wrongNamespace.statusCode).toBe(400);
  expect(wrongNamespace.json()).toMatchObject({ errors: [{ field: 'X-Namespace' }] });

  const notBase64 = await decodeOverHttp([{ metadata: { encoding: 'not base64!' }, data: '' }]);
  expect(notBase64.statusCode).toBe(400);
  expect(notBase64.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(JSON.stringify(notBase64.json())).toMatch(/payloads.*0.*metadata.*encoding/);

  const elsewhere = holdfastPayloadCodec({ HOLDFAST_PAYLOAD_KEYS: generatePayloadKeyEntry('other-site') });
  const [foreign] = await elsewhere.encode([{ metadata: {}, data: Buffer.from('"x"') }]);
  const unknownKey = await decodeOverHttp([payloadToJson(foreign!)]);
  expect(unknownKey.statusCode).toBe(422);
  expect(unknownKey.json()).toMatchObject({ detail: expect.stringMatching(/key id "other-site"/) as unknown });
});
