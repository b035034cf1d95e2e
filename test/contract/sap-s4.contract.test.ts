/**
 * sap-s4-odata against the in-repo SAP S/4HANA simulator (infra/simulators/sap-s4), in this process over real HTTP,
 * with its fault injection (infra/simulators/shared/faults.ts) as the sandbox's faults.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import sapS4Connector from '../../infra/connectors/sap-s4/sap-s4.connector';
import { buildSapS4Simulator } from '../../infra/simulators/sap-s4/sap-s4.simulator';
import { testPool } from '../support/test-env';
import { erpConnectorContract, type ErpDocumentCounts, type ErpSandbox } from './erp.contract';

const schema = `sap_contract_${randomBytes(5).toString('hex')}`;
const credentials = { username: 'HOLDFAST_COMM', password: `pw-${randomBytes(8).toString('hex')}` };
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
let pool: Pool;
let sim: FastifyInstance;
let baseUrl: string;

async function call<T>(method: string, path: string, body?: unknown): Promise<T | undefined> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: {
      authorization: `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`SAP simulator ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  const text = await res.text();
  return text ? (JSON.parse(text) as T) : undefined;
}

/** URL fragments of each create's POST ("/QualityNotification?" is the notification, not an item added to it). */
const DROP_PATH = {
  notification: '/QualityNotification?',
  'notification-item': '/_QualityNotificationItem',
  'goods-movement': '/A_MaterialDocumentHeader',
} as const;
/** InventoryStockType: 01 unrestricted, 07 blocked. */
const UNRESTRICTED = '01';
const BLOCKED = '07';
let batchSeq = 0;

erpConnectorContract('sap-s4-odata against the SAP S/4HANA simulator', {
  async start(): Promise<ErpSandbox> {
    pool = testPool();
    sim = await buildSapS4Simulator({ pool, schema, credentials });
    await sim.listen({ port: 0, host: '127.0.0.1' });
    const { port } = sim.server.address() as AddressInfo;
    baseUrl = `http://127.0.0.1:${port}`;
    return {
      port,
      unknownMaterial: 'NO-SUCH-MATERIAL',
      unknownNotification: '999999999',
      async newBatch(quantity) {
        batchSeq += 1;
        const batch = {
          material: `K-MAT-${batchSeq}`,
          plant: '1010',
          storageLocation: '0001',
          batch: `KB${batchSeq}`,
          unit: 'PC',
        };
        await call('POST', '/__sim/stock', { ...batch, quantity });
        return batch;
      },
      async dropNextResponse(create) {
        await call('PUT', '/__faults', { dropResponse: { remaining: 1, pathContains: DROP_PATH[create] } });
      },
      async outage() {
        await call('PUT', '/__faults', { outageUntil: new Date(Date.now() + 60_000).toISOString() });
      },
      async clearFaults() {
        await call('DELETE', '/__faults');
      },
      counts: async () => (await call<ErpDocumentCounts>('GET', '/__sim/counts'))!,
      async stock(b) {
        const filter = encodeURIComponent(`Material eq '${b.material}' and Batch eq '${b.batch}'`);
        const body = await call<{
          d: { results: { InventoryStockType: string; MatlWrhsStkQtyInMatlBaseUnit: string }[] };
        }>('GET', `/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod?$filter=${filter}`);
        const of = (type: string) =>
          Number(body!.d.results.find((r) => r.InventoryStockType === type)?.MatlWrhsStkQtyInMatlBaseUnit ?? 0);
        return { unrestricted: of(UNRESTRICTED), blocked: of(BLOCKED) };
      },
    };
  },
  connect: () =>
    sapS4Connector.connect(
      sapS4Connector.configSchema.parse({
        baseUrl,
        sapClient: '100',
        username: '${env:SAP_CONTRACT_USER}',
        password: '${env:SAP_CONTRACT_PASSWORD}',
      }),
      {
        name: 'sap-contract',
        env: { SAP_CONTRACT_USER: credentials.username, SAP_CONTRACT_PASSWORD: credentials.password },
        log: quiet,
        dataDir: '/nonexistent',
      },
    ),
  async stop() {
    await sim?.close();
    await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool?.end();
  },
});
