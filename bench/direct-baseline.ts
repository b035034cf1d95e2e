/**
 * bench:latency's direct baseline, a process of its own: what a hand-wired integration without durability would do
 * for each failed inspection, with Holdfast's own parts where the two share a step. The inspection is POSTed to
 * Holdfast's API app (the same routes, validation and PostgreSQL transaction: inspection and outbox row) served here
 * without an outbox dispatcher; once it is stored, the lot is read from the MES, then the hold, the ERP notification,
 * the 344 block and the work-order count go out in parallel through the same connectors, and a trace row marks the
 * part done. No Temporal, no worker, nothing retried.
 *
 * It has simulators and databases of its own, so the CPU of each side is read per process. It generates its own
 * load (its stream, due instants set by the benchmark), so its CPU figure includes a load generator, the API and
 * the integration. Started by bench/latency.bench.ts, which drives it over a small control port:
 *   POST /runs {t0Ms, perSecond, offsetMs, parts} starts a stream; GET /runs/last says how far it got.
 *
 * Env: DATABASE_URL, HOLDFAST_CONFIG (connectors pointing at this side's simulators), SAP_USER, SAP_PASSWORD,
 * BENCH_DIRECT_API_PORT, BENCH_DIRECT_CONTROL_PORT.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { ErpPort, MesPort } from '../activities/ports';
import { buildApp } from '../api/app';
import { loadConfig } from '../infra/config/load';
import type { ConnectorLogger } from '../infra/connectors/define';
import { createPool } from '../infra/db/pool';
import { createLogger } from '../infra/observability/logger';
import type { WorkflowGateway } from '../infra/temporal/gateway';
import { openSiteConnectors } from '../workers/connectors';
import { DIRECT_READY_LINE, type DirectRunRequest, type DirectRunStatus } from './direct-protocol';
import { inspectionBody, type PlannedPart } from './plant-data';
import { openLoop } from './schedule';
import { generateSigningKey } from '../infra/identity/signing-key';
import { integratorAuthorization } from './harness';

const quiet: ConnectorLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Ingest works without Temporal; anything else this app is asked is not part of the baseline. */
const noTemporal = new Proxy({} as WorkflowGateway, {
  get: () => () => Promise.reject(new Error('the direct baseline has no Temporal')),
});

function port(name: string): number {
  const value = Number(process.env[name]);
  if (!Number.isInteger(value) || value <= 0 || value > 65535) throw new Error(`${name} must be a port number`);
  return value;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set');
  const apiPort = port('BENCH_DIRECT_API_PORT');
  const controlPort = port('BENCH_DIRECT_CONTROL_PORT');
  const host = '127.0.0.1';

  // As api/server.ts builds and serves it (its logger included, at the level LOG_LEVEL says), less the dispatcher and the Temporal connection.
  const pool = createPool(databaseUrl, { applicationName: 'holdfast-api' });
  // Its own key and an integrator's token: the API's access check is part of the measured path, as in production.
  const signingKey = await generateSigningKey();
  const integrator = await integratorAuthorization(signingKey);
  const app = await buildApp({
    signingKey,
    pool,
    gateway: noTemporal,
    config,
    namespace: 'default',
    logger: createLogger('api'),
    docsUi: true,
  });
  await app.listen({ host, port: apiPort });
  const connectors = await openSiteConnectors(config, quiet);
  const site = config.sites[0]!.id;
  const mes = connectors.mesFor(site);
  const erp = connectors.erpFor(site);
  const apiUrl = `http://${host}:${apiPort}/v1/inspections`;

  let status: DirectRunStatus = { state: 'idle', failures: [], sendLagMs: [], ingestMs: [] };
  const run = async (req: DirectRunRequest) => {
    const current: DirectRunStatus = { state: 'running', failures: [], sendLagMs: [], ingestMs: [] };
    status = current;
    const { sendLagMs } = await openLoop(
      req.parts.length,
      req.perSecond,
      req.t0Ms,
      async (i, dueMs) => {
        const part = req.parts[i]!;
        try {
          const res = await fetch(apiUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: integrator },
            body: JSON.stringify(inspectionBody(part, dueMs, site)),
          });
          current.ingestMs.push(Date.now() - dueMs);
          if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
          await directContainment(mes, erp, pool, part);
        } catch (err) {
          current.failures.push({ eventId: part.eventId, error: err instanceof Error ? err.message : String(err) });
        }
      },
      req.offsetMs,
    );
    current.sendLagMs = sendLagMs;
    current.state = 'done';
  };

  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answer = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/runs/last') return answer(200, status);
    if (req.method !== 'POST' || req.url !== '/runs') return answer(404, { error: 'not found' });
    if (status.state === 'running') return answer(409, { error: 'a run is in progress' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: DirectRunRequest;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as DirectRunRequest;
      } catch (err) {
        return answer(400, { error: `not JSON: ${(err as Error).message}` });
      }
      status = { state: 'running', failures: [], sendLagMs: [], ingestMs: [] };
      void run(body);
      answer(202, { parts: body.parts.length });
    });
  });
  await new Promise<void>((resolve) => control.listen(controlPort, host, resolve));
  process.stdout.write(`${DIRECT_READY_LINE}\n`);

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await new Promise<void>((resolve) => control.close(() => resolve()));
      await app.close();
      await connectors.close();
      await pool.end();
    })().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`direct baseline did not stop cleanly: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

/**
 * The hand-wired integration for one defect, with the same connectors and simulators as Holdfast's activities: read
 * the lot, then hold, notification, block and work-order count in parallel, then the trace row that marks it done.
 */
async function directContainment(
  mes: MesPort,
  erp: ErpPort,
  pool: import('pg').Pool,
  part: PlannedPart,
): Promise<void> {
  const { lotId, line, station } = part.lot;
  const key = `direct-${part.eventId}`;
  // Nothing is retried here, so no create can be a retry: none looks its key up first, like Holdfast's first attempts.
  const direct = { lookupFirst: false };
  const lot = await mes.getLot(lotId);
  await Promise.all([
    mes.holdLot(
      {
        idempotencyKey: `${key}:hold`,
        lotId,
        workOrder: lot.workOrder,
        reason: 'bench',
        defectClass: 'scratch',
        line,
        station,
      },
      direct,
    ),
    erp.raiseQualityNotification(
      {
        idempotencyKey: `${key}:qn`,
        notificationType: 'F3',
        text: `Vision defects in lot ${lotId}`,
        material: lot.sku,
        plant: lot.erpPlant,
        batch: lot.batch,
        quantity: lot.quantity,
        unit: lot.unit,
        firstItem: { idempotencyKey: `${key}:item`, defectCodeGroup: 'HF-VISN', defectCode: 'SCRA', text: 'scratch' },
      },
      direct,
    ),
    erp.postGoodsMovement(
      {
        idempotencyKey: `${key}:344`,
        movementType: '344',
        material: lot.sku,
        plant: lot.erpPlant,
        storageLocation: lot.storageLocation,
        batch: lot.batch,
        quantity: 1,
        unit: lot.unit,
        headerText: `Hold ${lotId}`,
      },
      direct,
    ),
    mes.recordQualityEvent(
      {
        idempotencyKey: `${key}:wo`,
        workOrder: lot.workOrder,
        lotId,
        partId: part.partId,
        defectClass: 'scratch',
        nonconformingQuantity: 1,
      },
      direct,
    ),
  ]);
  await pool.query(
    `INSERT INTO holdfast.trace_link (from_kind, from_id, relation, to_kind, to_id)
     VALUES ('inspection', $1, 'defect-item', 'lot', $2)`,
    [part.eventId, lotId],
  );
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(
      `direct baseline failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
