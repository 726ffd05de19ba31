import { appendFile, copyFile, mkdtemp, rename, rm, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LogTailer, type TailerOptions } from './log-tailer.js';

let dir: string;
let file: string;
let clock: number;
let tailers: LogTailer[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-tail-'));
  file = join(dir, 'access.log');
  clock = 1_000_000;
  tailers = [];
});

afterEach(async () => {
  await Promise.all(tailers.map((t) => t.close()));
  await rm(dir, { recursive: true, force: true });
});

function tailer(options: Partial<TailerOptions> = {}): LogTailer {
  const t = new LogTailer(file, { maxLineBytes: 1024, maxReadBytes: 1024 * 1024, rotateWaitMs: 5000, now: () => clock, ...options });
  tailers.push(t);
  return t;
}

/** One read: the lines as strings, and the rest of what the tailer said. */
async function read(t: LogTailer) {
  const lines: string[] = [];
  const result = await t.read((line) => lines.push(line.toString('utf8')));
  return { lines, ...result };
}

const lines = (from: number, to: number, tag = 'r') => Array.from({ length: to - from }, (_, i) => `${tag}${from + i}\n`).join('');

describe('LogTailer: reading appended lines', () => {
  it('starts at the end of an existing file and reads only what is appended', async () => {
    await writeFile(file, lines(0, 100, 'old'));
    const t = tailer();
    expect(await read(t)).toMatchObject({ lines: [], missing: false, bytesRead: 0 });
    await appendFile(file, lines(0, 3));
    expect((await read(t)).lines).toEqual(['r0', 'r1', 'r2']);
    expect((await read(t)).lines).toEqual([]);
    await appendFile(file, lines(3, 5));
    expect((await read(t)).lines).toEqual(['r3', 'r4']);
  });

  it('holds a partial last line until its newline arrives', async () => {
    await writeFile(file, '');
    const t = tailer();
    await read(t);
    await appendFile(file, 'a\nhalf-');
    expect((await read(t)).lines).toEqual(['a']);
    await appendFile(file, 'way');
    expect((await read(t)).lines).toEqual([]);
    await appendFile(file, ' done\nb\n');
    expect((await read(t)).lines).toEqual(['half-way done', 'b']);
  });

  it('skips the rest of a line being written when it starts', async () => {
    await writeFile(file, 'old\nhalf of a li');
    const t = tailer();
    await read(t);
    await appendFile(file, 'ne\nnext\n');
    expect((await read(t)).lines).toEqual(['next']);
  });

  it('a missing file is missing; when it appears it is read from its start', async () => {
    const t = tailer();
    expect(await read(t)).toMatchObject({ missing: true, lines: [] });
    await writeFile(file, lines(0, 2));
    expect(await read(t)).toMatchObject({ missing: false, lines: ['r0', 'r1'] });
  });
});

describe('LogTailer: rotation and truncation', () => {
  it('rotation by rename: finishes the old file (still written until the server reopens), then reads the new one from its start', async () => {
    await writeFile(file, '');
    const t = tailer();
    await read(t);
    await appendFile(file, lines(0, 2));
    await rename(file, `${file}.1`);
    // The server still writes to the renamed file; the path is gone meanwhile.
    await appendFile(`${file}.1`, lines(2, 4));
    expect((await read(t)).lines).toEqual(['r0', 'r1', 'r2', 'r3']);
    await appendFile(`${file}.1`, lines(4, 5));
    // logrotate creates the new file before it signals the server: both are written for a moment.
    await writeFile(file, lines(5, 6));
    await appendFile(`${file}.1`, lines(6, 7));
    const rotated = await read(t);
    expect(rotated.lines.sort()).toEqual(['r4', 'r5', 'r6']);
    expect(rotated.events).toEqual([`renamed: ${file} is a new file, read from its start`]);
    // Lines that reach the old file after the switch are still counted…
    await appendFile(`${file}.1`, lines(7, 8));
    await appendFile(file, lines(8, 9));
    expect((await read(t)).lines.sort()).toEqual(['r7', 'r8']);
    // …until it has been quiet for rotateWaitMs; a last line without a newline is complete then.
    await appendFile(`${file}.1`, 'r9');
    clock += 5000;
    expect((await read(t)).lines).toEqual([]);
    clock += 5000;
    expect((await read(t)).lines).toEqual(['r9']);
    await appendFile(`${file}.1`, lines(10, 11));
    await appendFile(file, lines(11, 12));
    expect((await read(t)).lines).toEqual(['r11']);
  });

  it('a rotated-away file deleted at once: its handle is still read', async () => {
    await writeFile(file, '');
    const t = tailer();
    await read(t);
    await appendFile(file, lines(0, 1));
    await rename(file, `${file}.1`);
    await writeFile(file, lines(1, 2));
    await unlink(`${file}.1`);
    expect((await read(t)).lines.sort()).toEqual(['r0', 'r1']);
  });

  it('copytruncate: a shorter file is read from its start, once', async () => {
    await writeFile(file, lines(0, 50, 'old'));
    const t = tailer();
    await read(t);
    await appendFile(file, lines(0, 2));
    expect((await read(t)).lines).toEqual(['r0', 'r1']);
    await copyFile(file, `${file}.1`);
    await truncate(file, 0);
    await appendFile(file, lines(2, 4));
    const after = await read(t);
    expect(after.lines).toEqual(['r2', 'r3']);
    expect(after.events).toEqual([`truncated: ${file} was truncated (copytruncate), read from its start`]);
    await appendFile(file, lines(4, 5));
    expect((await read(t)).lines).toEqual(['r4']);
  });

  it('copytruncate noticed even when the new content already grew past the old position', async () => {
    await writeFile(file, 'x\n');
    const t = tailer();
    await read(t);
    await appendFile(file, lines(0, 1));
    expect((await read(t)).lines).toEqual(['r0']);
    await truncate(file, 0);
    await appendFile(file, lines(100, 110, 'n'));
    expect((await read(t)).lines).toEqual(Array.from({ length: 10 }, (_, i) => `n${100 + i}`));
  });
});

describe('LogTailer: limits', () => {
  it('drops a line longer than maxLineBytes without buffering it, counts it once, and goes on', async () => {
    await writeFile(file, '');
    const t = tailer({ maxLineBytes: 100 });
    await read(t);
    await appendFile(file, `ok1\n${'x'.repeat(70)}`);
    expect(await read(t)).toMatchObject({ lines: ['ok1'], longLines: 0 });
    await appendFile(file, 'y'.repeat(70));
    expect(await read(t)).toMatchObject({ lines: [], longLines: 1 });
    await appendFile(file, `${'z'.repeat(5000)}\nok2\n${'w'.repeat(101)}\nok3\n${'v'.repeat(100)}\n`);
    expect(await read(t)).toMatchObject({ lines: ['ok2', 'ok3', 'v'.repeat(100)], longLines: 1 });
  });

  it('reads at most maxReadBytes per call and says how much is left', async () => {
    await writeFile(file, '');
    const t = tailer({ maxReadBytes: 64 * 1024 });
    await read(t);
    const line = `${'a'.repeat(99)}\n`;
    await appendFile(file, line.repeat(1000)); // 100 000 bytes
    const first = await read(t);
    expect(first).toMatchObject({ bytesRead: 65_536, behindBytes: 100_000 - 65_536 });
    const second = await read(t);
    expect(second).toMatchObject({ bytesRead: 100_000 - 65_536, behindBytes: 0 });
    expect(first.lines.length + second.lines.length).toBe(1000);
  });
});
