/**
 * The changeover's activities over typed fakes of their ports: what resolve refuses and names, what a read-back must
 * agree on, the MES release through the intent ledger (and an MES that offers none), revert of a vision system, and a
 * missing port named rather than skipped.
 */
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createChangeoverActivities, type ChangeoverDeps } from '../../activities/changeover/changeover.activities';
import { ConfigError } from '../../activities/errors';
import { changeoverKeys, ErrorType, type ChangeoverStationPlan } from '../../workflows/contracts';
import {
  FakeFirstArticles,
  FakeRecipes,
  FakeStationControl,
  FakeVisionSystem,
  MODEL_SHA,
  ReleasingMes,
} from '../support/changeover-fakes';
import { FakeMes, MemoryIntentLedger, RecordingEscalation } from '../support/fake-ports';

const mock = new MockActivityEnvironment();
/** MockActivityEnvironment.run, typed by the activity it runs. */
const env = {
  run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R> =>
    mock.run<A, R, (...args: A) => Promise<R>>(fn, ...args),
};

function build(over: Partial<ChangeoverDeps> = {}) {
  const ledger = new MemoryIntentLedger();
  const escalation = new RecordingEscalation();
  const deps: ChangeoverDeps = {
    mesFor: () => new ReleasingMes(),
    ledger,
    escalationFor: () => ({ target: 'log', port: escalation }),
    ...over,
  };
  return { act: createChangeoverActivities(deps), ledger, escalation };
}

const holdfastPlan: ChangeoverStationPlan = {
  kind: 'holdfast',
  station: 'S1',
  recipeVersion: 'R-B1',
  model: { name: 'surface', version: '2.0.0' },
  modelSha256: MODEL_SHA['surface@2.0.0']!,
};
const visionPlan: ChangeoverStationPlan = {
  kind: 'opc40100',
  station: 'V1',
  connector: 'vision-opc',
  system: 'cam-a',
  externalRecipeId: 'EXT-B',
};

test('resolve names every station it cannot switch, and finds nothing else wrong', async () => {
  const recipes = new FakeRecipes().set('S1', 'SKU-B', {
    version: 'R-B1',
    model: { name: 'surface', version: '2.0.0' },
  });
  recipes.set('S3', 'SKU-B', { version: 'R-B3', model: { name: 'unknown', version: '9' } });
  const { act } = build({ changeoverRecipes: recipes });
  const failure = await env
    .run(act.resolveChangeover, {
      site: 'PLANT1',
      line: 'L1',
      sku: 'SKU-B',
      stations: [
        { station: 'S1' },
        { station: 'S2' },
        { station: 'S3' },
        { station: 'V1', vision: { connector: 'vision-opc', system: 'cam-a', externalRecipeId: null } },
      ],
    })
    .catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure).toMatchObject({ type: ErrorType.Validation, nonRetryable: true });
  const message = (failure as Error).message;
  expect(message).toContain('station S2 has no active recipe for SKU SKU-B');
  expect(message).toContain('station S3: the model unknown@9 of recipe R-B3 has no manifest');
  expect(message).toContain('station V1 (vision system cam-a on vision-opc) has no external recipe id');
  expect(message).not.toContain('station S1');
});

test("a Holdfast station's read-back must report the order, the recipe and the manifest's model file", async () => {
  const stations = new FakeStationControl();
  const { act } = build({ stationControl: stations });
  const station = { site: 'PLANT1', line: 'L1', plan: holdfastPlan };
  const asked = { ...station, changeoverId: 'co-1', workOrder: 'WO-1', sku: 'SKU-B' };

  expect(await env.run(act.verifyChangeoverStation, asked)).toMatchObject({
    verified: false,
    problem: 'nothing armed or active for work order WO-1',
  });
  await env.run(act.prepareChangeoverStation, asked);
  expect(await env.run(act.verifyChangeoverStation, asked)).toMatchObject({
    verified: true,
    after: { assignment: 'armed', recipeVersion: 'R-B1', modelSha256: MODEL_SHA['surface@2.0.0'] },
  });
  stations.wrongModel.add('S1');
  const wrong = await env.run(act.verifyChangeoverStation, asked);
  expect(wrong.verified).toBe(false);
  expect(wrong.problem).toContain(`model sha256 ${'f'.repeat(64)}, the manifest's ${MODEL_SHA['surface@2.0.0']}`);
});

test("a Holdfast station's prepare ends once its inference worker reports the model loaded, not at the arm", async () => {
  /** The worker's report arrives after the third read-back, as it does after the NOTIFY and the model load. */
  class LateReport extends FakeStationControl {
    reads = 0;
    override async readBack(station: Parameters<FakeStationControl['readBack']>[0]) {
      const back = await super.readBack(station);
      this.reads += 1;
      return this.reads <= 2 ? { ...(back.active ? { active: back.active } : {}) } : back;
    }
  }
  const stations = new LateReport();
  const { act } = build({ stationControl: stations });
  const asked = {
    site: 'PLANT1',
    line: 'L1',
    plan: holdfastPlan,
    changeoverId: 'co-1',
    workOrder: 'WO-1',
    sku: 'SKU-B',
  };

  await env.run(act.prepareChangeoverStation, asked);
  expect(stations.calls).toEqual(['arm S1 WO-1', 'readBack S1', 'readBack S1', 'readBack S1']);
  expect(await env.run(act.verifyChangeoverStation, asked)).toMatchObject({ verified: true });
});

test('a vision system must hold the external and internal recipe asked for, in Ready', async () => {
  const vision = new FakeVisionSystem();
  const { act } = build({ visionFor: () => vision });
  const asked = { site: 'PLANT1', line: 'L1', plan: visionPlan, changeoverId: 'co-1', workOrder: 'WO-1', sku: 'SKU-B' };
  const { internalRecipeId } = await env.run(act.prepareChangeoverStation, asked);
  expect(internalRecipeId).toBe('int-EXT-B');
  expect(await env.run(act.verifyChangeoverStation, { ...asked, internalRecipeId })).toMatchObject({ verified: true });
  vision.systems.set('cam-a', { state: 'Error', externalRecipeId: 'EXT-B', internalRecipeId: 'int-EXT-B' });
  expect(await env.run(act.verifyChangeoverStation, { ...asked, internalRecipeId })).toMatchObject({
    verified: false,
    problem: 'state Error, not Ready',
  });

  // Revert: the new recipe unprepared, the previous one prepared again.
  await env.run(act.revertChangeoverStation, {
    ...asked,
    internalRecipeId,
    before: { externalRecipeId: 'EXT-A', internalRecipeId: 'int-EXT-A' },
  });
  expect(vision.calls).toEqual(['prepare cam-a EXT-B', 'unprepare cam-a int-EXT-B', 'prepare cam-a EXT-A']);
});

test('the MES release goes through the intent ledger once; an MES without production release is named', async () => {
  const mes = new ReleasingMes();
  const { act, ledger } = build({ mesFor: () => mes });
  const input = { site: 'PLANT1', line: 'L1', workOrder: 'WO-1', workflowId: 'changeover-PLANT1-L1-WO-1' };
  const first = await env.run(act.releaseOrderForProduction, input);
  const again = await env.run(act.releaseOrderForProduction, input);
  expect(again).toEqual(first);
  const key = changeoverKeys.release(input.workflowId);
  expect(mes.calls).toEqual(['releaseForProduction WO-1']);
  expect(mes.releaseRequests.get(key)).toMatchObject({ releasedBy: input.workflowId, options: { lookupFirst: false } });
  expect(ledger.intents.get(key)).toMatchObject({ step: 'mes-production-release', system: 'fake-mes' });

  const plain = build({ mesFor: () => Object.assign(new FakeMes(), { releaseForProduction: undefined }) });
  await expect(env.run(plain.act.releaseOrderForProduction, input)).rejects.toMatchObject({
    type: ErrorType.Configuration,
    nonRetryable: true,
    message: expect.stringContaining('the MES fake-mes of site PLANT1 offers no production release'),
  });
});

test('a port this worker lacks is named, never skipped', async () => {
  const { act } = build();
  await expect(
    env.run(act.setLineRelease, { site: 'PLANT1', line: 'L1', workOrder: 'WO-1', released: false }),
  ).rejects.toThrow(new ConfigError('this worker has no line-control connectors').message);
  await expect(
    env.run(act.awaitFirstArticle, {
      site: 'PLANT1',
      line: 'L1',
      workOrder: 'WO-1',
      parts: 1,
      known: 0,
      pollIntervalMs: 10,
    }),
  ).rejects.toThrow('this worker has no first-article reader');
});

test('the first article returns as parts come in, and at the first failed part', async () => {
  const firstArticles = new FakeFirstArticles();
  const { act } = build({ firstArticles });
  const ask = { site: 'PLANT1', line: 'L1', workOrder: 'WO-1', parts: 3, known: 0, pollIntervalMs: 10 };
  firstArticles.add('WO-1', 'pass');
  expect(await env.run(act.awaitFirstArticle, ask)).toMatchObject({ outcome: 'pending', parts: [{ result: 'pass' }] });
  firstArticles.add('WO-1', 'fail');
  expect((await env.run(act.awaitFirstArticle, { ...ask, known: 1 })).outcome).toBe('failed');
});
