import Fastify from 'fastify';
import { consoleOutput } from '../../infra/local/console-output';
import { postgresLineLevel } from '../../infra/local/postgres';
import { devServerLineLevel } from '../../infra/local/temporal-dev-server';
import { fastifyLogging } from '../../infra/observability/fastify-logging';
import { formatLogRecord, parseLogLine, type LogRecord } from '../../infra/observability/log-line';
import { createLogger, levelVariable, logLevelFor } from '../../infra/observability/logger';
import { temporalLogger } from '../../infra/observability/temporal-logger';

/** A stream that keeps what is written, line by line; `isTTY` as a terminal or a pipe would say. */
function memoryStream(isTTY: boolean) {
  const lines: string[] = [];
  return {
    isTTY,
    lines,
    write(text: string) {
      lines.push(...text.split('\n').filter(Boolean));
    },
  };
}

/** What a child of `npm start` writes: JSON lines from the real logger. */
function childLines(name: string, log: (logger: ReturnType<typeof createLogger>) => void): string[] {
  const out = memoryStream(false);
  log(createLogger(name, { env: { LOG_LEVEL: 'trace' }, format: 'json', destination: out }));
  return out.lines;
}

const records = (lines: string[]) => lines.map((l) => parseLogLine(l)!);

describe('the readable line', () => {
  it('renders a JSON record as one line: time, level, process, message and the fields, without pid or hostname', () => {
    const [line] = childLines('sap-sim', (l) =>
      l.warn({ outboxId: '7', workflowId: 'defect-vis:PLANT1:L1:S1:42', ms: 3.56789, note: 'two words' }, 'slow'),
    );
    const record = parseLogLine(line!)!;

    const text = formatLogRecord(record);

    expect(text).toMatch(
      /^\d\d:\d\d:\d\d WARN {2}sap-sim slow outboxId=7 workflowId=defect-vis:PLANT1:L1:S1:42 ms=3\.57 note="two words"$/,
    );
    expect(text).not.toContain('pid');
    expect(text).not.toContain('hostname');
    expect(text.split('\n')).toHaveLength(1);
  });

  it('shows an error by its message, and its own stack frames below an error line', () => {
    const [line] = childLines('worker', (l) => l.error({ err: new TypeError('boom') }, 'worker failed'));

    const [head, ...rest] = formatLogRecord(parseLogLine(line!)!).split('\n');

    expect(head).toMatch(/ERROR worker worker failed err="TypeError: boom"$/);
    expect(rest.length).toBeGreaterThan(0);
    expect(rest.every((l) => /^ {4}at /.test(l) || l.trim() === '…')).toBe(true);
  });

  it('takes only pino lines as records', () => {
    expect(parseLogLine('worker ready')).toBeUndefined();
    expect(parseLogLine('{"not":"a log record"}')).toBeUndefined();
    expect(parseLogLine('{"level":30,"msg":"x"}')).toMatchObject({ level: 30, msg: 'x' });
  });
});

describe('log levels', () => {
  it('takes LOG_LEVEL_<PROCESS> over LOG_LEVEL, and info by default', () => {
    expect(levelVariable('sap-sim')).toBe('LOG_LEVEL_SAP_SIM');
    expect(logLevelFor('sap-sim', { LOG_LEVEL: 'debug', LOG_LEVEL_SAP_SIM: 'warn' })).toBe('warn');
    expect(logLevelFor('api', { LOG_LEVEL: 'debug', LOG_LEVEL_SAP_SIM: 'warn' })).toBe('debug');
    expect(logLevelFor('api', {})).toBe('info');
  });

  it('refuses an unknown level, naming the variable', () => {
    expect(() => logLevelFor('api', { LOG_LEVEL_API: 'verbose' })).toThrow(/LOG_LEVEL_API must be one of .*"verbose"/);
    expect(() => consoleOutput({ env: { LOG_LEVEL_MES_SIM: 'loud' }, out: memoryStream(true) })).toThrow(
      /LOG_LEVEL_MES_SIM/,
    );
  });
});

describe("npm start's console", () => {
  it("on a terminal prints each child's line readably and drops those below the child's level", () => {
    const out = memoryStream(true);
    const screen = consoleOutput({ env: { LOG_LEVEL_API: 'warn', NO_COLOR: '1' }, out });
    const api = childLines('api', (l) => {
      l.info({ pools: ['q'] }, 'routine');
      l.warn({ retryInMs: 2000 }, 'Temporal unreachable; ingest continues');
    });
    const worker = childLines('worker', (l) => {
      l.debug('detail');
      l.info({ pools: ['holdfast-quality'] }, 'worker ready');
    });

    for (const line of api) screen.child('api')(line, 'stdout');
    for (const line of worker) screen.child('worker')(line, 'stdout');
    screen.child('inference')('Creating default certificate ... please wait', 'stdout');

    expect(out.lines).toHaveLength(3);
    expect(out.lines[0]).toMatch(/^\d\d:\d\d:\d\d WARN {2}api +Temporal unreachable; ingest continues retryInMs=2000$/);
    expect(out.lines[1]).toMatch(/ INFO {2}worker +worker ready pools=\[holdfast-quality\]$/);
    expect(out.lines[2]).toMatch(/^\d\d:\d\d:\d\d +inference +Creating default certificate \.\.\. please wait$/);
    expect(out.lines.join('\n')).not.toMatch(/[{}]/);
  });

  it('keeps the readiness contract: the JSON line of `worker ready` contains the text start.ts waits for', () => {
    const [line] = childLines('worker', (l) => l.info({ pools: ['holdfast-quality'] }, 'worker ready'));

    expect(line).toContain('worker ready');
    expect(parseLogLine(line!)).toMatchObject({ name: 'worker', msg: 'worker ready', level: 30 });
  });

  it('off a terminal passes the JSON lines on unchanged and writes its own as JSON', () => {
    const out = memoryStream(false);
    const screen = consoleOutput({ env: {}, out });
    const [line] = childLines('mes-sim', (l) => l.info('Server listening at http://127.0.0.1:4010'));

    screen.child('mes-sim')(line!, 'stdout');
    screen.child('mes-sim')('a stray line', 'stderr');
    screen.log('mes-sim ready');
    screen.from('postgres')('checkpoint starting: time', 'debug');

    expect(out.lines[0]).toBe(line);
    expect(records(out.lines.slice(1))).toEqual([
      expect.objectContaining({ level: 40, name: 'mes-sim', msg: 'a stray line' }),
      expect.objectContaining({ level: 30, name: 'start', msg: 'mes-sim ready' }),
    ]);
  });
});

describe('fastify with the logger', () => {
  async function appLoggingAt(level: string) {
    const out = memoryStream(false);
    const logger = createLogger('api', { env: { LOG_LEVEL: level }, format: 'json', destination: out });
    const app = Fastify(fastifyLogging(logger));
    app.get('/health', async () => ({ status: 'ok' }));
    app.get('/broken', async () => {
      throw new Error('database gone');
    });
    await app.ready();
    return { app, lines: out.lines };
  }

  it('logs no request at info', async () => {
    const { app, lines } = await appLoggingAt('info');
    try {
      expect((await app.inject({ url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ url: '/nowhere' })).statusCode).toBe(404);
    } finally {
      await app.close();
    }
    expect(records(lines)).toEqual([]);
  });

  it('logs each request once at debug, and a failed one at error', async () => {
    const { app, lines } = await appLoggingAt('debug');
    try {
      await app.inject({ url: '/health' });
      await app.inject({ url: '/broken' });
    } finally {
      await app.close();
    }
    const byUrl = (url: string) => records(lines).filter((r: LogRecord) => r.url === url);

    expect(byUrl('/health')).toEqual([
      expect.objectContaining({ level: 20, msg: 'request completed', method: 'GET', statusCode: 200 }),
    ]);
    expect(records(lines).some((r) => r.level === 50 && JSON.stringify(r).includes('database gone'))).toBe(true);
  });
});

describe("the Temporal SDK's lines", () => {
  it("keep their level, except the SDK worker's own INFO chatter, which is debug", () => {
    const out = memoryStream(false);
    const log = temporalLogger(
      createLogger('worker', { env: { LOG_LEVEL: 'trace' }, format: 'json', destination: out }),
    );

    log.info('Worker state changed', { sdkComponent: 'worker', state: 'RUNNING' });
    log.warn('Activity failed', { sdkComponent: 'activity', activityType: 'holdLot' });
    log.info('disposition received', { sdkComponent: 'workflow' });

    expect(records(out.lines).map((r) => [r.level, r.msg])).toEqual([
      [20, 'Worker state changed'],
      [40, 'Activity failed'],
      [30, 'disposition received'],
    ]);
  });

  it("show an activity's failure with its type, message and stack, not as an empty object", () => {
    const out = memoryStream(false);
    const log = temporalLogger(
      createLogger('worker', { env: { LOG_LEVEL: 'info' }, format: 'json', destination: out }),
    );
    log.warn('Activity failed', { sdkComponent: 'activity', error: new TypeError('MES answered 503') });
    const [record] = records(out.lines);
    expect(record).toMatchObject({ msg: 'Activity failed', err: { type: 'TypeError', message: 'MES answered 503' } });
    expect(JSON.stringify(record)).toContain('at ');
    expect(record).not.toHaveProperty('error');
  });
});

describe("the helpers' plain lines", () => {
  it("put PostgreSQL's routine lines and the probes' FATALs at debug, its real warnings and errors above", () => {
    expect(
      postgresLineLevel('2026-12-06 13:38:04.193 UTC [1] LOG:  database system is ready to accept connections'),
    ).toBe('debug');
    expect(
      postgresLineLevel('2026-12-06 13:49:10.761 UTC [7] FATAL:  the database system is not yet accepting connections'),
    ).toBe('debug');
    expect(postgresLineLevel('2026-12-06 13:49:10.761 UTC [7] WARNING:  could not flush dirty data')).toBe('warn');
    expect(postgresLineLevel('2026-12-06 13:49:10.761 UTC [7] PANIC:  could not write to file "pg_wal/x"')).toBe(
      'error',
    );
  });

  it("put the dev server's start-up summary at debug and its warnings at warn", () => {
    expect(devServerLineLevel('Server:  localhost:7233')).toBe('debug');
    expect(devServerLineLevel('time=2026-12-06T13:51:58.860 level=WARN msg="network dial error"')).toBe('warn');
    expect(devServerLineLevel('time=2026-12-06T13:51:58.860 level=ERROR msg="shard closed"')).toBe('error');
  });
});
