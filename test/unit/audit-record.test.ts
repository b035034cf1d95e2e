import { createHash } from 'node:crypto';
import {
  type AuditContent,
  type AuditRecord,
  GENESIS_HASH,
  chainHash,
  contentText,
  hashMatches,
} from '../../infra/audit/audit-record';
import { csvField, toCsv } from '../../api/support/csv';

const content: AuditContent = {
  seq: 1,
  at: '2026-11-25T08:00:00.123456+00:00',
  actor: { kind: 'unauthenticated', id: 'qe.jane', address: '127.0.0.1' },
  action: 'lot-case.disposition',
  recordType: 'lot-case',
  recordId: 'lot-PLANT1-L-0001',
  old: { stage: 'awaiting-disposition', disposition: null },
  new: { disposition: { decision: 'scrap', reason: 'cracked, "deep"', decidedBy: 'qe.jane' } },
  reason: 'cracked, "deep"',
  outcome: 'accepted',
  detail: { status: 'completed', materialDocuments: [{ materialDocument: '4900000042', quantity: 2.5 }] },
};

function record(c: AuditContent, prevHash: string): AuditRecord {
  return { ...c, prevHash, hash: chainHash(prevHash, contentText(c)) };
}

describe('an audit record and its hash', () => {
  it('hashes sha256 over the previous hash and the canonical content, in lowercase hex', () => {
    const text = contentText(content);
    const expected = createHash('sha256')
      .update(GENESIS_HASH + text, 'utf8')
      .digest('hex');

    expect(chainHash(GENESIS_HASH, text)).toBe(expected);
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    // Canonical: sorted keys at every depth, no whitespace.
    expect(text.startsWith('{"action":"lot-case.disposition","actor":{"address":"127.0.0.1","id":"qe.jane"')).toBe(
      true,
    );
    expect(text).not.toMatch(/\s"|":\s/);
  });

  it('gives the same text whatever order the fields were built in', () => {
    const reordered = Object.fromEntries(Object.entries(content).reverse()) as unknown as AuditContent;
    expect(contentText(reordered)).toBe(contentText(content));
  });

  it('checks an exported record by itself, and notices any changed field or hash', () => {
    const first = record(content, GENESIS_HASH);
    const exported = JSON.parse(JSON.stringify(first)) as AuditRecord;
    expect(hashMatches(exported)).toBe(true);

    expect(hashMatches({ ...exported, reason: 'cracked' })).toBe(false);
    expect(hashMatches({ ...exported, actor: { ...exported.actor, id: 'qe.john' } })).toBe(false);
    expect(hashMatches({ ...exported, seq: 2 })).toBe(false);
    expect(hashMatches({ ...exported, prevHash: 'f'.repeat(64) })).toBe(false);
    expect(hashMatches({ ...exported, hash: first.hash.replace(/.$/, (c) => (c === '0' ? '1' : '0')) })).toBe(false);
  });

  it('chains: each record names the hash of the one before, so a changed record changes every hash after it', () => {
    const first = record(content, GENESIS_HASH);
    const second = record({ ...content, seq: 2, reason: 'again' }, first.hash);
    const firstChanged = record({ ...content, reason: 'other' }, GENESIS_HASH);

    expect(second.prevHash).toBe(first.hash);
    expect(record({ ...content, seq: 2, reason: 'again' }, firstChanged.hash).hash).not.toBe(second.hash);
  });
});

describe('CSV (RFC 4180)', () => {
  it('quotes a field with a comma, a double quote, CR or LF, doubling its quotes, and leaves others as they are', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('')).toBe('');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "no"')).toBe('"say ""no"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField('cr\rhere')).toBe('"cr\rhere"');
    expect(csvField(' padded ')).toBe(' padded ');
    expect(csvField('=1+1')).toBe('=1+1');
  });

  it('ends every record, the last included, with CRLF', () => {
    expect(
      toCsv([
        ['seq', 'reason'],
        ['1', 'cracked, "deep"'],
      ]),
    ).toBe('seq,reason\r\n1,"cracked, ""deep"""\r\n');
    expect(toCsv([])).toBe('');
  });
});
