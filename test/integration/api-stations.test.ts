/**
 * Shadow mode, seen from the API: results a shadow station recorded, verdicts posted for their frames, and the
 * report that measures the station against them.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import { buildApp } from '../../api/app';
import type { InspectionResult } from '../../infra/ingest/inspection.schema';
import { ingestInspections } from '../../infra/ingest/ingest.service';
import { loadConfig } from '../../infra/config/load';
import type { WorkflowGateway } from '../../infra/temporal/gateway';
import { testPool } from '../support/test-env';
import { asAdmin, testSigningKey } from '../support/identity';

const base = loadConfig();
const config = structuredClone(base);
// A line of its own so other tests' results never land in this report.
const LINE = `LS${randomUUID().slice(0, 6)}`;
config.sites[0]!.lines.push({ id: LINE, stations: [{ id: 'S1', mode: 'shadow' }] });
const run = randomUUID().slice(0, 8);

/** The report and the verdicts never touch Temporal. */
const gateway = new Proxy({} as WorkflowGateway, {
  get: (_, name) => () => Promise.reject(new Error(`unexpected Temporal call ${String(name)}`)),
});

let pool: Pool;
let app: FastifyInstance;

beforeAll(async () => {
  pool = testPool();
  app = await buildApp({ signingKey: await testSigningKey(), pool, gateway, config, namespace: 'default' });
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
});

function result(n: number, outcome: 'pass' | 'fail'): InspectionResult {
  return {
    eventId: `shadow-${run}-${n}`,
    site: 'PLANT1',
    line: LINE,
    station: 'S1',
    partId: `P-${n}`,
    sku: 'BRKT-200',
    lotId: `LOT-${run}`,
    workOrder: '1000100',
    result: outcome,
    defects: outcome === 'fail' ? [{ class: 'scratch', score: 0.9 }] : [],
    modelVersion: 'holdfast-surface@1.0.0',
    recipeVersion: 'surface-1',
    inspectedAt: new Date().toISOString(),
    frame: { id: `frame-${run}-${n}`, sha256: 'a'.repeat(64) },
  };
}

describe('shadow report', () => {
  it('measures the shadow station against verdicts; manual verdicts win over ground truth', async () => {
    // Station said: fail, fail, pass, pass, fail. Truth: fail, pass, fail, pass, (none).
    const outcomes: ('pass' | 'fail')[] = ['fail', 'fail', 'pass', 'pass', 'fail'];
    const stored = await ingestInspections(
      pool,
      config,
      outcomes.map((o, i) => result(i, o)),
    );
    expect(stored.kind).toBe('stored');
    const modes = await pool.query<{ mode: string }>(`SELECT DISTINCT mode FROM holdfast.inspection WHERE line = $1`, [
      LINE,
    ]);
    expect(modes.rows).toEqual([{ mode: 'shadow' }]);

    const truth = [
      { frameId: `frame-${run}-0`, verdict: 'fail', defectClass: 'scratch' },
      { frameId: `frame-${run}-1`, verdict: 'fail', defectClass: 'dent' },
      { frameId: `frame-${run}-2`, verdict: 'fail', defectClass: 'crack' },
      { frameId: `frame-${run}-3`, verdict: 'pass' },
    ].map((v) => ({ ...v, source: 'ground-truth', decidedBy: 'camera-sim' }));
    const posted = await app.inject({
      headers: await asAdmin(),
      method: 'POST',
      url: `/v1/stations/PLANT1/${LINE}/S1/verdicts`,
      payload: { verdicts: truth },
    });
    expect(posted.statusCode).toBe(200);
    expect(posted.json()).toEqual({ recorded: 4 });
    // An inspector re-checked part 1: it was good after all.
    const manual = await app.inject({
      headers: await asAdmin(),
      method: 'POST',
      url: `/v1/stations/PLANT1/${LINE}/S1/verdicts`,
      payload: { verdicts: [{ frameId: `frame-${run}-1`, verdict: 'pass', source: 'manual', decidedBy: 'qe.jones' }] },
    });
    expect(manual.statusCode).toBe(200);

    const report = await app.inject({
      headers: await asAdmin(),
      method: 'GET',
      url: `/v1/stations/PLANT1/${LINE}/S1/shadow-report`,
    });
    expect(report.statusCode).toBe(200);
    expect(report.json()).toMatchObject({
      currentMode: 'shadow',
      inspected: 5,
      fails: 3,
      withVerdict: 4,
      counts: { truePositives: 1, falsePositives: 1, falseNegatives: 1, trueNegatives: 1 },
      agreement: 0.5,
      precision: 0.5,
      recall: 0.5,
      byClass: { scratch: { total: 1, caught: 1 }, crack: { total: 1, caught: 0 } },
    });

    const truthOnly = await app.inject({
      headers: await asAdmin(),
      method: 'GET',
      url: `/v1/stations/PLANT1/${LINE}/S1/shadow-report?source=ground-truth`,
    });
    expect(truthOnly.json()).toMatchObject({ counts: { truePositives: 2, falsePositives: 0, falseNegatives: 1 } });
  });

  it('refuses bad verdicts naming the field, and unknown stations', async () => {
    const bad = await app.inject({
      headers: await asAdmin(),
      method: 'POST',
      url: `/v1/stations/PLANT1/${LINE}/S1/verdicts`,
      payload: { verdicts: [{ frameId: 'f 1', verdict: 'maybe', source: 'manual', decidedBy: 'x' }] },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    const fields = bad.json<{ errors: { field: string }[] }>().errors.map((e) => e.field);
    expect(fields).toEqual(expect.arrayContaining(['verdicts.0.frameId', 'verdicts.0.verdict']));

    const unknown = await app.inject({
      headers: await asAdmin(),
      method: 'GET',
      url: '/v1/stations/PLANT1/L9/S1/shadow-report',
    });
    expect(unknown.statusCode).toBe(404);
  });
});
