import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  AesGcmPayloadCodec,
  ENCRYPTED_ENCODING,
  KEY_ID_METADATA,
  generatePayloadKeyEntry,
  payloadKeysFromEnv,
} from '../../infra/temporal/payload-codec';

const kid1 = generatePayloadKeyEntry('kid1');
const kid2 = generatePayloadKeyEntry('kid2');
const codecWith = (env: NodeJS.ProcessEnv) => new AesGcmPayloadCodec(payloadKeysFromEnv(env));
const text = (value: Uint8Array | null | undefined) => Buffer.from(value ?? []).toString('utf8');

const signedDisposition = { decision: 'scrap', signedBy: 'Jane Doe', meaning: 'approved' };
const plain = (): Payload => defaultPayloadConverter.toPayload(signedDisposition);

describe('AES-GCM payload codec', () => {
  test('round trip: the stored payload is ciphertext labelled with the key id, the decoded one is the original', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [stored] = await codec.encode([plain()]);
    expect(text(stored!.metadata!.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(stored!.metadata![KEY_ID_METADATA])).toBe('kid1');
    expect(Object.keys(stored!.metadata!).sort()).toEqual(['encoding', KEY_ID_METADATA].sort());
    expect(text(stored!.data)).not.toContain('Jane Doe');
    expect(text(stored!.data)).not.toContain('json/plain');

    const [decoded] = await codec.decode([stored!]);
    expect(text(decoded!.metadata!.encoding)).toBe('json/plain');
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual(signedDisposition);
  });

  test('each encoding uses a fresh IV: the same payload twice gives two ciphertexts', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [a, b] = await codec.encode([plain(), plain()]);
    expect(Buffer.from(a!.data!).equals(Buffer.from(b!.data!))).toBe(false);
  });

  test('an empty payload and one without metadata survive the round trip', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [decoded] = await codec.decode(await codec.encode([{ data: new Uint8Array() }]));
    expect(decoded!.metadata).toEqual({});
    expect(Buffer.from(decoded!.data!).length).toBe(0);
  });

  test('rotation: new payloads use the current key, those written with the old one still decode', async () => {
    const before = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [old] = await before.encode([plain()]);

    const after = codecWith({ HOLDFAST_PAYLOAD_KEYS: `${kid1},${kid2}`, HOLDFAST_PAYLOAD_KEY_ID: 'kid2' });
    const [fresh] = await after.encode([plain()]);
    expect(text(fresh!.metadata![KEY_ID_METADATA])).toBe('kid2');

    const decoded = await after.decode([old!, fresh!]);
    expect(decoded.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([signedDisposition, signedDisposition]);
  });

  test('a payload whose key id the ring lacks fails, naming the id and the variable', async () => {
    const [stored] = await codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 }).encode([plain()]);
    const retired = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid2 });
    await expect(retired.decode([stored!])).rejects.toThrow(
      /key id "kid1", which HOLDFAST_PAYLOAD_KEYS does not hold \(keys: kid2\)/,
    );
  });

  test('altered ciphertext fails authentication', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [stored] = await codec.encode([plain()]);
    const data = Buffer.from(stored!.data!);
    data[20] = data[20]! ^ 0x01;
    await expect(codec.decode([{ ...stored!, data }])).rejects.toThrow(/key id "kid1"\) failed authentication/);
  });

  test('a payload relabelled with another key id fails (the id is authenticated), even where both keys are equal', async () => {
    const key = randomBytes(32).toString('base64');
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: `a:${key},b:${key}`, HOLDFAST_PAYLOAD_KEY_ID: 'a' });
    const [stored] = await codec.encode([plain()]);
    const relabelled = { ...stored!, metadata: { ...stored!.metadata, [KEY_ID_METADATA]: Buffer.from('b') } };
    await expect(codec.decode([relabelled])).rejects.toThrow(/failed authentication/);
  });

  test('a truncated payload fails naming its key id', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const [stored] = await codec.encode([plain()]);
    await expect(codec.decode([{ ...stored!, data: Buffer.from(stored!.data!).subarray(0, 10) }])).rejects.toThrow(
      /key id "kid1"\) is truncated/,
    );
  });

  test('payloads never encrypted (older histories) pass through unchanged', async () => {
    const codec = codecWith({ HOLDFAST_PAYLOAD_KEYS: kid1 });
    const original = plain();
    const [decoded] = await codec.decode([original]);
    expect(decoded).toBe(original);
  });
});

describe('payload keys from the environment', () => {
  test('one key needs no key id; several need HOLDFAST_PAYLOAD_KEY_ID', () => {
    expect(payloadKeysFromEnv({ HOLDFAST_PAYLOAD_KEYS: kid1 }).currentKeyId).toBe('kid1');
    expect(() => payloadKeysFromEnv({ HOLDFAST_PAYLOAD_KEYS: `${kid1},${kid2}` })).toThrow(
      /HOLDFAST_PAYLOAD_KEY_ID is not set: HOLDFAST_PAYLOAD_KEYS holds several keys/,
    );
    const ring = payloadKeysFromEnv({ HOLDFAST_PAYLOAD_KEYS: ` ${kid1} , ${kid2} `, HOLDFAST_PAYLOAD_KEY_ID: 'kid2' });
    expect(ring.currentKeyId).toBe('kid2');
    expect([...ring.keys.keys()]).toEqual(['kid1', 'kid2']);
  });

  test.each([
    [{}, /HOLDFAST_PAYLOAD_KEYS is not set/],
    [{ HOLDFAST_PAYLOAD_KEYS: 'no-colon-here' }, /HOLDFAST_PAYLOAD_KEYS is invalid: an entry is not keyId:base64key/],
    [{ HOLDFAST_PAYLOAD_KEYS: 'kid1:c2hvcnQ=' }, /HOLDFAST_PAYLOAD_KEYS is invalid: key "kid1" is not 32 bytes/],
    [
      { HOLDFAST_PAYLOAD_KEYS: `bad id:${randomBytes(32).toString('base64')}` },
      /HOLDFAST_PAYLOAD_KEYS is invalid: a key id/,
    ],
    [{ HOLDFAST_PAYLOAD_KEYS: `${kid1},${kid1}`, HOLDFAST_PAYLOAD_KEY_ID: 'kid1' }, /names a key id twice/],
    [{ HOLDFAST_PAYLOAD_KEYS: kid1, HOLDFAST_PAYLOAD_KEY_ID: 'kid9' }, /HOLDFAST_PAYLOAD_KEY_ID "kid9" is not one of/],
  ])('%j is refused, naming the variable', (env, message) => {
    expect(() => payloadKeysFromEnv(env)).toThrow(message);
  });

  test('an error never repeats key material', () => {
    const secret = randomBytes(31).toString('base64');
    let message = '';
    try {
      payloadKeysFromEnv({ HOLDFAST_PAYLOAD_KEYS: `kid1:${secret}` });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/HOLDFAST_PAYLOAD_KEYS is invalid/);
    expect(message).not.toContain(secret);
  });
});
