/**
 * The control commands: they change what the daemon does and need its token (`release`,
 * `rollback`, `drill`, `veto`, `promote`, `pause`, `resume`).
 */
import { parseDuration } from '../../config/duration.js';
import { GuardError } from '../../errors.js';
import { checkVersion, type CliContext, type ClientOptions } from '../cli-context.js';
import { waitForRelease } from '../release-wait.js';

/** release, rollback, drill, veto, promote, pause, resume. */
export function registerControlCommands(ctx: CliContext): void {
  ctx.clientCommand('release', 'open a release window for <version> by hand (when it is not detected)')
    .argument('<version>', 'the version now deployed')
    .option('--by <name>', 'who deployed it (default: api)')
    .option('--wait', 'follow the window and exit with its outcome: 0 promoted, 1 rolled back, 3 rollback failed, 4 no verdict')
    .option('--timeout <duration>', 'with --wait: give up (exit 4) after this long, e.g. 20m')
    .option('--json', 'print the daemon\'s summary as JSON; with --wait, the outcome as one object {version, outcome, code, message}')
    .action(async (version: string, opts: ClientOptions & { by?: string; wait?: boolean; timeout?: string; json?: boolean }) => {
      checkVersion(version);
      const client = await ctx.connect(opts, true);
      if (!opts.wait) {
        ctx.printSummary(await client.release(version, opts.by), `release ${version}`, opts.json);
        return;
      }
      const timeoutMs = opts.timeout === undefined ? null : parseDuration(opts.timeout);
      if (timeoutMs === null && opts.timeout !== undefined) {
        throw new GuardError(`--timeout ${JSON.stringify(opts.timeout)} is not a duration; use e.g. 20m or 90s`, 'usage');
      }
      ctx.setExitCode(await waitForRelease(client, version, { by: opts.by, timeoutMs, json: opts.json === true, out: ctx.print, err: ctx.err }));
    });

  ctx.clientCommand('rollback', 'roll back now, to the previous stable version or --to a given one')
    .requiredOption('--reason <text>', 'why (kept in the rollback record; 1-500 characters)')
    .option('--to <version>', 'target version (default: the previous stable version)')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the daemon\'s summary as JSON')
    .action(async (opts: ClientOptions & { reason: string; to?: string; by?: string; json?: boolean }) => {
      if (opts.to !== undefined) checkVersion(opts.to, '--to ');
      const client = await ctx.connect(opts, true);
      ctx.printSummary(await client.rollback({ to: opts.to, reason: opts.reason, by: opts.by }), 'rollback', opts.json);
    });

  ctx.clientCommand('drill', 'rehearse a rollback: back to the previous version and forward again, timed and recorded')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the drill record as JSON')
    .action(async (opts: ClientOptions & { by?: string; json?: boolean }) => {
      const client = await ctx.connect(opts, true);
      ctx.err('drill running: rollback to the previous version, verification, roll forward, verification...\n');
      const record = await client.drill(opts.by);
      if (opts.json) ctx.print(JSON.stringify(record, null, 2));
      else {
        const lines = [`drill ${record.ok ? 'PASSED' : 'FAILED'} (${record.id})`];
        for (const leg of record.legs) {
          lines.push(`  ${leg.from} -> ${leg.to}: ${leg.ok ? 'ok' : `FAILED: ${leg.error ?? ''}`}  plan ${leg.planMs}ms, verified after ${leg.verifyMs}ms, total ${leg.totalMs}ms`);
        }
        ctx.print(lines.join('\n'));
      }
      ctx.setExitCode(record.ok ? 0 : 1);
    });

  ctx.clientCommand('veto', 'stop a rollback that is waiting out its veto window (rollback.veto)')
    .option('--reason <text>', 'why (kept in the log and notifications)')
    .option('--by <name>', 'who asks (default: api)')
    .option('--json', 'print the daemon\'s summary as JSON')
    .action(async (opts: ClientOptions & { reason?: string; by?: string; json?: boolean }) => {
      const client = await ctx.connect(opts, true);
      ctx.printSummary(await client.veto({ reason: opts.reason, by: opts.by }), 'veto', opts.json);
    });

  for (const [action, description] of [
    ['promote', 'end the release window now and accept the release as stable'],
    ['pause', 'stop acting on breaches (they are still reported) until resume'],
    ['resume', 'act on breaches again'],
  ] as const) {
    ctx.clientCommand(action, description)
      .option('--by <name>', 'who asks (default: api)')
      .option('--json', 'print the daemon\'s summary as JSON')
      .action(async (opts: ClientOptions & { by?: string; json?: boolean }) => {
        const client = await ctx.connect(opts, true);
        ctx.printSummary(await client[action](opts.by), action, opts.json);
      });
  }
}
