/**
 * `npm run test:projects-cover-all`: every test file in the repository belongs to exactly one jest project.
 *
 * The scripts test:unit, test:workflows, … each run one project of jest.config.js. A test file that no project's
 * testMatch takes would run under none of them and under `npm test` neither; one that two projects take would run
 * twice. This asks jest itself (`--listTests` per project), so it checks what jest will actually run, and compares with
 * every file named *.test.* or *.spec.* outside node_modules.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const TEST_FILE = /\.(test|spec)\.[cm]?[jt]sx?$/;
const NOT_SOURCE = new Set(['node_modules', '.git', 'dist', 'coverage', '.holdfast']);

function jest(args: string[]): string {
  return execFileSync(process.execPath, [require.resolve('jest/bin/jest'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The names --selectProjects takes, from jest's own reading of jest.config.js. */
function projectNames(): string[] {
  const { configs } = JSON.parse(jest(['--showConfig'])) as { configs: { displayName?: { name: string } }[] };
  const names = configs.map((c) => c.displayName?.name);
  if (names.some((n) => !n)) {
    throw new Error('jest.config.js must define `projects`, each with a displayName (the name --selectProjects takes)');
  }
  return names as string[];
}

function listTests(project: string): string[] {
  const files = JSON.parse(jest(['--listTests', '--json', '--selectProjects', project])) as string[];
  return files.map((file) => relative(ROOT, file));
}

function testFilesOnDisk(dir = ROOT): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.isDirectory()) return NOT_SOURCE.has(entry.name) ? [] : testFilesOnDisk(join(dir, entry.name));
    return entry.isFile() && TEST_FILE.test(entry.name) ? [relative(ROOT, join(dir, entry.name))] : [];
  });
}

function main(): void {
  const owners = new Map<string, string[]>();
  for (const file of testFilesOnDisk()) owners.set(file, []);
  const counts: string[] = [];
  for (const project of projectNames()) {
    const files = listTests(project);
    counts.push(`${project} ${files.length}`);
    for (const file of files) owners.set(file, [...(owners.get(file) ?? []), project]);
  }
  const orphans = [...owners].filter(([, projects]) => projects.length === 0).map(([file]) => file);
  const doubles = [...owners].filter(([, projects]) => projects.length > 1);
  for (const file of orphans) console.error(`in no jest project: ${file}`);
  for (const [file, projects] of doubles)
    console.error(`in ${projects.length} jest projects (${projects.join(', ')}): ${file}`);
  if (orphans.length > 0 || doubles.length > 0) {
    console.error('Each test file must match the testMatch of exactly one project in jest.config.js.');
    process.exit(1);
  }
  console.log(`${owners.size} test files, each in exactly one jest project (${counts.join(', ')})`);
}

main();
