/**
 * opcua-machine-vision and opcua-line-control against the line PLC simulator (infra/simulators/line-plc), in process
 * on a free loopback port. An outage stops the simulator; clearing it starts a new one on the same port (the
 * connectors' own reconnect loop finds it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lineControlConnector from '../../infra/connectors/opcua/line-control.connector';
import machineVisionConnector from '../../infra/connectors/opcua/machine-vision.connector';
import { findFreePort } from '../../infra/local/managed-process';
import {
  startLinePlcSimulator,
  type LinePlcSimulator,
  type LinePlcSimulatorOptions,
} from '../../infra/simulators/line-plc/line-plc.simulator';
import { quietLog } from '../support/quiet-log';
import { lineControlConnectorContract, visionSystemConnectorContract } from './changeover-devices.contract';

const SYSTEM = 'contract-vision';
const LINE = { site: 'PLANT1', line: 'L1' };

/** The simulator, restartable on its port; `down` while an outage is armed. */
function simulatedPlc() {
  const dataDir = mkdtempSync(join(tmpdir(), 'holdfast-contract-plc-'));
  let sim: LinePlcSimulator | undefined;
  let options: LinePlcSimulatorOptions | undefined;
  let down = false;
  return {
    dataDir,
    sim: () => sim!,
    async start() {
      options = {
        port: await findFreePort(),
        stations: [],
        visionSystems: [
          {
            system: SYSTEM,
            site: LINE.site,
            line: LINE.line,
            station: 'S4',
            recipes: ['RCP-A', { externalId: 'RCP-B', internalId: 'job-2' }],
          },
        ],
        lineControls: [LINE],
        dataDir: join(dataDir, 'plc'),
        trustedClientPkiDirs: [join(dataDir, 'opcua-pki')],
        log: quietLog(),
      };
      sim = await startLinePlcSimulator(options);
      return options.port;
    },
    async outage() {
      down = true;
      await sim!.stop();
    },
    async clearFaults() {
      if (down) {
        down = false;
        sim = await startLinePlcSimulator(options!);
      }
      sim!.setVisionFaults(SYSTEM, {});
    },
    async stop() {
      if (!down) await sim?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const ctx = (dataDir: string, name: string) => ({ name, env: process.env, log: quietLog(), dataDir });

const visionPlc = simulatedPlc();
visionSystemConnectorContract('opcua-machine-vision against the line PLC simulator', {
  async start() {
    const port = await visionPlc.start();
    return {
      port,
      system: SYSTEM,
      recipes: [
        { externalId: 'RCP-A', internalId: 'RCP-A#1' },
        { externalId: 'RCP-B', internalId: 'job-2' },
      ],
      refusePrepare: async (code) => visionPlc.sim().setVisionFaults(SYSTEM, { refuseWithError: code }),
      outage: () => visionPlc.outage(),
      clearFaults: () => visionPlc.clearFaults(),
    };
  },
  connect: () =>
    machineVisionConnector.connect(
      machineVisionConnector.configSchema.parse({ endpointUrl: visionPlc.sim().endpointUrl, connectTimeoutMs: 5_000 }),
      ctx(visionPlc.dataDir, 'line-vision'),
    ),
  stop: () => visionPlc.stop(),
});

const controlPlc = simulatedPlc();
lineControlConnectorContract('opcua-line-control against the line PLC simulator', {
  async start() {
    const port = await controlPlc.start();
    return {
      port,
      line: LINE,
      plcState: async () => controlPlc.sim().lineRelease(LINE),
      outage: () => controlPlc.outage(),
      clearFaults: () => controlPlc.clearFaults(),
    };
  },
  connect: () =>
    lineControlConnector.connect(
      lineControlConnector.configSchema.parse({ endpointUrl: controlPlc.sim().endpointUrl, connectTimeoutMs: 5_000 }),
      ctx(controlPlc.dataDir, 'line-control'),
    ),
  stop: () => controlPlc.stop(),
});
