/**
 * Machine keys: `hfk_<id>_<secret>`. The id is public (listed, shown in the audit trail); the secret is 32 random
 * bytes, stored only as its SHA-256. A fast hash is right here, unlike for passwords: 256 random bits cannot be guessed
 * from the hash however fast it is to compute, and a slow hash would cost every machine request its delay.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const KEY_FORMAT = /^hfk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export interface NewApiKey {
  id: string;
  /** The whole key, to be shown once. */
  key: string;
  secretSha256: string;
}

export function newApiKey(): NewApiKey {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, key: `hfk_${id}_${secret}`, secretSha256: sha256(secret) };
}

/** The id and secret of a presented key, or undefined when it is not shaped like one. */
export function parseApiKey(presented: string): { id: string; secret: string } | undefined {
  const match = KEY_FORMAT.exec(presented.trim());
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

export function secretMatches(secret: string, storedSha256: string): boolean {
  const a = Buffer.from(sha256(secret), 'hex');
  const b = Buffer.from(storedSha256, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
