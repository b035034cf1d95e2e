/**
 * Every call a worker makes to a MES or ERP, measured and traced without the connector knowing: a wrapper around the
 * port object, applied where the worker opens its connectors (workers/connectors.ts). Each method call is timed
 * (`holdfast_connector_call_duration_seconds`), a failure is counted by its kind
 * (`holdfast_connector_call_errors_total`: the ExternalSystemError kind, so transient outages and business refusals
 * are told apart), and the call is a client span, child of the activity's span when tracing is on. The call's
 * result and error pass through untouched.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { ConfigError, ExternalSystemError } from '../../activities/errors';
import type { ConnectorRole } from '../connectors/define';
import { SpanKind, failSpan, holdfastTracer } from './trace-context';

/** Wraps a port so its calls are observed; the same port object always gets the same wrapper. */
export type PortObserver = <Port extends object>(role: ConnectorRole, port: Port) => Port;

export interface ConnectorObserver {
  /** For openSiteConnectors (workers/connectors.ts). */
  observe: PortObserver;
}

/** Seconds; a MES REST call is tens of milliseconds, an SAP posting up to seconds, a timeout up to a minute. */
const CALL_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createConnectorObserver(registry: Registry): ConnectorObserver {
  const duration = new Histogram({
    name: 'holdfast_connector_call_duration_seconds',
    help: 'Duration of MES and ERP connector calls, by role, system (the connector instance), operation and outcome.',
    labelNames: ['role', 'system', 'operation', 'outcome'],
    buckets: CALL_BUCKETS,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'holdfast_connector_call_errors_total',
    help: 'Failed MES and ERP connector calls, by role, system, operation and error kind (transient, validation, rejected, not-found, config, unknown).',
    labelNames: ['role', 'system', 'operation', 'kind'],
    registers: [registry],
  });
  const observed = new WeakMap<object, object>();

  const observe = <Port extends object>(role: ConnectorRole, port: Port): Port => {
    const known = observed.get(port);
    if (known) return known as Port;
    const declared = (port as { system?: unknown }).system;
    const system = typeof declared === 'string' ? declared : role;
    const wrappers = new Map<string, (...args: unknown[]) => unknown>();

    const wrap = (operation: string, call: (...args: unknown[]) => unknown) => {
      const labels = { role, system, operation };
      const spanOptions = {
        kind: SpanKind.CLIENT,
        attributes: { 'holdfast.connector.role': role, 'holdfast.connector.system': system },
      };
      return (...args: unknown[]): unknown =>
        holdfastTracer().startActiveSpan(`${role} ${operation}`, spanOptions, (span) => {
          const end = duration.startTimer(labels);
          const succeeded = () => {
            end({ outcome: 'ok' });
            span.end();
          };
          const failed = (err: unknown) => {
            const kind = errorKind(err);
            end({ outcome: 'error' });
            errors.inc({ ...labels, kind });
            failSpan(span, err);
            span.end();
          };
          let result: unknown;
          try {
            result = call(...args);
          } catch (err) {
            failed(err);
            throw err;
          }
          if (!isPromiseLike(result)) {
            succeeded();
            return result;
          }
          return Promise.resolve(result).then(
            (value) => {
              succeeded();
              return value;
            },
            (err: unknown) => {
              failed(err);
              throw err;
            },
          );
        });
    };

    const wrapped = new Proxy(port, {
      get(target, key) {
        // The target as `this`: a class port with private fields refuses a proxy as receiver.
        const value: unknown = Reflect.get(target, key, target);
        if (typeof key !== 'string' || typeof value !== 'function') return value;
        let wrapper = wrappers.get(key);
        if (!wrapper) {
          wrapper = wrap(key, (value as (...args: unknown[]) => unknown).bind(target));
          wrappers.set(key, wrapper);
        }
        return wrapper;
      },
    });
    observed.set(port, wrapped);
    return wrapped;
  };
  return { observe };
}

function errorKind(err: unknown): string {
  if (err instanceof ExternalSystemError) return err.kind;
  if (err instanceof ConfigError) return 'config';
  return 'unknown';
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
