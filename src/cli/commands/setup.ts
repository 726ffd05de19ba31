/**
 * The commands that help set a site up and need no daemon: `init` (a starter config),
 * `config validate`, `ops rules` (the Prometheus alert rules) and `completion`.
 */
import { Argument } from 'commander';
import { loadConfig } from '../../config/load.js';
import type { CliContext } from '../cli-context.js';

/** `init`: look at what runs and write a starter config. */
export function registerInitCommand(ctx: CliContext): void {
  ctx.program
    .command('init')
    .description('write a starter config for a service after looking at what runs (pm2 app, health URL, releases dir, Prometheus, access log)')
    .option('--pm2-app <name>', 'the pm2 app to guard: its script path tells the deploy layout (releases strategy) or pm2 restart')
    .option('--pm2-home <dir>', 'PM2_HOME of the pm2 running the app (default: $PM2_HOME, else ~/.pm2)')
    .option('--health-url <url>', 'the app\'s health endpoint; a version in its JSON is how releases are detected')
    .option('--prometheus-url <url>', 'a Prometheus server with the app\'s request metrics (adds a traffic probe)')
    .option('--releases-dir <dir>', 'a Capistrano deploy root (releases/<version>/ + current symlink), if not found through pm2')
    .option('--access-log <path>', "the web server's access log (default: /var/log/nginx/access.log when it exists); adds an access_log traffic probe")
    .option('--service <name>', 'service name (default: the pm2 app name)')
    .option('--state-dir <dir>', 'where the guard keeps its state (default: /var/lib/release-guard as root, else ~/.local/state/release-guard/<service>)')
    .option('-o, --out <file>', 'the config file to write', 'release-guard.yaml')
    .option('--force', 'overwrite the file if it exists')
    .option('--json', 'print what was written and inferred as JSON: {file, inferred, todo}')
    .action(async (opts: { pm2App?: string; pm2Home?: string; healthUrl?: string; prometheusUrl?: string; releasesDir?: string; accessLog?: string; service?: string; stateDir?: string; out: string; force?: boolean; json?: boolean }) => {
      const { defaultInitDeps, formatInitReport, runInit } = await import('../init.js');
      const { json, ...initOptions } = opts;
      const result = await runInit({ ...initOptions, force: opts.force === true }, defaultInitDeps(ctx.env));
      // The YAML itself is in the file; the JSON says where and what was found.
      ctx.print(json ? JSON.stringify({ file: result.file, inferred: result.inferred, todo: result.todo }, null, 2) : formatInitReport(result, opts.out));
    });
}

/** `config validate`. */
export function registerConfigCommands(ctx: CliContext): void {
  const config = ctx.program.command('config').description('work with config files');
  config
    .command('validate')
    .description('check a config file: prints FILE: OK, or every problem as path: message')
    .argument('<file>', 'the YAML config file')
    .option('--json', 'print {"file", "ok": true} when valid (problems still go to stderr with exit 1)')
    .action(async (file: string, opts: { json?: boolean }) => {
      await loadConfig(file);
      ctx.print(opts.json ? JSON.stringify({ file, ok: true }) : `${file}: OK`);
    });
}

/** `ops rules`. */
export function registerOpsCommands(ctx: CliContext): void {
  const ops = ctx.program.command('ops').description('print the ops kit that ships with release-guard, fitted to this site');
  ops
    .command('rules')
    .description('print the Prometheus alert rules (prometheus/release-guard.rules.yml), runbook links made absolute with --runbook-base, the scrape job renamed with --job')
    .option('--runbook-base <url>', 'where docs/operations.md is published, e.g. https://wiki.example.com/release-guard/ops (each alert\'s #anchor is added), or a URL with {alert} for one page per alert; default: the relative docs/operations.md links')
    .option('--job <name>', 'the scrape job the guard\'s /metrics is collected under (job_name in the Prometheus scrape config); default: release-guard')
    .action(async (opts: { runbookBase?: string; job?: string }) => {
      const { opsRules } = await import('../ops-rules.js');
      ctx.out(await opsRules(opts));
    });
}

/** `completion bash|zsh`, generated from the program itself, so register it last. */
export function registerCompletionCommand(ctx: CliContext): void {
  ctx.program
    .command('completion')
    .description('print a shell completion script: source <(release-guard completion bash), or release-guard completion zsh > "${fpath[1]}/_release-guard"')
    .addArgument(new Argument('<shell>', 'the shell').choices(['bash', 'zsh']))
    .action(async (shell: 'bash' | 'zsh') => {
      // Generated from this very ctx.program, so it lists every command and option there is.
      const { completionScript } = await import('../completion.js');
      ctx.out(completionScript(ctx.program, shell));
    });
}
