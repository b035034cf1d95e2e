import { randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { ExternalSystemError } from '../../../activities/errors';
import type { RecallNotice } from '../../../activities/ports';
import { defineConnector } from '../define';

export const RecallNoticeFileConfig = z.strictObject({
  kind: z.literal('recall-notice-file').optional(),
  /** The drop directory (an SFTP or EDI pick-up, a share the customer service desk reads); relative to the data
   *  directory (HOLDFAST_DATA_DIR) unless absolute. */
  directory: z.string().min(1).default('recall-notices'),
});

/** The file of one notification: the same name on every attempt, so a retry finds what an earlier one wrote. */
export const recallNoticeFileName = (notice: Pick<RecallNotice, 'recallId' | 'notificationId'>) =>
  `recall-${notice.recallId.replace(/[^A-Za-z0-9._-]/g, '_')}-${notice.notificationId}.json`;

/**
 * Recall notifications as one JSON file each in a directory. The file is written under a temporary name and renamed,
 * so a reader never sees half a notice, and a notice already there is not written again.
 */
export default defineConnector({
  kind: 'recall-notice-file',
  role: 'recall-notice',
  configSchema: RecallNoticeFileConfig,
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
        async deliver(notice: RecallNotice) {
          if (closed) throw new ExternalSystemError(ctx.name, 'transient', `${ctx.name} is closed`);
          const name = recallNoticeFileName(notice);
          const path = join(directory, name);
          const body = `${JSON.stringify(notice, null, 2)}\n`;
          const existing = await readFile(path, 'utf8').catch(() => undefined);
          if (existing !== undefined) {
            // Same key, other content: the plan of this recall changed under its key, which must not happen silently.
            if (existing !== body) {
              throw new ExternalSystemError(ctx.name, 'validation', `${path} holds another notice under this name`);
            }
            return { reference: name };
          }
          const temporary = join(directory, `.${name}.${randomBytes(4).toString('hex')}.tmp`);
          try {
            await writeFile(temporary, body, { flag: 'wx' });
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
