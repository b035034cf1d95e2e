import { z } from 'zod';

/**
 * What the connector reads back from SAP, validated before use (OWASP API10). Records are loose objects: SAP returns
 * many more properties than Holdfast needs, and new ones must not break the connector.
 */

/** V2 single-entity envelope `{"d": {...}}`. */
export function ODataEntity<T>(entity: z.ZodType<T>): z.ZodType<{ d: T }> {
  return z.object({ d: entity });
}

/** V2 collection envelope `{"d": {"results": [...]}}`. */
export function ODataCollection<T>(entity: z.ZodType<T>): z.ZodType<{ d: { results: T[] } }> {
  return z.object({ d: z.object({ results: z.array(entity) }) });
}

/** V4 collection `{"value": [...]}`; a single V4 entity has no envelope. */
export function ODataV4Collection<T>(entity: z.ZodType<T>): z.ZodType<{ value: T[] }> {
  return z.object({ value: z.array(entity) });
}

/** A defect item of CE_QUALITYNOTIFICATION_0001 (OData V4). */
export const QualityNotificationItemRecord = z.looseObject({
  QualityNotification: z.string().min(1),
  NotificationItem: z.string().min(1),
  NotificationItemText: z.string().default(''),
});
export type QualityNotificationItemRecord = z.infer<typeof QualityNotificationItemRecord>;

/** A quality notification (OData V4); its items are there only when expanded, and SAP may leave them out anyway. */
export const QualityNotificationRecord = z.looseObject({
  QualityNotification: z.string().min(1),
  NotifProcessingPhase: z.string().optional(),
  _QualityNotificationItem: z.array(QualityNotificationItemRecord).optional(),
});
export type QualityNotificationRecord = z.infer<typeof QualityNotificationRecord>;

export const MaterialDocumentRecord = z.looseObject({
  MaterialDocumentYear: z.string().regex(/^\d{4}$/, 'expected a four-digit year'),
  MaterialDocument: z.string().min(1),
});
export type MaterialDocumentRecord = z.infer<typeof MaterialDocumentRecord>;

/** A stock row of API_MATERIAL_STOCK_SRV (A_MatlStkInAcctMod); the quantity is an Edm.Decimal string in V2. */
export const MaterialStockRecord = z.looseObject({
  StorageLocation: z.string(),
  MatlWrhsStkQtyInMatlBaseUnit: z.string().regex(/^-?\d+(\.\d+)?$/, 'expected a decimal'),
  MaterialBaseUnit: z.string(),
});
export type MaterialStockRecord = z.infer<typeof MaterialStockRecord>;
