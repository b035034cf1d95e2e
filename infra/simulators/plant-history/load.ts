import type { PlantHistory } from './plant-history';

/** The running simulators a history goes into: their admin routes (SAP: Basic auth; MES: its API key, if set). */
export interface HistoryTargets {
  sap: { url: string; username: string; password: string };
  mes: { url: string; apiKey?: string };
  /** Documents or events per request; default 5000. */
  chunk?: number;
  /** Called after every request with what is done so far, for a progress bar. */
  onProgress?: (done: { step: string; count: number }) => void;
}

function* chunked<T>(values: Iterable<T>, size: number): Generator<T[]> {
  let batch: T[] = [];
  for (const value of values) {
    batch.push(value);
    if (batch.length === size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function post(url: string, headers: Record<string, string>, body: unknown): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`POST ${url} answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
}

/**
 * Loads a history into running simulators through their bulk admin routes, in chunks: SAP deliveries, material documents (in
 * posting order, so numbers follow time) and stock (`POST /__sim/history`), then the MES production events
 * (`POST /__sim/production-events`, which the MES also publishes when it has a broker). Inspections are not loaded:
 * they are Holdfast's input, for the caller to send to `POST /v1/inspections`.
 */
export async function loadIntoSimulators(history: PlantHistory, targets: HistoryTargets): Promise<void> {
  const size = targets.chunk ?? 5000;
  const sapAuth = {
    authorization: `Basic ${Buffer.from(`${targets.sap.username}:${targets.sap.password}`).toString('base64')}`,
  };
  const sapHistory = `${targets.sap.url.replace(/\/$/, '')}/__sim/history`;
  const progress = (step: string, count: number) => targets.onProgress?.({ step, count });
  let count = 0;
  // Deliveries before the goods issues that name them, as SAP creates them.
  for (const outboundDeliveries of chunked(history.outboundDeliveries(), size)) {
    await post(sapHistory, sapAuth, { outboundDeliveries });
    progress('deliveries', (count += outboundDeliveries.length));
  }
  count = 0;
  for (const materialDocuments of chunked(history.materialDocuments(), size)) {
    await post(sapHistory, sapAuth, { materialDocuments });
    progress('material documents', (count += materialDocuments.length));
  }
  count = 0;
  for (const stock of chunked(history.stock(), size)) {
    await post(sapHistory, sapAuth, { stock });
    progress('stock', (count += stock.length));
  }
  const mesHeaders: Record<string, string> = targets.mes.apiKey ? { 'x-api-key': targets.mes.apiKey } : {};
  const mesEvents = `${targets.mes.url.replace(/\/$/, '')}/__sim/production-events`;
  count = 0;
  for (const events of chunked(history.productionEvents(), size)) {
    await post(mesEvents, mesHeaders, { events });
    progress('production events', (count += events.length));
  }
}
