/**
 * `{from}` / `{to}` in configured argument vectors (the schema's `argv`): replaced by the bad
 * and the target version. A version is only substituted after `versionProblem` accepts it, so
 * no version can smuggle an option (`--upload-pack=…`), a path (`../`) or shell syntax into a
 * program's arguments; the arguments are never given to a shell in any case.
 */
import { RollbackError } from '../errors.js';
import { versionProblem } from './step.js';

export interface Versions {
  /** The bad version being rolled back. */
  from: string;
  /** The version to return to. */
  to: string;
}

const PLACEHOLDER = /\{(from|to)\}/g;

/**
 * `arg` with every `{from}` and `{to}` replaced, in one pass (a substituted value is never
 * expanded again). Throws a RollbackError (step `validate`) when a version it would substitute
 * is not allowed; a version that `arg` does not mention is not looked at.
 */
export function expandArg(arg: string, versions: Versions): string {
  return arg.replace(PLACEHOLDER, (_match, name: keyof Versions) => {
    const version = versions[name];
    const problem = versionProblem(version);
    if (problem) throw new RollbackError(`refusing to put {${name}} into a command: ${problem}`, 'validate');
    return version;
  });
}

/** Every argument expanded by `expandArg`; a new array, `args` is left as it was. */
export function expandArgs(args: readonly string[], versions: Versions): string[] {
  return args.map((arg) => expandArg(arg, versions));
}
