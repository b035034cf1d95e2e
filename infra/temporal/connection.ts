import { readFileSync } from 'node:fs';
import { Client, type ClientInterceptors, Connection, type TLSConfig } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { resolveEnvRef } from '../config/load';
import { ConfigError } from '../../activities/errors';
import type { HoldfastConfig } from '../config/schema';

/** Where and how to reach Temporal. Built from configuration only, so switching clusters never needs code changes. */
export interface TemporalTarget {
  address: string;
  namespace: string;
  /** TLS settings, or true for TLS with system roots and no client certificate. Absent: plaintext. */
  tls?: TLSConfig | true;
  apiKey?: string;
}

/**
 * Environment first (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_CERT, TEMPORAL_TLS_KEY,
 * TEMPORAL_TLS_CA, TEMPORAL_TLS_SERVER_NAME), then `temporal:` in temporal.yaml, then the local dev server on
 * 127.0.0.1:<devServer.port>. An API key implies TLS, as Temporal Cloud requires.
 */
export function resolveTemporalTarget(config: HoldfastConfig, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  const t = config.temporal;
  const address = env.TEMPORAL_ADDRESS || t.address || `127.0.0.1:${t.devServer.port}`;
  const namespace = env.TEMPORAL_NAMESPACE || t.namespace;
  const apiKey = env.TEMPORAL_API_KEY || (t.apiKey ? resolveEnvRef(t.apiKey, 'temporal.apiKey', env) : undefined);

  const setting = (envName: string, value: string | undefined, key: string) => {
    const fromEnv = env[envName];
    if (fromEnv) return { value: fromEnv, source: envName };
    if (value) return { value: resolveEnvRef(value, key, env), source: key };
    return undefined;
  };
  const cert = setting('TEMPORAL_TLS_CERT', t.tls?.clientCertPath, 'temporal.tls.clientCertPath');
  const key = setting('TEMPORAL_TLS_KEY', t.tls?.clientKeyPath, 'temporal.tls.clientKeyPath');
  const ca = setting('TEMPORAL_TLS_CA', t.tls?.serverRootCaCertPath, 'temporal.tls.serverRootCaCertPath');
  const serverName = setting('TEMPORAL_TLS_SERVER_NAME', t.tls?.serverName, 'temporal.tls.serverName');

  if (cert && !key) {
    throw new ConfigError(`${cert.source} is set but no client key (TEMPORAL_TLS_KEY / temporal.tls.clientKeyPath)`);
  }
  if (key && !cert) {
    throw new ConfigError(
      `${key.source} is set but no client certificate (TEMPORAL_TLS_CERT / temporal.tls.clientCertPath)`,
    );
  }

  const tlsWanted = t.tls !== undefined || cert || ca || serverName;
  let tls: TLSConfig | true | undefined;
  if (tlsWanted) {
    const config: TLSConfig = {};
    if (serverName) config.serverNameOverride = serverName.value;
    if (ca) config.serverRootCACertificate = readPem(ca.value, ca.source);
    if (cert && key)
      config.clientCertPair = { crt: readPem(cert.value, cert.source), key: readPem(key.value, key.source) };
    tls = config;
  } else if (apiKey) {
    tls = true;
  }

  return { address, namespace, ...(tls ? { tls } : {}), ...(apiKey ? { apiKey } : {}) };
}

function readPem(path: string, source: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${source}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/**
 * A client for API and tooling processes; the caller closes `connection` when it shuts down. `dataConverter`: the
 * payload encryption every Holdfast client and worker shares (holdfastDataConverter in ./payload-codec).
 * `interceptors`: tracing's (infra/observability/tracing.ts), when it is on.
 */
export async function connectClient(
  target: TemporalTarget,
  opts: { dataConverter: DataConverter; interceptors?: ClientInterceptors },
): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: target.address, tls: target.tls, apiKey: target.apiKey });
  const client = new Client({
    connection,
    namespace: target.namespace,
    dataConverter: opts.dataConverter,
    ...(opts.interceptors ? { interceptors: opts.interceptors } : {}),
  });
  return { client, connection };
}

/** The Rust-core connection Workers need; the worker process closes it after its Workers stop. */
export async function connectNative(target: TemporalTarget): Promise<NativeConnection> {
  return NativeConnection.connect({ address: target.address, tls: target.tls, apiKey: target.apiKey });
}

/** host:port without credentials, for logs and banners. */
export function describeTarget(target: TemporalTarget): string {
  const security = target.apiKey ? 'TLS + API key' : target.tls ? 'TLS' : 'plaintext';
  return `${target.address} (namespace ${target.namespace}, ${security})`;
}
