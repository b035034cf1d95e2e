/**
 * OpenTelemetry tracing, off unless configured: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
 * in the environment, else `observability.tracing.otlpEndpoint` in temporal.yaml. Off means no tracer provider and
 * no Temporal interceptors: the spans in trace-context.ts are the API's no-ops.
 *
 * On, a trace runs from the ingest request through the outbox (the row keeps the request's `traceparent`), the
 * dispatcher's workflow start, the workflow (spans made in the sandbox leave through a sink) and each activity to
 * the MES and ERP calls (connector-metrics.ts), exported over OTLP/HTTP.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { ClientInterceptors } from '@temporalio/client';
import {
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
  OpenTelemetryWorkflowClientInterceptor,
  makeWorkflowExporter,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkerOptions } from '@temporalio/worker';
import type { HoldfastConfig } from '../config/schema';

export interface Tracing {
  /** For every Temporal Client of the process: starts, signals and updates carry the active span in headers. */
  clientInterceptors: ClientInterceptors;
  /** For every Worker: activity spans, and the workflow interceptors whose spans leave the sandbox through a sink. */
  workerOptions: Required<Pick<WorkerOptions, 'interceptors' | 'sinks'>>;
  /** Exports what is buffered and unregisters the provider. */
  shutdown(): Promise<void>;
}

/** The module the Worker's workflow bundle loads its interceptors from (it runs in the workflow sandbox). */
const WORKFLOW_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/**
 * Where spans go, if anywhere: an OTLP/HTTP collector from the standard environment variables (the exporter reads
 * them itself, headers included), else from temporal.yaml. `OTEL_SDK_DISABLED=true` turns it off either way.
 */
export function otlpTraceExporterFor(
  config: HoldfastConfig,
  env: NodeJS.ProcessEnv = process.env,
): OTLPTraceExporter | undefined {
  if (env.OTEL_SDK_DISABLED?.toLowerCase() === 'true') return undefined;
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) return new OTLPTraceExporter();
  const base = config.observability.tracing.otlpEndpoint;
  // The same rule as the environment variable: a base URL, with the signal's path appended.
  return base ? new OTLPTraceExporter({ url: `${base.replace(/\/+$/, '')}/v1/traces` }) : undefined;
}

/** Tracing for this process when configured (see the top); undefined when off. */
export function startTracingFromConfig(
  config: HoldfastConfig,
  serviceName: string,
  env: NodeJS.ProcessEnv = process.env,
): Tracing | undefined {
  const exporter = otlpTraceExporterFor(config, env);
  return exporter ? startTracing({ serviceName, spanProcessor: new BatchSpanProcessor(exporter) }) : undefined;
}

/**
 * Registers a tracer provider for the process (AsyncLocalStorage context, W3C trace context propagation) with the
 * given processor, and returns what Temporal's Clients and Workers need to carry it through workflows.
 */
export function startTracing(opts: { serviceName: string; spanProcessor: SpanProcessor }): Tracing {
  const resource = new Resource({ [ATTR_SERVICE_NAME]: opts.serviceName });
  const provider = new NodeTracerProvider({ resource, spanProcessors: [opts.spanProcessor] });
  provider.register();
  return {
    clientInterceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] },
    workerOptions: {
      interceptors: {
        activity: [
          (ctx) => ({
            inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
            outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
          }),
        ],
        workflowModules: [WORKFLOW_INTERCEPTORS],
      },
      sinks: { exporter: makeWorkflowExporter(opts.spanProcessor, resource) },
    },
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
