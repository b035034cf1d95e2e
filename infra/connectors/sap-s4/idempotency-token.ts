import { createHash } from 'node:crypto';

/** RFC 4648 base32 alphabet: upper-case letters and digits only, safe in any SAP CHAR field and OData literal. */
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export const IDEMPOTENCY_TOKEN_LENGTH = 16;

/**
 * The short, deterministic stand-in for Holdfast's idempotency key that is written into a searchable SAP field, so a
 * retry can find what an earlier attempt created (docs/reliability.md#lookup-before-create). `HF` + 14 base32
 * characters of the key's SHA-256 (70 bits): 16 characters fit MaterialDocumentHeaderText (25) and leave room in a
 * 40-character item text. The chance that two of a million keys collide is below 1e-9.
 */
export function idempotencyToken(idempotencyKey: string): string {
  const digest = createHash('sha256').update(idempotencyKey, 'utf8').digest();
  let bits = 0;
  let value = 0;
  let token = 'HF';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && token.length < IDEMPOTENCY_TOKEN_LENGTH) {
      bits -= 5;
      token += BASE32[(value >>> bits) & 31];
    }
    value &= (1 << bits) - 1;
    if (token.length === IDEMPOTENCY_TOKEN_LENGTH) break;
  }
  return token;
}

/** Appends the token to a free text of at most `maxLength` characters, cutting the text, never the token. */
export function textWithToken(text: string, token: string, maxLength: number): string {
  const room = maxLength - token.length - 1;
  const head = text.trim().slice(0, Math.max(room, 0)).trimEnd();
  return head ? `${head} ${token}` : token;
}
