import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { ExternalSystemError } from '../../../activities/errors';
import type { SupplierNotice } from '../../../activities/ports';
import { defineConnector } from '../define';

export const SupplierNoticeFileConfig = z.strictObject({
  kind: z.literal('supplier-notice-file').optional(),
  /** The drop directory a supplier portal, EDI or mail gateway picks up; relative to the data directory unless
   *  absolute. */
  directory: z.string().min(1).default('supplier-notices'),
});

/** One file per notice key: a retry finds what an earlier attempt wrote. */
export const supplierNoticeFileName = (notice: Pick<SupplierNotice, 'idempotencyKey'>) =>
  `${notice.idempotencyKey.replace(/[^A-Za-z0-9._-]/g, '_')}.json`;

/**
 * SCAR notices as one JSON file each (the recall-notice-file pattern): written under a temporary name and renamed,
 * so a reader never sees half a notice, and never written twice.
 */
export default defineConnector({
  kind: 'supplier-notice-file',
  role: 'supplier-notice',
  configSchema: SupplierNoticeFileConfig,
  async connect(config, ctx) {
    const directory = isAbsolute(config.directory) ? config.directory : resolve(ctx.dataDir, config.directory);
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
      port: {
        async deliver(notice: SupplierNotice) {
          if (closed) throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} is closed`);
          const name = supplierNoticeFileName(notice);
          const path = join(directory, name);
          const existing = await readFile(path, 'utf8').catch(() => undefined);
          if (existing !== undefined) return { reference: name };
          const temporary = join(directory, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
          try {
            await writeFile(temporary, `${JSON.stringify(notice, null, 2)}\n`, { flag: 'wx' });
            await rename(temporary, path);
          } catch (err) {
            await rm(temporary, { force: true });
            throw failed(`cannot write ${name}`, err);
          }
          return { reference: name };
        },
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
  },
});
