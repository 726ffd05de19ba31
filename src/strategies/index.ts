/**
 * The strategy registry, keyed by the config's `type`. A new strategy is one file plus one line
 * here; `satisfies` makes the compiler reject a registry that misses a type or pairs it wrongly.
 */
import type { StrategyConfig } from '../config/schema.js';
import { RollbackError } from '../errors.js';
import { blueGreenStrategy } from './blue-green.js';
import { commandStrategy } from './command.js';
import { configFilesStrategy } from './config-files.js';
import { databaseStrategy } from './database.js';
import { dockerStrategy } from './docker.js';
import { gitStrategy } from './git.js';
import { kubernetesStrategy } from './kubernetes.js';
import { pm2Strategy } from './pm2.js';
import { redisSnapshotStrategy } from './redis-snapshot.js';
import { releasesStrategy } from './releases.js';
import type { RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

export const strategyFactories = {
  releases: releasesStrategy,
  pm2: pm2Strategy,
  git: gitStrategy,
  config: configFilesStrategy,
  docker: dockerStrategy,
  kubernetes: kubernetesStrategy,
  command: commandStrategy,
  database: databaseStrategy,
  redis: redisSnapshotStrategy,
  blue_green: blueGreenStrategy,
} satisfies { [K in StrategyConfig['type']]: StrategyFactory<Extract<StrategyConfig, { type: K }>> };

/** Builds the strategy for one validated config entry. */
export function createStrategy(config: StrategyConfig, deps: StrategyDeps): RollbackStrategy {
  // The registry's `satisfies` pairs each type with its factory; the cast only joins the union.
  const factory = strategyFactories[config.type] as StrategyFactory<StrategyConfig> | undefined;
  if (!factory) {
    throw new RollbackError(`unknown strategy type "${String(config.type)}"; use one of: ${Object.keys(strategyFactories).join(', ')}`, 'create');
  }
  return factory(config, deps);
}
