/** packageVersion and packageRoot: found from src/, dist/ and the deeper build/src/ alike, on real files in a temp dir. */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { rulesFile } from './cli/ops-rules.js';
import { shippedSchemaPath } from './cli/init-yaml.js';
import { packageRoot, packageVersion } from './package-root.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'rg-version-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A module file at `rel` under the temp root, its directories made. */
async function moduleAt(rel: string): Promise<URL> {
  const file = join(root, rel);
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, '');
  return pathToFileURL(file);
}

describe('packageVersion', () => {
  it('finds the package.json named release-guard from src/, dist/ and build/src/ (where the demo runs), passing another package.json on the way', async () => {
    await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'release-guard', version: '9.8.7' }));
    await mkdir(join(root, 'build'), { recursive: true });
    await writeFile(join(root, 'build', 'package.json'), JSON.stringify({ type: 'module' }));
    for (const rel of ['src/package-root.ts', 'dist/package-root.js', 'build/src/package-root.js']) {
      expect(packageVersion(await moduleAt(rel)), rel).toBe('9.8.7');
    }
    expect(packageVersion(join(root, 'build', 'src', 'package-root.js'))).toBe('9.8.7');
  });

  it('says "unknown" when no package.json above is release-guard, or it has no version', async () => {
    await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'someone-else', version: '1.0.0' }));
    expect(packageVersion(await moduleAt('src/package-root.js'))).toBe('unknown');
    await writeFile(join(root, 'src', 'package.json'), JSON.stringify({ name: 'release-guard' }));
    expect(packageVersion(await moduleAt('src/package-root.js'))).toBe('unknown');
  });

  it("is this checkout's version by default", async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(packageVersion()).toBe(pkg.version);
  });
});

describe('packageRoot', () => {
  it('is the directory of the package.json named release-guard, from src/, dist/ and build/src/ alike', async () => {
    await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'release-guard', version: '1.0.0' }));
    for (const rel of ['src/cli/ops-rules.ts', 'dist/cli/ops-rules.js', 'build/src/cli/ops-rules.js']) {
      expect(packageRoot(await moduleAt(rel)), rel).toBe(root);
    }
  });

  it('without one, is the directory above the module\'s (a file copied out of its package)', async () => {
    expect(packageRoot(await moduleAt('lib/package-root.js'))).toBe(root);
  });

  it('finds the shipped alert rules and config schema of this checkout', () => {
    expect(existsSync(rulesFile()), rulesFile()).toBe(true);
    expect(existsSync(shippedSchemaPath()), shippedSchemaPath()).toBe(true);
  });
});
