import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { TypedSearchAttributes, type SearchAttributeType } from '@temporalio/common';
import {
  encodeSearchAttributeIndexedValueType,
  type SearchAttributeKey,
} from '@temporalio/common/lib/search-attributes';
import type { LineLevel, LineLog } from '../observability/log-line';
import {
  assertPortFree,
  describeExit,
  failOnExit,
  findFreePort,
  sleep,
  spawnManaged,
  type ManagedProcess,
  type ProcessExit,
} from './managed-process';

export interface TemporalDevServerOptions {
  cliPath: string;
  ip?: string;
  /** gRPC frontend port; 0 or absent picks a free one. */
  port?: number;
  /** Web UI port; false runs headless; 0 or absent picks a free one. */
  uiPort?: number | false;
  /** SQLite file so workflows survive a restart; absent keeps everything in memory. */
  dbFile?: string;
  namespace?: string;
  searchAttributes: SearchAttributeKey<SearchAttributeType>[];
  /** Its own progress at info; the server's output with its level (the start-up summary at debug). */
  log?: LineLog;
  /** Extra `--sqlite-pragma KEY=VALUE` settings for a file database. */
  sqlitePragmas?: Record<string, string>;
  /** Extra `--dynamic-config-value KEY=JSON` settings, on top of Holdfast's defaults. */
  dynamicConfig?: Record<string, unknown>;
  /** The remote codec the Web UI calls to show encrypted payloads (`--ui-codec-endpoint`). */
  uiCodecEndpoint?: string;
  /** How long to wait for the frontend and the search attributes (60 s unless told). */
  readyTimeoutMs?: number;
}

export interface TemporalDevServer {
  address: string;
  uiUrl?: string;
  namespace: string;
  pid: number;
  /** Resolves when the server has exited, asked to or not. */
  exited: Promise<ProcessExit>;
  outputTail: () => string;
  stop: () => Promise<void>;
}

/** Runs `temporal server start-dev` and resolves once the namespace answers with every search attribute registered. */
export async function startTemporalDevServer(opts: TemporalDevServerOptions): Promise<TemporalDevServer> {
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const port = opts.port || (await findFreePort(ip));
  const uiPort = opts.uiPort === false ? undefined : opts.uiPort || (await findFreePort(ip));
  const log = opts.log ?? (() => undefined);
  if (opts.port) await assertPortFree(port, ip, 'Temporal gRPC port');
  if (opts.uiPort) await assertPortFree(opts.uiPort, ip, 'Temporal Web UI port');

  const args = ['server', 'start-dev', '--ip', ip, '--port', String(port)];
  args.push(...(uiPort === undefined ? ['--headless'] : ['--ui-port', String(uiPort)]));
  if (uiPort !== undefined && opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  if (opts.dbFile) {
    const dbFile = resolve(opts.dbFile);
    await mkdir(dirname(dbFile), { recursive: true });
    // WAL + synchronous=OFF is what the SDK's own CI uses: without them file persistence is too slow
    // (sdk-typescript PR #1572). An application crash loses nothing in WAL mode; only an OS crash can.
    args.push('--db-filename', dbFile, '--sqlite-pragma', 'journal_mode=WAL', '--sqlite-pragma', 'synchronous=OFF');
    // A bigger page cache, in-memory temp tables and memory-mapped reads: +50 % empty workflows/s on the 2-core
    // reference machine (BENCHMARKS.md); durability is unchanged.
    const pragmas = { cache_size: '-65536', temp_store: 'MEMORY', mmap_size: '268435456', ...opts.sqlitePragmas };
    for (const [k, v] of Object.entries(pragmas)) args.push('--sqlite-pragma', `${k}=${v}`);
  }
  args.push('--namespace', namespace, '--log-level', 'warn');
  // Eager activity dispatch is off by default in server 1.29.1 (docs/temporal.md#eager-activity-dispatch).
  args.push('--dynamic-config-value', 'system.enableActivityEagerExecution=true');
  // One history shard serves everything here, so four task-queue partitions only add forwarding between them:
  // one partition measured +35 % workflows/s on the 2-core reference machine (BENCHMARKS.md).
  args.push('--dynamic-config-value', 'matching.numTaskqueueReadPartitions=1');
  args.push('--dynamic-config-value', 'matching.numTaskqueueWritePartitions=1');
  // Task-queue priority (priorityKey on workflows and activities) needs the priority-aware matcher, off by default in
  // server 1.29.1: lot cases, which hold the lot, go ahead of shadow workflows when work queues (BENCHMARKS.md).
  args.push('--dynamic-config-value', 'matching.useNewMatcher=true');
  for (const [key, value] of Object.entries(opts.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  for (const key of opts.searchAttributes) {
    args.push('--search-attribute', `${key.name}=${TypedSearchAttributes.toMetadataType(key.type)}`);
  }

  const address = `${ip}:${port}`;
  log(`starting Temporal dev server on ${address}${opts.dbFile ? ` (${opts.dbFile})` : ' (in memory)'}`);
  const proc = spawnManaged({
    name: 'temporal',
    command: opts.cliPath,
    args,
    // Once it is told to stop, its warnings are about its own connections closing.
    onLine: (line) => log(line, stopping ? 'debug' : devServerLineLevel(line)),
  });

  let stopping = false;
  const stop = async (): Promise<void> => {
    stopping = true;
    const exit = await proc.stop({ signal: 'SIGTERM', graceMs: 10_000 });
    log(`Temporal dev server stopped (${describeExit(exit)})`);
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
  const giveUp = new AbortController();
  try {
    await Promise.race([
      waitUntilReady(address, namespace, opts.searchAttributes, deadline, giveUp.signal),
      failOnExit(proc, (exit) => `Temporal dev server ${describeExit(exit)} while starting`),
    ]);
  } catch (err) {
    giveUp.abort();
    await proc.stop({ signal: 'SIGKILL' });
    throw new Error(`${(err as Error).message}\n${failureContext(proc, opts.cliPath, args)}`);
  }

  return {
    address,
    uiUrl: uiPort === undefined ? undefined : `http://${ip}:${uiPort}`,
    namespace,
    pid: proc.pid,
    exited: proc.exited,
    outputTail: proc.outputTail,
    stop,
  };
}

/**
 * The server logs at warn and up (`--log-level warn`, `level=WARN` or `"level":"error"` in its lines); its start-up
 * summary (version, addresses) repeats what `npm start` prints, so it is debug.
 */
export function devServerLineLevel(line: string): LineLevel {
  const level = /\blevel"?[=:]"?(warn|error|fatal|panic|dpanic)\b/i.exec(line)?.[1]?.toLowerCase();
  if (level === 'warn') return 'warn';
  if (level) return 'error';
  return /^(CLI \d|Server:|UI:|Metrics:|\s*$)/.test(line) ? 'debug' : 'info';
}

function failureContext(proc: ManagedProcess, cliPath: string, args: string[]): string {
  const tail = proc.outputTail();
  return `command: ${cliPath} ${args.join(' ')}\n--- server output (tail) ---\n${tail || '(no output)'}`;
}

class SearchAttributeTypeError extends Error {
  override readonly name = 'SearchAttributeTypeError';
}

async function waitUntilReady(
  address: string,
  namespace: string,
  searchAttributes: SearchAttributeKey<SearchAttributeType>[],
  deadline: number,
  giveUp: AbortSignal,
): Promise<void> {
  let lastError = 'no answer yet';
  while (Date.now() < deadline && !giveUp.aborted) {
    let connection: Connection | undefined;
    try {
      connection = await Connection.connect({ address, connectTimeout: 2_000 });
      const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
      const registered = customAttributes ?? {};
      // A database file keeps the types it was first given: the dev server does not change them, and a workflow that
      // sets a list on a Keyword attribute fails its task. Say so at start instead.
      const retyped = searchAttributes.filter(
        (k) => k.name in registered && registered[k.name] !== encodeSearchAttributeIndexedValueType(k.type),
      );
      if (retyped.length > 0) {
        throw new SearchAttributeTypeError(
          `search attributes registered with another type in this dev server's database: ${retyped
            .map((k) => `${k.name} (needs ${TypedSearchAttributes.toMetadataType(k.type)})`)
            .join(', ')}; start from a new database file (remove it) or change them with ` +
            '`temporal operator search-attribute` commands',
        );
      }
      const missing = searchAttributes.filter((k) => !(k.name in registered));
      if (missing.length === 0) {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      }
      lastError = `search attributes not registered yet: ${missing.map((k) => k.name).join(', ')}`;
      // The CLI registers its --search-attribute flags only in a database it creates: a file kept from an earlier
      // Holdfast (a plant upgrading) lacks the attributes added since, and never gets them by waiting. Once the
      // namespace answers, they are added here (a race with the CLI's own registration fails and is retried).
      await connection.workflowService.describeNamespace({ namespace });
      await connection.operatorService.addSearchAttributes({
        namespace,
        searchAttributes: Object.fromEntries(
          missing.flatMap((k) => {
            const type = encodeSearchAttributeIndexedValueType(k.type);
            return type === undefined ? [] : [[k.name, type] as const];
          }),
        ),
      });
    } catch (err) {
      if (err instanceof SearchAttributeTypeError) throw err;
      lastError = (err as Error).message;
    } finally {
      await connection?.close().catch(() => undefined);
    }
    await sleep(250);
  }
  throw new Error(`Temporal dev server at ${address} was not ready before the deadline (last: ${lastError})`);
}
