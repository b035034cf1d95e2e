/**
 * A frame's image, fetched by the API from the inspection's `imageRef` for the MRB console
 * (docs/dashboard.md#mrb-console-data). The reference comes from a camera or a producer, so the API fetches only what
 * configuration allows (`api.dashboard.imageOrigins`, exact origin, http or https) and fetches it defensively: no
 * redirect followed (a redirect could leave the allowed origin), a short timeout, a size cap, and only an image back.
 */

export const IMAGE_FETCH_TIMEOUT_MS = 2_000;
export const IMAGE_MAX_BYTES = 5 * 1024 * 1024;

/** The origin of an http or https reference when it is one of `origins`; undefined otherwise. */
export function allowedImageOrigin(ref: string | null | undefined, origins: readonly string[]): string | undefined {
  if (!ref || !URL.canParse(ref)) return undefined;
  const url = new URL(ref);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  // Credentials in the reference would be sent to the camera store on the caller's behalf: never.
  if (url.username !== '' || url.password !== '') return undefined;
  return origins.includes(url.origin) ? url.origin : undefined;
}

/** Why an allowed reference gave no image: the route answers 502 with this message. */
export class FrameImageError extends Error {}

export interface FrameImage {
  contentType: string;
  body: Buffer;
}

export async function fetchFrameImage(
  ref: string,
  opts: { timeoutMs?: number; maxBytes?: number } = {},
): Promise<FrameImage> {
  const timeoutMs = opts.timeoutMs ?? IMAGE_FETCH_TIMEOUT_MS;
  const maxBytes = opts.maxBytes ?? IMAGE_MAX_BYTES;
  const signal = AbortSignal.timeout(timeoutMs);
  let res: Response;
  try {
    res = await fetch(ref, { redirect: 'manual', signal, headers: { accept: 'image/*' } });
  } catch (err) {
    throw new FrameImageError(signal.aborted ? `no answer within ${timeoutMs} ms` : `fetch failed: ${message(err)}`);
  }
  try {
    if (res.status >= 300 && res.status < 400) {
      throw new FrameImageError(`the image store answered a redirect (${res.status}); redirects are not followed`);
    }
    if (res.status !== 200) throw new FrameImageError(`the image store answered ${res.status}`);
    const contentType = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    if (!/^image\/[a-z0-9.+-]+$/.test(contentType)) {
      throw new FrameImageError(`the image store answered ${contentType || 'no content type'}, not an image`);
    }
    // Scriptable: an SVG opened from the API's origin could run script there.
    if (contentType === 'image/svg+xml') throw new FrameImageError('SVG images are not served');
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > maxBytes) {
      throw new FrameImageError(`the image is ${declared} bytes; at most ${maxBytes} are served`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    if (res.body) {
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        size += chunk.byteLength;
        if (size > maxBytes) throw new FrameImageError(`the image exceeds ${maxBytes} bytes`);
        chunks.push(Buffer.from(chunk));
      }
    }
    return { contentType, body: Buffer.concat(chunks) };
  } catch (err) {
    if (!res.bodyUsed) await res.body?.cancel().catch(() => undefined);
    if (err instanceof FrameImageError) throw err;
    throw new FrameImageError(signal.aborted ? `no answer within ${timeoutMs} ms` : `fetch failed: ${message(err)}`);
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
