import type { Pool } from 'pg';
import { createAuditTrail } from '../../infra/audit/audit-trail';
import { createGenealogyStore } from '../../infra/genealogy/genealogy-store';
import { lotKey, lotNode, mesEventKey, workOrderNode } from '../../infra/genealogy/genealogy-keys';

/**
 * The smallest genealogy a drill can recall, written through the genealogy store for a site and ERP plant of the
 * test's own: a supplier lot of 100 kg consumed by a work order that made 50 units, all delivered, so a mock recall of
 * it reconciles in full. `run` keeps its keys apart from every other test's.
 */
export async function writeDrillPlant(pool: Pool, opts: { site: string; plant: string; run: string }): Promise<void> {
  const { site, plant, run } = opts;
  const store = createGenealogyStore(createAuditTrail(pool));
  const batch = { source: `recall-drill-test-${run}` };
  const supplierLot = lotKey({ erp: { plant, material: 'STEEL', batch: `S-${run}` } });
  const finished = lotKey({ erp: { plant, material: 'UNIT', batch: `F-${run}` } });
  const order = `WO-${run}`;
  await store.recordLots(batch, [
    {
      lotKey: supplierLot,
      site,
      material: 'STEEL',
      quantity: 100,
      unit: 'KG',
      origin: 'purchased',
      erp: { plant, material: 'STEEL', batch: `S-${run}` },
      purchased: { supplier: 'V100', supplierBatch: `VB-${run}` },
      sourceSystem: 'erp',
      document: `gr-${run}`,
    },
    {
      lotKey: finished,
      site,
      material: 'UNIT',
      quantity: 50,
      unit: 'PC',
      origin: 'produced',
      erp: { plant, material: 'UNIT', batch: `F-${run}` },
      produced: { workOrder: order },
      sourceSystem: 'mes',
      document: `lot-${run}`,
    },
  ]);
  const move = (n: number, kind: 'consumed' | 'produced', from: string, to: string, quantity: number) => ({
    edgeKey: mesEventKey(`${run}-${n}`),
    kind,
    from,
    to,
    quantity,
    occurredAt: '2026-11-02T08:00:00Z',
    site,
    sourceSystem: 'mes' as const,
    document: `event-${run}-${n}`,
  });
  await store.recordMovements(batch, [
    move(1, 'consumed', lotNode(supplierLot), workOrderNode(site, order), 100),
    move(2, 'produced', workOrderNode(site, order), lotNode(finished), 50),
  ]);
  await store.recordDeliveries(batch, [
    {
      delivery: `D${run}`,
      item: '000010',
      site,
      customer: 'C-1',
      shipTo: 'SH-1',
      lotKey: finished,
      quantity: 50,
      unit: 'PC',
      shippedAt: '2026-11-10T12:00:00Z',
      sourceSystem: 'erp',
    },
  ]);
}
