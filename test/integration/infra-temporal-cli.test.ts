import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedCliPath, goVersionAtLeast, resolveTemporalCli } from '../../infra/temporal/cli';

// Fake executables stand in for temporal and go, so the resolution order is tested without a 5-minute build.
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'holdfast-cli-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function script(path: string, body: string): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, `#!/bin/sh\nPATH=/usr/bin:/bin\n${body}\n`, { mode: 0o755 });
  return path;
}

function fakeTemporal(path: string, label: string): string {
  return script(path, `echo "temporal version 1.5.1 (${label})"`);
}

function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HOME: join(root, 'home'),
    HOLDFAST_CACHE_DIR: join(root, 'cache'),
    PATH: join(root, 'empty-path'),
    ...extra,
  };
}

function resolveWith(env: NodeJS.ProcessEnv, log: string[] = []): Promise<string> {
  return resolveTemporalCli((msg) => log.push(msg), env);
}

describe('resolveTemporalCli resolution order', () => {
  it('prefers HOLDFAST_TEMPORAL_CLI over TEMPORAL_CLI_PATH, PATH and the cache', async () => {
    const explicit = fakeTemporal(join(root, 'explicit', 'temporal'), 'explicit');
    const legacy = fakeTemporal(join(root, 'legacy', 'temporal'), 'legacy');
    fakeTemporal(join(root, 'bin', 'temporal'), 'path');
    fakeTemporal(cachedCliPath(baseEnv()), 'cache');
    const env = baseEnv({ HOLDFAST_TEMPORAL_CLI: explicit, TEMPORAL_CLI_PATH: legacy, PATH: join(root, 'bin') });

    await expect(resolveWith(env)).resolves.toBe(explicit);
    await expect(resolveWith({ ...env, HOLDFAST_TEMPORAL_CLI: '' })).resolves.toBe(legacy);
  });

  it('uses `temporal` on PATH before the cached build', async () => {
    const onPath = fakeTemporal(join(root, 'bin', 'temporal'), 'path');
    fakeTemporal(cachedCliPath(baseEnv()), 'cache');
    const env = baseEnv({ PATH: `${join(root, 'nothing-here')}:${join(root, 'bin')}` });

    await expect(resolveWith(env)).resolves.toBe(onPath);
  });

  it('falls back to the cache under HOLDFAST_CACHE_DIR, or under $HOME/.cache/holdfast', async () => {
    const cached = fakeTemporal(join(root, 'cache', 'temporal-1.5.1', 'bin', 'temporal'), 'cache');
    await expect(resolveWith(baseEnv())).resolves.toBe(cached);

    const homeCached = fakeTemporal(join(root, 'home', '.cache', 'holdfast', 'temporal-1.5.1', 'bin', 'temporal'), 'h');
    await expect(resolveWith(baseEnv({ HOLDFAST_CACHE_DIR: undefined }))).resolves.toBe(homeCached);
  });

  it('skips a temporal on PATH that does not run, and reports it', async () => {
    script(join(root, 'bin', 'temporal'), 'echo "segfault" >&2; exit 139');
    const cached = fakeTemporal(cachedCliPath(baseEnv()), 'cache');
    const log: string[] = [];

    await expect(resolveWith(baseEnv({ PATH: join(root, 'bin') }), log)).resolves.toBe(cached);
    expect(log.join('\n')).toContain(`ignoring ${join(root, 'bin', 'temporal')} on PATH`);
  });

  it('fails, naming the variable, when HOLDFAST_TEMPORAL_CLI points at something that does not run', async () => {
    fakeTemporal(cachedCliPath(baseEnv()), 'cache');
    const env = baseEnv({ HOLDFAST_TEMPORAL_CLI: join(root, 'missing', 'temporal') });

    await expect(resolveWith(env)).rejects.toThrow(/HOLDFAST_TEMPORAL_CLI=.*missing\/temporal is not a runnable/);
  });
});

describe('resolveTemporalCli building from the Go module', () => {
  it('says how to get a CLI when there is none and no Go', async () => {
    await expect(resolveWith(baseEnv())).rejects.toThrow(
      /No temporal CLI found.*Install Go >= 1\.25.*set HOLDFAST_TEMPORAL_CLI=/,
    );
  });

  it('refuses a Go older than 1.25 and names its version', async () => {
    script(join(root, 'go-bin', 'go'), 'echo go1.22.5');

    await expect(resolveWith(baseEnv({ PATH: join(root, 'go-bin') }))).rejects.toThrow(
      /go1\.22\.5; the CLI v1\.5\.1 needs Go >= 1\.25/,
    );
  });

  it('runs the pinned go install into a private GOBIN and renames the result into the cache', async () => {
    const record = join(root, 'go-invocation.txt');
    script(
      join(root, 'go-bin', 'go'),
      [
        'if [ "$1" = env ]; then echo go1.25.3; exit 0; fi',
        `{ for a in "$@"; do echo "arg=$a"; done; env | grep -E '^(CGO_ENABLED|GOTOOLCHAIN|GOBIN|GOMODCACHE|GOCACHE|GOFLAGS)=' | sort; } > ${record}`,
        'echo "go: downloading go.temporal.io/server v1.29.1" >&2',
        'printf \'#!/bin/sh\\necho "temporal version 1.5.1 (built)"\\n\' > "$GOBIN/temporal"',
        'chmod +x "$GOBIN/temporal"',
      ].join('\n'),
    );
    const env = baseEnv({ PATH: join(root, 'go-bin') });
    const log: string[] = [];

    const path = await resolveWith(env, log);

    const cache = join(root, 'cache');
    expect(path).toBe(join(cache, 'temporal-1.5.1', 'bin', 'temporal'));
    const lines = readFileSync(record, 'utf8').trim().split('\n');
    expect(lines.filter((l) => l.startsWith('arg='))).toEqual([
      'arg=install',
      'arg=-ldflags',
      'arg=-X github.com/temporalio/cli/temporalcli.Version=1.5.1',
      'arg=github.com/temporalio/cli/cmd/temporal@v1.5.1',
    ]);
    const buildEnv: Record<string, string> = Object.fromEntries(
      lines.filter((l) => !l.startsWith('arg=')).map((l) => l.split('=', 2) as [string, string]),
    );
    expect(buildEnv).toMatchObject({
      CGO_ENABLED: '0',
      GOTOOLCHAIN: 'local',
      GOMODCACHE: join(cache, 'go', 'mod'),
      GOCACHE: join(cache, 'go', 'build'),
      GOFLAGS: '-modcacherw',
    });
    expect(buildEnv.GOBIN).not.toBe(join(cache, 'temporal-1.5.1', 'bin'));
    expect(buildEnv.GOBIN!.startsWith(join(cache, 'temporal-1.5.1'))).toBe(true);
    expect(existsSync(buildEnv.GOBIN!)).toBe(false);
    expect(log.join('\n')).toContain('go: downloading go.temporal.io/server v1.29.1');
    // The next call finds the cached build without building again.
    rmSync(join(root, 'go-bin'), { recursive: true });
    await expect(resolveWith(env)).resolves.toBe(path);
  });

  it('leaves no binary in the cache when the build fails', async () => {
    script(
      join(root, 'go-bin', 'go'),
      [
        'if [ "$1" = env ]; then echo go1.26.0; exit 0; fi',
        'printf "half" > "$GOBIN/temporal"',
        'echo "compile: out of memory" >&2; exit 2',
      ].join('\n'),
    );

    await expect(resolveWith(baseEnv({ PATH: join(root, 'go-bin') }))).rejects.toThrow(
      /Building the Temporal CLI failed: go install exited 2[\s\S]*compile: out of memory/,
    );
    expect(existsSync(cachedCliPath(baseEnv()))).toBe(false);
    expect(readdirSync(join(root, 'cache', 'temporal-1.5.1')).filter((n) => n.startsWith('.bin-partial'))).toEqual([]);
  });
});

describe('goVersionAtLeast', () => {
  it.each([
    ['go1.25.0', true],
    ['go1.26.8', true],
    ['go2.0', true],
    ['go1.24.9', false],
    ['devel +abc', false],
  ])('%s -> %s', (version, expected) => {
    expect(goVersionAtLeast(version, [1, 25])).toBe(expected);
  });
});
