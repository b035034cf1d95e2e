/**
 * The contracts every connector of role `vision-system` (VisionSystemPort) and of role `line-control`
 * (LineInterlockPort) passes, whatever device is behind it: what a changeover relies on (docs/changeover.md).
 */
import type { LineInterlockPort, VisionSystemPort } from '../../activities/ports';
import { eventually } from '../support/eventually';
import { connectorUnderContract, externalError, type ContractSandbox, type ContractSetup } from './contract-support';

export interface VisionSystemSandbox extends ContractSandbox {
  /** A vision system on the server, Operational, that knows `recipes`. */
  system: string;
  /** Two recipes it knows: the external id the environment uses and the system's own id for it. */
  recipes: [{ externalId: string; internalId: string }, { externalId: string; internalId: string }];
  /** The next PrepareRecipe calls are refused with this vendor error code until clearFaults(). */
  refusePrepare(code: number): Promise<void>;
}

export function visionSystemConnectorContract(
  name: string,
  setup: ContractSetup<VisionSystemSandbox, VisionSystemPort>,
): void {
  describe(`vision-system connector contract: ${name}`, () => {
    const under = connectorUnderContract('vision system', setup, async (vision, { sandbox }) => {
      await vision.port.readState(sandbox.system);
      return vision.port.prepareRecipe(sandbox.system, sandbox.recipes[0].externalId);
    });
    // After an outage the sandbox comes back; the shared instance reconnects on its own before the next test.
    beforeEach(() =>
      eventually(
        'the shared connector healthy again',
        () =>
          under.connector.healthCheck().then(
            () => true,
            () => false,
          ),
        (ok) => ok,
        { timeoutMs: 15_000 },
      ),
    );

    it('prepareRecipe leaves the system Ready, and readState reads back both ids of what was asked', async () => {
      const { system, recipes } = under.sandbox;
      for (const recipe of recipes) {
        const { internalRecipeId } = await under.connector.port.prepareRecipe(system, recipe.externalId);

        expect(internalRecipeId).toBe(recipe.internalId);
        expect(await under.connector.port.readState(system)).toMatchObject({
          state: 'Operational',
          substate: 'Ready',
          externalRecipeId: recipe.externalId,
          internalRecipeId: recipe.internalId,
        });
      }
    });

    it('unprepareRecipe leaves no recipe prepared; unpreparing again is harmless (a retried compensation)', async () => {
      const { system, recipes } = under.sandbox;
      const { internalRecipeId } = await under.connector.port.prepareRecipe(system, recipes[1].externalId);

      await under.connector.port.unprepareRecipe(system, internalRecipeId);
      await under.connector.port.unprepareRecipe(system, internalRecipeId);

      expect(await under.connector.port.readState(system)).toMatchObject({
        externalRecipeId: null,
        internalRecipeId: null,
      });
      expect((await under.connector.port.readState(system)).substate).not.toBe('Ready');
    });

    it("a refused PrepareRecipe is rejected (never retried), with the system's code in the message", async () => {
      const { system, recipes } = under.sandbox;
      await under.sandbox.refusePrepare(-4242);

      const err = await externalError(under.connector.port.prepareRecipe(system, recipes[0].externalId));

      expect(err.kind).toBe('rejected');
      expect(err.message).toContain('-4242');
    });

    it('an unknown vision system is not-found, naming it', async () => {
      const err = await externalError(under.connector.port.readState('no-such-vision-system'));

      expect(err.kind).toBe('not-found');
      expect(err.message).toContain('no-such-vision-system');
    });

    it('calls while the server is unavailable fail as transient', async () => {
      const { system, recipes } = under.sandbox;
      await under.sandbox.outage();

      expect((await externalError(under.connector.port.readState(system))).kind).toBe('transient');
      expect((await externalError(under.connector.port.prepareRecipe(system, recipes[0].externalId))).kind).toBe(
        'transient',
      );
    });
  });
}

export interface LineControlSandbox extends ContractSandbox {
  /** A line with an interlock on the PLC. */
  line: { site: string; line: string };
  /** The PLC's own record of the line's interlock (past the connector). */
  plcState(): Promise<{ released: boolean; workOrder: string } | undefined>;
}

export function lineControlConnectorContract(
  name: string,
  setup: ContractSetup<LineControlSandbox, LineInterlockPort>,
): void {
  describe(`line-control connector contract: ${name}`, () => {
    const under = connectorUnderContract('PLC', setup, async (plc, { sandbox }) => {
      await plc.port.readRelease(sandbox.line);
      return plc.port.setRelease(sandbox.line, { released: false, workOrder: 'WO-CONTRACT' });
    });
    beforeEach(() =>
      eventually(
        'the shared connector healthy again',
        () =>
          under.connector.healthCheck().then(
            () => true,
            () => false,
          ),
        (ok) => ok,
        { timeoutMs: 15_000 },
      ),
    );

    it('setRelease reaches the PLC and readRelease reads it back, interlock first, release after', async () => {
      const { line } = under.sandbox;

      await under.connector.port.setRelease(line, { released: false, workOrder: 'WO-7' });
      expect(await under.connector.port.readRelease(line)).toEqual({ released: false, workOrder: 'WO-7' });
      expect(await under.sandbox.plcState()).toEqual({ released: false, workOrder: 'WO-7' });

      await under.connector.port.setRelease(line, { released: true, workOrder: 'WO-7' });
      expect(await under.connector.port.readRelease(line)).toEqual({ released: true, workOrder: 'WO-7' });
      expect(await under.sandbox.plcState()).toEqual({ released: true, workOrder: 'WO-7' });
    });

    it('a line the PLC has no interlock for is not-found, naming it', async () => {
      const err = await externalError(
        under.connector.port.setRelease(
          { site: under.sandbox.line.site, line: 'NOLINE' },
          { released: false, workOrder: 'WO-1' },
        ),
      );

      expect(err.kind).toBe('not-found');
      expect(err.message).toContain('NOLINE');
    });

    it('a release while the PLC is unavailable fails as transient', async () => {
      await under.sandbox.outage();

      const err = await externalError(
        under.connector.port.setRelease(under.sandbox.line, { released: true, workOrder: 'WO-8' }),
      );

      expect(err.kind).toBe('transient');
    });
  });
}
