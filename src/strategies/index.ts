/**
 * The strategy registry, keyed by the config's `type`. A new strategy is one file plus one line
 * here; `satisfies` makes the compiler reject a registry that misses a type or pairs it wrongly.
 */
import type { StrategyConfig } from '../config/schema.js';
import { RollbackError } from '../errors.js';
import { pm2Strategy } from './pm2.js';
import { releasesStrategy } from './releases.js';
import type { RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

export const strategyFactories = {
  releases: releasesStrategy,
  pm2: pm2Strategy,
} satisfies { [K in StrategyConfig['type']]: StrategyFactory<Extract<StrategyConfig, { type: K }>> };

/** Builds the strategy for one validated config entry. */
export function createStrategy(config: StrategyConfig, deps: StrategyDeps): RollbackStrategy {
  switch (config.type) {
    case 'releases':
      return strategyFactories.releases(config, deps);
    case 'pm2':
      return strategyFactories.pm2(config, deps);
    default: {
      // Unreachable for a config that passed the schema; the `never` makes a new type a compile error.
      const unknown: never = config;
      throw new RollbackError(
        `unknown strategy type "${(unknown as { type?: unknown }).type}"; use one of: releases, pm2`,
        'create',
      );
    }
  }
}
