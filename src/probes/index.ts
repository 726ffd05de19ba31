/**
 * The probe registry, keyed by the config's `type`. A new probe is one file plus one line here;
 * `satisfies` makes the compiler reject a registry that misses a type or pairs it wrongly.
 *
 * Each entry loads its probe's module only when a configured probe has that type: the client
 * libraries behind some of them (mysql2, ioredis) cost 15-25 MB of RSS each, and a guard that does
 * not use them must not pay for them.
 */
import type { ProbeConfig } from '../config/schema.js';
import { ProbeError } from '../errors.js';
import type { Probe, ProbeDeps, ProbeFactory } from './types.js';

/** Loads the module of one probe type and gives its factory. */
type ProbeLoader<C extends ProbeConfig> = () => Promise<ProbeFactory<C>>;

export const probeLoaders = {
  http: async () => (await import('./http.js')).httpProbe,
  system: async () => (await import('./system.js')).systemProbe,
  process: async () => (await import('./process.js')).processProbe,
  prometheus: async () => (await import('./prometheus.js')).prometheusProbe,
  scrape: async () => (await import('./scrape.js')).scrapeProbe,
  access_log: async () => (await import('./access-log.js')).accessLogProbe,
  mysql: async () => (await import('./mysql.js')).mysqlProbe,
  redis: async () => (await import('./redis.js')).redisProbe,
} satisfies { [K in ProbeConfig['type']]: ProbeLoader<Extract<ProbeConfig, { type: K }>> };

/** Builds the probe for one validated config entry, loading its module first. */
export async function createProbe(config: ProbeConfig, deps: ProbeDeps): Promise<Probe> {
  // The registry's `satisfies` pairs each type with its factory; the cast only joins the union.
  const load = Object.hasOwn(probeLoaders, config.type) ? (probeLoaders[config.type] as ProbeLoader<ProbeConfig>) : undefined;
  if (!load) {
    // Unreachable for a config that passed the schema.
    throw new ProbeError(
      `unknown probe type "${String((config as { type?: unknown }).type)}"`,
      'probe_unknown_type',
      `use one of: ${Object.keys(probeLoaders).join(', ')}`,
    );
  }
  const factory = await load();
  return factory(config, deps);
}

/** Builds the probes of `configs` in order (the first bad one throws, as the config reads). */
export async function createProbes(configs: readonly ProbeConfig[], deps: ProbeDeps): Promise<Probe[]> {
  const probes: Probe[] = [];
  for (const config of configs) probes.push(await createProbe(config, deps));
  return probes;
}
