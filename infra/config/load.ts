import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../activities/errors';
import type { SitePolicy } from '../../workflows/contracts';
import { HoldfastConfig, type SiteConfig } from './schema';

/** Where the topology lives: HOLDFAST_CONFIG, else temporal.yaml at the repository root. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.HOLDFAST_CONFIG ?? resolve(__dirname, '../../temporal.yaml'));
}

/** Reads and validates temporal.yaml; a bad file fails with messages that name each offending key. */
export function loadConfig(path = configPath()): HoldfastConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as Error).message}`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, source = 'temporal.yaml'): HoldfastConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${source} is not valid YAML: ${(err as Error).message}`);
  }
  const parsed = HoldfastConfig.safeParse(raw);
  if (!parsed.success) throw new ConfigError(`${source} is invalid:\n${formatIssues(parsed.error)}`);
  return parsed.data;
}

/** One line per issue, naming its key; `prefix` places a nested block's keys (e.g. `connectors.plc-2`). */
export function formatIssues(error: z.ZodError, prefix?: string): string {
  return error.issues
    .map((i) => `  - ${[...(prefix ? [prefix] : []), ...i.path].join('.') || '(root)'}: ${i.message}`)
    .join('\n');
}

/** Resolves `${env:NAME}`; a missing variable is a configuration error naming the key and the variable. */
export function resolveEnvRef(value: string, key: string, env: NodeJS.ProcessEnv = process.env): string {
  const m = /^\$\{env:([A-Z_][A-Z0-9_]*)\}$/.exec(value);
  if (!m) return value;
  const name = m[1]!;
  const v = env[name];
  if (v === undefined || v === '') throw new ConfigError(`${key}: environment variable ${name} is not set`);
  return v;
}

export function findSite(config: HoldfastConfig, siteId: string): SiteConfig | undefined {
  return config.sites.find((s) => s.id === siteId);
}

/** A station's configuration, or undefined when temporal.yaml has no such site, line or station. */
export function findStation(
  config: HoldfastConfig,
  at: { site: string; line: string; station: string },
): SiteConfig['lines'][number]['stations'][number] | undefined {
  return findSite(config, at.site)
    ?.lines.find((l) => l.id === at.line)
    ?.stations.find((s) => s.id === at.station);
}

/** The slice of a site's configuration that workflows receive as input (recorded in history at start). */
export function sitePolicy(config: HoldfastConfig, site: SiteConfig): SitePolicy {
  return {
    site: site.id,
    blockQuantity: site.policy.blockQuantity,
    notificationType: site.policy.notificationType,
    dispositionTimeout: site.policy.dispositionTimeout,
    presets: config.activityPresets,
  };
}

/**
 * How `npm start` tells the API where the processes it started answer GET /health (infra/local/start.ts): JSON in
 * the form of `api.dashboard.healthEndpoints`, which it replaces when set.
 */
export const DASHBOARD_HEALTH_ENDPOINTS_ENV = 'HOLDFAST_DASHBOARD_HEALTH_ENDPOINTS';

/** The config with `api.dashboard.healthEndpoints` from the environment, when set there; a bad value is a ConfigError. */
export function withDashboardHealthEndpoints(
  config: HoldfastConfig,
  env: NodeJS.ProcessEnv = process.env,
): HoldfastConfig {
  const raw = env[DASHBOARD_HEALTH_ENDPOINTS_ENV];
  if (raw === undefined || raw === '') return config;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${DASHBOARD_HEALTH_ENDPOINTS_ENV} is not JSON: ${(err as Error).message}`);
  }
  const parsed = HoldfastConfig.shape.api.unwrap().shape.dashboard.unwrap().shape.healthEndpoints.safeParse(value);
  if (!parsed.success) {
    throw new ConfigError(`${DASHBOARD_HEALTH_ENDPOINTS_ENV} is invalid:\n${formatIssues(parsed.error)}`);
  }
  return { ...config, api: { ...config.api, dashboard: { ...config.api.dashboard, healthEndpoints: parsed.data } } };
}
