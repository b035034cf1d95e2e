/**
 * One log record (a pino JSON line) as one line a person reads: time, level, process name, message and the record's
 * own fields as `key=value`. Used by a process that writes to a terminal itself and by `npm start`, which renders
 * its children's JSON lines the same way.
 */

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** pino's numbers for its levels; `silent` is above everything. */
const LEVEL_VALUES: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Infinity,
};

export function levelValue(level: LogLevel): number {
  return LEVEL_VALUES[level];
}

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/** A parsed pino line: the fields pino writes, plus whatever the caller logged. */
export interface LogRecord {
  level: number;
  time?: number | string;
  name?: string;
  msg?: string;
  [field: string]: unknown;
}

/** The record in `line` when it is a pino JSON line (an object with a numeric level), else undefined. */
export function parseLogLine(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value === 'object' && value !== null && typeof (value as LogRecord).level === 'number') {
      return value as LogRecord;
    }
  } catch {
    // Not JSON after all: shown as it is.
  }
  return undefined;
}

export interface FormatOptions {
  /** ANSI colours for the level (a terminal that wants them). */
  colors?: boolean;
  /** Process names are padded to this width so messages line up. */
  nameWidth?: number;
  /** The process name when the record has none. */
  name?: string;
}

/** Written by pino or fastify on every line, or repeating what the line already says. */
const HIDDEN_FIELDS = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname', 'v']);
const MAX_VALUE_CHARS = 120;
const MAX_STACK_FRAMES = 6;

const LABELS: [number, string, string][] = [
  [60, 'FATAL', '\x1b[35m'],
  [50, 'ERROR', '\x1b[31m'],
  [40, 'WARN', '\x1b[33m'],
  [30, 'INFO', '\x1b[32m'],
  [20, 'DEBUG', '\x1b[90m'],
  [0, 'TRACE', '\x1b[90m'],
];
const DIM = '\x1b[2m';
const RESET = '\x1b[0m';

/** `12:03:04 INFO  api        connected to Temporal temporal="127.0.0.1:7233 (namespace default)"` */
export function formatLogRecord(record: LogRecord, opts: FormatOptions = {}): string {
  const [, label, colour] = LABELS.find(([min]) => record.level >= min) ?? LABELS[LABELS.length - 1]!;
  const levelText = label.padEnd(5);
  const lines = (record.msg ?? '').split('\n');
  const fields = Object.entries(record)
    .filter(([key, value]) => !HIDDEN_FIELDS.has(key) && value !== undefined && !(key === 'err' && value === null))
    .map(([key, value]) => `${key}=${key === 'err' ? renderError(value) : renderValue(value)}`);
  const head = [
    opts.colors ? `${DIM}${clock(record.time)}${RESET}` : clock(record.time),
    opts.colors ? `${colour}${levelText}${RESET}` : levelText,
    (record.name ?? opts.name ?? '').padEnd(opts.nameWidth ?? 0),
    [lines[0], ...fields].filter(Boolean).join(' '),
  ].join(' ');
  // A multi-line message (a child's output tail in an error) and an error's stack follow, indented.
  const more = lines.slice(1);
  const stack = record.level >= 50 ? errorStack(record.err) : undefined;
  if (stack) more.push(...stackFrames(stack));
  return [head, ...more.map((l) => `    ${l.trim()}`)].join('\n').trimEnd();
}

/** A line that is not a log record (a library writing to the console), shown under its process name. */
export function formatRawLine(line: string, opts: FormatOptions & { time?: number } = {}): string {
  const time = clock(opts.time ?? Date.now());
  return `${opts.colors ? `${DIM}${time}${RESET}` : time} ${''.padEnd(5)} ${(opts.name ?? '').padEnd(opts.nameWidth ?? 0)} ${line}`.trimEnd();
}

function clock(time: number | string | undefined): string {
  const date = time === undefined ? new Date() : new Date(time);
  if (Number.isNaN(date.getTime())) return String(time);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

function renderValue(value: unknown): string {
  if (typeof value === 'string') return /^[\w.:/@+-]+$/.test(value) ? value : clip(JSON.stringify(value));
  if (typeof value === 'number') return String(Number.isInteger(value) ? value : Number(value.toPrecision(3)));
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) {
    return clip(`[${value.map((v) => (typeof v === 'string' ? v : String(v))).join(',')}]`);
  }
  return clip(JSON.stringify(value) ?? String(value));
}

function renderError(value: unknown): string {
  if (typeof value === 'object' && value !== null && 'message' in value) {
    const err = value as { type?: string; message?: unknown };
    const type = err.type && err.type !== 'Error' ? `${err.type}: ` : '';
    return clip(JSON.stringify(`${type}${String(err.message)}`));
  }
  return renderValue(value);
}

function errorStack(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !('stack' in value)) return undefined;
  const { stack } = value as { stack?: unknown };
  return typeof stack === 'string' ? stack : undefined;
}

/** The error's own frames, not Node's internals, at most the first few. */
function stackFrames(stack: string): string[] {
  const frames = stack
    .split('\n')
    .filter((l) => /^\s+at /.test(l) && !l.includes('(node:internal') && !/at node:/.test(l));
  return frames.length > MAX_STACK_FRAMES ? [...frames.slice(0, MAX_STACK_FRAMES), '…'] : frames;
}

function clip(text: string): string {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

/** A level a line can have (`silent` is only a threshold). */
export type LineLevel = Exclude<LogLevel, 'silent'>;

/** Where a helper's plain text lines go, each with its level (info unless told). */
export type LineLog = (line: string, level?: LineLevel) => void;
