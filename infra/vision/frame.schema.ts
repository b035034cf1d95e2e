/**
 * The camera frame contract: the MQTT payload a camera (or the camera simulator) publishes per part, and the topic
 * hierarchy it is published under. Producers: infra/simulators/camera. Consumer: the inference worker, which parses
 * every payload here and rejects a bad one with the reason this module gives, never by throwing.
 */
import { z } from 'zod';
import type { RawPixels } from './contracts';

// ---------------------------------------------------------------------------------------------------------------
// Topics: an ISA-95-style hierarchy, one topic per station: <prefix>/<site>/<line>/<station>/frames

export const DEFAULT_TOPIC_PREFIX = 'holdfast';

export interface StationAddress {
  site: string;
  line: string;
  station: string;
}

// A topic level must not be empty nor contain the separator, the wildcards (MQTT 3.1.1 §4.7.1) or control
// characters (U+0000 is forbidden in any UTF-8 string, §1.5.3; the others make unreadable topics).
const TOPIC_LEVEL = /^[^/+#\p{Cc}]+$/u;

function level(name: string, value: string): string {
  if (!TOPIC_LEVEL.test(value)) throw new Error(`${name} "${value}" cannot be an MQTT topic level`);
  return value;
}

function stationTopic(prefix: string, site: string, line: string, station: string, leaf: string): string {
  return [level('prefix', prefix), level('site', site), level('line', line), level('station', station), leaf].join('/');
}

/** Where a station's camera publishes frames. */
export function frameTopic(prefix: string, site: string, line: string, station: string): string {
  return stationTopic(prefix, site, line, station, 'frames');
}

/** Where the worker publishes the station's inspection results for other consumers. */
export function resultTopic(prefix: string, site: string, line: string, station: string): string {
  return stationTopic(prefix, site, line, station, 'inspection');
}

/** The subscription that matches every station's frames under `prefix` (single-level wildcards, §4.7.1.3). */
export function frameSubscription(prefix: string): string {
  return `${level('prefix', prefix)}/+/+/+/frames`;
}

/** The station a frame topic names, or undefined when the topic is not a frame topic under `prefix`. */
export function parseFrameTopic(prefix: string, topic: string): StationAddress | undefined {
  const parts = topic.split('/');
  if (parts.length !== 5) return undefined;
  const [head, site, line, station, leaf] = parts as [string, string, string, string, string];
  if (head !== prefix || leaf !== 'frames') return undefined;
  if (![site, line, station].every((p) => TOPIC_LEVEL.test(p))) return undefined;
  return { site, line, station };
}

// ---------------------------------------------------------------------------------------------------------------
// Payload

/** The producer's unique frame id: the same characters as an inspection's eventId, at most 120 of them. */
export const FRAME_ID_PATTERN = /^[A-Za-z0-9._:-]{1,120}$/;
/** "required" for a missing field instead of zod's "expected string, received undefined". */
const requiredString = () =>
  z.string({
    // Only the type issue: returning undefined leaves the checks' (min, regex) own messages alone.
    error: (issue) =>
      issue.code === 'invalid_type' ? (issue.input === undefined ? 'required' : 'must be a string') : undefined,
  });

export const FrameId = requiredString().regex(
  FRAME_ID_PATTERN,
  '1 to 120 characters: letters, digits, ".", "_", ":" or "-"',
);

/** Identifiers from plant systems (part, lot, work order, SKU): printable, bounded. */
const PlantId = requiredString()
  .min(1, 'must not be empty')
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** 16 MiB of image at most, inline or by reference (Mosquitto is configured with the same message limit). */
export const MAX_IMAGE_BYTES = 16 * 1024 * 1024;
/** Base64 is 4/3 of the bytes. */
const MAX_IMAGE_BASE64_CHARS = Math.ceil(MAX_IMAGE_BYTES / 3) * 4;

// Checked as base64 in parseFrame, while decoding: zod's base64 regex costs more per frame than the decode itself.
const ImageData = z.string().min(1).max(MAX_IMAGE_BASE64_CHARS);

/** GenICam pixel format names (PFNC) a raw frame may use, and their bytes per pixel. */
export const RAW_PIXEL_FORMATS = { Mono8: 1, RGB8: 3 } as const;
const Dimension = z.number().int().min(1).max(32_768);

export const FrameImage = z.discriminatedUnion('encoding', [
  z.strictObject({ encoding: z.enum(['png', 'jpeg']), data: ImageData }),
  /** The camera's own pixel buffer, no compression: nothing to decode, at the price of larger frames. */
  z.strictObject({
    encoding: z.literal('raw'),
    pixelFormat: z.enum(Object.keys(RAW_PIXEL_FORMATS) as [keyof typeof RAW_PIXEL_FORMATS]),
    width: Dimension,
    height: Dimension,
    data: ImageData,
  }),
]);

export const FramePayload = z
  .strictObject({
    frameId: FrameId,
    partId: PlantId,
    lotId: PlantId,
    workOrder: PlantId,
    sku: PlantId,
    capturedAt: z.iso.datetime({
      offset: true,
      error: (issue) => (issue.input === undefined ? 'required' : 'must be an ISO 8601 instant with an offset or Z'),
    }),
    image: FrameImage.optional(),
    imageRef: z.url().max(2000).optional(),
    // Named so that a producer who sends it learns why it is refused (strictObject alone says "unrecognized key").
    groundTruth: z
      .never({ error: 'ground truth stays in the camera simulator; a frame must not carry it to the worker' })
      .optional(),
  })
  .superRefine(
    (f, ctx) => {
      if (f.image === undefined && f.imageRef === undefined) {
        ctx.addIssue({ code: 'custom', path: ['image'], message: 'required: either image or imageRef' });
      } else if (f.image !== undefined && f.imageRef !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['imageRef'], message: 'not allowed together with image: send one' });
      }
    },
    // Also when other fields failed, so one answer names every bad field.
    { when: (payload) => typeof payload.value === 'object' && payload.value !== null },
  );
export type FramePayload = z.infer<typeof FramePayload>;

export type ParsedFrame =
  /**
   * `imageBytes`: the image's bytes when the frame carries it inline (base64 decoded), and `rawPixels` the same bytes
   * with their geometry when they are raw pixels.
   */
  | { ok: true; frame: FramePayload; imageBytes?: Buffer; rawPixels?: RawPixels }
  /**
   * `reason` names every bad field, e.g. `capturedAt: must be an ISO 8601 instant…; lotId: required`; `issues` are the
   * same, one per field (`payload` when the payload as a whole is wrong).
   */
  | { ok: false; reason: string; issues: FrameIssue[] };

export interface FrameIssue {
  field: string;
  message: string;
}

function refused(issues: FrameIssue[]): ParsedFrame {
  return { ok: false, reason: issues.map((i) => `${i.field}: ${i.message}`).join('; '), issues };
}

/** The eight bytes every PNG starts with (ISO/IEC 15948 §5.2). */
export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_SOI = Buffer.from([0xff, 0xd8, 0xff]);

/**
 * Parses an MQTT frame payload (UTF-8 JSON). Never throws: a bad payload is `{ ok: false, reason }` for the
 * worker to count and record. An inline image is base64-decoded and must start like its declared encoding (the PNG
 * signature, or JPEG's SOI marker); whether it decodes fully is for the image decoder to say.
 */
export function parseFrame(payload: Buffer): ParsedFrame {
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return refused([{ field: 'payload', message: `not JSON: ${err instanceof Error ? err.message : String(err)}` }]);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return refused([{ field: 'payload', message: 'must be a JSON object' }]);
  }
  const parsed = FramePayload.safeParse(json);
  if (!parsed.success) return refused(frameIssues(parsed.error.issues));

  const frame = parsed.data;
  if (!frame.image) return { ok: true, frame };
  const imageBytes = decodeStandardBase64(frame.image.data);
  if (!imageBytes) return refused([{ field: 'image.data', message: BASE64_MESSAGE }]);
  if (frame.image.encoding === 'raw') {
    const { pixelFormat, width, height } = frame.image;
    const channels = RAW_PIXEL_FORMATS[pixelFormat];
    if (imageBytes.length !== width * height * channels) {
      return refused([
        {
          field: 'image.data',
          message: `${imageBytes.length} bytes, but ${width}×${height} ${pixelFormat} is ${width * height * channels}`,
        },
      ]);
    }
    return { ok: true, frame, imageBytes, rawPixels: { pixels: imageBytes, width, height, channels } };
  }
  const magic = frame.image.encoding === 'png' ? PNG_SIGNATURE : JPEG_SOI;
  if (imageBytes.length < magic.length || !imageBytes.subarray(0, magic.length).equals(magic)) {
    return refused([
      {
        field: 'image.data',
        message: `not a ${frame.image.encoding.toUpperCase()} image (no ${frame.image.encoding} signature)`,
      },
    ]);
  }
  return { ok: true, frame, imageBytes };
}

const BASE64_MESSAGE = 'must be standard base64 (RFC 4648 §4)';

/**
 * Decodes standard, padded base64 (RFC 4648 §4), or returns undefined. Node's decoder skips characters outside the
 * alphabet and accepts the URL-safe one instead of failing, so the bytes are encoded again and must give back the
 * very same text: that one native round trip rejects stray characters, the URL-safe alphabet, missing padding and
 * non-zero pad bits (a regex scan of the string cost more per frame than decoding it).
 */
function decodeStandardBase64(data: string): Buffer | undefined {
  const bytes = Buffer.from(data, 'base64');
  return bytes.toString('base64') === data ? bytes : undefined;
}

/** The JSON payload a producer publishes for `frame`. */
export function encodeFramePayload(frame: FramePayload): Buffer {
  return Buffer.from(JSON.stringify(frame), 'utf8');
}

function frameIssues(issues: readonly z.core.$ZodIssue[]): FrameIssue[] {
  return issues.flatMap((issue) => {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: [...path, key].join('.'), message: 'not a frame field' }));
    }
    return [{ field: path.length > 0 ? path.join('.') : 'payload', message: issue.message }];
  });
}
