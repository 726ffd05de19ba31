/**
 * How the guard's node is started: the `release-guard` command has a plain `#!/usr/bin/env node`
 * first line (`env -S` is not portable), and the V8 flags that keep its RSS steady are given where
 * the daemon runs — the systemd unit's ExecStart and the pm2 ecosystem file, the same flags in
 * both — and they do cap the young generation.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';

const run = promisify(execFile);

async function ecosystemFlags(): Promise<string[]> {
  const ecosystem = createRequire(import.meta.url)(join(PROJECT_ROOT, 'ecosystem.config.cjs')) as { apps: { node_args?: string[] }[] };
  return ecosystem.apps[0]!.node_args ?? [];
}

describe('the guard launcher', () => {
  it('the command has a plain env node first line', async () => {
    const first = (await readFile(join(PROJECT_ROOT, 'src', 'cli', 'main.ts'), 'utf8')).split('\n', 1)[0];
    expect(first).toBe('#!/usr/bin/env node');
  });

  it('the systemd unit and the ecosystem file give node the same flags', async () => {
    const unit = await readFile(join(PROJECT_ROOT, 'systemd', 'release-guard.service'), 'utf8');
    const exec = unit.split('\n').find((line) => line.startsWith('ExecStart='))!;
    const [node, ...words] = exec.slice('ExecStart='.length).split(/\s+/);
    expect(node).toBe('/usr/bin/node');
    const script = words.findIndex((word) => word.endsWith('/dist/cli/main.js'));
    expect(script).toBeGreaterThan(0);
    const flags = words.slice(0, script);
    expect(flags).toEqual(expect.arrayContaining(['--max-semi-space-size=2', '--optimize-for-size']));
    expect(await ecosystemFlags()).toEqual(flags);
  });

  it('those flags run node with a young generation capped at 2 × 2 MB', async () => {
    // Enough short-lived garbage that an uncapped young generation grows to its 2 × 16 MB.
    const script = [
      'let keep = [];',
      "for (let round = 0; round < 200; round++) { for (let i = 0; i < 20000; i++) keep.push({ a: i, b: 'x'.repeat(20) }); keep = keep.slice(-1000); }",
      "console.log(require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size);",
    ].join('\n');
    const { stdout } = await run(process.execPath, [...(await ecosystemFlags()), '-e', script]);
    expect(Number(stdout.trim())).toBeGreaterThan(0);
    expect(Number(stdout.trim())).toBeLessThanOrEqual(4.5 * 1024 * 1024);
  });
});
