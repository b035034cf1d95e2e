/**
 * holdfast-mes-rest against the in-repo MES simulator (infra/simulators/mes), in this process over real HTTP, with
 * its fault injection (infra/simulators/shared/faults.ts) as the sandbox's faults.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Pool } from 'pg';
import mesRestConnector from '../../infra/connectors/mes-rest/mes-rest.connector';
import { buildMesSimulator } from '../../infra/simulators/mes/mes.simulator';
import { testPool } from '../support/test-env';
import { mesConnectorContract, type MesSandbox } from './mes.contract';

const schema = `mes_contract_${randomBytes(5).toString('hex')}`;
const API_KEY = 'contract-key';
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
let pool: Pool;
let sim: FastifyInstance;
let baseUrl: string;

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(baseUrl + path, {
    method,
    headers: { 'x-api-key': API_KEY, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`MES simulator ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const DROP_PATH = {
  hold: '/holds',
  'quality-event': '/quality-events',
  // Before `release`: the hold release's path is `/release`, the production release's `/production-release`.
  'production-release': '/production-release',
  release: '/holds/',
  resequencing: '/resequencing-requests',
} as const;
let lotSeq = 0;
let orderSeq = 0;

mesConnectorContract(
  'holdfast-mes-rest against the MES simulator',
  {
    async start(): Promise<MesSandbox> {
      pool = testPool();
      sim = await buildMesSimulator({ pool, schema, apiKey: API_KEY });
      await sim.listen({ port: 0, host: '127.0.0.1' });
      const { port } = sim.server.address() as AddressInfo;
      baseUrl = `http://127.0.0.1:${port}`;
      return {
        port,
        unknownLotId: 'NO-SUCH-LOT',
        async newLot() {
          lotSeq += 1;
          const lot = { lotId: `K-LOT-${lotSeq}`, workOrder: `K-WO-${lotSeq}`, sku: 'HSG-310', quantity: 25 };
          await call('POST', '/__sim/lots', lot);
          return { lotId: lot.lotId, workOrder: lot.workOrder };
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
        async holdsWithKey(key) {
          const { items } = await call<{ items: unknown[] }>(
            'GET',
            `/api/v1/holds?externalReference=${encodeURIComponent(key)}`,
          );
          return items.length;
        },
        async qualityEventsWithKey(workOrder, key) {
          const { items } = await call<{ items: unknown[] }>(
            'GET',
            `/api/v1/work-orders/${encodeURIComponent(workOrder)}/quality-events?externalReference=${encodeURIComponent(key)}`,
          );
          return items.length;
        },
        feedback: {
          async releaseOrder(line, customerCriticality) {
            orderSeq += 1;
            const workOrder = `K-JO-${schema}-${orderSeq}`;
            await call('POST', '/__sim/job-orders', {
              workOrder,
              sku: 'HSG-310',
              line,
              plannedQuantity: 40,
              customerCriticality,
            });
            return { workOrder, sku: 'HSG-310' };
          },
          async startOrder(workOrder) {
            await call('POST', `/__sim/job-orders/${encodeURIComponent(workOrder)}/start`, {});
          },
          async productionReleases(workOrder) {
            const { rows } = await pool.query(`SELECT 1 FROM "${schema}".production_release WHERE work_order = $1`, [
              workOrder,
            ]);
            return rows.length;
          },
          async resequencingsWithKey(key) {
            const { items } = await call<{ items: unknown[] }>(
              'GET',
              `/api/v1/resequencing-requests?externalReference=${encodeURIComponent(key)}`,
            );
            return items.length;
          },
        },
      };
    },
    connect: () =>
      mesRestConnector.connect(mesRestConnector.configSchema.parse({ baseUrl, apiKey: '${env:MES_CONTRACT_KEY}' }), {
        name: 'mes-contract',
        env: { MES_CONTRACT_KEY: API_KEY },
        log: quiet,
        dataDir: '/nonexistent',
      }),
    async stop() {
      await sim?.close();
      await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await pool?.end();
    },
  },
  { feedback: true },
);
