import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExternalSystemError } from '../../activities/errors';
import type { LineInterlockPort, VisionSystemPort } from '../../activities/ports';
import type { ConnectorInstance } from '../../infra/connectors/define';
import lineControlConnector from '../../infra/connectors/opcua/line-control.connector';
import { LineControlError } from '../../infra/connectors/opcua/line-control';
import machineVisionConnector from '../../infra/connectors/opcua/machine-vision.connector';
import { VisionSystemError } from '../../infra/connectors/opcua/machine-vision';
import { loadNodeOpcua } from '../../infra/connectors/opcua/node-opcua.driver';
import { findFreePort } from '../../infra/local/managed-process';
import { type LinePlcSimulator, startLinePlcSimulator } from '../../infra/simulators/line-plc/line-plc.simulator';
import { connectorRegistry } from '../../workers/registry';
import { captureLog } from '../support/quiet-log';

// Real node-opcua on both sides: the simulated line PLC hosts two OPC 40100 vision systems and L1's interlock. The
// connectors are opened as the registry opens them, with the default pkiDir under the data directory: the one npm
// start names to the simulator, so the trust exchange is the embedded default's.

const S4 = { system: 'L1-S4-vision', site: 'PLANT1', line: 'L1', station: 'S4' };
const S5 = { system: 'L1-S5-vision', site: 'PLANT1', line: 'L1', station: 'S5' };
const L1 = { site: 'PLANT1', line: 'L1' };

let dataDir: string;
let sim: LinePlcSimulator | undefined;
let vision: ConnectorInstance<VisionSystemPort> | undefined;
let lineControl: ConnectorInstance<LineInterlockPort> | undefined;
const log = captureLog();

/** The error an attempt failed with; fails the test when it succeeded or threw something else. */
async function failure<E extends ExternalSystemError>(attempt: Promise<unknown>, type: new (...a: never[]) => E) {
  const outcome = await attempt.then(
    (value: unknown) => ({ value }),
    (err: unknown) => ({ err }),
  );
  if (!('err' in outcome)) throw new Error(`expected a failure, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.err).toBeInstanceOf(type);
  return outcome.err as E;
}

const ctx = (name: string) => ({ name, env: process.env, log, dataDir });

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'holdfast-opcua-vision-'));
  sim = await startLinePlcSimulator({
    port: await findFreePort(),
    stations: [{ site: 'PLANT1', line: 'L1', station: 'S1' }],
    visionSystems: [
      { ...S4, recipes: ['BRKT200-A', 'HSG310-B', { externalId: 'CVR120-C', internalId: 'job-17' }] },
      { ...S5, recipes: ['ONLY-ONE'] },
    ],
    lineControls: [L1],
    dataDir: join(dataDir, 'line-plc'),
    trustedClientPkiDirs: [join(dataDir, 'opcua-pki')],
  });
  vision = await machineVisionConnector.connect(
    machineVisionConnector.configSchema.parse({ endpointUrl: sim.endpointUrl, prepareTimeoutMs: 5_000 }),
    ctx('line-vision'),
  );
  lineControl = await lineControlConnector.connect(
    lineControlConnector.configSchema.parse({ endpointUrl: sim.endpointUrl }),
    ctx('line-control'),
  );
}, 120_000);

afterAll(async () => {
  await vision?.close();
  await lineControl?.close();
  await sim?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

beforeEach(() => {
  sim!.setVisionFaults(S4.system, {});
});

describe('opcua-machine-vision against the simulated OPC 40100 vision system', () => {
  test('is registered with role vision-system and reports the server healthy over SignAndEncrypt', async () => {
    expect(connectorRegistry['opcua-machine-vision'].role).toBe('vision-system');
    await expect(vision!.healthCheck()).resolves.toBeUndefined();
    expect(sim!.channelSecurity()).toContainEqual({ securityMode: 'SignAndEncrypt', securityPolicy: 'Basic256Sha256' });
  });

  test('prepareRecipe brings the system to Ready and the device reads back both ids', async () => {
    const { internalRecipeId } = await vision!.port.prepareRecipe(S4.system, 'CVR120-C');

    expect(internalRecipeId).toBe('job-17');
    expect(await vision!.port.readState(S4.system)).toEqual({
      state: 'Operational',
      substate: 'Ready',
      externalRecipeId: 'CVR120-C',
      internalRecipeId: 'job-17',
    });
    expect(sim!.visionSystem(S4.system)).toMatchObject({
      substate: 'Ready',
      prepared: { externalId: 'CVR120-C', internalId: 'job-17' },
    });
    expect(sim!.visionCalls().at(-1)).toMatchObject({ system: S4.system, method: 'PrepareRecipe', error: 0 });
  });

  test('a prepare while Ready replaces the prepared recipe (default internal id <external>#1)', async () => {
    await vision!.port.prepareRecipe(S4.system, 'BRKT200-A');
    const { internalRecipeId } = await vision!.port.prepareRecipe(S4.system, 'HSG310-B');

    expect(internalRecipeId).toBe('HSG310-B#1');
    expect(await vision!.port.readState(S4.system)).toMatchObject({
      substate: 'Ready',
      externalRecipeId: 'HSG310-B',
      internalRecipeId: 'HSG310-B#1',
    });
  });

  test('a refused PrepareRecipe is non-retryable with the vendor code in the message; nothing changes', async () => {
    await vision!.port.prepareRecipe(S4.system, 'BRKT200-A');
    sim!.setVisionFaults(S4.system, { refuseWithError: -4711 });

    const err = await failure(vision!.port.prepareRecipe(S4.system, 'HSG310-B'), VisionSystemError);

    expect(err.kind).toBe('rejected');
    expect(err.reason).toBe('device-error');
    expect(err.error).toBe(-4711);
    expect(err.message).toMatch(/PrepareRecipe "HSG310-B" on vision system "L1-S4-vision" refused with error -4711/);
    expect(await vision!.port.readState(S4.system)).toMatchObject({ externalRecipeId: 'BRKT200-A' });
  });

  test('an external id the system does not know is refused with its error code', async () => {
    const err = await failure(vision!.port.prepareRecipe(S4.system, 'NO-SUCH-RECIPE'), VisionSystemError);

    expect(err.kind).toBe('rejected');
    expect(err.error).toBe(-1);
  });

  test('wrong-recipe fault: the prepare succeeds, but readState shows the id the device reports', async () => {
    sim!.setVisionFaults(S4.system, { reportWrongRecipe: true });

    const { internalRecipeId } = await vision!.port.prepareRecipe(S4.system, 'HSG310-B');
    const state = await vision!.port.readState(S4.system);

    expect(internalRecipeId).toBe('HSG310-B#1');
    expect(state.substate).toBe('Ready');
    expect(state.externalRecipeId).not.toBe('HSG310-B');
    expect(state.internalRecipeId).not.toBe('HSG310-B#1');
    expect(sim!.visionSystem(S4.system)).toMatchObject({
      prepared: { externalId: 'HSG310-B' },
      reported: { externalId: state.externalRecipeId, internalId: state.internalRecipeId },
    });
  });

  test('slow prepare: PrepareRecipe answers IsCompleted false, prepareRecipe waits for Ready', async () => {
    await vision!.port.prepareRecipe(S4.system, 'BRKT200-A');
    sim!.setVisionFaults(S4.system, { prepareDelayMs: 600 });

    const started = Date.now();
    const pending = vision!.port.prepareRecipe(S4.system, 'HSG310-B');
    await new Promise((r) => setTimeout(r, 150));
    expect(sim!.visionSystem(S4.system).preparing).toMatchObject({ externalId: 'HSG310-B' });
    const { internalRecipeId } = await pending;

    expect(Date.now() - started).toBeGreaterThanOrEqual(550);
    expect(internalRecipeId).toBe('HSG310-B#1');
    expect(await vision!.port.readState(S4.system)).toMatchObject({ substate: 'Ready', externalRecipeId: 'HSG310-B' });
  });

  test('a prepare slower than prepareTimeoutMs fails as retryable, naming the state it saw', async () => {
    const impatient = await machineVisionConnector.connect(
      machineVisionConnector.configSchema.parse({ endpointUrl: sim!.endpointUrl, prepareTimeoutMs: 200 }),
      ctx('impatient-vision'),
    );
    try {
      await vision!.port.unprepareRecipe(S4.system, sim!.visionSystem(S4.system).prepared?.internalId ?? '');
      sim!.setVisionFaults(S4.system, { prepareDelayMs: 1_500 });

      const err = await failure(impatient.port.prepareRecipe(S4.system, 'BRKT200-A'), VisionSystemError);

      expect(err.kind).toBe('transient');
      expect(err.reason).toBe('not-ready');
      expect(err.message).toMatch(/not Ready within 200 ms .*state Operational\/Initialized/);
    } finally {
      await impatient.close();
    }
  });

  test('unprepareRecipe returns the system to Initialized with no recipe; a repeat is harmless', async () => {
    const { internalRecipeId } = await vision!.port.prepareRecipe(S4.system, 'BRKT200-A');

    await vision!.port.unprepareRecipe(S4.system, internalRecipeId);
    await vision!.port.unprepareRecipe(S4.system, internalRecipeId);

    expect(await vision!.port.readState(S4.system)).toEqual({
      state: 'Operational',
      substate: 'Initialized',
      externalRecipeId: null,
      internalRecipeId: null,
    });
    expect(
      sim!
        .visionCalls()
        .filter((c) => c.method === 'UnprepareRecipe')
        .slice(-2)
        .map((c) => c.error),
    ).toEqual([0, -2]);
  });

  test('a Halted system refuses PrepareRecipe (BadInvalidState), non-retryable', async () => {
    sim!.setVisionState(S5.system, 'Halted');
    try {
      const err = await failure(vision!.port.prepareRecipe(S5.system, 'ONLY-ONE'), VisionSystemError);

      expect(err.kind).toBe('rejected');
      expect(err.message).toMatch(/BadInvalidState/);
      expect(await vision!.port.readState(S5.system)).toMatchObject({ state: 'Halted', externalRecipeId: null });
      expect((await vision!.port.readState(S5.system)).substate).toBeUndefined();
    } finally {
      sim!.setVisionState(S5.system, 'Operational', 'Initialized');
    }
  });

  test('an unknown vision system is not-found, naming the browse path', async () => {
    const err = await failure(vision!.port.readState('L9-S9-vision'), VisionSystemError);

    expect(err.kind).toBe('not-found');
    expect(err.message).toMatch(/Objects\/VisionSystems\/L9-S9-vision\/RecipeManagement not found/);
  });

  test('faults can be set at runtime over OPC UA (Simulation.SetFaults), as a running simulator is told', async () => {
    const opcua = loadNodeOpcua();
    const client = opcua.OPCUAClient.create({
      clientCertificateManager: new opcua.OPCUACertificateManager({
        rootFolder: join(dataDir, 'opcua-pki'),
        disableFileWatchers: true,
      }),
      securityMode: opcua.MessageSecurityMode.SignAndEncrypt,
      securityPolicy: opcua.SecurityPolicy.Basic256Sha256,
      endpointMustExist: false,
      connectionStrategy: { maxRetry: 0 },
    });
    await client.connect(sim!.endpointUrl);
    const session = await client.createSession();
    try {
      const ns = sim!.namespaceIndex;
      const result = await session.call({
        objectId: `ns=${ns};s=VisionSystems.${S4.system}.Simulation`,
        methodId: `ns=${ns};s=VisionSystems.${S4.system}.Simulation.SetFaults`,
        inputArguments: [
          { dataType: opcua.DataType.UInt32, value: 0 },
          { dataType: opcua.DataType.Int32, value: -9 },
          { dataType: opcua.DataType.Boolean, value: false },
        ],
      });
      expect(result.statusCode.name).toBe('Good');
      expect(sim!.visionSystem(S4.system).faults).toEqual({ refuseWithError: -9 });

      const err = await failure(vision!.port.prepareRecipe(S4.system, 'BRKT200-A'), VisionSystemError);
      expect(err.error).toBe(-9);
    } finally {
      await session.close();
      await client.disconnect();
    }
  });
});

describe('opcua-machine-vision against a server with the MachineVision NodeSet loaded', () => {
  // The standard's id arguments are structures (RecipeIdExternalDataType, RecipeIdInternalDataType): the connector reads
  // the method's argument list and builds them from the server's type definitions.
  let structured: LinePlcSimulator | undefined;
  let client: ConnectorInstance<VisionSystemPort> | undefined;

  beforeAll(async () => {
    structured = await startLinePlcSimulator({
      port: await findFreePort(),
      stations: [],
      visionSystems: [{ ...S4, recipes: ['BRKT200-A', { externalId: 'HSG310-B', internalId: 'job-31' }] }],
      machineVisionNodeSet: true,
      dataDir: join(dataDir, 'line-plc-nodeset'),
      trustedClientPkiDirs: [join(dataDir, 'opcua-pki')],
    });
    client = await machineVisionConnector.connect(
      machineVisionConnector.configSchema.parse({ endpointUrl: structured.endpointUrl }),
      ctx('line-vision-nodeset'),
    );
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await structured?.stop();
  });

  test('PrepareRecipe and UnprepareRecipe go through with the ids as structures', async () => {
    const { internalRecipeId } = await client!.port.prepareRecipe(S4.system, 'HSG310-B');

    expect(internalRecipeId).toBe('job-31');
    expect(await client!.port.readState(S4.system)).toMatchObject({
      substate: 'Ready',
      externalRecipeId: 'HSG310-B',
      internalRecipeId: 'job-31',
    });
    expect(structured!.visionCalls().at(-1)).toMatchObject({ method: 'PrepareRecipe', externalId: 'HSG310-B' });

    await client!.port.unprepareRecipe(S4.system, internalRecipeId);
    expect(structured!.visionSystem(S4.system)).toMatchObject({ substate: 'Initialized', prepared: null });
  });
});

describe('opcua-line-control against the simulated PLC', () => {
  test('is registered with role line-control and reports the PLC healthy', async () => {
    expect(connectorRegistry['opcua-line-control'].role).toBe('line-control');
    await expect(lineControl!.healthCheck()).resolves.toBeUndefined();
  });

  test('the line starts interlocked; set and read back; the PLC records every call with its time', async () => {
    expect(await lineControl!.port.readRelease(L1)).toEqual({ released: false, workOrder: '' });
    const before = sim!.releases().length;
    const t0 = Date.now();

    await lineControl!.port.setRelease(L1, { released: false, workOrder: 'WO-2' });
    expect(await lineControl!.port.readRelease(L1)).toEqual({ released: false, workOrder: 'WO-2' });
    await lineControl!.port.setRelease(L1, { released: true, workOrder: 'WO-2' });
    expect(await lineControl!.port.readRelease(L1)).toEqual({ released: true, workOrder: 'WO-2' });
    await lineControl!.port.setRelease(L1, { released: true, workOrder: 'WO-2' });

    const records = sim!.releases().slice(before);
    expect(records.map((r) => [r.released, r.workOrder, r.changed])).toEqual([
      [false, 'WO-2', true],
      [true, 'WO-2', true],
      [true, 'WO-2', false],
    ]);
    for (const r of records) expect(r.at.getTime()).toBeGreaterThanOrEqual(t0 - 5);
    expect(sim!.lineRelease(L1)).toEqual({ released: true, workOrder: 'WO-2' });
  });

  test('a line without an interlock is not-found; an empty work order is refused by the PLC', async () => {
    const missing = await failure(
      lineControl!.port.setRelease({ site: 'PLANT1', line: 'L9' }, { released: false, workOrder: 'WO-1' }),
      LineControlError,
    );
    expect(missing.kind).toBe('not-found');
    expect(missing.message).toMatch(/line PLANT1\/L9/);

    const empty = await failure(lineControl!.port.setRelease(L1, { released: true, workOrder: '' }), LineControlError);
    expect(empty.kind).toBe('rejected');
    expect(empty.message).toMatch(/error -1/);
  });
});

describe('connection failures', () => {
  test('with the server gone, calls fail as retryable (transient)', async () => {
    await sim!.stop();

    const prepare = await failure(vision!.port.prepareRecipe(S4.system, 'BRKT200-A'), VisionSystemError);
    const read = await failure(vision!.port.readState(S4.system), VisionSystemError);
    const release = await failure(
      lineControl!.port.setRelease(L1, { released: true, workOrder: 'WO-3' }),
      LineControlError,
    );
    const health = await failure(vision!.healthCheck(), VisionSystemError);

    for (const err of [prepare, read, release, health]) expect(err.kind).toBe('transient');
  });

  test('opening against nothing fails with a retryable connect error', async () => {
    const err = await failure(
      machineVisionConnector.connect(
        machineVisionConnector.configSchema.parse({
          endpointUrl: `opc.tcp://127.0.0.1:${await findFreePort()}`,
          connectTimeoutMs: 1_500,
        }),
        ctx('nothing'),
      ),
      VisionSystemError,
    );
    expect(err.kind).toBe('transient');
    expect(err.reason).toBe('connect');
  });
});
