/**
 * Images by reference: a frame may carry `imageRef` (the camera or its gateway stored the image on an image server
 * or a shared directory) instead of the bytes. The worker reads only from the sources configured in
 * `vision.imageSources`, URL prefixes such as `http://images.plant1/frames/` or `file:///srv/holdfast/images/`: a
 * frame must not make the worker read arbitrary URLs or files (server-side request forgery, OWASP API7).
 *
 * Two kinds of failure, because they end differently:
 * - `ImageUnavailableError`: the source is down, slow or answers 5xx. The frame is not refused: the worker keeps it
 *   and tries again (infra/inference/deferred-frames.ts), so an image-server outage loses no inspection.
 * - any other Error: the reference itself is wrong (outside every source, not found, too large, a redirect). The frame
 *   is refused and recorded, as a bad image is.
 */
import { open, realpath } from 'node:fs/promises';
import { sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_IMAGE_BYTES } from './frame.schema';

/** The image source could not be read now; the same reference may work later. */
export class ImageUnavailableError extends Error {
  override readonly name = 'ImageUnavailableError';
}

export interface ImageFetcherOptions {
  /** URL prefixes (http:, https: or file:) a reference must start with, after normalisation. */
  sources: readonly string[];
  timeoutMs: number;
  /** Default: what a frame may carry inline (MAX_IMAGE_BYTES). */
  maxBytes?: number;
}

export type ImageFetcher = (ref: string) => Promise<Buffer>;

export function createImageFetcher(opts: ImageFetcherOptions): ImageFetcher {
  const maxBytes = opts.maxBytes ?? MAX_IMAGE_BYTES;
  // Normalised like the references they are compared with (case of scheme and host, '..' segments, default ports).
  const sources = opts.sources.map((s) => new URL(s).href);
  for (const s of sources) {
    if (!/^(https?:|file:)/.test(s)) throw new Error(`image source ${s}: only http:, https: and file: are supported`);
  }

  return async (ref) => {
    let url: URL;
    try {
      url = new URL(ref);
    } catch {
      throw new Error(`image reference ${ref} is not a URL`);
    }
    // A prefix covers itself and what lies below it as a directory: '/images' must not admit '/images-private/…'.
    const source = sources.find((s) => url.href === s || url.href.startsWith(s.endsWith('/') ? s : `${s}/`));
    if (!source) {
      throw new Error(`image reference ${url.href} is not under a configured image source (vision.imageSources)`);
    }
    return url.protocol === 'file:'
      ? readFileRef(url, fileURLToPath(source), maxBytes)
      : fetchHttpRef(url, opts.timeoutMs, maxBytes);
  };
}

async function fetchHttpRef(url: URL, timeoutMs: number, maxBytes: number): Promise<Buffer> {
  let res: Response;
  try {
    // No redirects: the target would escape the allow-list check above.
    res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const why =
      (err as { name?: unknown } | null)?.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : cause(err);
    throw new ImageUnavailableError(`image source unavailable for ${url.href}: ${why}`, { cause: err });
  }
  try {
    if (res.status >= 500 || res.status === 429 || res.status === 408) {
      throw new ImageUnavailableError(`image source answered ${res.status} for ${url.href}`);
    }
    if (res.status !== 200) {
      throw new Error(
        res.status >= 300 && res.status < 400
          ? `image reference ${url.href} redirects (${res.status}); references must name the image itself`
          : `image reference ${url.href}: ${res.status} ${res.statusText}`,
      );
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > maxBytes) throw new Error(`image reference ${url.href} is ${declared} bytes, over ${maxBytes}`);
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        size += chunk.length;
        if (size > maxBytes) break;
        chunks.push(Buffer.from(chunk));
      }
    } catch (err) {
      throw new ImageUnavailableError(`image source broke off ${url.href}: ${cause(err)}`, { cause: err });
    }
    if (size > maxBytes) throw new Error(`image reference ${url.href} is over ${maxBytes} bytes`);
    return Buffer.concat(chunks);
  } finally {
    // Whatever was not read: free the connection.
    await res.body?.cancel().catch(() => undefined);
  }
}

async function readFileRef(url: URL, sourceDir: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    // The file as resolved, links followed, must still be inside the source: a link must not lead out of it.
    const [path, root] = await Promise.all([realpath(fileURLToPath(url)), realpath(sourceDir)]);
    if (!path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`)) {
      throw Object.assign(new Error('links outside the image source'), { code: 'EOUTSIDE' });
    }
    handle = await open(path, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EOUTSIDE' || code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') {
      throw new Error(`image reference ${url.href}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    throw new ImageUnavailableError(`image source unavailable for ${url.href}: ${cause(err)}`, { cause: err });
  }
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) throw new Error(`image reference ${url.href} is ${size} bytes, over ${maxBytes}`);
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

function cause(err: unknown): string {
  if (err instanceof Error) {
    const inner = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    return `${err.message}${inner}`;
  }
  return String(err);
}
