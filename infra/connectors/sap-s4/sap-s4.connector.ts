import { z } from 'zod';
import { resolveEnvRef } from '../../config/load';
import { defineConnector } from '../define';
import { QUALITY_NOTIFICATION_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { SapHttpSession, SapODataClient, SapODataV4Client } from './client';
import { createSapS4ErpPort } from './sap-s4.port';
import { createSapGenealogyFeed } from './sap-genealogy';
import { createSapErpFeed } from './sap-erp-feed';
import { createSapPurchasing, createSapSupplierEvaluation } from './sap-purchasing';

export const SAP_S4_KIND = 'sap-s4-odata';

/** One `connectors:` entry in temporal.yaml. The `kind` key is accepted so the block can be passed as written. */
export const SapS4Config = z.strictObject({
  kind: z.literal(SAP_S4_KIND).optional(),
  /** Scheme, host and port of the SAP system; each service's path comes from infra/vendor-apis/sap-s4/metadata.ts. */
  baseUrl: z
    .url({ protocol: /^https?$/ })
    .refine(
      (u) => !new URL(u).username && !new URL(u).password,
      'credentials belong in username/password, not the URL',
    ),
  /** SAP client (mandant), three digits, e.g. '100'. */
  sapClient: z.string().regex(/^\d{3}$/, 'expected a three-digit SAP client such as "100"'),
  /** Plain, or `${env:NAME}` to read it from the environment at connect time. */
  username: z.string().min(1),
  password: z.string().min(1),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
});
export type SapS4Config = z.infer<typeof SapS4Config>;

export default defineConnector({
  kind: SAP_S4_KIND,
  role: 'erp',
  configSchema: SapS4Config,
  async connect(config, ctx) {
    const session = new SapHttpSession({
      system: ctx.name,
      baseUrl: config.baseUrl,
      sapClient: config.sapClient,
      username: resolveEnvRef(config.username, `connectors.${ctx.name}.username`, ctx.env),
      password: resolveEnvRef(config.password, `connectors.${ctx.name}.password`, ctx.env),
      timeoutMs: config.timeoutMs,
    });
    return {
      port: {
        ...createSapS4ErpPort(new SapODataClient(session), new SapODataV4Client(session)),
        genealogy: createSapGenealogyFeed(new SapODataClient(session)),
        feed: createSapErpFeed(new SapODataClient(session)),
        purchasing: createSapPurchasing(new SapODataClient(session)),
        supplierEvaluation: createSapSupplierEvaluation(new SapODataClient(session)),
      },
      async healthCheck() {
        await session.refreshCsrfToken(QUALITY_NOTIFICATION_SERVICE, 'healthCheck');
      },
      // Fails the calls in flight, releases the connection pool and drops the SAP session.
      async close() {
        session.close();
      },
    };
  },
});
