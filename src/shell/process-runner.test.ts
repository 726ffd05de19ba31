/**
 * ProcessRunner against real programs (sh, sleep, printf, node): exit codes, output tails,
 * timeouts and aborts that really kill, stdin and stdout files, and arguments kept literal. The
 * timeouts and the kill grace are driven by a FakeClock where a test is about when they fire.
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProcessRunner } from './process-runner.js';
import { groupMembers } from './process-group.js';
import { FakeClock } from '../../test/helpers/guard-fakes.js';
import { rejection as rollbackError } from '../../test/helpers/rejection.js';

const runner = new ProcessRunner();
const node = process.execPath;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-runner-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Alive and not a zombie (a zombie's parent, maybe pid 1 of a container, has not reaped it yet). */
function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Waits for a pid file written by the program under test. */
async function pidFrom(file: string): Promise<number> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = await readFile(file, 'utf8').catch(() => '');
    const pid = Number.parseInt(text, 10);
    if (pid > 0) return pid;
    if (Date.now() > deadline) throw new Error(`no pid in ${file}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('ProcessRunner.run: exit codes, output tails and missing programs', () => {
  it('resolves on exit 0 with the stdout tail', async () => {
    const result = await runner.run('sh', ['-c', 'for i in $(seq 1 100); do echo line $i; done; echo warn >&2'], {
      timeoutMs: 10_000,
    });
    expect(result.code).toBe(0);
    expect(result.stdoutTail).toHaveLength(40);
    expect(result.stdoutTail.at(0)).toBe('line 61');
    expect(result.stdoutTail.at(-1)).toBe('line 100');
    expect(result.stderrTail).toEqual(['warn']);
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('rejects a non-zero exit with the code and the stderr tail', async () => {
    const error = await rollbackError(
      runner.run('sh', ['-c', 'echo out; echo first >&2; echo "disk full" >&2; exit 3'], { timeoutMs: 10_000 }),
    );
    expect(error.message).toContain('exited with code 3');
    // The tail is stderr's only: stdout's "out" is not in it.
    expect(error.message).toMatch(/; stderr: first \| disk full$/);
    expect(error.step).toBe('sh');
  });

  it('says "not installed" for a program that is not on PATH', async () => {
    const error = await rollbackError(runner.run('release-guard-no-such-program', ['x'], { timeoutMs: 1000 }));
    expect(error.message).toBe('release-guard-no-such-program: not installed (not found on PATH)');
  });
});

describe('ProcessRunner.run: timeouts and aborts', () => {
  it('kills a program when its timeout has passed on the clock, not before', async () => {
    const clock = new FakeClock(0);
    const pidFile = path.join(dir, 'pid');
    // exec: the pid written is the sleep's own.
    const outcome = rollbackError(new ProcessRunner({ clock }).run('sh', ['-c', `echo $$ > "${pidFile}"; exec sleep 30`], { timeoutMs: 1000 }));
    const pid = await pidFrom(pidFile);
    await clock.advance(999);
    expect(isRunning(pid)).toBe(true);
    await clock.advance(1);
    const error = await outcome;
    expect(error.message).toContain('timed out after 1000ms');
    expect(isAlive(pid)).toBe(false);
  });

  it('rejects a plain `sleep 30` once its timeoutMs 300 has passed, without waiting for it', async () => {
    const clock = new FakeClock(0);
    const outcome = rollbackError(new ProcessRunner({ clock }).run('sleep', ['30'], { timeoutMs: 300 }));
    await clock.advance(300);
    const error = await outcome;
    expect(error.message).toBe('sleep 30: timed out after 300ms');
  });

  it('SIGKILLs a program that ignores SIGTERM once the 2 s grace has passed on the clock', async () => {
    const clock = new FakeClock(0);
    const pidFile = path.join(dir, 'pid');
    // The pid is written once SIGTERM is ignored, so the kill below meets a deaf program.
    const script = `process.on('SIGTERM', () => {}); require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000);`;
    const controller = new AbortController();
    const outcome = rollbackError(new ProcessRunner({ clock }).run(node, ['-e', script], { timeoutMs: 30_000, signal: controller.signal }));
    const pid = await pidFrom(pidFile);
    controller.abort();
    // SIGTERM was ignored: the program runs on through the grace, and only the SIGKILL after it ends it.
    await clock.advance(1999);
    expect(isRunning(pid)).toBe(true);
    await clock.advance(1);
    const error = await outcome;
    expect(error.message).toContain('cancelled');
    expect(isAlive(pid)).toBe(false);
  });

  it('measures durationMs on its clock', async () => {
    const clock = new FakeClock(0);
    // Runs until the test says go, after the clock has moved on.
    const go = path.join(dir, 'go');
    const running = new ProcessRunner({ clock }).run('sh', ['-c', 'while [ ! -e "$0" ]; do sleep 0.05; done', go], { timeoutMs: 10_000 });
    await clock.advance(1500);
    await writeFile(go, '');
    expect((await running).durationMs).toBe(1500);
  });

  it('kills the program when the signal aborts', async () => {
    const pidFile = path.join(dir, 'pid');
    const controller = new AbortController();
    const outcome = rollbackError(
      runner.run('sh', ['-c', `echo $$ > "${pidFile}"; exec sleep 30`], { timeoutMs: 30_000, signal: controller.signal }),
    );
    const pid = await pidFrom(pidFile);
    controller.abort();
    const error = await outcome;
    expect(error.message).toContain('cancelled');
    expect(isAlive(pid)).toBe(false);
  });

  it('does not start anything for an already aborted signal', async () => {
    const marker = path.join(dir, 'ran');
    const error = await rollbackError(
      runner.run('sh', ['-c', `sleep 0.2; touch "${marker}"`], { timeoutMs: 30_000, signal: AbortSignal.abort() }),
    );
    expect(error.message).toContain('cancelled');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await expect(readFile(marker)).rejects.toThrow(/ENOENT/);
  });
});

describe('ProcessRunner.run: stdin and stdout files', () => {
  it('feeds stdin from text', async () => {
    const result = await runner.run('sh', ['-c', 'tr a-z A-Z'], { timeoutMs: 10_000, stdin: { text: 'hello\nworld\n' } });
    expect(result.stdoutTail).toEqual(['HELLO', 'WORLD']);
  });

  it('streams stdin from a file', async () => {
    const input = path.join(dir, 'dump.sql');
    const lines = Array.from({ length: 5000 }, (_, i) => `INSERT INTO t VALUES (${i});`);
    await writeFile(input, `${lines.join('\n')}\n`);
    const result = await runner.run('wc', ['-l'], { timeoutMs: 10_000, stdin: { file: input } });
    expect(result.stdoutTail).toEqual(['5000']);
  });

  // A program may exit without reading all of stdin: judged by its exit code, and the EPIPE of
  // the stdin pipeline must never become an unhandled rejection (Node 20 exits on those).
  it('judges a program that stops reading stdin by its exit code', async () => {
    const input = path.join(dir, 'big');
    await writeFile(input, 'x'.repeat(4 * 1024 * 1024));
    const result = await runner.run('head', ['-c', '1'], { timeoutMs: 10_000, stdin: { file: input } });
    expect(result.code).toBe(0);
  });

  it('streams stdout to a file instead of the tail', async () => {
    const output = path.join(dir, 'out.txt');
    const result = await runner.run('seq', ['1', '100000'], { timeoutMs: 10_000, stdoutFile: output });
    expect(result.stdoutTail).toEqual([]);
    const text = await readFile(output, 'utf8');
    expect(text.split('\n').filter(Boolean)).toHaveLength(100_000);
    expect(text.endsWith('99999\n100000\n')).toBe(true);
  });

  // An unopenable stdoutFile rejects its pipeline before 'close': reported, never unhandled.
  it('rejects (without an unhandled rejection) when stdoutFile cannot be opened', async () => {
    const error = await rollbackError(
      runner.run('sh', ['-c', 'sleep 0.2; echo hi'], { timeoutMs: 10_000, stdoutFile: path.join(dir, 'missing', 'out') }),
    );
    expect(error.message).toContain('ENOENT');
  });
});

describe('ProcessRunner.run: arguments, cwd and environment', () => {
  it.each([
    'a;rm -rf /',
    '$(touch pwned)',
    '`touch pwned`',
    "it's \"quoted\"",
    'a && b || c | d > e < f',
    '*',
    '$HOME',
    '--help',
  ])('passes %j literally, never through a shell', async (arg) => {
    const result = await runner.run('printf', ['%s', arg], { timeoutMs: 10_000, cwd: dir });
    expect(result.stdoutTail).toEqual([arg]);
    await expect(readFile(path.join(dir, 'pwned'))).rejects.toThrow(/ENOENT/);
  });

  it('runs in cwd with extra environment on top of its own', async () => {
    const result = await runner.run('sh', ['-c', 'pwd; echo "$RG_EXTRA"; test -n "$PATH" && echo has-path'], {
      timeoutMs: 10_000,
      cwd: dir,
      env: { RG_EXTRA: 'extra value' },
    });
    expect(result.stdoutTail).toEqual([await realpath(dir), 'extra value', 'has-path']);
  });
});

describe('ProcessRunner.run: process groups', () => {
  it('stops the whole process group on timeout: no grandchild survives', async () => {
    const pidFile = path.join(dir, 'pid');
    // `sleep 300 &` is a grandchild in the step's group, not the direct child the runner spawned.
    const childFile = path.join(dir, 'grandchild');
    const script = 'echo $$ > "$0"; sleep 300 >/dev/null 2>&1 & echo $! > "$1"; sleep 300';
    const error = await rollbackError(runner.run('sh', ['-c', script, pidFile, childFile], { timeoutMs: 400 }));
    expect(error.message).toMatch(/timed out after 400ms/);
    const pgid = await pidFrom(pidFile);
    const grandchild = await pidFrom(childFile);
    expect(isRunning(grandchild)).toBe(false);
    expect(await groupMembers(pgid)).toEqual([]);
  }, 15_000);

  it('stops what the program left running in its group when it exits', async () => {
    const pidFile = path.join(dir, 'pid');
    const childFile = path.join(dir, 'grandchild');
    await runner.run('sh', ['-c', 'echo $$ > "$0"; sleep 300 >/dev/null 2>&1 & echo $! > "$1"', pidFile, childFile], { timeoutMs: 10_000 });
    const grandchild = await pidFrom(childFile);
    const deadline = Date.now() + 5000;
    while (isRunning(grandchild) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(isRunning(grandchild)).toBe(false);
    expect(await groupMembers(await pidFrom(pidFile))).toEqual([]);
  }, 15_000);
});

describe('ProcessRunner.which', () => {
  it('finds programs on PATH', async () => {
    expect(await runner.which('sh')).toMatch(/\/sh$/);
  });

  it('returns null for a missing program', async () => {
    expect(await runner.which('release-guard-no-such-program')).toBeNull();
  });

  it('takes a path as given, if it is executable', async () => {
    const script = path.join(dir, 'tool');
    await writeFile(script, '#!/bin/sh\nexit 0\n');
    expect(await runner.which(script)).toBeNull();
    await chmod(script, 0o755);
    expect(await runner.which(script)).toBe(script);
  });
});
