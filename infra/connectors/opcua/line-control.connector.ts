import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { defineConnector } from '../define';
import { lineControlSettings, openOpcUaLineControl } from './line-control';
import { refineOpcUaSecurity } from './session';

/** The block under `connectors:`; `pkiDir` defaults to `<HOLDFAST_DATA_DIR>/opcua-pki` (the one npm start trusts). */
export const OpcUaLineControlConnectorConfig = z
  .strictObject({ ...lineControlSettings, pkiDir: z.string().min(1).optional() })
  .superRefine(refineOpcUaSecurity);

/** A line's release interlock on its PLC, named by sites[].lineControl (README.md, "Line control"). */
export default defineConnector({
  kind: 'opcua-line-control',
  role: 'line-control',
  configSchema: OpcUaLineControlConnectorConfig,
  async connect(config, ctx) {
    const pkiDir = config.pkiDir ?? 'opcua-pki';
    const client = await openOpcUaLineControl(
      { ...config, pkiDir: isAbsolute(pkiDir) ? pkiDir : join(ctx.dataDir, pkiDir) },
      ctx.log,
    );
    return { port: client, healthCheck: () => client.healthCheck(), close: () => client.close() };
  },
});
