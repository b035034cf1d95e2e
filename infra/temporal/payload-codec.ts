/**
 * Encryption of every Temporal payload Holdfast writes (workflow and activity inputs and results, signals, updates,
 * queries, memos, headers): AES-256-GCM with keys from the environment, so the Temporal service, its database and
 * anyone who reads event history without a key sees ciphertext only. docs/temporal.md#payload-encryption says why all
 * payloads rather than marked ones, and how keys rotate.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { ConfigError } from '../../activities/errors';

export const PAYLOAD_KEYS_ENV = 'HOLDFAST_PAYLOAD_KEYS';
export const PAYLOAD_KEY_ID_ENV = 'HOLDFAST_PAYLOAD_KEY_ID';
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** The keys a process can decrypt with, and the one it encrypts with. */
export interface PayloadKeyRing {
  currentKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

const KeyId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'a key id is 1-64 of A-Z a-z 0-9 . _ -');
const KeyEntry = z
  .string()
  .trim()
  .transform((entry, ctx) => {
    const colon = entry.indexOf(':');
    // Never echo the entry: it holds key material.
    if (colon < 0) {
      ctx.addIssue({ code: 'custom', message: 'an entry is not keyId:base64key' });
      return z.NEVER;
    }
    const id = KeyId.safeParse(entry.slice(0, colon));
    if (!id.success) {
      ctx.addIssue({ code: 'custom', message: id.error.issues[0]!.message });
      return z.NEVER;
    }
    const encoded = entry.slice(colon + 1);
    const key = Buffer.from(encoded, 'base64');
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded) || key.length !== KEY_BYTES) {
      ctx.addIssue({ code: 'custom', message: `key "${id.data}" is not ${KEY_BYTES} bytes of base64 (AES-256)` });
      return z.NEVER;
    }
    return [id.data, key] as const;
  });
const KeyList = z
  .string()
  .min(1, 'is empty')
  .transform((raw) => raw.split(','))
  .pipe(z.array(KeyEntry))
  .refine((entries) => new Set(entries.map(([id]) => id)).size === entries.length, 'names a key id twice');

/**
 * HOLDFAST_PAYLOAD_KEYS=`kid1:base64key,kid2:base64key` (32-byte keys) and HOLDFAST_PAYLOAD_KEY_ID, the id new
 * payloads are encrypted with (optional when there is one key). A bad value fails naming the variable, never the key.
 */
export function payloadKeysFromEnv(env: NodeJS.ProcessEnv = process.env): PayloadKeyRing {
  const raw = env[PAYLOAD_KEYS_ENV];
  if (!raw) {
    throw new ConfigError(
      `${PAYLOAD_KEYS_ENV} is not set: Temporal payloads are encrypted (keyId:base64 of 32 random bytes, ` +
        'comma-separated; npm start generates one, see docs/temporal.md#payload-encryption)',
    );
  }
  const parsed = KeyList.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(`${PAYLOAD_KEYS_ENV} is invalid: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  const keys = new Map(parsed.data);
  const chosen = env[PAYLOAD_KEY_ID_ENV];
  if (!chosen && keys.size > 1) {
    throw new ConfigError(
      `${PAYLOAD_KEY_ID_ENV} is not set: ${PAYLOAD_KEYS_ENV} holds several keys; name the current one`,
    );
  }
  const currentKeyId = chosen || [...keys.keys()][0]!;
  if (!keys.has(currentKeyId)) {
    throw new ConfigError(`${PAYLOAD_KEY_ID_ENV} "${currentKeyId}" is not one of the ids in ${PAYLOAD_KEYS_ENV}`);
  }
  return { currentKeyId, keys };
}

/** A fresh key in the HOLDFAST_PAYLOAD_KEYS entry format. */
export function generatePayloadKeyEntry(keyId: string): string {
  return `${KeyId.parse(keyId)}:${randomBytes(KEY_BYTES).toString('base64')}`;
}

/**
 * AES-256-GCM over the whole payload (its metadata too, so the original encoding is hidden and restored). The stored
 * payload's data is IV (12 random bytes) ‖ ciphertext ‖ tag; the key id is authenticated as additional data, so a
 * payload relabelled with another key id fails like a tampered one.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly ring: PayloadKeyRing) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.encrypt(p));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((p) => this.decrypt(p));
  }

  private encrypt(payload: Payload): Payload {
    const keyId = this.ring.currentKeyId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.ring.keys.get(keyId)!, iv);
    cipher.setAAD(Buffer.from(keyId));
    const sealed = Buffer.concat([cipher.update(frame(payload)), cipher.final()]);
    return {
      metadata: { encoding: Buffer.from(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: Buffer.from(keyId) },
      data: Buffer.concat([iv, sealed, cipher.getAuthTag()]),
    };
  }

  private decrypt(payload: Payload): Payload {
    // Payloads written before encryption was on (and recorded replay histories) stay readable.
    if (text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING) return payload;
    const keyId = text(payload.metadata?.[KEY_ID_METADATA]);
    if (!keyId) throw new Error(`encrypted payload without ${KEY_ID_METADATA} metadata`);
    const key = this.ring.keys.get(keyId);
    if (!key) {
      throw new Error(
        `payload encrypted with key id "${keyId}", which ${PAYLOAD_KEYS_ENV} does not hold (keys: ` +
          `${[...this.ring.keys.keys()].join(', ')}); add the retired key back to decode it`,
      );
    }
    const data = Buffer.from(payload.data ?? []);
    if (data.length < IV_BYTES + TAG_BYTES) throw new Error(`encrypted payload (key id "${keyId}") is truncated`);
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(keyId));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch {
      throw new Error(`encrypted payload (key id "${keyId}") failed authentication: altered, or a different key`);
    }
    return unframe(plain);
  }
}

/** The codec over the environment's keys (payloadKeysFromEnv). */
export function holdfastPayloadCodec(env: NodeJS.ProcessEnv = process.env): AesGcmPayloadCodec {
  return new AesGcmPayloadCodec(payloadKeysFromEnv(env));
}

/** The data converter every Temporal client and worker of Holdfast uses: default converters, payloads encrypted. */
export function holdfastDataConverter(codec: PayloadCodec = holdfastPayloadCodec()): DataConverter {
  return { payloadCodecs: [codec] };
}

/** A payload as proto3 JSON has it (Temporal's remote codec protocol, `temporal workflow show --output json`). */
export interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

export function payloadFromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

export function payloadToJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  };
}

function text(value: Uint8Array | null | undefined): string | undefined {
  return value ? Buffer.from(value).toString('utf8') : undefined;
}

/**
 * Plaintext layout: 4-byte length of a JSON object of the metadata (values base64), that JSON, then the data. Not the
 * protobuf encoding other SDKs' samples use, as @temporalio/proto is not a direct dependency; only this codec (in the
 * workers, the API and its codec endpoint) ever reads it.
 */
function frame(payload: Payload): Buffer {
  const metadata = Object.fromEntries(
    Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? []).toString('base64')]),
  );
  const head = Buffer.from(JSON.stringify(metadata));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(head.length);
  return Buffer.concat([length, head, Buffer.from(payload.data ?? [])]);
}

function unframe(plain: Buffer): Payload {
  const headLength = plain.readUInt32BE(0);
  const metadata = JSON.parse(plain.subarray(4, 4 + headLength).toString('utf8')) as Record<string, string>;
  return {
    metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: plain.subarray(4 + headLength),
  };
}
