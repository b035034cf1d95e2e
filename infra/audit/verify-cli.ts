/**
 * `npm run audit:verify`: walks the whole audit trail (docs/audit-trail.md#verifying) and the anchor file, and prints
 * OK with the counts, or the first broken record: its seq and what is wrong. Exit status 0 when the trail holds, 1
 * when it is broken, 2 when it could not be checked (no database, an unreadable anchor file).
 *
 * Env: DATABASE_URL (required), HOLDFAST_CONFIG (audit.anchorFile), HOLDFAST_DATA_DIR.
 */
import { loadConfig } from '../config/load';
import { createPool } from '../db/pool';
import { auditAnchorFile, readAnchors } from './audit-anchor';
import { verifyAuditTrail } from './audit-chain';

async function main(): Promise<number> {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    process.stderr.write(
      'DATABASE_URL is not set. For the PostgreSQL `npm start` runs: ' +
        'DATABASE_URL=postgres://postgres:$(cat .holdfast/data/postgres/password)@127.0.0.1:54329/holdfast\n',
    );
    return 2;
  }
  const file = auditAnchorFile(loadConfig());
  const { exists, anchors } = await readAnchors(file);
  const pool = createPool(databaseUrl, { max: 1, applicationName: 'holdfast-audit-verify' });
  try {
    const check = await verifyAuditTrail(pool, { anchors });
    if (check.problem) {
      const { seq, kind, detail } = check.problem;
      process.stdout.write(`audit trail BROKEN at record ${seq}: ${kind}: ${detail}\n`);
      return 1;
    }
    const range = check.records === 0 ? 'no records' : `${check.records} records (seq 1 to ${check.last.seq})`;
    process.stdout.write(
      `audit trail OK: ${range}, head ${check.head.hash}; ${check.anchorsChecked} anchors matched (${file})\n`,
    );
    if (!exists && check.records > 0) {
      process.stdout.write(
        `WARNING: no anchor file at ${file}: a rewrite of the whole table would not be detected (are ` +
          'audit.anchorFile and HOLDFAST_DATA_DIR the same as the API process has?)\n',
      );
    }
    return 0;
  } finally {
    await pool.end();
  }
}

main().then(
  (status) => process.exit(status),
  (err: unknown) => {
    process.stderr.write(`audit:verify could not check the trail: ${(err as Error).message}\n`);
    process.exit(2);
  },
);
