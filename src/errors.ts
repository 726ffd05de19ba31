/**
 * Typed errors. A GuardError is a user-facing failure: its message says what happened and what is
 * allowed; the CLI prints it without a stack trace. Anything else is a bug and keeps its stack.
 */
export class GuardError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly hint?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** One problem in a config file: `path.to.key: what was wrong, what is allowed`. */
export interface ConfigProblem {
  path: string;
  message: string;
}

export class ConfigError extends GuardError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
    options?: ErrorOptions,
  ) {
    super(
      `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n` +
        problems.map((p) => `  ${p.path}: ${p.message}`).join('\n'),
      'config_invalid',
      undefined,
      options,
    );
  }
}

/** A probe could not take a sample; becomes `Sample.error`, never a crash of the guard. */
export class ProbeError extends GuardError {}

/** A rollback step failed: which step, and the tail of what it said. */
export class RollbackError extends GuardError {
  constructor(
    message: string,
    readonly step: string,
    options?: ErrorOptions,
  ) {
    super(message, 'rollback_failed', undefined, options);
  }
}

/** The state store could not read or write; the guard must not act on a state it cannot keep. */
export class StoreError extends GuardError {}

/** A client command could not reach or was refused by the daemon's API. */
export class ApiError extends GuardError {
  constructor(
    message: string,
    readonly status: number,
    options?: ErrorOptions,
  ) {
    super(message, 'api_error', undefined, options);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
