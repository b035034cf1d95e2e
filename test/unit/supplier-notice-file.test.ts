import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import connector, {
  supplierNoticeFileName,
} from '../../infra/connectors/supplier-notice/supplier-notice-file.connector';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

test('a SCAR notice is one file per key, written once, and a closed connector refuses', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'scar-notices-'));
  try {
    const c = await connector.connect({ directory: dir }, { name: 'supplier-notices', env: {}, log, dataDir: dir });
    const notice = {
      idempotencyKey: 'scar-7-r1-request',
      scarId: '7',
      supplier: 'V100',
      kind: 'request' as const,
      text: 'three receipts rejected',
      responseDue: '2026-12-21T00:00:00.000Z',
    };
    expect(await c.port.deliver(notice)).toEqual({ reference: 'scar-7-r1-request.json' });
    // A retry with the same key finds the file and writes nothing.
    expect(await c.port.deliver({ ...notice, text: 'changed' })).toEqual({ reference: 'scar-7-r1-request.json' });
    expect(await readdir(dir)).toEqual([supplierNoticeFileName(notice)]);
    expect(JSON.parse(await readFile(join(dir, 'scar-7-r1-request.json'), 'utf8'))).toMatchObject({
      text: notice.text,
    });
    expect(await c.healthCheck()).toContain('writable');
    await c.close();
    await expect(c.port.deliver(notice)).rejects.toThrow(/closed/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
