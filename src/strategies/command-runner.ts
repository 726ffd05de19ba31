/**
 * Running external programs: argument arrays only (`shell: false`), so nothing a version string
 * or a config value contains can be interpreted by a shell.
 */

export interface CommandOptions {
  cwd?: string;
  /**
   * Added to the minimal step environment (PATH, HOME, locale...; never the guard's own, see
   * src/shell/step-env.ts); secrets a program needs go here, never in `args`.
   */
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Written to the program's stdin (e.g. a SQL dump for `mysql`): a file path to stream, or text. */
  stdin?: { file: string } | { text: string };
  /** Streams stdout to this file instead of buffering it (e.g. `mysqldump` output). */
  stdoutFile?: string;
}

export interface CommandResult {
  code: number;
  /** The last lines of stdout and stderr (bounded), for progress and records. */
  stdoutTail: string[];
  stderrTail: string[];
  durationMs: number;
}

export interface CommandRunner {
  /**
   * Runs `command` with `args`. Resolves when it exits 0; rejects with a RollbackError naming the
   * command, the exit code or signal (or timeout), and the stderr tail otherwise. A missing
   * program rejects with "not installed" in the message.
   */
  run(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult>;
  /** Whether `command` is found on PATH (for readiness checks). */
  which(command: string): Promise<string | null>;
}
