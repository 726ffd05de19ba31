/**
 * The command strategy with real programs (node -e) through the real ProcessRunner.
 */
import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type CommandStrategyConfig } from '../config/schema.js';
import type { Pm2Client } from '../pm2/client.js';
import { ProcessRunner } from '../shell/process-runner.js';
import { commandLine, commandStrategy } from './command.js';
import type { RollbackContext } from './types.js';
import { rejection } from '../../test/helpers/rejection.js';
import { systemClock } from '../shell/clock.js';

const node = process.execPath;
/** The command strategy never talks to pm2. */
const deps = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-command-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function configOf(input: Record<string, unknown>): CommandStrategyConfig {
  const parsed = strategySchema.parse({ type: 'command', ...input });
  if (parsed.type !== 'command') throw new Error('schema returned the wrong strategy type');
  return parsed;
}

function context(overrides: Partial<RollbackContext> = {}): RollbackContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    service: 'web',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => lines.push(message),
    dataDir: dir,
    lines,
    ...overrides,
  };
}

describe('command strategy: running the command', () => {
  it('expands {from} and {to}, runs in cwd with env, and reports stdout as progress', async () => {
    const out = path.join(dir, 'out.json');
    const script =
      'const [from, to, file] = process.argv.slice(1);' +
      'require("fs").writeFileSync(file, JSON.stringify({ from, to, cwd: process.cwd(), token: process.env.CDN_TOKEN }));' +
      'console.log("purged " + to); console.log("done");';
    const strategy = commandStrategy(
      configOf({ command: [node, '-e', script, '{from}', '--to={to}', out], cwd: dir, env: { CDN_TOKEN: 'secret-1' } }),
      deps,
    );
    const ctx = context();
    await strategy.execute(ctx);
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual({
      from: 'v2',
      to: '--to=v1',
      cwd: await realpath(dir),
      token: 'secret-1',
    });
    expect(ctx.lines[0]).toBe(`$ ${commandLine(node, ['-e', script, 'v2', '--to=v1', out])}`);
    expect(ctx.lines).toContain('  purged --to=v1');
    expect(ctx.lines).toContain('  done');
    expect(ctx.lines.at(-1)).toMatch(/exited 0 after \d+ ms$/);
    // Secrets passed through env stay out of the progress.
    expect(ctx.lines.join('\n')).not.toContain('secret-1');
  });

  it('describes the expanded command', () => {
    const strategy = commandStrategy(configOf({ command: ['notify-cdn', 'purge', '{to}'], cwd: '/srv' }), deps);
    expect(strategy.describe({ from: 'v2', to: 'v1' })).toBe('command: notify-cdn purge v1 (in /srv)');
  });
});

describe('command strategy: failures, timeouts and refusals', () => {
  it('fails a non-zero exit with a RollbackError carrying the stderr tail', async () => {
    const strategy = commandStrategy(
      configOf({ command: [node, '-e', 'console.error("purge refused: quota"); process.exit(4)'] }),
      deps,
    );
    const error = await rejection(strategy.execute(context()));
    expect(error.step).toBe('command');
    expect(error.message).toContain('exited with code 4');
    expect(error.message).toContain('purge refused: quota');
  });

  // A program of 30 s is not waited for: the step ends at its 400 ms timeout, well inside this test's own.
  it('kills a program that runs past the timeout', { timeout: 15_000 }, async () => {
    const strategy = commandStrategy(configOf({ command: [node, '-e', 'setTimeout(() => {}, 30000)'], timeout: '400ms' }), deps);
    const error = await rejection(strategy.execute(context()));
    expect(error.message).toMatch(/timed out after 400 ?ms/);
  });

  it('stops when the caller cancels', async () => {
    const controller = new AbortController();
    const strategy = commandStrategy(configOf({ command: [node, '-e', 'setTimeout(() => {}, 30000)'] }), deps);
    const running = strategy.execute(context({ signal: controller.signal }));
    setTimeout(() => controller.abort(), 200);
    const error = await rejection(running);
    expect(error.message).toContain('cancelled');
  });

  it('refuses a version that is not allowed before running anything', async () => {
    const marker = path.join(dir, 'ran');
    const strategy = commandStrategy(
      configOf({ command: [node, '-e', `require("fs").writeFileSync(${JSON.stringify(marker)}, "x")`, '{to}'] }),
      deps,
    );
    const error = await rejection(strategy.execute(context({ to: 'v1;rm -rf /' })));
    expect(error.step).toBe('validate');
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
    expect(await strategy.checkReadiness(context({ to: 'v1;rm -rf /' }))).toEqual([expect.stringContaining('not allowed')]);
  });

  it('checks that the program is installed and cwd exists', async () => {
    expect(await commandStrategy(configOf({ command: [node, '-v'], cwd: dir }), deps).checkReadiness(context())).toEqual([]);
    const problems = await commandStrategy(
      configOf({ command: ['release-guard-no-such-program', '{to}'], cwd: path.join(dir, 'missing') }),
      deps,
    ).checkReadiness(context());
    expect(problems).toEqual([
      'release-guard-no-such-program is not installed (not found on PATH or not executable)',
      expect.stringContaining(`cwd ${path.join(dir, 'missing')} cannot be used`),
    ]);
  });

  it('says "not installed" when executing a missing program', async () => {
    const error = await rejection(commandStrategy(configOf({ command: ['release-guard-no-such-program'] }), deps).execute(context()));
    expect(error.message).toContain('not installed');
  });
});
