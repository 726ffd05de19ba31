/** The log tail a record quotes is capped in bytes as well as lines (a flooding release's 50 MB log). */
import { mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastLines } from './log-tail.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-logtail-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('lastLines', () => {
  it('a 50 MB log of one endless line: at most the byte cap is read and kept', async () => {
    const file = path.join(dir, 'one-line.log');
    const mb = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 50; i++) await appendFile(file, mb);
    const before = process.memoryUsage().arrayBuffers;
    const lines = await lastLines(file, 40, 64 * 1024);
    const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
    expect(lines).toHaveLength(1);
    expect(bytes).toBeLessThanOrEqual(64 * 1024 + 100);
    expect(lines[0]).toMatch(/^\[cut: the log tail is capped at 65536 bytes\]/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(8 * 1024 * 1024);
  });

  it('a 50 MB log of short lines: the last N lines, whole', async () => {
    const file = path.join(dir, 'many.log');
    const chunk = Array.from({ length: 100_000 }, (_, i) => `line ${i} ${'y'.repeat(500)}`).join('\n') + '\n';
    await writeFile(file, chunk);
    const lines = await lastLines(file, 40, 64 * 1024);
    expect(lines).toHaveLength(40);
    expect(lines.at(-1)).toMatch(/^line 99999 /);
  });

  it('the byte cap wins over the line count and marks the cut line', async () => {
    const file = path.join(dir, 'long-lines.log');
    await writeFile(file, Array.from({ length: 100 }, (_, i) => `${i}:${'z'.repeat(1000)}`).join('\n') + '\n');
    const lines = await lastLines(file, 40, 4096);
    expect(lines.reduce((n, l) => n + Buffer.byteLength(l), 0)).toBeLessThanOrEqual(4096 + 100);
    expect(lines.at(-1)).toMatch(/^99:/);
    expect(lines[0]).toMatch(/^\[cut/);
  });

  it('a missing file has no lines', async () => {
    expect(await lastLines(path.join(dir, 'nope.log'), 10)).toEqual([]);
  });
});
