#!/usr/bin/env node
/**
 * The `release-guard` command: `start` runs the daemon in the foreground; the client commands
 * (`status`, `history`, `release`, `rollback`, `promote`, `pause`, `resume`) talk to a running
 * daemon over its HTTP API; `config validate` checks a file without starting anything; `ops rules`
 * and `completion` print the alert rules and a shell completion script. Every command that prints
 * takes `--json` (stdout one JSON document; progress and errors on stderr).
 *
 * A plain `env node` first line: `env -S` is not portable (BusyBox). The V8 flags that keep the
 * daemon's RSS steady are given where the daemon really runs: the systemd unit's ExecStart and
 * the pm2 ecosystem file (systemd/release-guard.service says why).
 *
 * Exit codes: 0 done, 1 failed (a GuardError: the message says why, no stack trace), 2 usage error
 * (commander's, or a bad --url); `check` adds 3 inconclusive, `release --wait` 3 and 4.
 * Anything other than a GuardError is a bug and is printed with its stack.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { GuardError } from '../errors.js';
import { journalError } from '../journal.js';
import { packageVersion } from '../package-root.js';
import { createCliContext, type CliIo } from './cli-context.js';
import { registerControlCommands } from './commands/control.js';
import { registerInspectCommands } from './commands/inspect.js';
import { registerCheckCommand, registerStartCommand } from './commands/run.js';
import { registerCompletionCommand, registerConfigCommands, registerInitCommand, registerOpsCommands } from './commands/setup.js';

export { colorWanted, DEFAULT_CONFIG_PATH, type CliIo } from './cli-context.js';
export { CHECK_INCONCLUSIVE_EXIT } from './commands/run.js';

/**
 * Runs the CLI with `argv` (the arguments after the program name, i.e. `process.argv.slice(2)`)
 * and resolves to the exit code. Never calls process.exit.
 */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  let exitCode = 0;
  const program = new Command('release-guard');
  const ctx = createCliContext(program, io, (code) => (exitCode = code));
  const { env, err } = ctx;
  // Before any .command(): subcommands inherit these settings.
  program
    .exitOverride()
    .configureOutput({ writeOut: ctx.out, writeErr: err })
    .description('Guards each release window, rolls a bad release back automatically, verifies and records it.')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run release-guard --help for usage)');

  // The order here is the order of `release-guard --help`.
  registerStartCommand(ctx);
  registerInspectCommands(ctx);
  registerControlCommands(ctx);
  registerInitCommand(ctx);
  registerConfigCommands(ctx);
  registerCheckCommand(ctx);
  registerOpsCommands(ctx);
  registerCompletionCommand(ctx);

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    // Usage errors and --help/--version: commander has already printed what needs printing.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof GuardError) {
      err(journalError(`release-guard: ${error.message}\n${error.hint === undefined ? '' : `hint: ${error.hint}\n`}`, env));
      return error.code === 'usage' ? 2 : 1;
    }
    err(journalError(`release-guard: unexpected error; this is a bug, please report it with what follows:\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`, env));
    return 1;
  }
}

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    // The npm bin is a symlink to this file.
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`release-guard: unexpected error; this is a bug:\n${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
