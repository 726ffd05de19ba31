/**
 * Fuzzing the config loader: random mutations of the shipped example config (deleted keys, changed
 * types, unknown keys, junk at random paths, deep nesting, huge strings) and of its YAML text.
 * Whatever comes in, `validateConfig` / `parseConfigText` either return a config that validates
 * again to the same value, or throw a ConfigError whose every problem has a path and a message.
 * Never another exception, never a hang. The PRNG is seeded: a failure names seed and iteration,
 * and `RG_FUZZ_SEED=<seed>` replays it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { PROJECT_ROOT } from '../../test/fixtures/demo-app/releases.js';
import { ConfigError } from '../errors.js';
import { parseConfigText, validateConfig } from './load.js';

const SEED = Number(process.env.RG_FUZZ_SEED ?? 20240501);
const EXAMPLE_TEXT = readFileSync(join(PROJECT_ROOT, 'config', 'release-guard.example.yaml'), 'utf8');
const EXAMPLE = parse(EXAMPLE_TEXT) as Record<string, unknown>;
/** Longest accepted problem message: a huge value in the input must not make a huge message. */
const MAX_MESSAGE = 2_000;
/**
 * The loader is synchronous: an input that blew it up (exponential backtracking, quadratic
 * checks) would run past each test's time budget, which is what fails it. No call is timed on the
 * wall clock: on a busy 2-core box that measured the load, not the loader.
 */
const TEST_BUDGET_MS = 60_000;

/** mulberry32: small, fast, good enough, and reproducible from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T,>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof prng>;

const KEYS = ['type', 'name', 'probe', 'url', 'timeout', 'window', 'steps', 'x', '', ' ', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'ünïcödé', 'a.b', '[0]', 'probes', 'rules'];
const STRINGS = ['', ' ', 'health', 'http', 'releases', 'command', '5s', '-5s', '5 s', '1e3ms', '0', '0ms', '99999999999999999999h', 'NaN', 'Infinity', '{to}', 'v1;rm -rf /', '../../etc', 'v1\nX', '\u0000', '\u202e', 'ｖ１', 'http://', 'http://127.0.0.1:1/x', 'file:///etc/passwd', '* * * * *', '61 * * * *', 'true', 'null', '~', '%', '\t'];

function randomString(rng: Rng): string {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(STRINGS);
    case 1:
      return Array.from({ length: rng.int(40) }, () => String.fromCodePoint(rng.int(0x2fff))).join('');
    case 2:
      // Huge: 100 KB to 2 MB.
      return rng.pick(['x', 'ab', '\u00e9', '{']).repeat(100_000 + rng.int(1_900_000));
    default:
      return rng.pick(STRINGS) + rng.pick(STRINGS);
  }
}

function randomScalar(rng: Rng): unknown {
  switch (rng.int(9)) {
    case 0:
      return null;
    case 1:
      return rng.next() < 0.5;
    case 2:
      return rng.int(100) - 10;
    case 3:
      return rng.pick([0, -0, -1, 0.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, Number.NaN, Infinity, -Infinity, 65_536, 65_535]);
    case 4:
      return rng.next() * 10_000;
    default:
      return randomString(rng);
  }
}

/** Junk of any shape; `depth` bounds ordinary nesting, `deep` makes one pathological chain. */
function junk(rng: Rng, depth = 0): unknown {
  const roll = rng.int(10);
  if (roll === 0 && depth === 0) {
    // Deeply nested arrays or objects: 500 to 5,000 levels.
    let value: unknown = randomScalar(rng);
    const levels = 500 + rng.int(4_500);
    const asArray = rng.next() < 0.5;
    for (let i = 0; i < levels; i++) value = asArray ? [value] : { [rng.pick(KEYS)]: value };
    return value;
  }
  if (depth < 3 && roll <= 2) return Array.from({ length: rng.int(5) }, () => junk(rng, depth + 1));
  if (depth < 3 && roll <= 4) {
    const object: Record<string, unknown> = {};
    for (let i = rng.int(5); i > 0; i--) object[rng.pick(KEYS)] = junk(rng, depth + 1);
    return object;
  }
  return randomScalar(rng);
}

type Container = Record<string, unknown> | unknown[];

/** JSON text of a value, or a marker when it is too deep to stringify (junk chains are). */
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'undefined';
  } catch {
    return '[too deep]';
  }
}

/** Every object and array inside `root`, with its path, for picking a mutation site. */
function containers(root: unknown, path: string[] = [], out: { path: string[]; value: Container }[] = []) {
  if (root === null || typeof root !== 'object' || out.length > 2_000) return out;
  out.push({ path, value: root as Container });
  for (const [key, value] of Object.entries(root)) {
    if (path.length < 12) containers(value, [...path, key], out);
  }
  return out;
}

/** Every leaf value, so a real value from elsewhere can be moved somewhere it does not belong. */
function leaves(root: unknown, out: unknown[] = [], depth = 0): unknown[] {
  if (root === null || typeof root !== 'object') out.push(root);
  else if (depth < 20) for (const value of Object.values(root)) leaves(value, out, depth + 1);
  return out;
}

/** Applies one random mutation in place; returns what it did, for the failure message. */
function mutate(root: Record<string, unknown>, rng: Rng): string {
  const sites = containers(root);
  const { path, value: target } = rng.pick(sites);
  const where = path.join('.') || '(top)';
  const keys = Object.keys(target);
  const key = keys.length > 0 ? rng.pick(keys) : '0';
  const set = (k: string, v: unknown) => {
    if (Array.isArray(target)) target[Number(k)] = v;
    else Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
  };
  switch (rng.int(7)) {
    case 0:
      if (Array.isArray(target)) target.splice(Number(key), 1);
      else delete target[key];
      return `delete ${where}.${key}`;
    case 1:
      set(key, junk(rng));
      return `replace ${where}.${key} with junk`;
    case 2: {
      const unknownKey = rng.pick(KEYS) + (rng.next() < 0.5 ? '' : String(rng.int(100)));
      if (Array.isArray(target)) target.push(junk(rng));
      else set(unknownKey, junk(rng));
      return `insert ${where}.${unknownKey}`;
    }
    case 3: {
      // Change the type of an existing value: a string to a number, an object to a list, …
      const current = (target as Record<string, unknown>)[key];
      const changed =
        typeof current === 'string' ? rng.pick([Number(current.length), [current], { value: current }, current === '' ? null : true])
          : typeof current === 'number' ? rng.pick([String(current), `${current}`.repeat(3), [current], -current, current + 0.5])
            : Array.isArray(current) ? rng.pick([{ ...current }, current[0], current.length])
              : current !== null && typeof current === 'object' ? rng.pick([Object.values(current), safeJson(current), null])
                : randomScalar(rng);
      set(key, changed);
      return `retype ${where}.${key}`;
    }
    case 4:
      set(key, rng.pick(leaves(root)));
      return `move a value to ${where}.${key}`;
    case 5:
      if (Array.isArray(target) && target.length > 0) {
        // The same element again (a reference: a 5,000-level junk chain is too deep to clone).
        target.push(target[rng.int(target.length)]);
        return `duplicate an element of ${where}`;
      }
      set(key, randomString(rng));
      return `string at ${where}.${key}`;
    default: {
      // Replace a whole section by junk.
      if (path.length === 0) {
        root[rng.pick(Object.keys(root))] = junk(rng);
        return 'replace a top-level section';
      }
      set(key, rng.pick([[], {}, null, junk(rng)]));
      return `empty ${where}.${key}`;
    }
  }
}

/** The loader's contract for one input; `what` names the case in failures. */
function expectContract(what: string, load: () => unknown): 'valid' | 'invalid' {
  let outcome: 'valid' | 'invalid';
  try {
    const config = load();
    outcome = 'valid';
    // A valid result validates again, to the same value: defaults and transforms are stable.
    expect(validateConfig(structuredClone(config)), `${what}: re-validation changed the config`).toEqual(config);
  } catch (error) {
    if (!(error instanceof ConfigError)) {
      throw new Error(`${what}: threw ${(error as Error)?.constructor?.name ?? typeof error} instead of a ConfigError: ${String((error as Error)?.message ?? error).slice(0, 300)}`, { cause: error });
    }
    outcome = 'invalid';
    expect(error.problems.length, `${what}: a ConfigError without problems`).toBeGreaterThan(0);
    for (const problem of error.problems) {
      expect(typeof problem.path === 'string' && problem.path.trim() !== '', `${what}: empty path in ${JSON.stringify(problem).slice(0, 200)}`).toBe(true);
      expect(typeof problem.message === 'string' && problem.message.trim() !== '', `${what}: empty message at ${problem.path}`).toBe(true);
      expect(problem.message.length, `${what}: a ${problem.message.length}-character message at ${problem.path.slice(0, 80)}`).toBeLessThanOrEqual(MAX_MESSAGE);
      expect(problem.path.length, `${what}: a ${problem.path.length}-character path`).toBeLessThanOrEqual(MAX_MESSAGE);
    }
  }
  return outcome;
}

describe('config loader fuzz: random mutations', { timeout: TEST_BUDGET_MS }, () => {
  it('the unmutated example is valid (the fuzz starts from a good config)', () => {
    expect(expectContract('example', () => validateConfig(structuredClone(EXAMPLE)))).toBe('valid');
  });

  it('random mutations of the parsed example: a valid config or a ConfigError with paths and messages', () => {
    const rng = prng(SEED);
    const outcomes = { valid: 0, invalid: 0 };
    for (let iteration = 0; iteration < 1_500; iteration++) {
      const input = structuredClone(EXAMPLE);
      const done: string[] = [];
      for (let n = 1 + rng.int(4); n > 0; n--) done.push(mutate(input, rng));
      outcomes[expectContract(`seed ${SEED}, iteration ${iteration} (${done.join('; ')})`, () => validateConfig(input, 'fuzz.yaml'))]++;
    }
    // Both sides are exercised: some mutations keep the config valid (e.g. a deleted optional key).
    expect(outcomes.valid).toBeGreaterThan(10);
    expect(outcomes.invalid).toBeGreaterThan(500);
  });

  it('random mutations of the YAML text: a valid config or a ConfigError', () => {
    const rng = prng(SEED + 1);
    const lines = EXAMPLE_TEXT.split('\n');
    const snippets = [':', ': ', '- ', '[', ']', '{', '}', '&a ', '*a', '*b', '!!binary ', '!!str ', '!!js/function ', '!<tag:x> ', '? ', '|', '>', '"', "'", '\t', '\u0000', '\ufeff', '#', '%YAML 1.1\n', '---\n', '...\n', '<<: *a\n', '\r\n', ' '.repeat(40), 'x'.repeat(200_000)];
    for (let iteration = 0; iteration < 400; iteration++) {
      const mutated = [...lines];
      const done: string[] = [];
      for (let n = 1 + rng.int(4); n > 0; n--) {
        const at = rng.int(mutated.length);
        switch (rng.int(5)) {
          case 0:
            mutated.splice(at, 1 + rng.int(5));
            done.push(`delete lines at ${at}`);
            break;
          case 1: {
            const line = mutated[at] ?? '';
            const col = rng.int(line.length + 1);
            mutated[at] = line.slice(0, col) + rng.pick(snippets) + line.slice(col);
            done.push(`insert into line ${at}`);
            break;
          }
          case 2:
            mutated.splice(at, 0, ...mutated.slice(rng.int(mutated.length), rng.int(mutated.length)));
            done.push(`duplicate lines at ${at}`);
            break;
          case 3:
            mutated[at] = (mutated[at] ?? '').replace(/^(\s*)/, (indent) => (rng.next() < 0.5 ? indent.slice(1) : `${indent} `));
            done.push(`re-indent line ${at}`);
            break;
          default:
            mutated.length = at;
            done.push(`truncate at line ${at}`);
        }
      }
      expectContract(`seed ${SEED + 1}, text iteration ${iteration} (${done.join('; ')})`, () => parseConfigText(mutated.join('\n'), 'fuzz.yaml'));
    }
  });
});

describe('config loader fuzz: hostile YAML and huge values', { timeout: TEST_BUDGET_MS }, () => {
  it.each<[string, () => string]>([
    ['an empty file', () => ''],
    ['a scalar document', () => '42\n'],
    ['a list document', () => '- a\n- b\n'],
    ['a byte-order mark and CRLF line ends', () => `\ufeff${EXAMPLE_TEXT.replace(/\n/g, '\r\n')}`],
    ['duplicate keys', () => `${EXAMPLE_TEXT}\nservice: again\n`],
    ['an alias bomb (billion laughs)', () => ['a: &a ["x","x","x","x","x","x","x","x","x"]', ...'bcdefgh'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefgh'[i]}`).join(',')}]`)].join('\n')],
    ['10,000 nested lists', () => `service: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`],
    ['10,000 nested mappings', () => `service:\n${Array.from({ length: 2_000 }, (_, i) => `${' '.repeat(i + 1)}k${i}:`).join('\n')}\n`],
    ['a 5 MB service name', () => `service: ${'x'.repeat(5 * 1024 * 1024)}\n`],
    ['10,000 probes', () => stringify({ ...EXAMPLE, probes: Array.from({ length: 10_000 }, (_, i) => ({ type: 'system', name: `p${i}` })) })],
    ['unknown tags', () => `service: !!js/function "function () { return 1 }"\nprobes: !secret x\n`],
    ['a merge key into the top level', () => `base: &b { service: web }\n<<: *b\n`],
    ['__proto__ keys', () => `${EXAMPLE_TEXT}\n__proto__: { automatic: false }\nconstructor: { prototype: { x: 1 } }\n`],
    ['a NUL byte', () => `service: we\u0000b\n`],
    ['.nan and .inf durations', () => EXAMPLE_TEXT.replace(/window: \S+/, 'window: .inf').replace(/timeout: \S+/, 'timeout: .nan')],
  ])('hostile YAML: %s', (name, text) => {
    expectContract(name, () => parseConfigText(text(), 'hostile.yaml'));
  });

  it('a huge value never becomes a huge message', () => {
    const huge = 'y'.repeat(3 * 1024 * 1024);
    const input = structuredClone(EXAMPLE) as Record<string, Record<string, unknown>>;
    input.rules!.health = { probe: huge };
    input.release!.version_probe = huge;
    try {
      validateConfig(input, 'huge.yaml');
      expect.fail('a 3 MB probe name validated');
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message.length).toBeLessThan(10_000);
    }
  });
});
