import { z } from 'zod';
import type { RecallNotice } from '../../../activities/ports';
import { defineConnector } from '../define';
import { openFileDrop } from '../file-drop';

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
 * Recall notifications as one JSON file each in a drop directory (../file-drop.ts); one already there must be the same
 * notice.
 */
export default defineConnector({
  kind: 'recall-notice-file',
  role: 'recall-notice',
  configSchema: RecallNoticeFileConfig,
  async connect(config, ctx) {
    const drop = await openFileDrop(config.directory, ctx);
    return {
      port: {
        async deliver(notice: RecallNotice) {
          const name = recallNoticeFileName(notice);
          // Same key, other content: the plan of this recall changed under its key, which must not happen silently.
          await drop.write(name, `${JSON.stringify(notice, null, 2)}\n`, { sameBody: true });
          return { reference: name };
        },
      },
      healthCheck: () => drop.healthCheck(),
      close: () => drop.close(),
    };
  },
});
