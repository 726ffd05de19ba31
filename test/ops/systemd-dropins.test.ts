/**
 * Issue 13 item 9: the shipped unit could not run every shipped strategy (the git strategy's 600 s
 * timeout exceeded TimeoutStopSec=120, npm ci needs more than MemoryMax=256M and a writable cache).
 * systemd/release-guard.service.d/ ships one drop-in per strategy that needs more. This test merges
 * the unit with the drop-ins of every combination of strategies the way systemd does (drop-ins in
 * lexical order, a later scalar setting replaces an earlier one, list settings accumulate) and
 * checks, against the step timeouts the config schema really defaults to, that stopping waits out
 * the longest step and that memory suffices.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { strategySchema, type StrategyConfig } from '../../src/config/schema.js';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';

const UNIT = join(PROJECT_ROOT, 'systemd', 'release-guard.service');
const DROPINS = join(PROJECT_ROOT, 'systemd', 'release-guard.service.d');
const SYSTEMD_ANALYZE = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p));
/** Time to persist the state and write the record after the last step ends. */
const STOP_MARGIN_S = 30;
/** Settings systemd accumulates across files; any other is replaced by the last file setting it. */
const LIST_SETTINGS = new Set(['Environment', 'ReadWritePaths', 'CacheDirectory', 'SupplementaryGroups']);

/** A minimal step of each type: parsed by the real schema, so its timeout is the shipped default. */
const MINIMAL: Record<StrategyConfig['type'], Record<string, unknown>> = {
  releases: { dir: '/srv/web', pm2_app: 'web' },
  pm2: { pm2_app: 'web' },
  git: { dir: '/srv/web' },
  config: { dir: '/srv/web', files: ['.env'] },
  database: { database: 'app', user: 'backup' },
  redis: {},
  docker: { container: 'web', image: 'registry/web' },
  kubernetes: { deployment: 'web' },
  blue_green: { colors: { blue: '127.0.0.1:3001', green: '127.0.0.1:3002' }, upstream_file: '/etc/nginx/conf.d/web-upstream.conf' },
  command: { command: ['true'] },
};

/**
 * Memory each step's programs need beside the guard (≤ 120 MB): npm ci plus a build of a mid-sized
 * app peaks around 1-1.5 GB; the other strategies run small clients (mysqldump streams).
 */
const STEP_MEMORY: Partial<Record<StrategyConfig['type'], number>> = { git: 1536 * 2 ** 20 };
const DEFAULT_STEP_MEMORY = 100 * 2 ** 20;
const GUARD_MEMORY = 120 * 2 ** 20;

type Settings = Map<string, string[]>;

/** The [Service] settings of one file. */
function serviceSettings(text: string): Settings {
  const settings: Settings = new Map();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    expect(eq, `not a directive: ${line}`).toBeGreaterThan(0);
    if (section !== 'Service') continue;
    const key = line.slice(0, eq).trim();
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return settings;
}

/** Unit + drop-ins, merged as systemd does. */
function merge(files: Settings[]): Settings {
  const merged: Settings = new Map();
  for (const file of files) {
    for (const [key, values] of file) merged.set(key, LIST_SETTINGS.has(key) ? [...(merged.get(key) ?? []), ...values] : [values.at(-1)!]);
  }
  return merged;
}

function seconds(value: string): number {
  const match = /^(\d+)(s|min)?$/.exec(value);
  expect(match, `TimeoutStopSec=${value}: use seconds`).not.toBeNull();
  return Number(match![1]) * (match![2] === 'min' ? 60 : 1);
}

function bytes(value: string): number {
  const match = /^(\d+)([KMG])?$/.exec(value);
  expect(match, `MemoryMax=${value}`).not.toBeNull();
  return Number(match![1]) * 1024 ** ({ K: 1, M: 2, G: 3 }[match![2] as 'K' | 'M' | 'G'] ?? 0);
}

function defaultTimeoutS(type: StrategyConfig['type']): number {
  return strategySchema.parse({ type, ...MINIMAL[type] }).timeout / 1000;
}

describe('systemd drop-ins per strategy', async () => {
  const unit = serviceSettings(await readFile(UNIT, 'utf8'));
  const names = (await readdir(DROPINS)).filter((n) => n.endsWith('.conf')).sort();
  const dropins = new Map(await Promise.all(names.map(async (n) => [n, serviceSettings(await readFile(join(DROPINS, n), 'utf8'))] as const)));
  const types = Object.keys(MINIMAL) as StrategyConfig['type'][];
  /** The drop-in of a strategy: NN-<type>-strategy.conf, if it needs one. */
  const dropinOf = (type: StrategyConfig['type']) => names.find((n) => new RegExp(`^\\d\\d-${type.replace('_', '-')}-strategy\\.conf$`).test(n));

  it('the git strategy has one, with the cache npm ci needs', () => {
    const git = dropins.get(dropinOf('git') ?? '')!;
    expect(git).toBeDefined();
    expect(git.get('CacheDirectory')).toContain('release-guard');
    expect(git.get('Environment')).toContain('npm_config_cache=/var/cache/release-guard/npm');
  });

  it('every drop-in belongs to a strategy and sets only [Service] settings', () => {
    for (const name of names) {
      expect(types.some((t) => dropinOf(t) === name), `${name} names no strategy`).toBe(true);
      expect(dropins.get(name)!.size, name).toBeGreaterThan(0);
    }
  });

  it('for every combination of strategies, stopping outlasts the longest step and memory suffices', () => {
    const failures: string[] = [];
    // 2^10 plans: every subset of the strategy types, each with the drop-ins of its types.
    for (let mask = 1; mask < 1 << types.length; mask++) {
      const plan = types.filter((_, i) => mask & (1 << i));
      const files = [unit, ...names.filter((n) => plan.some((t) => dropinOf(t) === n)).map((n) => dropins.get(n)!)];
      const merged = merge(files);
      const stopS = seconds(merged.get('TimeoutStopSec')![0]!);
      const longest = Math.max(...plan.map(defaultTimeoutS));
      if (stopS < longest + STOP_MARGIN_S) failures.push(`${plan.join('+')}: TimeoutStopSec=${stopS} < ${longest} s step + ${STOP_MARGIN_S} s`);
      const memory = bytes(merged.get('MemoryMax')![0]!);
      const needed = GUARD_MEMORY + Math.max(...plan.map((t) => STEP_MEMORY[t] ?? DEFAULT_STEP_MEMORY));
      if (memory < needed) failures.push(`${plan.join('+')}: MemoryMax=${memory} < ${needed}`);
    }
    expect(failures.slice(0, 10)).toEqual([]);
  });

  it('the unit alone is not enough for git (the reason the drop-ins exist)', () => {
    expect(seconds(unit.get('TimeoutStopSec')![0]!)).toBeLessThan(defaultTimeoutS('git') + STOP_MARGIN_S);
    expect(bytes(unit.get('MemoryMax')![0]!)).toBeLessThan(GUARD_MEMORY + STEP_MEMORY.git!);
  });

  it.skipIf(!SYSTEMD_ANALYZE)(`unit and drop-ins pass systemd-analyze verify${SYSTEMD_ANALYZE ? '' : ' [skipped: systemd-analyze is not installed]'}`, async () => {
    // A unit path of our own, so verify reads these drop-ins (and no installed ones).
    const dir = await mkdtemp(join(tmpdir(), 'rg-dropins-'));
    try {
      await cp(UNIT, join(dir, 'release-guard.service'));
      await cp(DROPINS, join(dir, 'release-guard.service.d'), { recursive: true });
      // The watchdog (restarts the guard when /healthz fails) is checked with them.
      for (const name of ['release-guard-watchdog.service', 'release-guard-watchdog.timer']) await cp(join(PROJECT_ROOT, 'systemd', name), join(dir, name));
      const verify = async () => {
        const units = ['release-guard.service', 'release-guard-watchdog.service', 'release-guard-watchdog.timer'].map((n) => join(dir, n));
        const { stderr } = await promisify(execFile)(SYSTEMD_ANALYZE!, ['verify', ...units], {
          timeout: 30_000,
          env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` },
        });
        return stderr.split('\n').filter((line) => line.includes('release-guard'));
      };
      expect(await verify()).toEqual([]);
      // And it did read them: a broken copy is reported.
      await writeFile(join(dir, 'release-guard.service.d', '99-broken.conf'), '[Service]\nMemoryMax=lots\n');
      expect((await verify()).join('\n')).toContain('99-broken.conf');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
