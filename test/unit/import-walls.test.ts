import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/**
 * The walls of eslint.walls.mjs, proven by the real lint run: a file with one forbidden and one allowed import is
 * added to each walled folder, `eslint` (the same config `npm run lint` uses, type information included) lints them,
 * and the forbidden import, and only it, is refused with a message naming the wall.
 */
const root = resolve(__dirname, '../..');
const RULE = '@typescript-eslint/no-restricted-imports';

interface Fixture {
  folder: string;
  forbidden: string;
  allowed: string;
}

const fixtures: Fixture[] = [
  {
    folder: 'workflows',
    forbidden: "import { createActivities as forbidden } from '../activities';",
    allowed: "import type { MesPort as allowed } from '../activities/ports';",
  },
  {
    folder: 'activities',
    forbidden: "import { createPool as forbidden } from '../infra/db/pool';",
    allowed: "import { ErrorType as allowed } from '../workflows/contracts';",
  },
  {
    folder: 'infra',
    forbidden: "import { buildApp as forbidden } from '../api/app';",
    allowed: "import { ExternalSystemError as allowed } from '../activities/errors';",
  },
  {
    folder: 'infra/simulators',
    forbidden: "import { ExternalSystemError as forbidden } from '../../activities/errors';",
    allowed: "import { findStation as allowed } from '../config/load';",
  },
  {
    folder: 'api',
    forbidden: "import { createMesRestPort as forbidden } from '../infra/connectors/mes-rest/mes-rest.port';",
    allowed: "import { ingestInspections as allowed } from '../infra/ingest/ingest.service';",
  },
  {
    folder: 'api/ui',
    forbidden: "import { uiBundle as forbidden } from '../support/ui-bundle';",
    allowed: "import { h as allowed } from './dom';",
  },
  {
    folder: 'workers',
    forbidden: "import { buildApp as forbidden } from '../api/app';",
    allowed: "import { createActivities as allowed } from '../activities';",
  },
  {
    folder: 'models',
    forbidden: "import { createPool as forbidden } from '../infra/db/pool';",
    allowed: "import { preprocessImage as allowed } from '../infra/vision/preprocess';",
  },
  {
    folder: 'bench',
    forbidden: "import { startHoldfastStack as forbidden } from '../test/support/stack';",
    allowed: "import { startEmbeddedPostgres as allowed } from '../infra/local/postgres';",
  },
];

interface LintMessage {
  ruleId: string | null;
  line: number;
  message: string;
}

describe('import walls (eslint.walls.mjs)', () => {
  const name = `zz-wall-fixture-${process.pid}.ts`;
  const files = fixtures.map((f) => join(root, f.folder, name));

  afterAll(() => {
    for (const file of files) rmSync(file, { force: true });
  });

  it('refuses a forbidden import in every walled folder, naming the wall, and lets the allowed one through', async () => {
    fixtures.forEach((f, i) => {
      // Line 1 forbidden, line 2 allowed; both used, so no other rule has a reason to speak about them.
      writeFileSync(files[i]!, `${f.forbidden}\n${f.allowed}\nexport const used = [forbidden, allowed];\n`);
    });
    // The type-only import of the workflows fixture is a type: use it as one.
    writeFileSync(
      files[0]!,
      `${fixtures[0]!.forbidden}\n${fixtures[0]!.allowed}\nexport const used = [forbidden];\nexport type Used = allowed;\n`,
    );

    const eslint = join(root, 'node_modules/eslint/bin/eslint.js');
    const report = await promisify(execFile)(process.execPath, [eslint, '--format', 'json', ...files], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024,
    }).then(
      (done) => done.stdout,
      // eslint exits 1 when it found problems, which is what this test expects.
      (failed: { stdout?: string; stderr?: string; message?: string }) => {
        if (!failed.stdout) throw new Error(`eslint did not run: ${failed.stderr ?? failed.message ?? 'no output'}`);
        return failed.stdout;
      },
    );
    const results = JSON.parse(report) as { filePath: string; messages: LintMessage[] }[];

    for (const [i, f] of fixtures.entries()) {
      const result = results.find((r) => r.filePath === files[i]);
      expect(result).toBeDefined();
      const walled = result!.messages.filter((m) => m.ruleId === RULE);
      expect({ folder: f.folder, lines: walled.map((m) => m.line) }).toEqual({ folder: f.folder, lines: [1] });
      expect(walled[0]!.message).toContain(`[wall ${f.folder}]`);
      const fatal = result!.messages.filter((m) => m.ruleId === null);
      expect(fatal).toEqual([]);
    }
  }, 120_000);
});
