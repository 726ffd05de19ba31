/**
 * How the guard's node is started: the `release-guard` command's first line and the pm2
 * ecosystem file pass the same V8 flags (a capped young generation: a steady RSS), and the
 * first line works as written (`env -S` splits it), giving node those flags.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/demo/demo-app.js';

const run = promisify(execFile);

async function shebang(): Promise<string> {
  return (await readFile(join(PROJECT_ROOT, 'src', 'cli', 'main.ts'), 'utf8')).split('\n', 1)[0]!;
}

describe('the guard launcher', () => {
  it('the command and the ecosystem file give node the same flags', async () => {
    const line = await shebang();
    expect(line).toMatch(/^#!\/usr\/bin\/env -S node( --[a-z-]+(=\S+)?)+$/);
    const flags = line.split(/\s+/).slice(3);
    expect(flags).toContain('--max-semi-space-size=2');
    expect(flags).toContain('--optimize-for-size');
    const ecosystem = createRequire(import.meta.url)(join(PROJECT_ROOT, 'ecosystem.config.cjs')) as { apps: { node_args?: string[] }[] };
    expect(ecosystem.apps[0]!.node_args).toEqual(flags);
  });

  it('the first line runs node with a young generation capped at 2 × 2 MB', async () => {
    const [env, ...args] = (await shebang()).slice(2).split(/\s+/);
    // Enough short-lived garbage that an uncapped young generation grows to its 2 × 16 MB.
    const script = [
      'let keep = [];',
      "for (let round = 0; round < 200; round++) { for (let i = 0; i < 20000; i++) keep.push({ a: i, b: 'x'.repeat(20) }); keep = keep.slice(-1000); }",
      "console.log(require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size);",
    ].join('\n');
    const { stdout } = await run(env!, [...args, '-e', script]);
    expect(Number(stdout.trim())).toBeGreaterThan(0);
    expect(Number(stdout.trim())).toBeLessThanOrEqual(4.5 * 1024 * 1024);
  });
});
