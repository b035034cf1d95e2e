import { randomUUID } from 'node:crypto';
import type { HoldfastStack } from './stack';

/** The purchase order item every bought lot of `createLot` was received on. */
export const BOUGHT_LOT_ORDER = { purchaseOrder: '4500000999', purchaseOrderItem: '00010' };

/**
 * Creates a lot in the MES simulator and its batch's unrestricted stock in the SAP simulator, as a plant has. A lot
 * with a supplier is bought: both systems know the purchase order item it was received on.
 */
export async function createLot(
  /** `mesApiKey`: for a MES simulator that requires X-API-Key (MES_API_KEY). */
  stack: Pick<HoldfastStack, 'mesUrl' | 'sapUrl'> & { mesApiKey?: string },
  lot: { lotId: string; quantity?: number; sku?: string; workOrder?: string; supplier?: string },
): Promise<{ lotId: string; batch: string; sku: string; quantity: number }> {
  const sku = lot.sku ?? 'BRKT-200';
  const quantity = lot.quantity ?? 500;
  // SAP batch numbers are at most 10 characters.
  const batch = `B${randomUUID().replace(/-/g, '').slice(0, 9).toUpperCase()}`;
  await postJson(
    `${stack.mesUrl}/__sim/lots`,
    {
      lotId: lot.lotId,
      workOrder: lot.workOrder ?? '1000100',
      sku,
      quantity,
      batch,
      ...(lot.supplier ? { supplier: lot.supplier, ...BOUGHT_LOT_ORDER } : {}),
    },
    stack.mesApiKey ? { 'x-api-key': stack.mesApiKey } : {},
  );
  await postJson(`${stack.sapUrl}/__sim/stock`, {
    material: sku,
    plant: '1010',
    storageLocation: '0001',
    batch,
    quantity,
    unit: 'PC',
    ...(lot.supplier ? { receipt: { ...BOUGHT_LOT_ORDER, supplier: lot.supplier } } : {}),
  });
  return { lotId: lot.lotId, batch, sku, quantity };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`POST ${url} → ${res.status}: ${text}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

export async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(url, { headers });
  if (!res.ok) throw new Error(`GET ${url} → ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

export async function putJson(url: string, body: unknown): Promise<void> {
  const res = await fetch(url, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`PUT ${url} → ${res.status}: ${await res.text()}`);
}

let part = 0;
/** A failed inspection as a camera/inference worker would POST it to /v1/inspections. */
export function failedInspection(lotId: string, overrides: Record<string, unknown> = {}) {
  part++;
  return {
    eventId: `cam-${randomUUID()}`,
    site: 'PLANT1',
    line: 'L1',
    station: 'S1',
    partId: `P-${part}-${randomUUID().slice(0, 6)}`,
    sku: 'BRKT-200',
    lotId,
    workOrder: '1000100',
    result: 'fail',
    defects: [{ class: 'scratch', score: 0.94, bbox: { x: 12, y: 40, width: 25, height: 6 } }],
    modelVersion: 'vision-1.0.0',
    recipeVersion: 'BRKT-200@3',
    inspectedAt: new Date().toISOString(),
    ...overrides,
  };
}

export function sapAuth(stack: Pick<HoldfastStack, 'sapEnv'>): Record<string, string> {
  const { SAP_USER, SAP_PASSWORD } = stack.sapEnv;
  return {
    authorization: `Basic ${Buffer.from(`${SAP_USER}:${SAP_PASSWORD}`).toString('base64')}`,
    'sap-client': '100',
  };
}

/** Stock of one batch by SAP stock type, read back through API_MATERIAL_STOCK_SRV like a user would in SAP. */
export async function sapStock(stack: Pick<HoldfastStack, 'sapUrl' | 'sapEnv'>, material: string, batch: string) {
  const filter = encodeURIComponent(`Material eq '${material}' and Plant eq '1010' and Batch eq '${batch}'`);
  const body = await getJson<{
    d: { results: { InventoryStockType: string; MatlWrhsStkQtyInMatlBaseUnit: string }[] };
  }>(`${stack.sapUrl}/sap/opu/odata/sap/API_MATERIAL_STOCK_SRV/A_MatlStkInAcctMod?$filter=${filter}`, sapAuth(stack));
  return Object.fromEntries(body.d.results.map((r) => [r.InventoryStockType, Number(r.MatlWrhsStkQtyInMatlBaseUnit)]));
}

/** What the simulators hold, by their own count: SAP notifications, items and material documents; MES holds and events. */
export async function simulatorCounts(stack: Pick<HoldfastStack, 'sapUrl' | 'mesUrl'>) {
  const [sap, mes] = await Promise.all([
    getJson<{ notifications: number; notificationItems: number; materialDocuments: number }>(
      `${stack.sapUrl}/__sim/counts`,
    ),
    getJson<{ holds: number; activeHolds: number; qualityEvents: number }>(`${stack.mesUrl}/__sim/counts`),
  ]);
  return { ...sap, ...mes };
}
