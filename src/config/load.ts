/**
 * Reads and validates the YAML config. Every problem is reported at once as
 * `path.to.key: what was wrong, what is allowed`; nothing is defaulted around a bad value.
 */
import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, errorMessage, type ConfigProblem } from '../errors.js';
import { configSchema, referenceProblems, type Config } from './schema.js';
import { quoted } from './schema-helpers.js';

/** `rules.health.probe`, `probes[2].url`; a key that is empty, odd or huge is quoted and cut: `headers["a.b"]`. */
function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((key, i) => {
      if (typeof key === 'number') return `[${key}]`;
      const name = String(key);
      if (/^[A-Za-z_][\w-]{0,63}$/.test(name)) return `${i === 0 ? '' : '.'}${name}`;
      return `[${quoted(name, 40)}]`;
    })
    .join('');
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}

/** A short rendering of a config value for messages; never throws, whatever the value. */
function show(value: unknown): string {
  let text: string | undefined;
  try {
    // Cut long strings before quoting them: a 10 MB value must not become a 10 MB message.
    text = JSON.stringify(typeof value === 'string' && value.length > 60 ? value.slice(0, 60) : value);
  } catch {
    // Too deeply nested, circular or a BigInt: name the kind instead.
    text = Array.isArray(value) ? '[…]' : typeof value === 'object' && value !== null ? '{…}' : undefined;
  }
  if (text === undefined) {
    try {
      text = String(value);
    } catch {
      text = typeof value;
    }
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** One zod issue → one or more readable problems. */
function describeIssue(issue: z.core.$ZodIssue, input: unknown): ConfigProblem[] {
  const path = issue.path;
  const value = valueAt(input, path);
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => ({
        path: formatPath([...path, key]),
        message: 'unknown key; check its spelling and place (every key is documented in config/release-guard.example.yaml)',
      }));
    case 'invalid_type':
      if (value === undefined) return [{ path: formatPath(path), message: `required, expected ${issue.expected}` }];
      return [{ path: formatPath(path), message: `${show(value)} is not a ${issue.expected}` }];
    case 'invalid_value':
      return [{ path: formatPath(path), message: `${show(value)} is not allowed; allowed: ${issue.values.map((v) => show(v)).join(', ')}` }];
    case 'invalid_union': {
      if (issue.discriminator === undefined) {
        // A plain union (a duration is a string or a number; json_field.equals a scalar).
        const expected = [...new Set(issue.errors.flat().flatMap((e) => (e.code === 'invalid_type' ? [e.expected] : [])))];
        const kinds = expected.length > 0 ? expected.join(' or ') : 'an allowed value';
        if (value === undefined) return [{ path: formatPath(path), message: `required, expected ${kinds}` }];
        return [{ path: formatPath(path), message: `${show(value)} is not a ${kinds}` }];
      }
      // A discriminated union (probes[].type, rollback.steps[].type) names the allowed kinds.
      const allowed = [...issue.message.matchAll(/'([^']+)'/g)].map((m) => m[1]);
      const at = path.at(-1) === 'type' ? path : [...path, 'type'];
      const kind = valueAt(input, at);
      if (kind === undefined) return [{ path: formatPath(at), message: `required; allowed: ${allowed.join(', ')}` }];
      return [{ path: formatPath(at), message: `${show(kind)} is not a known type; allowed: ${allowed.join(', ')}` }];
    }
    case 'too_small':
    case 'too_big':
      return [{ path: formatPath(path), message: `${show(value)}: ${issue.message.replace(/^Too (small|big): expected \w+ to (have )?/, 'must ').replace(/be <=\s*/, 'be at most ').replace(/be >=\s*/, 'be at least ').replace(/be >\s*/, 'be above ').replace(/be <\s*/, 'be below ')}` }];
    default:
      return [{ path: formatPath(path), message: value === undefined || issue.code === 'custom' ? issue.message : `${show(value)}: ${issue.message}` }];
  }
}

/** Validates already-parsed data; throws ConfigError naming every problem. */
export function validateConfig(input: unknown, file = 'config'): Config {
  const result = configSchema.safeParse(input);
  const problems = referenceProblems(input);
  if (result.success && problems.length === 0) return result.data;
  if (!result.success) problems.unshift(...result.error.issues.flatMap((issue) => describeIssue(issue, input)));
  throw new ConfigError(file, problems);
}

/** Parses YAML text; syntax errors become ConfigError with line and column. */
export function parseConfigText(text: string, file = 'config'): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        path: e.linePos ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '(yaml)',
        // The parser's first line may quote the offending text: keep it readable, whatever its size.
        message: `YAML syntax: ${cut(e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, ''), 200)}`,
      })),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // e.g. alias expansion past the yaml library's limit ("billion laughs"): refuse, do not crash.
    throw new ConfigError(file, [{ path: '(yaml)', message: `cannot be read: ${errorMessage(error)}` }], { cause: error });
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigError(file, [{ path: '(top level)', message: 'the file must be a YAML mapping of keys (service, probes, rules, …)' }]);
  }
  return validateConfig(data, file);
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [
      { path: '(file)', message: code === 'ENOENT' ? 'no such file' : `cannot be read (${code ?? String(error)})` },
    ], { cause: error });
  }
  return parseConfigText(text, file);
}
