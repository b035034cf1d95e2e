import { z } from 'zod';
import type { SupplierNotice } from '../../../activities/ports';
import { defineConnector } from '../define';
import { openFileDrop } from '../file-drop';

export const SupplierNoticeFileConfig = z.strictObject({
  kind: z.literal('supplier-notice-file').optional(),
  /** The drop directory a supplier portal, EDI or mail gateway picks up; relative to the data directory unless
   *  absolute. */
  directory: z.string().min(1).default('supplier-notices'),
});

/** One file per notice key: a retry finds what an earlier attempt wrote. */
export const supplierNoticeFileName = (notice: Pick<SupplierNotice, 'idempotencyKey'>) =>
  `${notice.idempotencyKey.replace(/[^A-Za-z0-9._-]/g, '_')}.json`;

/** SCAR notices as one JSON file each in a drop directory (../file-drop.ts); one already there is kept. */
export default defineConnector({
  kind: 'supplier-notice-file',
  role: 'supplier-notice',
  configSchema: SupplierNoticeFileConfig,
  async connect(config, ctx) {
    const drop = await openFileDrop(config.directory, ctx);
    return {
      port: {
        async deliver(notice: SupplierNotice) {
          const name = supplierNoticeFileName(notice);
          await drop.write(name, `${JSON.stringify(notice, null, 2)}\n`, { sameBody: false });
          return { reference: name };
        },
      },
      healthCheck: () => drop.healthCheck(),
      close: () => drop.close(),
    };
  },
});
