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

export const QualityNotificationItemRecord = z.looseObject({
  QualityNotification: z.string().min(1),
  NotificationItem: z.string().min(1),
  NotificationItemText: z.string().default(''),
});
export type QualityNotificationItemRecord = z.infer<typeof QualityNotificationItemRecord>;

/** A navigation is either expanded (`results`) or deferred (a link), depending on `$expand`. */
const ItemsNavigation = z.union([
  z.object({ results: z.array(QualityNotificationItemRecord) }),
  z.object({ __deferred: z.unknown() }),
]);

export const QualityNotificationRecord = z.looseObject({
  QualityNotification: z.string().min(1),
  NotifProcessingPhase: z.string().optional(),
  to_QualityNotificationItem: ItemsNavigation.optional(),
});
export type QualityNotificationRecord = z.infer<typeof QualityNotificationRecord>;

export const MaterialDocumentRecord = z.looseObject({
  MaterialDocumentYear: z.string().regex(/^\d{4}$/, 'expected a four-digit year'),
  MaterialDocument: z.string().min(1),
});
export type MaterialDocumentRecord = z.infer<typeof MaterialDocumentRecord>;
