import { spawn } from 'node:child_process';
import { join } from 'node:path';

/**
 * The child's parent is a shell that exits right after starting it, as npm does when it is sent SIGTERM: the child
 * is re-parented, and the watch must notice (only when npm started it).
 */
function orphanedChild(env: NodeJS.ProcessEnv): Promise<string> {
  const child = join(__dirname, '../support/orphan-child.ts');
  return new Promise((resolve, reject) => {
    const shell = spawn('sh', ['-c', `node --import tsx '${child}' & sleep 0.5`], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    shell.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    // The pipe closes when its last writer, the orphaned child, exits.
    shell.stdout.on('close', () => resolve(out.trim()));
    shell.on('error', reject);
  });
}

const { npm_lifecycle_event: _dropped, ...envWithoutNpm } = process.env;

test('a process npm started stops as on SIGTERM once npm is gone', async () => {
  expect(await orphanedChild({ ...envWithoutNpm, npm_lifecycle_event: 'start' })).toBe('stopped SIGTERM');
}, 15_000);

test('a process started without npm keeps running when its parent exits', async () => {
  expect(await orphanedChild(envWithoutNpm)).toBe('still running');
}, 15_000);
