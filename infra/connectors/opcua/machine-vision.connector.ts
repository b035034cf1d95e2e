import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { defineConnector } from '../define';
import { machineVisionSettings, openOpcUaMachineVision } from './machine-vision';
import { refineOpcUaSecurity } from './session';

/** The block under `connectors:`; `pkiDir` defaults to `<HOLDFAST_DATA_DIR>/opcua-pki` (the one npm start trusts). */
export const OpcUaMachineVisionConnectorConfig = z
  .strictObject({ ...machineVisionSettings, pkiDir: z.string().min(1).optional() })
  .superRefine(refineOpcUaSecurity);

/** External vision systems over OPC UA for Machine Vision (OPC 40100), named by Station.vision (README.md, "Vision systems"). */
export default defineConnector({
  kind: 'opcua-machine-vision',
  role: 'vision-system',
  configSchema: OpcUaMachineVisionConnectorConfig,
  async connect(config, ctx) {
    const pkiDir = config.pkiDir ?? 'opcua-pki';
    // On the calling thread: a changeover makes a few calls per station, nothing here is latency-critical.
    const client = await openOpcUaMachineVision(
      { ...config, pkiDir: isAbsolute(pkiDir) ? pkiDir : join(ctx.dataDir, pkiDir) },
      ctx.log,
    );
    return { port: client, healthCheck: () => client.healthCheck(), close: () => client.close() };
  },
});
