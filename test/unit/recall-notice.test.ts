import type { RecallNotice } from '../../activities/ports';
import { recallNoticeMessageId } from '../../infra/connectors/recall-notice/recall-notice-smtp.connector';
import { recallNoticeText } from '../../infra/connectors/recall-notice/recall-notice-text';
import { recallNotificationId, recallNotificationWorkflowId } from '../../workflows/contracts';

describe('recallNotificationId', () => {
  it('keeps ERP numbers as they are and escapes everything else reversibly', () => {
    expect(recallNotificationId('0000100001', '0000200007')).toBe('0000100001-0000200007');
    expect(recallNotificationId('C 2', 'S/9')).toBe('C_20_2-S_2f_9');
    expect(recallNotificationWorkflowId('PLANT1-ab', 'C1-S1')).toBe('recall-PLANT1-ab-notify-C1-S1');
  });

  it('never gives two customer and ship-to pairs one id', () => {
    const pairs: [string, string][] = [
      ['A-B', 'C'],
      ['A', 'B-C'],
      ['A_2d_B', 'C'],
      ['A B', 'C'],
      ['A_B', 'C'],
      ['Ä', 'C'],
    ];
    const ids = pairs.map(([c, s]) => recallNotificationId(c, s));
    expect(new Set(ids).size).toBe(pairs.length);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9._-]+$/);
  });
});

describe('what an e-mail says', () => {
  const notice: RecallNotice = {
    idempotencyKey: 'recall:R1:notify:C1-S1',
    recallId: 'R1',
    site: 'PLANT1',
    reason: 'cracked housings',
    notificationId: 'C1-S1',
    customer: 'C1',
    shipTo: 'S1',
    lots: [
      {
        lotKey: 'L1',
        material: 'BRKT-200',
        unit: 'PC',
        quantity: 15,
        deliveries: [
          { delivery: '8000001', item: '10', quantity: 10 },
          { delivery: '8000002', item: '10', quantity: 5 },
        ],
      },
    ],
    deliveries: ['8000001/10', '8000002/10'],
    quantities: [{ unit: 'PC', quantity: 15 }],
  };

  it('names the lots, quantities, deliveries and the reference to quote', () => {
    const { subject, text } = recallNoticeText(notice);
    expect(subject).toBe('Recall R1: 1 affected lot(s) delivered to C1 / S1');
    expect(text).toContain('- lot L1 (material BRKT-200): 15 PC, deliveries 8000001/10, 8000002/10');
    expect(text).toContain('In all: 15 PC in 2 delivery item(s).');
    expect(text).toContain('Reference: recall:R1:notify:C1-S1');
  });

  it("gives every attempt the same Message-ID, on the sender's domain", () => {
    expect(recallNoticeMessageId(notice, 'quality@plant1.example')).toBe('<recall.R1.C1-S1@plant1.example>');
  });
});
