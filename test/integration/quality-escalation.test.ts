/**
 * Statistical escalation end to end (docs/analytics.md#statistical-escalation) against real PostgreSQL, a real
 * Temporal dev server and the MES simulator: a consecutive-NC rule stored through the route (versioned, audited);
 * inspections stored with insertInspections trip it exactly at the Nth first nonconforming part of its station, not
 * before (a re-inspection, a shadow result and another station's parts do not count); the escalation alerts and holds
 * the line in the MES once although the MES's first answer is lost (the retry finds the hold by its key); a signed
 * release releases the hold once; a rule change through the route applies at the next pass without a restart; a
 * chart's limits are recomputed from a baseline and checked against a computation here. The site is this run's own.
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { loadConfig } from '../../infra/config/load';
import type { HoldfastConfig } from '../../infra/config/schema';
import { createPool } from '../../infra/db/pool';
import { type InspectionRecord, insertInspections } from '../../infra/ingest/inspection.repository';
import { lineRuleEvaluatorWorkflowId } from '../../workflows/contracts';
import { auditRecordsOf } from '../support/audit';
import { eventually } from '../support/eventually';
import { startHoldfastStack, type HoldfastStack } from '../support/stack';
import { readTestEnv } from '../support/test-env';

const run = randomUUID().replace(/-/g, '').slice(0, 8).toUpperCase();
const SITE = `QE${run}`;
const LINE = 'L1';
const T0 = Date.parse('2026-04-01T08:00:00.000Z');

let pool: Pool;
let stack: HoldfastStack;
let seq = 0;

interface Part {
  part: string;
  station?: string;
  fail?: boolean;
  mode?: 'production' | 'shadow';
  /** Seconds after T0 (default: the order written). */
  at?: number;
  defects?: string[];
}

/** Inspections as ingest stores them, in one transaction (one batch): the event ids in order. */
async function store(parts: Part[]): Promise<string[]> {
  const rows: InspectionRecord[] = parts.map((p) => {
    seq += 1;
    const fail = p.fail ?? false;
    return {
      eventId: `${run}-E${String(seq).padStart(4, '0')}`,
      site: SITE,
      line: LINE,
      station: p.station ?? 'S1',
      partId: `${run}-${p.part}`,
      sku: 'BRKT-200',
      lotId: 'L-0001',
      workOrder: '1000100',
      result: fail ? 'fail' : 'pass',
      defects: (p.defects ?? (fail ? ['scratch'] : [])).map((c) => ({ class: c, score: 0.9 })),
      modelVersion: 'vision-1.0.0',
      recipeVersion: 'BRKT-200@1',
      inspectedAt: new Date(T0 + (p.at ?? seq) * 1000).toISOString(),
      payloadSha256: 'x'.repeat(64),
      mode: p.mode ?? 'production',
    };
  });
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await insertInspections(client, rows);
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  return rows.map((r) => r.eventId);
}

/** The evaluator's cursor: parts counted so far (null before its first pass). */
async function counted(): Promise<number | null> {
  const res = await pool.query<{ parts: string }>(
    `SELECT parts FROM holdfast.quality_rule_cursor WHERE site = $1 AND line = $2`,
    [SITE, LINE],
  );
  return res.rows[0] ? Number(res.rows[0].parts) : null;
}

interface EscalationRow {
  escalation_id: string;
  version: number;
  state: string;
  evidence: { points: { id: string }[] };
}

/** The last inspection the evaluator read. */
async function cursorAt(): Promise<string | undefined> {
  const res = await pool.query<{ event_id: string }>(
    `SELECT event_id FROM holdfast.quality_rule_cursor WHERE site = $1 AND line = $2`,
    [SITE, LINE],
  );
  return res.rows[0]?.event_id;
}

async function escalations(): Promise<EscalationRow[]> {
  const res = await pool.query<EscalationRow>(
    `SELECT escalation_id, version, state, evidence FROM holdfast.quality_escalation WHERE site = $1 ORDER BY created_at`,
    [SITE],
  );
  return res.rows;
}

const mes = async <T>(method: 'GET' | 'PUT', url: string, payload?: object): Promise<T> => {
  const res = await stack.mes.inject({ method, url, ...(payload ? { payload } : {}) });
  if (res.statusCode >= 300) throw new Error(`MES ${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json<T>();
};

const api = (method: 'GET' | 'PUT' | 'POST', url: string, payload?: object) =>
  stack.api.inject({ method, url, headers: stack.engineer.headers, ...(payload ? { payload } : {}) });

beforeAll(async () => {
  const env = readTestEnv();
  pool = createPool(env.databaseUrl, { max: 6 });
  const base = loadConfig();
  const plant = base.sites[0]!;
  const config: HoldfastConfig = {
    ...base,
    sites: [
      {
        ...plant,
        id: SITE,
        escalationPolicy: 'hold-line',
        lines: [{ id: LINE, stations: plant.lines[0]!.stations.filter((s) => s.id === 'S1' || s.id === 'S2') }],
      },
    ],
    qualityRules: {
      enabled: true,
      evaluationInterval: '200ms',
      batchSize: 3,
      maxBatches: 2,
      releaseCheckInterval: '3s',
      seed: [
        {
          site: SITE,
          ruleId: 'fpy-s2',
          line: LINE,
          station: 'S2',
          definition: { kind: 'fpy-below', threshold: 0.5, window: { parts: 1000 } },
          active: true,
        },
      ],
    },
  };
  stack = await startHoldfastStack({
    pool,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    config,
    seedDemo: true,
  });
  // Rules apply from the evaluator's first pass on: wait for it before storing anything.
  await eventually('the line evaluator’s first pass', counted, { timeoutMs: 30_000 });
});

afterAll(async () => {
  await stack?.client.workflow
    .getHandle(lineRuleEvaluatorWorkflowId(SITE, LINE))
    .terminate('test done')
    .catch(() => undefined);
  await stack?.stop();
  await pool?.end();
});

test('the seed in temporal.yaml is stored as version 1 of its rule, audited as from temporal.yaml', async () => {
  const listed = await api('GET', `/v1/quality-rules?site=${SITE}`);
  expect(listed.json<{ rules: unknown[] }>().rules).toEqual([
    expect.objectContaining({ ruleId: 'fpy-s2', version: 1, station: 'S2', changedBy: 'temporal.yaml' }),
  ]);
  const [seeded] = await auditRecordsOf(pool, `${SITE}/fpy-s2`);
  expect(seeded).toMatchObject({ action: 'quality-rule.create', actor: { kind: 'system', id: 'temporal.yaml' } });
});

test('a consecutive-NC rule holds the line once, and only a signed release releases it, once', async () => {
  const created = await api('PUT', `/v1/quality-rules/${SITE}/nc3`, {
    line: LINE,
    station: 'S1',
    definition: { kind: 'consecutive-nc', count: 3 },
    reason: 'three bad brackets in a row stop the line',
    expectedVersion: 0,
  });
  expect(created.statusCode).toBe(200);
  expect(created.json()).toMatchObject({ ruleId: 'nc3', version: 1, station: 'S1', evaluating: true });
  const [createdAudit] = await auditRecordsOf(pool, `${SITE}/nc3`);
  expect(createdAudit).toMatchObject({
    action: 'quality-rule.create',
    actor: { id: stack.engineer.id },
    new: { version: 1, definition: { kind: 'consecutive-nc', count: 3 } },
  });

  // The MES's answer to the first line hold is lost after it committed: the activity's retry must find that hold.
  await mes('PUT', '/__faults', { dropResponse: { remaining: 1, pathContains: `/lines/${LINE}/holds` } });

  // Two first NC at S1, with what must not count or break the run between them: S2's NC and pass, a shadow NC.
  const first = await store([
    { part: 'P1' },
    { part: 'P2', fail: true },
    { part: 'P2', station: 'S2', fail: false },
    { part: 'P9', station: 'S2', fail: true },
    { part: 'P3', fail: true },
    { part: 'P5', fail: true, mode: 'shadow' },
  ]);
  // A re-inspection of P2 that passes (a later time, same station): not a first inspection, it breaks nothing.
  const [again] = await store([{ part: 'P2', fail: false }]);
  await eventually('the evaluator read the re-inspection', async () => (await cursorAt()) === again);
  expect(await escalations()).toEqual([]);

  const [p4] = await store([{ part: 'P4', fail: true }]);
  const [escalation] = await eventually('the line held', async () => {
    const es = await escalations();
    return es.length === 1 && es[0]!.state === 'held' ? es : undefined;
  });
  const id = escalation!.escalation_id;
  expect(escalation!.evidence.points.map((p) => p.id)).toEqual([first[1], first[4], p4]);

  const key = `quality-escalation:${id}:hold`;
  const holds = await mes<{ items: { holdId: string; status: string; line: string }[] }>(
    'GET',
    `/api/v1/production-holds?externalReference=${encodeURIComponent(key)}`,
  );
  expect(holds.items).toHaveLength(1);
  expect(holds.items[0]).toMatchObject({ line: LINE, status: 'ACTIVE' });
  expect(await mes('GET', '/__sim/production-holds/counts')).toMatchObject({ holds: 1, active: 1 });
  expect(await mes('GET', `/api/v1/lines/${LINE}/status`)).toMatchObject({ status: 'ON_HOLD' });
  const faults = await mes<{ counters: { responsesDropped: number } }>('GET', '/__faults');
  expect(faults.counters.responsesDropped).toBe(1);
  await mes('PUT', '/__faults', {});

  const listed = await api('GET', `/v1/quality-escalations?site=${SITE}`);
  expect(listed.statusCode).toBe(200);
  expect(listed.json().escalations[0]).toMatchObject({
    escalationId: id,
    ruleId: 'nc3',
    version: 1,
    policy: 'hold-line',
    state: 'held',
    hold: { holdId: holds.items[0]!.holdId, status: 'ACTIVE' },
    evidence: { kind: 'consecutive-nc', count: 3 },
  });

  // Unsigned, wrong password: refused, and the hold stays.
  const release = `/v1/quality-escalations/${id}/release`;
  expect((await api('POST', release, { reason: 'fixture re-clamped' })).statusCode).toBe(400);
  const wrong = await api('POST', release, {
    reason: 'fixture re-clamped',
    signature: { meaning: 'approval', password: 'not-the-password' },
  });
  expect(wrong.statusCode).toBe(401);
  const released = await api('POST', release, { reason: 'fixture re-clamped', signature: stack.engineer.signature() });
  expect(released.statusCode).toBe(200);
  expect(released.json()).toMatchObject({ state: 'release-decided', decidedBy: stack.engineer.id });
  expect(released.json().signatures).toEqual([expect.objectContaining({ valid: true })]);
  expect((await api('POST', release, { reason: 'again', signature: stack.engineer.signature() })).statusCode).toBe(409);

  await eventually('the escalation released', async () => (await escalations())[0]!.state === 'released');
  expect(await mes('GET', `/api/v1/production-holds/${holds.items[0]!.holdId}`)).toMatchObject({
    status: 'RELEASED',
    releaseReference: `quality-escalation:${id}:release`,
  });
  expect(await mes('GET', '/__sim/production-holds/counts')).toEqual({
    holds: 1,
    active: 0,
    released: 1,
    releaseRequests: 1,
  });
  expect(await mes('GET', `/api/v1/lines/${LINE}/status`)).toMatchObject({ status: 'RUNNING' });
  const trail = (await auditRecordsOf(pool, id)).map((r) => r.action);
  expect(trail).toEqual([
    'quality-escalation.open',
    'quality-escalation.alert',
    'quality-escalation.hold',
    'quality-escalation.release-decision',
    'quality-escalation.release',
  ]);

  // A change through the route: version 2, audited with old and new, in force at the next pass.
  const changed = await api('PUT', `/v1/quality-rules/${SITE}/nc3`, {
    line: LINE,
    station: 'S1',
    definition: { kind: 'consecutive-nc', count: 2 },
    reason: 'tighter after the fixture incident',
    expectedVersion: 1,
  });
  expect(changed.statusCode).toBe(200);
  expect(changed.json()).toMatchObject({ version: 2 });
  const stale = await api('PUT', `/v1/quality-rules/${SITE}/nc3`, {
    line: LINE,
    definition: { kind: 'consecutive-nc', count: 5 },
    reason: 'made against version 1',
    expectedVersion: 1,
  });
  expect(stale.statusCode).toBe(409);
  const changeAudit = (await auditRecordsOf(pool, `${SITE}/nc3`)).map((r) => ({
    action: r.action,
    old: (r.old as { definition?: unknown } | null)?.definition ?? null,
    new: (r.new as { definition: unknown }).definition,
  }));
  expect(changeAudit).toEqual([
    { action: 'quality-rule.create', old: null, new: { kind: 'consecutive-nc', count: 3 } },
    {
      action: 'quality-rule.change',
      old: { kind: 'consecutive-nc', count: 3 },
      new: { kind: 'consecutive-nc', count: 2 },
    },
  ]);
  const history = await api('GET', `/v1/quality-rules?site=${SITE}&history=true`);
  expect(
    history.json<{ rules: { ruleId: string; version: number }[] }>().rules.map((r) => `${r.ruleId}@${r.version}`),
  ).toEqual(['fpy-s2@1', 'nc3@2', 'nc3@1']);

  const [q1, q2] = await store([
    { part: 'Q1', fail: true },
    { part: 'Q2', fail: true },
  ]);
  const second = await eventually('version 2 tripped on two parts', async () => {
    const es = await escalations();
    return es.length === 2 && es[1]!.state === 'held' ? es[1] : undefined;
  });
  expect(second.version).toBe(2);
  expect(second.evidence.points.map((p) => p.id)).toEqual([q1, q2]);
  expect(await mes('GET', '/__sim/production-holds/counts')).toMatchObject({ holds: 2, active: 1 });
});

test("a p-chart's limits come from its baseline's complete subgroups, as a new audited version", async () => {
  const put = await api('PUT', `/v1/quality-rules/${SITE}/p-s2`, {
    line: LINE,
    station: 'S2',
    definition: { kind: 'p-chart', subgroup: { parts: 4 }, runRules: [1, 4] },
    reason: 'fraction nonconforming at S2',
  });
  expect(put.json()).toMatchObject({ version: 1, limits: null, evaluating: false });
  // Baseline at S2, an hour after the other test's parts: 10 first inspections (3 NC in the first 8), a re-inspection.
  const fails = [true, false, false, false, false, true, false, true, true, true];
  await store(fails.map((fail, i) => ({ part: `B${i}`, station: 'S2', fail, at: 3600 + i })));
  await store([{ part: 'B0', station: 'S2', fail: true, at: 3650 }]);
  const from = new Date(T0 + 3600 * 1000).toISOString();
  const to = new Date(T0 + 3700 * 1000).toISOString();

  const limits = await api('POST', `/v1/quality-rules/${SITE}/p-s2/limits`, { from, to, reason: 'baseline' });
  expect(limits.statusCode).toBe(200);
  // Two complete subgroups of 4 (the last 2 parts are left out): 3 nonconforming of 8.
  expect(limits.json()).toMatchObject({
    version: 2,
    evaluating: true,
    limits: { centre: 3 / 8, baseline: { from, to, subgroups: 2, units: 8, count: 3 } },
  });
  const [, recomputed] = await auditRecordsOf(pool, `${SITE}/p-s2`);
  expect(recomputed).toMatchObject({ action: 'quality-rule.limits', reason: 'baseline', new: { version: 2 } });

  const empty = await api('POST', `/v1/quality-rules/${SITE}/p-s2/limits`, {
    from: '2020-01-01T00:00:00Z',
    to: '2020-01-02T00:00:00Z',
    reason: 'nothing there',
  });
  expect(empty.statusCode).toBe(422);
});
