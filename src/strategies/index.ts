/**
 * The strategy registry, keyed by the config's `type`. A new strategy is one file plus one line
 * here; `satisfies` makes the compiler reject a registry that misses a type or pairs it wrongly.
 *
 * Each entry loads its strategy's module only when a configured step has that type, so a guard
 * whose plan never touches Redis does not load ioredis.
 */
import type { StrategyConfig } from '../config/schema.js';
import { RollbackError } from '../errors.js';
import type { RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** Loads the module of one strategy type and gives its factory. */
type StrategyLoader<C extends StrategyConfig> = () => Promise<StrategyFactory<C>>;

export const strategyLoaders = {
  releases: async () => (await import('./releases.js')).releasesStrategy,
  pm2: async () => (await import('./pm2.js')).pm2Strategy,
  git: async () => (await import('./git.js')).gitStrategy,
  config: async () => (await import('./config-files.js')).configFilesStrategy,
  docker: async () => (await import('./docker.js')).dockerStrategy,
  kubernetes: async () => (await import('./kubernetes.js')).kubernetesStrategy,
  command: async () => (await import('./command.js')).commandStrategy,
  database: async () => (await import('./database.js')).databaseStrategy,
  redis: async () => (await import('./redis-snapshot.js')).redisSnapshotStrategy,
  blue_green: async () => (await import('./blue-green.js')).blueGreenStrategy,
} satisfies { [K in StrategyConfig['type']]: StrategyLoader<Extract<StrategyConfig, { type: K }>> };

/** Builds the strategy for one validated config entry, loading its module first. */
export async function createStrategy(config: StrategyConfig, deps: StrategyDeps): Promise<RollbackStrategy> {
  // The registry's `satisfies` pairs each type with its factory; the cast only joins the union.
  const load = Object.hasOwn(strategyLoaders, config.type) ? (strategyLoaders[config.type] as StrategyLoader<StrategyConfig>) : undefined;
  if (!load) {
    throw new RollbackError(`unknown strategy type "${String(config.type)}"; use one of: ${Object.keys(strategyLoaders).join(', ')}`, 'create');
  }
  const factory = await load();
  return factory(config, deps);
}
