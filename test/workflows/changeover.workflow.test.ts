/**
 * The changeover workflow on the jest run's Temporal dev server, with the real activities over typed fakes of the
 * plant ports (Holdfast stations, an OPC 40100 vision system, the line interlock, the first-article reader) and of
 * the MES, and the real intent ledger in PostgreSQL: the happy path to release; a station without a recipe fails
 * before anything is touched; a read-back that keeps disagreeing fails after its attempts and reverts every station,
 * last prepared first, with the line left interlocked; a failed first article holds the first lot and escalates; a
 * signed approval releases without parts; a cancel reverts.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import {
  approveFirstArticleUpdate,
  changeoverKeys,
  changeoverStatusQuery,
  changeoverWorkflowId,
  SearchAttributes,
  type ChangeoverInput,
  type ChangeoverStationConfig,
  type ChangeoverStatus,
  type FirstArticleApproval,
  type SignatureManifest,
} from '../../workflows/contracts';
import {
  FakeFirstArticles,
  FakeLineInterlock,
  FakeRecipes,
  FakeStationControl,
  FakeVisionSystem,
  ReleasingMes,
  changeoverTestInput,
} from '../support/changeover-fakes';
import { eventually } from '../support/eventually';
import { FakeErp, RecordingEscalation } from '../support/fake-ports';
import { WorkflowHarness } from '../support/workflow-harness';

const harness = new WorkflowHarness();
beforeAll(() => harness.setUp());
afterAll(() => harness.tearDown());

const STATIONS: ChangeoverStationConfig[] = [
  { station: 'S1' },
  { station: 'S2' },
  { station: 'V1', vision: { connector: 'vision-opc', system: 'cam-a', externalRecipeId: 'EXT-B' } },
];

/** A plant of three stations on line L1 that run SKU-A and have SKU-B's recipes waiting. */
function plant() {
  const stations = new FakeStationControl();
  const vision = new FakeVisionSystem();
  const interlock = new FakeLineInterlock();
  const firstArticles = new FakeFirstArticles();
  const recipes = new FakeRecipes()
    .set('S1', 'SKU-B', { version: 'R-B1', model: { name: 'surface', version: '2.0.0' } })
    .set('S2', 'SKU-B', { version: 'R-B2', model: { name: 'surface', version: '2.0.0' }, firstArticleParts: 3 });
  for (const s of ['S1', 'S2']) {
    stations.activate(s, {
      workOrder: 'WO-A',
      sku: 'SKU-A',
      recipeVersion: 'R-A',
      modelKey: 'surface@1.0.0',
      modelSha256: 'a'.repeat(64),
    });
  }
  vision.systems.set('cam-a', {
    state: 'Operational',
    substate: 'Ready',
    externalRecipeId: 'EXT-A',
    internalRecipeId: 'int-EXT-A',
  });
  const mes = new ReleasingMes();
  const escalation = new RecordingEscalation();
  return { stations, vision, interlock, firstArticles, recipes, mes, escalation };
}

type Plant = ReturnType<typeof plant>;
type ChangeoverHandle = WorkflowHandle<(input: ChangeoverInput) => Promise<ChangeoverStatus>>;

async function run(
  p: Plant,
  over: Partial<ChangeoverInput>,
  body: (handle: ChangeoverHandle, input: ChangeoverInput) => Promise<void>,
): Promise<void> {
  const { worker, taskQueue } = await harness.worker({
    mes: p.mes,
    erp: new FakeErp(),
    escalation: p.escalation,
    changeover: {
      stationControl: p.stations,
      firstArticles: p.firstArticles,
      visionFor: () => p.vision,
      lineControlFor: () => p.interlock,
      changeoverRecipes: p.recipes,
    },
  });
  const site = `CO-${randomUUID().slice(0, 8)}`;
  const input = changeoverTestInput(
    { site, workOrder: `WO-${randomUUID().slice(0, 6)}`, stations: STATIONS, ...over },
    harness.config.activityPresets.mesCall,
  );
  await worker.runUntil(async () => {
    const handle: ChangeoverHandle = await harness.client.workflow.start('changeoverWorkflow', {
      workflowId: changeoverWorkflowId(input.site, input.line, input.workOrder),
      taskQueue,
      args: [input],
    });
    await body(handle, input);
  });
}

const failureOf = async (handle: WorkflowHandle): Promise<string> => {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  // The workflow's failure names what went wrong; its cause chain keeps the activity's own error.
  return (err as WorkflowFailedError).cause?.message ?? '';
};

const stateOf = async (handle: WorkflowHandle) =>
  (await handle.describe()).typedSearchAttributes.get(SearchAttributes.changeoverState);

const untilStage = (handle: WorkflowHandle, stage: ChangeoverStatus['stage']) =>
  eventually(
    `stage ${stage}`,
    () => handle.query(changeoverStatusQuery),
    (s) => s.stage === stage,
  );

const signature: SignatureManifest = {
  signatureId: 'sig-1',
  signer: { id: 'local:qe', name: 'Quality Engineer', roles: ['quality-engineer'] },
  meaning: 'approval',
  signedAt: '2026-01-01T00:00:00.000Z',
  method: 'password',
  contentSha256: 'c'.repeat(64),
  seal: 'sealed',
};

test('interlocks, prepares every station, verifies, passes the first article, releases in the MES, lifts the interlock', async () => {
  const p = plant();
  await run(p, {}, async (handle, input) => {
    const { workOrder } = input;
    await untilStage(handle, 'first-article');
    // The recipe of S2 asks for 3 parts: the most any station asks for.
    p.firstArticles.add(workOrder, 'pass', 'pass');
    const waiting = await eventually(
      'two parts shown',
      () => handle.query(changeoverStatusQuery),
      (s) => s.firstArticle?.parts.length === 2,
    );
    expect(waiting.firstArticle).toMatchObject({ required: 3 });
    expect(waiting.firstArticle?.outcome).toBeUndefined();
    p.firstArticles.add(workOrder, 'pass');
    const status = await handle.result();

    expect(status.stage).toBe('released');
    expect(status.interlock).toBe('released');
    expect(status.firstArticle).toMatchObject({ required: 3, outcome: 'passed' });
    expect(status.stations).toEqual([
      expect.objectContaining({
        station: 'S1',
        kind: 'holdfast',
        target: 'R-B1 (surface@2.0.0)',
        before: expect.objectContaining({ assignment: 'active', workOrder: 'WO-A', recipeVersion: 'R-A' }),
        after: expect.objectContaining({
          assignment: 'armed',
          workOrder,
          recipeVersion: 'R-B1',
          modelSha256: 'b'.repeat(64),
        }),
        prepared: true,
        verified: true,
        reverted: false,
      }),
      expect.objectContaining({ station: 'S2', prepared: true, verified: true }),
      expect.objectContaining({
        station: 'V1',
        kind: 'opc40100',
        before: expect.objectContaining({ externalRecipeId: 'EXT-A' }),
        after: expect.objectContaining({ externalRecipeId: 'EXT-B', internalRecipeId: 'int-EXT-B' }),
        verified: true,
      }),
    ]);
    expect(status.timings.map((t) => t.step)).toEqual([
      'interlock',
      'resolve',
      'prepare',
      'verify',
      'first-article',
      'release',
    ]);
    expect(p.interlock.calls).toEqual([
      { line: 'L1', released: false, workOrder },
      { line: 'L1', released: true, workOrder },
    ]);
    const key = changeoverKeys.release(handle.workflowId);
    expect(p.mes.releaseRequests.get(key)).toMatchObject({ workOrder, line: 'L1', releasedBy: handle.workflowId });
    expect(p.vision.calls).toEqual(['prepare cam-a EXT-B']);
    expect(p.stations.calls.filter((c) => c.startsWith('revert'))).toEqual([]);
    expect(p.escalation.messages).toEqual([]);
    expect(await stateOf(handle)).toBe('released');
  });
});

test('a station without an active recipe fails the changeover at once, naming it, before any station is touched', async () => {
  const p = plant();
  p.recipes.recipes.get('S2')!.delete('SKU-B');
  await run(p, {}, async (handle) => {
    const message = await failureOf(handle);
    expect(message).toContain('station S2 has no active recipe for SKU SKU-B');
    expect(message).not.toContain('S1');
    expect(p.stations.calls.filter((c) => c.startsWith('arm'))).toEqual([]);
    expect(p.vision.calls).toEqual([]);
    expect(p.interlock.calls.map((c) => c.released)).toEqual([false]);
    expect(p.escalation.messages).toHaveLength(1);
    expect(await stateOf(handle)).toBe('failed');
  });
});

test('a vision system without an external recipe for the SKU fails the changeover naming the station', async () => {
  const p = plant();
  const stations = [STATIONS[0]!, { ...STATIONS[2]!, vision: { ...STATIONS[2]!.vision!, externalRecipeId: null } }];
  await run(p, { stations }, async (handle) => {
    expect(await failureOf(handle)).toContain('station V1 (vision system cam-a on vision-opc) has no external recipe');
  });
});

test('a step that cannot finish within its timeout fails the changeover, touches no station and escalates', async () => {
  const p = plant();
  p.interlock.unreachable = true;
  const base = changeoverTestInput(
    { site: 'x', workOrder: 'x', stations: STATIONS },
    harness.config.activityPresets.mesCall,
  );
  await run(p, { options: { ...base.options, stepTimeout: '2s' } }, async (handle) => {
    const t0 = Date.now();
    expect(await failureOf(handle)).toContain('no answer from the PLC');
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(p.stations.calls).toEqual([]);
    expect(p.escalation.messages).toEqual([
      expect.objectContaining({ idempotencyKey: changeoverKeys.escalation(handle.workflowId, 'failed') }),
    ]);
  });
}, 60_000);

test('a read-back that keeps disagreeing is retried, then every station is reverted last first and the line stays interlocked', async () => {
  const p = plant();
  p.stations.wrongModel.add('S2');
  await run(p, {}, async (handle, input) => {
    const message = await failureOf(handle);
    expect(message).toContain('read-back disagrees after 3 attempts');
    expect(message).toContain(`station S2: model sha256 ${'f'.repeat(64)}`);
    // S1 and V1 agreed at the first read; S2 was read before, once by its prepare (the worker's report arrived), then
    // three times by verify.
    expect(p.stations.calls.filter((c) => c === 'readBack S2').length).toBe(1 + 1 + 3);

    const status = await handle.query(changeoverStatusQuery);
    expect(status.stage).toBe('failed');
    expect(status.interlock).toBe('held');
    expect(status.stations.map((s) => [s.station, s.verified, s.reverted])).toEqual([
      ['S1', true, true],
      ['S2', false, true],
      ['V1', true, true],
    ]);
    // Reverse order of prepare: the vision system first (unprepare the new, prepare the previous), then S2, then S1.
    expect(p.vision.calls).toEqual(['prepare cam-a EXT-B', 'unprepare cam-a int-EXT-B', 'prepare cam-a EXT-A']);
    expect(p.stations.calls.filter((c) => c.startsWith('revert'))).toEqual([
      `revert S2 ${handle.workflowId}`,
      `revert S1 ${handle.workflowId}`,
    ]);
    expect((await p.stations.readBack({ site: input.site, line: 'L1', station: 'S1' })).armed).toBeUndefined();
    expect(p.interlock.calls.map((c) => c.released)).toEqual([false]);
    expect(p.mes.releaseRequests.size).toBe(0);
    expect(p.escalation.messages).toEqual([
      expect.objectContaining({
        idempotencyKey: changeoverKeys.escalation(handle.workflowId, 'failed'),
        site: input.site,
        line: 'L1',
        text: expect.stringContaining('The line stays interlocked'),
      }),
    ]);
  });
});

test('a failed first article holds the first lot in the MES, escalates, reverts and fails the changeover', async () => {
  const p = plant();
  await run(p, {}, async (handle, input) => {
    p.mes.addLot({ lotId: `LOT-${input.workOrder}`, workOrder: input.workOrder });
    await untilStage(handle, 'first-article');
    p.firstArticles.add(input.workOrder, 'pass', 'fail');
    expect(await failureOf(handle)).toContain(`first article failed: part ${input.workOrder}-P2`);

    const hold = [...p.mes.holds.values()];
    expect(hold).toEqual([
      expect.objectContaining({
        idempotencyKey: changeoverKeys.firstLotHold(handle.workflowId),
        lotId: `LOT-${input.workOrder}`,
        workOrder: input.workOrder,
        line: 'L1',
      }),
    ]);
    const status = await handle.query(changeoverStatusQuery);
    expect(status.firstArticle).toMatchObject({ outcome: 'failed', holdId: hold[0]!.holdId });
    expect(status.stations.every((s) => s.reverted)).toBe(true);
    expect(p.escalation.messages).toEqual([
      expect.objectContaining({ text: expect.stringContaining(`First lot held (MES hold ${hold[0]!.holdId})`) }),
    ]);
    expect(p.mes.releaseRequests.size).toBe(0);
    expect(p.interlock.calls.map((c) => c.released)).toEqual([false]);
  });
});

test("a quality engineer's signed approval ends the first-article wait and the order is released", async () => {
  const p = plant();
  await run(p, {}, async (handle, input) => {
    const approval: FirstArticleApproval = {
      approvedBy: 'local:qe',
      reason: 'checked by hand on the CMM',
      signature,
      requestId: `approve-${input.workOrder}`,
    };
    await untilStage(handle, 'first-article');
    const unsigned = { ...approval, requestId: 'unsigned' } as Partial<FirstArticleApproval>;
    delete unsigned.signature;
    await expect(
      handle.executeUpdate(approveFirstArticleUpdate, { args: [unsigned as FirstArticleApproval] }),
    ).rejects.toMatchObject({ cause: { message: expect.stringMatching(/must be signed/) } });
    const answered = await handle.executeUpdate(approveFirstArticleUpdate, {
      args: [approval],
      updateId: approval.requestId,
    });
    expect(answered.firstArticle).toMatchObject({ outcome: 'approved', approval: { approvedBy: 'local:qe' } });
    const status = await handle.result();
    expect(status.stage).toBe('released');
    expect(status.firstArticle?.approval?.signature.signatureId).toBe('sig-1');
    expect(p.mes.releaseRequests.size).toBe(1);
  });
});

test('a cancel reverts every prepared station, leaves the line interlocked and escalates', async () => {
  const p = plant();
  await run(p, {}, async (handle) => {
    await untilStage(handle, 'first-article');
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const status = await handle.query(changeoverStatusQuery);
    expect(status.stage).toBe('cancelled');
    expect(status.stations.map((s) => s.reverted)).toEqual([true, true, true]);
    expect(p.interlock.calls.map((c) => c.released)).toEqual([false]);
    expect(p.escalation.messages).toEqual([
      expect.objectContaining({ idempotencyKey: changeoverKeys.escalation(handle.workflowId, 'cancelled') }),
    ]);
    expect(await stateOf(handle)).toBe('cancelled');
  });
});
