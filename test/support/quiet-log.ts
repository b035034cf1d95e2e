import type { Logger as TemporalLogger } from '@temporalio/common';
import type { ConnectorLogger } from '../../infra/connectors/define';

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  msg: string;
  meta?: Record<string, unknown>;
}

export type CapturingLog = ConnectorLogger & { lines: LogLine[] };

const nothing = () => undefined;

/** Drops every line. Also serves where Temporal wants a logger (the workflow bundler), hence trace/debug/log. */
export function quietLog(): ConnectorLogger & TemporalLogger {
  return { info: nothing, warn: nothing, error: nothing, trace: nothing, debug: nothing, log: nothing };
}

/** Keeps every line, in order, for assertions on what a component logged. */
export function captureLog(): CapturingLog {
  const lines: LogLine[] = [];
  const put = (level: LogLine['level']) => (msg: string, meta?: Record<string, unknown>) => {
    lines.push({ level, msg, meta });
  };
  return { lines, info: put('info'), warn: put('warn'), error: put('error') };
}
