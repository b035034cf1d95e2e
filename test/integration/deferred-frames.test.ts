/**
 * Frames kept while their image source was down (holdfast.frame_deferred), against real PostgreSQL: what an operator
 * sees and does over the inference worker's HTTP edge, and the retry loop giving up a frame kept too long. The
 * pipeline is a typed stand-in whose image source stays down (or comes back); the worker test covers the real one.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import { ImageUnavailableError } from '../../infra/vision/image-source';
import {
  createPgDeferredFrameAdmin,
  createPgDeferredFrameStore,
  startDeferredFrameRetry,
} from '../../infra/inference/deferred-frames';
import { openFrameHttp, type FrameHttpServer } from '../../infra/inference/frame-http';
import { createAuthenticator } from '../../infra/identity/authenticate';
import { bearerFor, stationKey, testSigningKey } from '../support/identity';
import { createAccounts } from '../../infra/identity/accounts';
import type { FrameOutcome, InferencePipeline } from '../../infra/inference/inference-pipeline';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { auditRecordsOf } from '../support/audit';
import { eventually } from '../support/eventually';
import { captureLog, quietLog } from '../support/quiet-log';
import { testPool } from '../support/test-env';

const run = `df-${randomUUID().slice(0, 8)}`;
const topic = `holdfast/PLANT1/L1/S1/frames`;
let pool: Pool;

/** The image source is down until `sourceUp` is set; then the frame is inspected (a pass). */
let sourceUp = false;
const handled: string[] = [];
/** What the stand-in was told to count, as the real pipeline's stats would. */
const counted: string[] = [];
const pipeline: Pick<InferencePipeline, 'handleFrame' | 'countRefused'> = {
  countRefused: (reason) => void counted.push(reason),
  async handleFrame({ payload }): Promise<FrameOutcome> {
    const frameId = (JSON.parse(payload.toString('utf8')) as { frameId: string }).frameId;
    if (!sourceUp) throw new ImageUnavailableError(`image source for ${frameId} answered 503`);
    handled.push(frameId);
    return { kind: 'refused', reason: 'no-recipe', detail: 'stand-in: inspected' };
  },
};

async function keep(frameId: string, deferredSecondsAgo = 0): Promise<string> {
  const eventId = `${run}-${frameId}`;
  const payload = Buffer.from(JSON.stringify({ frameId, imageRef: `http://images.example/${frameId}.png` }));
  await createPgDeferredFrameStore(pool, { firstRetryMs: 3_600_000 }).defer({
    eventId,
    topic,
    payload,
    error: 'image source answered 503',
  });
  await pool.query(
    `UPDATE holdfast.frame_deferred SET deferred_at = now() - make_interval(secs => $2) WHERE event_id = $1`,
    [eventId, deferredSecondsAgo],
  );
  return eventId;
}

const kept = async (eventId: string) =>
  (await pool.query(`SELECT 1 FROM holdfast.frame_deferred WHERE event_id = $1`, [eventId])).rowCount === 1;
const refusals = async (frameId: string) =>
  (
    await pool.query<{ reason: string; topic: string; payload_sha256: string }>(
      `SELECT reason, topic, payload_sha256 FROM holdfast.frame_rejection WHERE frame_id = $1`,
      [frameId],
    )
  ).rows;

beforeAll(() => {
  pool = testPool();
});

afterAll(async () => {
  await pool.query(`DELETE FROM holdfast.frame_deferred WHERE event_id LIKE $1`, [`${run}-%`]);
  await pool.query(`DELETE FROM holdfast.frame_rejection WHERE frame_id LIKE $1`, [`${run}%`]);
  await pool.end();
});

describe('the kept frames over the HTTP edge', () => {
  let http: FrameHttpServer;
  let integrator: { authorization: string };
  const base = loadConfig();
  beforeAll(async () => {
    // Other tests' kept frames may share the table: this one's frames are told apart by their event ids.
    await pool.query(`DELETE FROM holdfast.frame_deferred WHERE event_id LIKE $1`, [`${run}-%`]);
    http = await openFrameHttp({
      config: { ...base, vision: { ...base.vision, http: { ...base.vision.http, port: 0 } } },
      pipeline,
      deferredFrames: createPgDeferredFrameAdmin(pool, pipeline, createAuditTrail(pool)),
      log: quietLog(),
      authenticator: createAuthenticator({
        identity: base.identity,
        signingKey: await testSigningKey(),
        accounts: createAccounts(pool, createAuditTrail(pool), { maxFailedSignIns: 5, lockForMs: 60_000 }),
      }),
    });
    integrator = await bearerFor({ roles: ['integrator'] });
  });
  afterAll(() => http.close());

  const frameUrl = (eventId: string, action: 'retry' | 'drop') =>
    `${http.url}/v1/deferred-frames/${encodeURIComponent(eventId)}/${action}`;
  const retry = (eventId: string) => fetch(frameUrl(eventId, 'retry'), { method: 'POST', headers: integrator });
  const drop = (eventId: string, body: unknown) =>
    fetch(frameUrl(eventId, 'drop'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...integrator },
      body: JSON.stringify(body),
    });

  it('lists them oldest first, makes one due now, and drops one as a recorded refusal', async () => {
    const older = await keep(`${run}-a`, 120);
    const newer = await keep(`${run}-b`, 60);

    const listed = await fetch(`${http.url}/v1/deferred-frames?limit=500`, { headers: integrator });
    expect(listed.status).toBe(200);
    const body = (await listed.json()) as { total: number; frames: { eventId: string; attempts: number }[] };
    const mine = body.frames.filter((f) => f.eventId.startsWith(`${run}-`));
    expect(mine.map((f) => f.eventId)).toEqual([older, newer]);
    expect(mine[0]).toMatchObject({ topic, attempts: 1, lastError: 'image source answered 503' });
    expect(body.total).toBeGreaterThanOrEqual(2);

    const retried = await retry(newer);
    expect(retried.status).toBe(200);
    const due = (await retried.json()) as { nextAttemptAt: string };
    expect(Date.parse(due.nextAttemptAt)).toBeLessThanOrEqual(Date.now() + 1_000);
    // Audited: the operator is only what the request can say (no body, so no claimed name), with the old due time.
    const [retryRecord, ...noMoreRetries] = await auditRecordsOf(pool, newer);
    expect(noMoreRetries).toEqual([]);
    expect(retryRecord).toMatchObject({
      action: 'deferred-frame.retry',
      recordType: 'deferred-frame',
      actor: { kind: 'user', id: 'local:integrator', displayName: 'integrator', address: '127.0.0.1' },
      new: { nextAttemptAt: due.nextAttemptAt },
      reason: null,
      outcome: 'done',
    });
    expect(Date.parse((retryRecord!.old as { nextAttemptAt: string }).nextAttemptAt)).toBeGreaterThan(Date.now());

    const dropped = await drop(older, { droppedBy: 'qe.jones', reason: 'image store lost the file' });
    expect(dropped.status).toBe(200);
    expect(await dropped.json()).toMatchObject({ eventId: older, rejectionId: expect.any(String) });
    expect(await kept(older)).toBe(false);
    const [refusal] = await refusals(`${run}-a`);
    expect(refusal).toMatchObject({ topic, reason: 'dropped: by qe.jones: image store lost the file' });
    expect(refusal!.payload_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(counted.filter((r) => r === 'dropped')).toHaveLength(1);
    const dropRecords = await auditRecordsOf(pool, older);
    expect(dropRecords).toHaveLength(1);
    expect(dropRecords[0]).toMatchObject({
      action: 'deferred-frame.drop',
      actor: { kind: 'user', id: 'local:integrator', displayName: 'integrator', address: '127.0.0.1' },
      old: { eventId: older, topic, attempts: 1, lastError: 'image source answered 503' },
      new: { rejectionReason: 'dropped: by qe.jones: image store lost the file' },
      reason: 'image store lost the file',
      outcome: 'done',
    });

    // Dropped once: a second drop finds nothing (and counts and records nothing).
    const again = await drop(older, { droppedBy: 'qe.jones', reason: 'again' });
    expect(again.status).toBe(404);
    expect(again.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(await refusals(`${run}-a`)).toHaveLength(1);
    expect(counted.filter((r) => r === 'dropped')).toHaveLength(1);
    expect(await auditRecordsOf(pool, older)).toHaveLength(1);
  });

  it('lets each role and key only where the edge declares (role × route)', async () => {
    const s1 = (await stationKey(pool, { site: 'PLANT1', line: 'L1', station: 'S1' })).headers;
    const as = (roles: Parameters<typeof bearerFor>[0]['roles']) => bearerFor({ roles, sites: ['PLANT1'] });
    const frames = (station: string) => `${http.url}/v1/stations/PLANT1/L1/${station}/frames`;
    const call = async (method: string, url: string, headers: Record<string, string>, body?: unknown) =>
      (
        await fetch(url, {
          method,
          headers: { ...headers, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        })
      ).status;
    const list = `${http.url}/v1/deferred-frames`;
    const dropUrl = frameUrl(`${run}-nope`, 'drop');
    const dropBody = { droppedBy: 'x', reason: 'y' };
    // 503 and 404: the access check let the call through (the stand-in's image source is down; no such kept frame).
    expect([
      await call('POST', frames('S1'), {}, {}),
      await call('GET', list, {}),
      await call('GET', `${http.url}/docs/json`, {}),
      await call('POST', frames('S1'), await as(['operator']), {}),
      await call('GET', list, await as(['operator'])),
      await call('GET', list, await as(['quality-manager'])),
      await call('POST', dropUrl, await as(['quality-engineer']), dropBody),
      await call('POST', dropUrl, await as(['integrator']), dropBody),
      await call('POST', frames('S1'), s1, {}),
      await call('POST', frames('S2'), s1, {}),
      await call('GET', list, s1),
      await call('POST', dropUrl, s1, dropBody),
      await call('POST', frames('S1'), await bearerFor({ roles: ['operator'], sites: ['PLANT2'] }), {}),
    ]).toEqual([401, 401, 200, 503, 403, 200, 403, 404, 503, 403, 403, 403, 403]);
  });

  it('refuses a drop without who and why, naming the field, and keeps the frame', async () => {
    const eventId = await keep(`${run}-c`);
    const res = await drop(eventId, { reason: '  ', extra: 1 });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    const text = await res.text();
    expect(text).toContain('droppedBy');
    expect(text).toContain('reason');
    expect(await kept(eventId)).toBe(true);
    expect(await auditRecordsOf(pool, eventId)).toEqual([]);

    const badLimit = await fetch(`${http.url}/v1/deferred-frames?limit=0`, { headers: integrator });
    expect(badLimit.status).toBe(400);
    expect(await badLimit.text()).toContain('limit');
    const unknown = await retry(`${run}-nope`);
    expect(unknown.status).toBe(404);
  });
});

describe('the retry loop', () => {
  it('gives up a frame kept longer than the limit, recorded as refused, and inspects a younger one once its image is back', async () => {
    const tooOld = await keep(`${run}-old`, 3_600);
    const young = await keep(`${run}-young`, 0);
    await pool.query(`UPDATE holdfast.frame_deferred SET next_attempt_at = now() WHERE event_id = ANY($1)`, [
      [tooOld, young],
    ]);
    const log = captureLog();
    const givenUp = () =>
      log.lines
        .filter((l) => l.level === 'warn' && l.msg === 'deferred frame given up')
        .map((l) => String(l.meta?.eventId));
    const retry = startDeferredFrameRetry({
      pool,
      pipeline,
      audit: createAuditTrail(pool),
      intervalMs: 50,
      maxBackoffMs: 100,
      maxAgeMs: 60_000,
      log,
    });
    try {
      const [refusal] = await eventually(
        'the old frame given up',
        () => refusals(`${run}-old`),
        (rows) => rows.length > 0,
      );
      expect(refusal!.reason).toMatch(
        /^image-unavailable: kept since .*, 2 attempts; image source for .* answered 503$/,
      );
      expect(await kept(tooOld)).toBe(false);
      expect(await auditRecordsOf(pool, tooOld)).toEqual([
        expect.objectContaining({
          action: 'deferred-frame.give-up',
          actor: { kind: 'system', id: 'deferred-frame-retry' },
          old: expect.objectContaining({ eventId: tooOld, attempts: 1 }),
          new: { rejectionId: expect.any(String), rejectionReason: refusal!.reason },
          reason: 'kept longer than vision.imageRetryMaxAge (60 s) without a readable image',
        }),
      ]);
      // Every frame the loop gave up (the table is shared: maybe more than this test's) is counted once.
      expect(counted.filter((r) => r === 'image-unavailable')).toEqual(givenUp().map(() => 'image-unavailable'));
      expect(givenUp()).toContain(tooOld);
      // The young one is still kept and tried again, not given up.
      await eventually(
        'the young frame tried again',
        async () => {
          const r = await pool.query<{ attempts: number }>(
            `SELECT attempts FROM holdfast.frame_deferred WHERE event_id = $1`,
            [young],
          );
          return r.rows[0]?.attempts ?? 0;
        },
        (attempts) => attempts >= 2,
      );
      expect(await refusals(`${run}-young`)).toEqual([]);

      sourceUp = true;
      await eventually('the young frame inspected', () => handled.includes(`${run}-young`));
      await eventually(
        'the young frame no longer kept',
        () => kept(young),
        (isKept) => !isKept,
      );
      expect(handled).not.toContain(`${run}-old`);
      // Its attempts and its inspection are the loop at work, not changes of a record: nothing audited.
      expect(await auditRecordsOf(pool, young)).toEqual([]);
    } finally {
      await retry.close();
    }
  });
});
