/**
 * Command strategy: runs one configured program (an argument vector, `{from}`/`{to}` expanded)
 * with its own cwd, extra environment and timeout, e.g. a CDN purge or a notification hook. The
 * program's stdout tail becomes the step's progress; a non-zero exit fails the step with its
 * stderr tail. Idempotency is the program's own: a resumed plan runs it again, so configure
 * commands that converge (purge, set, deploy <version>), not ones that toggle.
 *
 * Also home of `runProgram`, the way every strategy here runs a program as part of a step.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { CommandStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { CommandOptions, CommandResult, CommandRunner } from './command-runner.js';
import { expandArgs } from './placeholders.js';
import { stepScope, within, type StepScope } from './step.js';
import type { RollbackContext, StrategyFactory } from './types.js';

/** Output lines of a program passed on as progress, at most. */
const PROGRESS_LINES = 20;

/** `program arg…` for progress lines and messages (arguments with spaces are quoted). */
export function commandLine(command: string, args: readonly string[]): string {
  return [command, ...args].map((a) => (a === '' || /[\s'"]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

export interface RunProgramOptions extends Omit<CommandOptions, 'timeoutMs' | 'signal'> {
  /** This call's own limit, below the step's (e.g. a `git fetch` that must not eat the budget). */
  timeoutMs?: number;
  /** Report the command line as progress before running it (default true). */
  announce?: boolean;
}

/**
 * Runs `command args` inside `scope`: killed when the step is cancelled or out of time, and any
 * failure is a RollbackError of `step` (the runner's message kept: exit code, stderr tail).
 */
export async function runProgram(
  run: CommandRunner,
  scope: StepScope,
  step: string,
  command: string,
  args: readonly string[],
  options: RunProgramOptions = {},
): Promise<CommandResult> {
  const { timeoutMs, announce = true, ...rest } = options;
  const line = commandLine(command, args);
  if (announce) scope.progress(`$ ${line}`);
  try {
    return await within(scope, step, line, () =>
      run.run(command, args, { ...rest, timeoutMs: Math.min(timeoutMs ?? scope.timeoutMs, scope.timeoutMs), signal: scope.signal }),
    );
  } catch (error) {
    if (error instanceof RollbackError && error.step === step) throw error;
    throw new RollbackError(errorMessage(error), step, { cause: error });
  }
}

/** Reports the last lines a program printed, each as its own progress line. */
export function reportOutput(scope: StepScope, lines: readonly string[], prefix = '  '): void {
  for (const line of lines.slice(-PROGRESS_LINES)) scope.progress(`${prefix}${line}`);
}

export const commandStrategy: StrategyFactory<CommandStrategyConfig> = (config, { run, clock }) => {
  const cwd = config.cwd === undefined ? undefined : path.resolve(config.cwd);
  const argv = (ctx: Pick<RollbackContext, 'from' | 'to'>) => {
    const [command, ...args] = expandArgs(config.command, ctx);
    // The schema asks for at least one element; this keeps the compiler and a hand-made config honest.
    if (command === undefined) throw new RollbackError('command is empty; give a program and its arguments', 'validate');
    return { command, args };
  };

  return {
    type: 'command',

    describe({ from, to }) {
      // describe never throws: an unusable version is shown unexpanded and refused by check/execute.
      let shown: string;
      try {
        const { command, args } = argv({ from, to });
        shown = commandLine(command, args);
      } catch {
        shown = commandLine(config.command[0] ?? '', config.command.slice(1));
      }
      return `command: ${shown}${cwd ? ` (in ${cwd})` : ''}`;
    },

    async checkReadiness(ctx) {
      if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
      const found: string[] = [];
      let command: string;
      try {
        command = argv(ctx).command;
      } catch (error) {
        return [errorMessage(error)];
      }
      // A relative program path is looked up from cwd by spawn, as it will be when run.
      const program = command.includes('/') && cwd ? path.resolve(cwd, command) : command;
      if ((await run.which(program)) === null) {
        found.push(`${command} is not installed (not found${command.includes('/') ? '' : ' on PATH'} or not executable)`);
      }
      if (cwd) {
        try {
          if (!(await stat(cwd)).isDirectory()) found.push(`cwd ${cwd} is not a directory`);
        } catch (error) {
          found.push(`cwd ${cwd} cannot be used: ${errorMessage(error)}`);
        }
      }
      return found;
    },

    async execute(ctx) {
      const { command, args } = argv(ctx);
      const scope = stepScope(ctx, config.timeout, clock);
      const result = await runProgram(run, scope, 'command', command, args, {
        ...(cwd ? { cwd } : {}),
        env: config.env,
      });
      reportOutput(scope, result.stdoutTail);
      ctx.progress(`${command} exited 0 after ${result.durationMs} ms`);
    },
  };
};
