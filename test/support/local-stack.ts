/**
 * `npm start`'s whole stack for a test: temporal.yaml with every port it binds moved to a free one, and an
 * environment that points it at nothing of the test run's own (its PostgreSQL, Temporal and broker are its own).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { findFreePort } from '../../infra/local/managed-process';
import type { LocalPorts } from '../../infra/local/start';
import { readTestEnv } from './test-env';

const ROOT = resolve(__dirname, '../..');

export type StackPorts = LocalPorts & { api: number; inferenceHttp: number };

/**
 * Writes `<dir>/temporal.yaml` on free ports; its path and the ports. The worker's metrics and health listen on any
 * free port it finds itself (0) unless `workerOnFreePorts` picks them here: a test that restarts the worker must let it
 * bind anew, one that reads the worker's health through the API (the dashboard's connector tiles) must know where.
 */
export async function writeStackConfig(
  dir: string,
  opts: { workerOnFreePorts?: boolean } = {},
): Promise<{ file: string; ports: StackPorts }> {
  const free = async () => findFreePort();
  const ports: StackPorts = {
    postgres: await free(),
    sapSim: await free(),
    mesSim: await free(),
    linePlc: await free(),
    // Bound by the simulator itself (0: any free port); nothing here reads it.
    linePlcMetrics: 0,
    cameraSim: await free(),
    api: await free(),
    inferenceHttp: await free(),
  };
  const doc = parseDocument(readFileSync(join(ROOT, 'temporal.yaml'), 'utf8'));
  doc.setIn(['temporal', 'devServer', 'port'], await free());
  doc.setIn(['temporal', 'devServer', 'uiPort'], await free());
  doc.setIn(['api', 'port'], ports.api);
  doc.setIn(['observability', 'worker', 'port'], opts.workerOnFreePorts ? await free() : 0);
  doc.setIn(['observability', 'worker', 'temporalSdkPort'], opts.workerOnFreePorts ? await free() : 0);
  doc.setIn(['connectors', 'line-mqtt', 'embeddedPort'], await free());
  doc.setIn(['connectors', 'line-plc', 'endpointUrl'], `opc.tcp://127.0.0.1:${ports.linePlc}`);
  doc.setIn(['vision', 'http', 'port'], ports.inferenceHttp);
  doc.setIn(['connectors', 'mes-sim', 'baseUrl'], `http://127.0.0.1:${ports.mesSim}`);
  doc.setIn(['connectors', 'sap-sim', 'baseUrl'], `http://127.0.0.1:${ports.sapSim}`);
  const file = join(dir, 'temporal.yaml');
  writeFileSync(file, doc.toString());
  return { file, ports };
}

/** This process's environment without anything that would point the stack at another PostgreSQL, Temporal or broker. */
export function stackEnv(configFile: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) {
    if (/^(DATABASE_URL|TEMPORAL_|MQTT_URL|SAP_|HOLDFAST_DATA_DIR|CAMERA_SIM_|LINE_PLC_|API_PORT)/.test(name)) {
      delete env[name];
    }
  }
  return {
    ...env,
    HOLDFAST_CONFIG: configFile,
    HOLDFAST_TEMPORAL_CLI: readTestEnv().temporalCliPath,
    ...extra,
  };
}
