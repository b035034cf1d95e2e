/**
 * What `npm start` prints. On a terminal: one readable line per event, its children's JSON log lines rendered the
 * same way (time, level, process, message, fields), below each process's level (LOG_LEVEL_<PROCESS>, LOG_LEVEL)
 * dropped. Not on a terminal (a pipe, a file, a service manager): JSON lines, the children's passed on unchanged.
 */
import {
  formatLogRecord,
  formatRawLine,
  isLogLevel,
  levelValue,
  LOG_LEVELS,
  parseLogLine,
  type LineLevel,
  type LineLog,
} from '../observability/log-line';
import { createLogger, logFormatFor, logLevelFor, prettyDestination, shouldColour } from '../observability/logger';
import type { Logger } from '../observability/logger';

export interface StackOutput {
  /** start.ts's own events (starting, ready, stopping). */
  log: LineLog;
  /** Lines of a helper start.ts runs itself: `postgres`, `temporal`, `temporal-cli`. */
  from(source: string): LineLog;
  /** A child process's output, line by line. */
  child(name: string): (line: string, stream: 'stdout' | 'stderr') => void;
  /** A block of text shown as it is on a terminal (the banner); one record with `summary` as its message in JSON. */
  text(block: string, summary: string): void;
}

/** The name on start.ts's own lines, and so LOG_LEVEL_START. */
export const START_PROCESS = 'start';
/** Wide enough for every name in the default process table, so messages line up. */
const NAME_WIDTH = 12;

/** Every line as it comes, a child's or helper's prefixed with its name: for callers that collect lines (tests). */
export function plainOutput(write: (line: string) => void): StackOutput {
  return {
    log: (line) => write(line),
    from: (source) => (line) => write(`[${source}] ${line}`),
    child: (name) => (line) => write(`[${name}] ${line}`),
    text: (block) => write(block),
  };
}

export interface ConsoleOutputOptions {
  env?: NodeJS.ProcessEnv;
  out?: { write(text: string): unknown; isTTY?: boolean };
}

export function consoleOutput(opts: ConsoleOutputOptions = {}): StackOutput {
  const env = opts.env ?? process.env;
  const out = opts.out ?? process.stdout;
  assertLevelVariables(env);
  const pretty = logFormatFor(out, env) === 'pretty';
  const format = { colors: pretty && shouldColour(env, out), nameWidth: NAME_WIDTH };
  const write = (text: string) => out.write(`${text}\n`);

  const loggers = new Map<string, Logger>();
  const loggerFor = (name: string) => {
    let logger = loggers.get(name);
    if (!logger) {
      const destination = pretty ? prettyDestination(out, format) : out;
      logger = createLogger(name, { env, format: 'json', destination });
      loggers.set(name, logger);
    }
    return logger;
  };
  const thresholds = new Map<string, number>();
  const threshold = (name: string) => {
    let value = thresholds.get(name);
    if (value === undefined) thresholds.set(name, (value = levelValue(logLevelFor(name, env))));
    return value;
  };
  const lineLog =
    (name: string): LineLog =>
    (line, level = 'info') =>
      loggerFor(name)[level](line);

  return {
    log: lineLog(START_PROCESS),
    from: lineLog,
    child: (name) => (line, stream) => {
      const record = parseLogLine(line);
      if (record) {
        if (!pretty) write(line);
        else if (record.level >= threshold(name)) write(formatLogRecord(record, { ...format, name }));
        return;
      }
      // Not a log line (a library printing, a crash before the logger existed): shown as it is, under the name.
      const level: LineLevel = stream === 'stderr' ? 'warn' : 'info';
      if (!pretty) loggerFor(name)[level](line);
      else if (levelValue(level) >= threshold(name)) write(formatRawLine(line, { ...format, name }));
    },
    text: (block, summary) => (pretty ? write(block) : loggerFor(START_PROCESS).info({ text: block }, summary)),
  };
}

/** `text` with every JSON log line in it (a child's output tail in an error message) rendered readable. */
export function readableLines(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      const record = parseLogLine(line);
      return record ? formatLogRecord(record) : line;
    })
    .join('\n');
}

/** A mistyped LOG_LEVEL_* stops `npm start` before anything runs, naming the variable. */
function assertLevelVariables(env: NodeJS.ProcessEnv): void {
  for (const [variable, value] of Object.entries(env)) {
    if (!/^LOG_LEVEL(_|$)/.test(variable) || !value?.trim()) continue;
    if (!isLogLevel(value.trim().toLowerCase())) {
      throw new Error(`${variable} must be one of ${LOG_LEVELS.join(', ')}; got "${value}"`);
    }
  }
}
