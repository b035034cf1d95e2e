/**
 * The identifiers of the genealogy (docs/traceability.md#node-ids): one function per key, so the sync, the store and
 * the trace queries spell every key the same way. A part of a key that could contain the separator is escaped
 * (`/` → `%2F`, `%` → `%25`), so two different identities never share a key.
 */

/** A lot as the ERP knows it (plant, material, batch) or, when the ERP does not know it, as the MES does. */
export type LotIdentity =
  { erp: { plant: string; material: string; batch: string } } | { mes: { site: string; lotId: string } };

const part = (value: string): string => value.replace(/%/g, '%25').replace(/\//g, '%2F');

/**
 * Holdfast's key of a lot. The ERP's batch wins when both systems know the lot: every lot that is bought, moved or
 * delivered has one, while a MES lot id names only what one site produced.
 */
export function lotKey(identity: LotIdentity): string {
  if ('erp' in identity) {
    const { plant, material, batch } = identity.erp;
    return `erp:${part(plant)}/${part(material)}/${part(batch)}`;
  }
  return `mes:${part(identity.mes.site)}/${part(identity.mes.lotId)}`;
}

export type NodeKind = 'lot' | 'wo' | 'delivery';

export const lotNode = (key: string): string => `lot:${key}`;
/** A work order: ISA-95's segment response, the production step that consumed and produced lots. */
export const workOrderNode = (site: string, order: string): string => `wo:${part(site)}/${part(order)}`;
export const deliveryNode = (delivery: string, item: string): string => `delivery:${part(delivery)}/${part(item)}`;

/** The kind of a node id, or undefined when it is not one. */
export function nodeKind(node: string): NodeKind | undefined {
  const kind = node.slice(0, node.indexOf(':'));
  return kind === 'lot' || kind === 'wo' || kind === 'delivery' ? kind : undefined;
}

/** The lot key of a `lot:` node. */
export const lotKeyOfNode = (node: string): string => node.slice('lot:'.length);

/** An ERP material document item: the document that states a goods movement (receipt, issue, transfer). */
export const erpMovementKey = (year: string, materialDocument: string, item: string): string =>
  `erp:${part(year)}/${part(materialDocument)}/${part(item)}`;

/** A MES production event (consumption, production, split, merge, rework, repack), by its event id. */
export const mesEventKey = (eventId: string): string => `mes:${part(eventId)}`;

/** The `delivered` edge of an outbound delivery item. */
export const deliveryEdgeKey = (delivery: string, item: string): string =>
  `erp:delivery/${part(delivery)}/${part(item)}`;
