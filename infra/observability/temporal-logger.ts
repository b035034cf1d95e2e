import type { Logger as TemporalLogger, LogLevel as TemporalLogLevel, LogMetadata } from '@temporalio/common';
import type { Logger } from './logger';

const LEVELS: Record<TemporalLogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * The Temporal SDK's logger (Runtime.install({ logger })) writing through the process's pino logger. The SDK's own
 * worker lifecycle at INFO (webpack's bundle report, every state change, "no Nexus services") goes to debug: the
 * process says itself when it is ready and when it stopped. Workflow and activity lines keep their level.
 */
export function temporalLogger(logger: Logger): TemporalLogger {
  const log = (level: TemporalLogLevel, message: string, meta?: LogMetadata) => {
    const target = level === 'INFO' && meta?.sdkComponent === 'worker' ? 'debug' : LEVELS[level];
    // The SDK hands a failure over as `error`; pino serialises an Error (type, message, stack, cause) only as `err`,
    // and would print `error: {}` otherwise, hiding why an activity failed.
    const { error, ...rest } = meta ?? {};
    logger[target](error instanceof Error ? { ...rest, err: error } : (meta ?? {}), message);
  };
  return {
    log,
    trace: (message, meta) => log('TRACE', message, meta),
    debug: (message, meta) => log('DEBUG', message, meta),
    info: (message, meta) => log('INFO', message, meta),
    warn: (message, meta) => log('WARN', message, meta),
    error: (message, meta) => log('ERROR', message, meta),
  };
}
