import type { RecallNotice } from '../../../activities/ports';

/** The subject and plain-text body of a notice, for a person reading it (the e-mail; the JSON goes along). */
export function recallNoticeText(notice: RecallNotice): { subject: string; text: string } {
  const amount = (q: { unit: string | null; quantity: number }) => `${q.quantity}${q.unit ? ` ${q.unit}` : ''}`;
  return {
    subject: `Recall ${notice.recallId}: ${notice.lots.length} affected lot(s) delivered to ${notice.customer} / ${notice.shipTo}`,
    text: [
      `Recall ${notice.recallId} (${notice.site}): ${notice.reason}`,
      '',
      `Customer ${notice.customer}, ship-to ${notice.shipTo}, received these affected lots:`,
      '',
      ...notice.lots.map(
        (l) =>
          `- lot ${l.lotKey}${l.material ? ` (material ${l.material})` : ''}: ${amount(l)}, deliveries ${l.deliveries
            .map((d) => `${d.delivery}/${d.item}`)
            .join(', ')}`,
      ),
      '',
      `In all: ${notice.quantities.map(amount).join(', ')} in ${notice.deliveries.length} delivery item(s).`,
      '',
      'Please stop using these lots, and confirm that you received this notice by replying to the sender or calling',
      'your quality contact, quoting the reference below.',
      '',
      `Reference: ${notice.idempotencyKey}`,
    ].join('\n'),
  };
}
