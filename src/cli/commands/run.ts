/**
 * The commands that run the guard's own machinery in this process: `start` (the daemon) and
 * `check` (every rule evaluated once, for CI/CD gates). Their heavy modules (pm2, probes,
 * strategies) are imported inside the actions, so the client commands never load them.
 */
import { formatDuration, parseDuration } from '../../config/duration.js';
import { loadConfig } from '../../config/load.js';
import { GuardError } from '../../errors.js';
import type { CliContext } from '../cli-context.js';
import { formatVerdicts } from '../format.js';

/** `check`'s exit code when a rule has no data: distinct from 2, the usage error of every command. */
export const CHECK_INCONCLUSIVE_EXIT = 3;

/** `start`: the daemon in the foreground. */
export function registerStartCommand(ctx: CliContext): void {
  ctx.program
    .command('start')
    .description('run the daemon in the foreground (systemd, pm2 or a terminal)')
    .option('-c, --config <file>', ctx.configHelp)
    .action(async (opts: { config?: string }) => {
      // Loaded only here, so the client commands do not pull in pm2, probes and strategies.
      const daemon = await import('../../shell/daemon.js');
      await daemon.runDaemon({ configPath: opts.config ?? ctx.defaultConfig() });
    });
}

/** `check`: probe for a while, judge every rule once, exit with the outcome. */
export function registerCheckCommand(ctx: CliContext): void {
  ctx.program
    .command('check')
    .description('evaluate every rule once, for CI/CD gates: exit 0 pass, 1 breach, 3 inconclusive (2 is a usage error)')
    .option('-c, --config <file>', ctx.configHelp)
    .option('--for <duration>', 'how long to probe before judging (e.g. 30s, 2m)', '30s')
    .option('--json', 'print the verdicts as JSON')
    .action(async (opts: { config?: string; for: string; json?: boolean }) => {
      const forMs = parseDuration(opts.for);
      if (forMs === null || forMs <= 0) throw new GuardError(`--for ${JSON.stringify(opts.for)} is not a duration; use e.g. 30s or 2m`, 'usage');
      const file = opts.config ?? ctx.defaultConfig();
      const cfg = await loadConfig(file);
      const { runCiGate } = await import('../../shell/ci-gate.js');
      const { systemClock } = await import('../../shell/clock.js');
      const needsPm2 = cfg.probes.some((p) => p.type === 'process' && p.pm2_app !== undefined);
      const pm2 = needsPm2 ? new (await import('../../pm2/pm2-api-client.js')).Pm2ApiClient(cfg.pm2?.home ? { home: cfg.pm2.home } : {}) : undefined;
      if (!opts.json) ctx.err(`checking ${cfg.service} for ${formatDuration(forMs)} (${cfg.probes.map((p) => p.name).join(', ')})...\n`);
      try {
        const result = await runCiGate(cfg, { forMs, clock: systemClock, ...(pm2 ? { pm2 } : {}) });
        if (opts.json) ctx.print(JSON.stringify(result, null, 2));
        else {
          const samples = Object.entries(result.samples).map(([name, n]) => `${name} ${n}`).join(', ');
          ctx.print(
            `${cfg.service}: ${result.outcome.toUpperCase()}  (${samples} samples; baseline ${result.baselineVersion ?? 'none'})\n` +
              formatVerdicts(result.verdicts, { color: ctx.color }).join('\n'),
          );
        }
        // 3, not 2: a gate must tell "no data" from a mistyped command (commander's usage error is 2).
        ctx.setExitCode(result.outcome === 'pass' ? 0 : result.outcome === 'fail' ? 1 : CHECK_INCONCLUSIVE_EXIT);
      } finally {
        await pm2?.disconnect();
      }
    });
}
