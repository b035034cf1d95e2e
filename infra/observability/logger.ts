/**
 * The logger of every Holdfast process (pino). JSON lines, one per event, when stdout is not a terminal (a pipe, a
 * file, a child of `npm start`, which renders them itself); one readable line per event on a terminal. Every line
 * names its process. The level is LOG_LEVEL_<PROCESS> (LOG_LEVEL_SAP_SIM for `sap-sim`), else LOG_LEVEL, else info;
 * LOG_FORMAT=json or pretty overrides the choice of format.
 */
import pino, { type DestinationStream, type Logger } from 'pino';
import type { ConnectorLogger } from '../connectors/define';
import { formatLogRecord, isLogLevel, LOG_LEVELS, parseLogLine, type FormatOptions, type LogLevel } from './log-line';

export type { Logger } from 'pino';
export type { LogLevel } from './log-line';

export type LogFormat = 'json' | 'pretty';

export interface CreateLoggerOptions {
  env?: NodeJS.ProcessEnv;
  /** Default: stdout. */
  destination?: DestinationStream;
  /** Default: from LOG_FORMAT, else pretty when stdout is a terminal. */
  format?: LogFormat;
}

/** `sap-sim` → `LOG_LEVEL_SAP_SIM`. */
export function levelVariable(processName: string): string {
  return `LOG_LEVEL_${processName.toUpperCase().replace(/[^A-Z0-9]+/g, '_')}`;
}

/** The level for `processName`: LOG_LEVEL_<PROCESS>, else LOG_LEVEL, else info. Throws naming a bad variable. */
export function logLevelFor(processName: string, env: NodeJS.ProcessEnv = process.env): LogLevel {
  for (const variable of [levelVariable(processName), 'LOG_LEVEL']) {
    const value = env[variable]?.trim().toLowerCase();
    if (!value) continue;
    if (!isLogLevel(value)) {
      throw new Error(`${variable} must be one of ${LOG_LEVELS.join(', ')}; got "${env[variable]}"`);
    }
    return value;
  }
  return 'info';
}

export function logFormatFor(stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const value = env.LOG_FORMAT?.trim().toLowerCase();
  if (value === 'json' || value === 'pretty') return value;
  if (value) throw new Error(`LOG_FORMAT must be json or pretty; got "${env.LOG_FORMAT}"`);
  return stdout.isTTY ? 'pretty' : 'json';
}

export function createLogger(processName: string, opts: CreateLoggerOptions = {}): Logger {
  const env = opts.env ?? process.env;
  const format = opts.format ?? logFormatFor(process.stdout, env);
  const options = { name: processName, level: logLevelFor(processName, env) };
  if (format === 'pretty') {
    const colors = !opts.destination && shouldColour(env);
    return pino(options, prettyDestination(opts.destination ?? process.stdout, { colors }));
  }
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** Renders each JSON line pino writes as one readable line on `out`. */
export function prettyDestination(
  out: { write(text: string): unknown },
  format: FormatOptions = {},
): DestinationStream {
  return {
    write(line: string) {
      const record = parseLogLine(line.trimEnd());
      out.write(`${record ? formatLogRecord(record, format) : line.trimEnd()}\n`);
    },
  };
}

export function shouldColour(env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stdout) {
  return Boolean(stream.isTTY) && !env.NO_COLOR;
}

/**
 * The logger connectors and pipelines take (message first, then fields), as a child of `logger` with `bindings`
 * (e.g. `{ connector: 'mes-plant1' }`) on every line.
 */
export function connectorLogger(logger: Logger, bindings: Record<string, unknown> = {}): ConnectorLogger {
  const child = Object.keys(bindings).length > 0 ? logger.child(bindings) : logger;
  return {
    debug: (msg, meta) => child.debug(meta ?? {}, msg),
    info: (msg, meta) => child.info(meta ?? {}, msg),
    warn: (msg, meta) => child.warn(meta ?? {}, msg),
    error: (msg, meta) => child.error(meta ?? {}, msg),
  };
}
