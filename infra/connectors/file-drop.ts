/**
 * A drop directory of JSON notices, shared by the file kinds of recall-notice and supplier-notice: one file per notice
 * key, written under a temporary name and renamed, so a reader never sees half a notice, and never written twice.
 */
import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { ExternalSystemError } from '../../activities/errors';
import type { ConnectorContext } from './define';

export interface FileDrop {
  /**
   * Writes `name` once. A file already there is the earlier attempt's: kept, and with `sameBody` it must hold this
   * body (another one under the same key is refused, never overwritten silently).
   */
  write(name: string, body: string, opts: { sameBody: boolean }): Promise<void>;
  healthCheck(): Promise<string>;
  close(): Promise<void>;
}

/** Opens (creates) the directory, relative to the data directory unless absolute. */
export async function openFileDrop(
  configured: string,
  ctx: Pick<ConnectorContext, 'name' | 'dataDir'>,
): Promise<FileDrop> {
  const directory = isAbsolute(configured) ? configured : resolve(ctx.dataDir, configured);
  const failed = (what: string, err: unknown) =>
    new ExternalSystemError(ctx.name, 'transient', `${ctx.name} ${what} in ${directory}: ${String(err)}`, undefined, {
      cause: err,
    });
  try {
    await mkdir(directory, { recursive: true });
  } catch (err) {
    throw failed('cannot create the drop directory', err);
  }
  let closed = false;
  return {
    async write(name, body, { sameBody }) {
      if (closed) throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} is closed`);
      const path = join(directory, name);
      const existing = await readFile(path, 'utf8').catch(() => undefined);
      if (existing !== undefined) {
        if (sameBody && existing !== body) {
          throw new ExternalSystemError(ctx.name, 'validation', `${path} holds another notice under this name`);
        }
        return;
      }
      const temporary = join(directory, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
      try {
        await writeFile(temporary, body, { flag: 'wx' });
        await rename(temporary, path);
      } catch (err) {
        await rm(temporary, { force: true });
        throw failed(`cannot write ${name}`, err);
      }
    },
    async healthCheck() {
      try {
        await access(directory, constants.W_OK);
      } catch (err) {
        throw failed('cannot write', err);
      }
      return `${directory} is writable`;
    },
    close: async () => {
      closed = true;
    },
  };
}
