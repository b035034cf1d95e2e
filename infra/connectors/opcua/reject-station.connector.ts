import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { defineConnector } from '../define';
import { rejectStationSettings } from './reject-station';
import { refineOpcUaSecurity } from './session';
import { openOpcUaRejectStationInThread } from './threaded-reject-station';

/** The block under `connectors:`; `pkiDir` defaults to `<HOLDFAST_DATA_DIR>/opcua-pki`. */
export const OpcUaRejectStationConnectorConfig = z
  .strictObject({ ...rejectStationSettings, pkiDir: z.string().min(1).optional() })
  .superRefine(refineOpcUaSecurity);

/** The line PLC's reject station (README.md). */
export default defineConnector({
  kind: 'opcua-reject-station',
  role: 'reject-station',
  configSchema: OpcUaRejectStationConnectorConfig,
  async connect(config, ctx) {
    const pkiDir = config.pkiDir ?? 'opcua-pki';
    // On a thread of its own: the PLC's answer is read when it lands, not when this thread is next free.
    const station = await openOpcUaRejectStationInThread(
      { ...config, pkiDir: isAbsolute(pkiDir) ? pkiDir : join(ctx.dataDir, pkiDir) },
      ctx.log,
    );
    return {
      port: station,
      healthCheck: () => station.healthCheck(),
      close: () => station.close(),
    };
  },
});
