/**
 * SAP S/4HANA goods movements as genealogy facts (docs/traceability.md#from-the-erp, docs/vendor-interfaces.md):
 * material documents of API_MATERIAL_DOCUMENT_SRV read in the order SAP created them, with their items expanded, and
 * the ship-to of each outbound delivery from API_OUTBOUND_DELIVERY_SRV.
 *
 * | Item | Fact |
 * | --- | --- |
 * | 101 with `PurchaseOrder` | a purchased lot: supplier, purchase order item, the receipt document |
 * | 101 with `ManufacturingOrder` | a produced lot, and the order → lot `produced` movement |
 * | 261 with `ManufacturingOrder` | the lot → order `consumed` movement |
 * | 309 (batch to batch, `IssgOrRcvgBatch`) | a `split` (one batch into several) or `merged` (several into one) |
 * | 601 with `Delivery` | the lot → delivery movement and the delivery with its customer and ship-to |
 *
 * Other movement types (quality blocks 344/343, scrap 555, returns 122, storage-location transfers 311) move stock
 * within a lot and state no genealogy.
 *
 * The cursor is the year and number of the last document read. SAP numbers material documents from a number range
 * per year, in the order it posts them, so "after the cursor" is every later number of the cursor's year, then every
 * later year (V2 filters have no `or`: two reads). Paging by number rather than by creation time also finds
 * documents posted late for an earlier date (a backfill, a history load).
 */
import { z } from 'zod';
import type {
  DeliveryInput,
  GenealogyFeed,
  GenealogyPage,
  GenealogyScope,
  LotInput,
  MovementInput,
} from '../../../activities/ports';
import { MATERIAL_DOCUMENT_SERVICE, OUTBOUND_DELIVERY_SERVICE } from '../../vendor-apis/sap-s4/metadata';
import { erpMovementKey, lotKey, lotNode, workOrderNode } from '../../genealogy/genealogy-keys';
import { ExternalSystemError } from '../../../activities/errors';
import { type SapODataClient, odataString } from './client';

const text = z.string().default('');

const MaterialDocumentItem = z.looseObject({
  MaterialDocumentYear: z.string().regex(/^\d{4}$/),
  MaterialDocument: z.string().min(1),
  MaterialDocumentItem: z.string().min(1),
  Material: z.string().min(1),
  Plant: z.string().min(1),
  Batch: text,
  GoodsMovementType: z.string().min(1),
  QuantityInEntryUnit: z.union([z.string(), z.number()]).transform(Number),
  EntryUnit: text,
  Supplier: text,
  PurchaseOrder: text,
  PurchaseOrderItem: text,
  ManufacturingOrder: text,
  IssgOrRcvgBatch: text,
  IssgOrRcvgMaterial: text,
  Delivery: text,
  DeliveryItem: text,
  Customer: text,
});
type Item = z.infer<typeof MaterialDocumentItem>;

const MaterialDocumentHeader = z.looseObject({
  MaterialDocumentYear: z.string().regex(/^\d{4}$/),
  MaterialDocument: z.string().min(1),
  CreationDate: z.string().regex(/^\/Date\(-?\d+\)\/$/, 'expected /Date(ms)/'),
  CreationTime: z.string().regex(/^PT\d{1,2}H\d{1,2}M\d{1,2}S$/, 'expected PTnnHnnMnnS'),
  to_MaterialDocumentItem: z.object({ results: z.array(MaterialDocumentItem) }),
});
type Header = z.infer<typeof MaterialDocumentHeader>;

const DeliveryHeader = z.looseObject({
  DeliveryDocument: z.string().min(1),
  ShipToParty: text,
  SoldToParty: text,
});

/** Where the last page ended: the last document's year and number. */
interface Cursor {
  year: string;
  document: string;
}

const formatCursor = (c: Cursor) => `${c.year}/${c.document}`;

function parseCursor(after: string | undefined): Cursor | undefined {
  // '' is the cursor of a page that found nothing yet: read from the start again.
  if (after === undefined || after === '') return undefined;
  const m = /^(\d{4})\/(\S+)$/.exec(after);
  if (!m) throw new Error(`not an ERP genealogy cursor: ${after}`);
  return { year: m[1]!, document: m[2]! };
}

/** The creation instant of a header: SAP gives the UTC date and time as two properties. */
function createdAt(h: Header): Date {
  const day = Number(/-?\d+/.exec(h.CreationDate)![0]);
  const [, hh, mm, ss] = /^PT(\d+)H(\d+)M(\d+)S$/.exec(h.CreationTime)!;
  return new Date(day + (Number(hh) * 3600 + Number(mm) * 60 + Number(ss)) * 1000);
}

export function createSapGenealogyFeed(odata: SapODataClient): GenealogyFeed {
  const shipTo = new Map<string, z.infer<typeof DeliveryHeader>>();
  const list = (conditions: string[], orderBy: string[], top: number) =>
    odata.list(
      MATERIAL_DOCUMENT_SERVICE,
      'A_MaterialDocumentHeader',
      { conditions, orderBy, top, expand: ['to_MaterialDocumentItem'] },
      MaterialDocumentHeader,
      'readGoodsMovements',
    );

  async function deliveryHeader(delivery: string) {
    const known = shipTo.get(delivery);
    if (known) return known;
    const [header] = await odata.list(
      OUTBOUND_DELIVERY_SERVICE,
      'A_OutbDeliveryHeader',
      { filter: { DeliveryDocument: delivery }, top: 1 },
      DeliveryHeader,
      'readOutboundDelivery',
    );
    // SAP creates the delivery before its goods issue; one not readable yet is a replica or a load behind: the page
    // is read again later (a transient failure) rather than recorded without its customer.
    if (!header) {
      throw new ExternalSystemError(
        odata.system,
        'transient',
        `goods issue for delivery ${delivery}, which API_OUTBOUND_DELIVERY_SRV does not return yet`,
      );
    }
    if (shipTo.size > 10_000) shipTo.clear();
    shipTo.set(delivery, header);
    return header;
  }

  return {
    async readGenealogy(scope, after, limit): Promise<GenealogyPage> {
      const cursor = parseCursor(after);
      const order = ['MaterialDocumentYear', 'MaterialDocument'];
      let headers: Header[] = [];
      if (cursor) {
        headers = await list(
          [
            `MaterialDocumentYear eq ${odataString(cursor.year)}`,
            `MaterialDocument gt ${odataString(cursor.document)}`,
          ],
          order,
          limit,
        );
      }
      let full = headers.length === limit;
      if (!full) {
        const top = limit - headers.length;
        const later = await list(cursor ? [`MaterialDocumentYear gt ${odataString(cursor.year)}`] : [], order, top);
        full = later.length === top;
        headers = [...headers, ...later];
      }
      const last = headers.at(-1);
      const page: GenealogyPage = {
        lots: [],
        movements: [],
        deliveries: [],
        parts: [],
        cursor: last
          ? formatCursor({ year: last.MaterialDocumentYear, document: last.MaterialDocument })
          : (after ?? ''),
        documents: headers.length,
        more: full,
      };
      for (const h of headers) await addFacts(page, h, scope, deliveryHeader);
      return page;
    },
  };
}

/** The facts of one material document, for the items at the site's plant. */
async function addFacts(
  page: GenealogyPage,
  h: Header,
  scope: GenealogyScope,
  deliveryHeader: (delivery: string) => Promise<z.infer<typeof DeliveryHeader>>,
): Promise<void> {
  const at = createdAt(h).toISOString();
  const items = h.to_MaterialDocumentItem.results.filter((i) => i.Plant === scope.erpPlant && i.Batch);
  const key = (material: string, batch: string) => lotKey({ erp: { plant: scope.erpPlant, material, batch } });
  const docKey = (i: Item) => erpMovementKey(i.MaterialDocumentYear, i.MaterialDocument, i.MaterialDocumentItem);
  const common = { site: scope.site, sourceSystem: 'erp' as const, occurredAt: at };
  const amount = (i: Item) => ({ quantity: i.QuantityInEntryUnit, ...(i.EntryUnit ? { unit: i.EntryUnit } : {}) });
  const lot = (i: Item, origin: LotInput['origin'], extra: Partial<LotInput>): LotInput => ({
    ...common,
    lotKey: key(i.Material, i.Batch),
    material: i.Material,
    ...amount(i),
    origin,
    erp: { plant: scope.erpPlant, material: i.Material, batch: i.Batch },
    document: docKey(i),
    ...extra,
  });
  const move = (i: Item, kind: MovementInput['kind'], from: string, to: string): MovementInput => ({
    ...common,
    edgeKey: docKey(i),
    kind,
    from,
    to,
    ...amount(i),
    document: docKey(i),
  });

  // A batch-to-batch transfer document: one source into several batches is a split, several into one a merge.
  const transfers = items.filter((i) => i.GoodsMovementType === '309' && i.IssgOrRcvgBatch);
  const sources = new Set(transfers.map((i) => i.Batch));
  const transferKind: MovementInput['kind'] = sources.size > 1 ? 'merged' : 'split';

  // With the MES stating production, the ERP adds receipts and deliveries only.
  const production = scope.production === 'erp';
  for (const i of items) {
    const order = i.ManufacturingOrder;
    if (!production && ['261', '309'].includes(i.GoodsMovementType)) continue;
    if (!production && i.GoodsMovementType === '101' && !i.PurchaseOrder) continue;
    switch (i.GoodsMovementType) {
      case '101':
        if (i.PurchaseOrder) {
          page.lots.push(
            lot(i, 'purchased', {
              purchased: {
                supplier: i.Supplier,
                purchaseOrder: i.PurchaseOrder,
                ...(i.PurchaseOrderItem ? { purchaseOrderItem: i.PurchaseOrderItem } : {}),
                goodsReceipt: docKey(i),
              },
            }),
          );
        } else if (order) {
          page.lots.push(lot(i, 'produced', { produced: { workOrder: order } }));
          page.movements.push(move(i, 'produced', workOrderNode(scope.site, order), lotNode(key(i.Material, i.Batch))));
        }
        break;
      case '261':
        if (order) {
          page.movements.push(move(i, 'consumed', lotNode(key(i.Material, i.Batch)), workOrderNode(scope.site, order)));
        }
        break;
      case '309':
        if (i.IssgOrRcvgBatch) {
          const material = i.IssgOrRcvgMaterial || i.Material;
          const target = key(material, i.IssgOrRcvgBatch);
          // The receiving batch is a lot of its own, made by this transfer.
          page.lots.push({
            ...lot(i, 'produced', {}),
            lotKey: target,
            material,
            erp: { plant: scope.erpPlant, material, batch: i.IssgOrRcvgBatch },
          });
          page.movements.push(move(i, transferKind, lotNode(key(i.Material, i.Batch)), lotNode(target)));
        }
        break;
      case '601':
        if (i.Delivery) {
          const item = i.DeliveryItem || '000010';
          const header = await deliveryHeader(i.Delivery);
          const delivery: DeliveryInput = {
            delivery: i.Delivery,
            item,
            site: scope.site,
            customer: header.SoldToParty || i.Customer,
            shipTo: header.ShipToParty,
            material: i.Material,
            lotKey: key(i.Material, i.Batch),
            ...amount(i),
            shippedAt: at,
            sourceSystem: 'erp',
          };
          // The store records the lot → delivery movement with the delivery.
          page.deliveries.push(delivery);
        }
        break;
      default:
        break;
    }
  }
}
