import {
  encodeFramePayload,
  frameSubscription,
  frameTopic,
  parseFrame,
  parseFrameTopic,
  resultTopic,
  type FramePayload,
} from '../../infra/vision/frame.schema';

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('IHDR…')]);
const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('JFIF')]);

const good: FramePayload = {
  frameId: 'PLANT1.L1.S1:1:42',
  partId: 'L-0001-0043',
  lotId: 'L-0001',
  workOrder: '1000100',
  sku: 'BRKT-200',
  capturedAt: '2026-03-01T10:15:00.123Z',
  image: { encoding: 'png', data: PNG.toString('base64') },
};

const json = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8');

function reasonFor(payload: Buffer): string {
  const parsed = parseFrame(payload);
  if (parsed.ok) throw new Error('expected the payload to be refused');
  return parsed.reason;
}

describe('parseFrame', () => {
  test('accepts a frame with an inline PNG and returns the decoded bytes', () => {
    const parsed = parseFrame(encodeFramePayload(good));
    expect(parsed).toEqual({ ok: true, frame: good, imageBytes: PNG });
  });

  test('raw pixels (Mono8, RGB8): the bytes come back with their geometry; a size that does not add up is refused', () => {
    const rgb = Buffer.alloc(4 * 2 * 3, 7);
    const raw = {
      ...good,
      image: {
        encoding: 'raw' as const,
        pixelFormat: 'RGB8' as const,
        width: 4,
        height: 2,
        data: rgb.toString('base64'),
      },
    };
    expect(parseFrame(json(raw))).toEqual({
      ok: true,
      frame: raw,
      imageBytes: rgb,
      rawPixels: { pixels: rgb, width: 4, height: 2, channels: 3 },
    });
    const mono = { ...raw, image: { ...raw.image, pixelFormat: 'Mono8', data: Buffer.alloc(8).toString('base64') } };
    expect(parseFrame(json(mono))).toMatchObject({ ok: true, rawPixels: { width: 4, height: 2, channels: 1 } });
    expect(reasonFor(json({ ...raw, image: { ...raw.image, height: 3 } }))).toBe(
      'image.data: 24 bytes, but 4×3 RGB8 is 36',
    );
    expect(reasonFor(json({ ...raw, image: { ...raw.image, pixelFormat: 'BayerRG12' } }))).toMatch(
      /^image.pixelFormat: /,
    );
    const { width: _w, ...noWidth } = raw.image;
    expect(reasonFor(json({ ...raw, image: noWidth }))).toMatch(/^image.width: /);
    expect(reasonFor(json({ ...raw, image: { ...raw.image, width: 0 } }))).toMatch(/^image.width: /);
    // Geometry belongs to raw pixels only: a PNG says its own size.
    expect(reasonFor(json({ ...good, image: { ...good.image, width: 4 } }))).toBe('image.width: not a frame field');
  });

  test('accepts a JPEG, an image reference instead of an image, and an offset instead of Z', () => {
    const jpeg = { ...good, image: { encoding: 'jpeg' as const, data: JPEG.toString('base64') } };
    expect(parseFrame(json(jpeg))).toMatchObject({ ok: true, imageBytes: JPEG });
    const { image: _image, ...withoutImage } = good;
    const byRef = { ...withoutImage, imageRef: 'https://images.plant1.example/L1/S1/42.png' };
    expect(parseFrame(json(byRef))).toEqual({ ok: true, frame: byRef });
    expect(parseFrame(json({ ...good, capturedAt: '2026-03-01T04:15:00-06:00' })).ok).toBe(true);
  });

  test('bad JSON and non-objects are refused with a reason', () => {
    expect(reasonFor(Buffer.from('{"frameId": "f1",'))).toMatch(/^payload: not JSON: /);
    expect(reasonFor(Buffer.from([0xff, 0xfe, 0x00]))).toMatch(/^payload: not JSON/);
    expect(reasonFor(json([good]))).toBe('payload: must be a JSON object');
    expect(reasonFor(json(null))).toBe('payload: must be a JSON object');
    expect(reasonFor(Buffer.alloc(0))).toMatch(/^payload: not JSON/);
  });

  test('the reason names every bad or missing field at once', () => {
    const { lotId: _lot, sku: _sku, ...rest } = good;
    const reason = reasonFor(json({ ...rest, capturedAt: 'yesterday', partId: '' }));
    expect(reason.split('; ').sort()).toEqual(
      [
        'capturedAt: must be an ISO 8601 instant with an offset or Z',
        'lotId: required',
        'partId: must not be empty',
        'sku: required',
      ].sort(),
    );
  });

  test('frame ids: the eventId characters, 1 to 120 of them', () => {
    expect(parseFrame(json({ ...good, frameId: 'a'.repeat(120) })).ok).toBe(true);
    expect(reasonFor(json({ ...good, frameId: 'a'.repeat(121) }))).toMatch(/^frameId: 1 to 120 characters/);
    expect(reasonFor(json({ ...good, frameId: 'frame 1' }))).toMatch(/^frameId: /);
    expect(reasonFor(json({ ...good, frameId: 'frame/1' }))).toMatch(/^frameId: /);
    expect(reasonFor(json({ ...good, frameId: 42 }))).toBe('frameId: must be a string');
  });

  test('exactly one of image or imageRef', () => {
    const { image: _image, ...withoutImage } = good;
    expect(reasonFor(json(withoutImage))).toBe('image: required: either image or imageRef');
    expect(reasonFor(json({ ...good, imageRef: 'https://x.example/1.png' }))).toBe(
      'imageRef: not allowed together with image: send one',
    );
    expect(reasonFor(json({ ...withoutImage, imageRef: 'not a url' }))).toMatch(/^imageRef: /);
  });

  test('bad base64, a wrong encoding and an image that is not what it claims are refused', () => {
    expect(reasonFor(json({ ...good, image: { encoding: 'png', data: 'iVBOR w0K!' } }))).toBe(
      'image.data: must be standard base64 (RFC 4648 §4)',
    );
    expect(reasonFor(json({ ...good, image: { encoding: 'png', data: '' } }))).toMatch(/^image.data: /);
    // Node's decoder would accept each of these; the frame contract does not.
    const standard = PNG.toString('base64');
    const urlSafe = Buffer.from([0xfb, 0xff, 0xbf, ...PNG]).toString('base64url');
    for (const data of [
      urlSafe,
      standard.replace(/=+$/, 'A').slice(0, -1),
      `${standard.slice(0, -4)} ${standard.slice(-4)}`,
    ]) {
      expect(reasonFor(json({ ...good, image: { encoding: 'png', data } }))).toBe(
        'image.data: must be standard base64 (RFC 4648 §4)',
      );
    }
    expect(reasonFor(json({ ...good, image: { encoding: 'gif', data: PNG.toString('base64') } }))).toMatch(
      /^image.encoding: /,
    );
    expect(reasonFor(json({ ...good, image: { encoding: 'jpeg', data: PNG.toString('base64') } }))).toBe(
      'image.data: not a JPEG image (no jpeg signature)',
    );
    expect(
      reasonFor(json({ ...good, image: { encoding: 'png', data: Buffer.from('hello').toString('base64') } })),
    ).toBe('image.data: not a PNG image (no png signature)');
  });

  test('ground truth never travels with a frame; other unknown fields are named', () => {
    const reason = reasonFor(json({ ...good, groundTruth: { class: 'scratch' }, exposureUs: 800 }));
    expect(reason).toContain('groundTruth: ground truth stays in the camera simulator');
    expect(reason).toContain('exposureUs: not a frame field');
  });
});

describe('topics', () => {
  test('one topic per station under the prefix, frames and inspection results', () => {
    expect(frameTopic('holdfast', 'PLANT1', 'L1', 'S2')).toBe('holdfast/PLANT1/L1/S2/frames');
    expect(resultTopic('holdfast', 'PLANT1', 'L1', 'S2')).toBe('holdfast/PLANT1/L1/S2/inspection');
    expect(frameSubscription('holdfast')).toBe('holdfast/+/+/+/frames');
  });

  test('parseFrameTopic inverts frameTopic and refuses anything else', () => {
    expect(parseFrameTopic('holdfast', frameTopic('holdfast', 'PLANT1', 'L3', 'S1'))).toEqual({
      site: 'PLANT1',
      line: 'L3',
      station: 'S1',
    });
    expect(parseFrameTopic('holdfast', 'other/PLANT1/L3/S1/frames')).toBeUndefined();
    expect(parseFrameTopic('holdfast', 'holdfast/PLANT1/L3/S1/inspection')).toBeUndefined();
    expect(parseFrameTopic('holdfast', 'holdfast/PLANT1/L3/frames')).toBeUndefined();
    expect(parseFrameTopic('holdfast', 'holdfast/PLANT1/A/L3/S1/frames')).toBeUndefined();
    expect(parseFrameTopic('holdfast', 'holdfast/PLANT1//S1/frames')).toBeUndefined();
  });

  test('a level that would change the topic hierarchy or act as a wildcard is refused', () => {
    expect(() => frameTopic('holdfast', 'PLANT1', 'L1/L2', 'S1')).toThrow('line "L1/L2" cannot be an MQTT topic level');
    expect(() => frameTopic('holdfast', 'PLANT1', 'L1', '+')).toThrow('station');
    expect(() => resultTopic('holdfast', '#', 'L1', 'S1')).toThrow('site');
    expect(() => frameTopic('', 'PLANT1', 'L1', 'S1')).toThrow('prefix');
  });
});
