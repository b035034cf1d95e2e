import { z } from 'zod';
import { resolveEnvRef } from '../../config/load';
import { defineConnector } from '../define';
import { createMesRestClient } from './mes-rest.client';
import { MesHealthResponse } from './mes-rest.schemas';
import { createMesRestPort } from './mes-rest.port';
import { createMesGenealogyFeed } from './mes-genealogy';
import { createMesJobOrderFeed } from './mes-job-orders';

export const MES_REST_KIND = 'holdfast-mes-rest';

/** One `connectors:` entry in temporal.yaml. The `kind` key is accepted so the block can be passed as written. */
export const MesRestConfig = z.strictObject({
  kind: z.literal(MES_REST_KIND).optional(),
  baseUrl: z.url({ protocol: /^https?$/ }),
  /** Plain, or `${env:NAME}` to read it from the environment at connect time. */
  apiKey: z.string().min(1).optional(),
  timeoutMs: z.number().int().positive().max(120_000).default(5000),
});
export type MesRestConfig = z.infer<typeof MesRestConfig>;

export default defineConnector({
  kind: MES_REST_KIND,
  role: 'mes',
  configSchema: MesRestConfig,
  async connect(config, ctx) {
    const apiKey =
      config.apiKey === undefined ? undefined : resolveEnvRef(config.apiKey, `connectors.${ctx.name}.apiKey`, ctx.env);
    const client = createMesRestClient({
      system: ctx.name,
      baseUrl: config.baseUrl,
      timeoutMs: config.timeoutMs,
      ...(apiKey !== undefined ? { apiKey } : {}),
    });
    return {
      port: {
        ...createMesRestPort(client, ctx.name),
        genealogy: createMesGenealogyFeed(client),
        // A malformed event is left out of its page, so the cursor moves on; the log names it.
        jobOrders: createMesJobOrderFeed(client, (reason) =>
          ctx.log.warn('MES job-order event refused', { connector: ctx.name, reason }),
        ),
      },
      async healthCheck() {
        await client.request({ operation: 'healthCheck', method: 'GET', path: '/health', response: MesHealthResponse });
      },
      async close() {
        client.close();
      },
    };
  },
});
