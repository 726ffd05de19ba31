/**
 * The read-only client commands: `status` (once or --watch), `history` (and `history show ID`,
 * read from the store so it works while the daemon is down) and `preflight`.
 */
import { loadConfig } from '../../config/load.js';
import { parseDuration } from '../../config/duration.js';
import { GuardError } from '../../errors.js';
import type { CliContext, ClientOptions } from '../cli-context.js';
import { formatHistory, formatStatus } from '../format.js';
import { watchStatus } from '../status-watch.js';

/** status, history, preflight: they ask the daemon, change nothing. */
export function registerInspectCommands(ctx: CliContext): void {
  ctx.clientCommand('status', 'show the state, the release under guard, every rule and the last rollback')
    .option('--json', 'print the raw JSON view (stable field names, for scripts); with --watch, one line per refresh')
    .option('-w, --watch', 'refresh until Ctrl-C (in place on a terminal, repeated otherwise)')
    .option('--interval <duration>', 'refresh interval with --watch (e.g. 500ms, 2s)', '2s')
    .action(async (opts: ClientOptions & { json?: boolean; watch?: boolean; interval: string }) => {
      const client = await ctx.connect(opts, false);
      if (!opts.watch) {
        const view = await client.status();
        ctx.print(opts.json ? JSON.stringify(view, null, 2) : formatStatus(view, { color: ctx.color }));
        return;
      }
      const intervalMs = parseDuration(opts.interval);
      if (intervalMs === null || intervalMs < 100) {
        throw new GuardError(`--interval ${JSON.stringify(opts.interval)} is not a duration of at least 100ms; use e.g. 500ms or 2s`, 'usage');
      }
      // In place only on a real terminal we write to ourselves; tests and pipes get plain frames.
      const tty = !ctx.outReplaced && process.stdout.isTTY === true && !opts.json;
      await watchStatus(client, { intervalMs, tty, json: opts.json === true, color: ctx.color, out: ctx.out, err: ctx.err });
    });

  ctx.clientCommand('history', 'show the deployments and rollbacks; `history show ID` prints one rollback record')
    .argument('[show]', '"show" to print one rollback record')
    .argument('[id]', 'the record id (from `history`)')
    .option('--json', 'print the raw JSON view')
    .option('--limit <n>', 'rollback records per page (1-500, default 50)')
    .option('--before <time>', 'only records that finished before this time (the "next" a page printed)')
    .action(async (show: string | undefined, id: string | undefined, opts: ClientOptions & { json?: boolean; limit?: string; before?: string }) => {
      if (show === undefined) {
        const limit = opts.limit === undefined ? undefined : Number(opts.limit);
        if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 500)) throw new GuardError(`--limit ${opts.limit} is not allowed: use a whole number from 1 to 500`, 'usage');
        const view = await (await ctx.connect(opts, false)).history({ ...(limit !== undefined ? { limit } : {}), ...(opts.before !== undefined ? { before: opts.before } : {}) });
        ctx.print(opts.json ? JSON.stringify(view, null, 2) : formatHistory(view, { color: ctx.color }));
        return;
      }
      if (show !== 'show' || id === undefined) throw new GuardError('usage: release-guard history show ID (ids are listed by release-guard history)', 'usage');
      // Records are read from the state dir, so they can be read while the daemon is down. The
      // store is loaded only here (a redis store brings ioredis), as the daemon only by `start`.
      const cfg = await loadConfig(opts.config ?? ctx.defaultConfig());
      let record;
      if (cfg.store.type === 'redis') {
        const { openStore } = await import('../../store/index.js');
        const opened = await openStore(cfg);
        record = await opened.store.readRecord(id).finally(() => opened.close());
      } else {
        const { FileStore } = await import('../../store/file-store.js');
        record = await new FileStore(cfg.state_dir).readRecord(id);
      }
      const where = cfg.store.type === 'redis' ? `the redis store (${cfg.store.host}:${cfg.store.port})` : `${cfg.state_dir}/rollbacks`;
      if (!record) throw new GuardError(`no rollback record "${id}" in ${where}; release-guard history lists them`, 'not_found');
      ctx.print(opts.json ? JSON.stringify(record.json, null, 2) : record.markdown);
    });

  ctx.clientCommand('preflight', 'check that the running release can be rolled back now (exit 1 when not)')
    .option('--json', 'print the raw JSON view')
    .option('--fresh', 'run the checks now instead of reading the result the daemon keeps for server.preflight_cache (needs the token)')
    .action(async (opts: ClientOptions & { json?: boolean; fresh?: boolean }) => {
      const view = await (await ctx.connect(opts, opts.fresh === true)).preflight({ fresh: opts.fresh === true });
      if (opts.json) ctx.print(JSON.stringify(view, null, 2));
      else {
        const lines = [
          `rollback ${view.from ?? '?'} -> ${view.to ?? '?'}: ${view.ready ? 'READY' : 'NOT READY'} (checked ${view.checkedAt}${opts.fresh ? '' : '; --fresh to check now'})`,
          ...view.problems.map((p) => `  ✖ ${p}`),
        ];
        for (const step of view.steps) {
          lines.push(`  ${step.problems.length === 0 ? '✔' : '✖'} step ${step.index + 1} ${step.description}`, ...step.problems.map((p) => `      ${p}`));
        }
        ctx.print(lines.join('\n'));
      }
      ctx.setExitCode(view.ready ? 0 : 1);
    });
}
