/**
 * The dashboard's browser code (api/ui), bundled with its charting library by esbuild: once per process, in memory,
 * on first use (api/server.ts asks at start, so the first page load does not wait for it). No CDN and no build step
 * to forget: the page a plant sees is always the code it runs.
 */
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

export interface UiAsset {
  contentType: string;
  body: Buffer;
  gzip: Buffer;
  /** A strong validator of the bytes, so a reload revalidates instead of downloading again. */
  etag: string;
}

const ENTRY = resolve(__dirname, '../ui/main.ts');

let bundle: Promise<ReadonlyMap<string, UiAsset>> | undefined;

/** `app.js` and `app.css`, built once; a failed build is retried on the next call. */
export function uiBundle(): Promise<ReadonlyMap<string, UiAsset>> {
  bundle ??= buildBundle().catch((err: unknown) => {
    bundle = undefined;
    throw err;
  });
  return bundle;
}

async function buildBundle(): Promise<ReadonlyMap<string, UiAsset>> {
  const result = await build({
    entryPoints: { app: ENTRY },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome110', 'firefox110', 'safari16'],
    platform: 'browser',
    outdir: 'ui-out',
    write: false,
    legalComments: 'none',
    logLevel: 'silent',
    tsconfig: resolve(__dirname, '../ui/tsconfig.json'),
  });
  const assets = new Map<string, UiAsset>();
  for (const file of result.outputFiles) {
    const name = file.path.split('/').pop() as string;
    const body = Buffer.from(file.contents);
    assets.set(name, {
      contentType: name.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8',
      body,
      gzip: gzipSync(body),
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    });
  }
  return assets;
}
