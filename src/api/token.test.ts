import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readToken } from './token.js';

describe('readToken', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-token-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const server = (token_file?: string) => ({ token_env: 'RG_T', ...(token_file ? { token_file } : {}) });

  it('reads a private token file, trimmed', async () => {
    const file = join(dir, 'token');
    await writeFile(file, 'abc123\n', { mode: 0o600 });
    expect(await readToken(server(file), {})).toBe('abc123');
  });

  it('refuses a token file others can read, naming the file and the fix', async () => {
    const file = join(dir, 'token');
    await writeFile(file, 'abc123');
    await chmod(file, 0o644);
    await expect(readToken(server(file), {})).rejects.toThrow(new RegExp(`${file}.*chmod 600|chmod 600.*${file}`, 's'));
  });

  it('refuses an empty token file', async () => {
    const file = join(dir, 'token');
    await writeFile(file, '\n', { mode: 0o600 });
    await expect(readToken(server(file), {})).rejects.toThrow(/empty/);
  });

  it('falls back to the environment variable, and to null', async () => {
    expect(await readToken(server(), { RG_T: ' s3 ' })).toBe('s3');
    expect(await readToken(server(), {})).toBeNull();
  });
});
