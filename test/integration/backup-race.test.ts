/**
 * Issue 13, items 1 and 10, against a real MariaDB (a throwaway server of this file's own, with
 * log_bin on, so the shared one stays as the other tests expect it) and the real mysqldump, mysql
 * and mysqlbinlog clients. The scenarios are shared with the chaos table
 * (bench/chaos/backup-race-scenarios.ts).
 *
 * Item 1: the pre-release dump is throttled by a mysqldump wrapper (the real mysqldump, its output
 * held back 4 s, like a big database's) — the configured `mysqldump` program, not the one on PATH.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupRaceScenario, detectedReleaseScenario } from '../../bench/chaos/backup-race-scenarios.js';
import { startMariaDb, type MysqlInfo, type RunningService } from '../helpers/services.js';

describe('backups a rollback can rely on (real MariaDB with log_bin)', () => {
  let server: RunningService<MysqlInfo>;
  let workDir: string;

  beforeAll(async () => {
    server = await startMariaDb({ logBin: true });
    workDir = await mkdtemp(path.join(os.tmpdir(), 'rg-backup-race-'));
  }, 120_000);

  afterAll(async () => {
    await server?.stop({ graceMs: 0 });
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('a rollback decided while the pre-release dump runs waits for it (progress logged) and restores it', async () => {
    const outcome = await backupRaceScenario({ host: '127.0.0.1', port: server.port }, { workDir, dumpDelayMs: 4000 });
    expect(outcome.problems).toEqual([]);
    expect(outcome.plan).toEqual({ ok: true });
    expect(outcome.waited).toBe(true);
    expect(outcome.output.find((l) => l.startsWith('waiting for the pre-release backup'))).toMatch(/^waiting for the pre-release backup \(\d+ s, [\d.]+ MB so far\)$/);
    // The record says which backup was restored.
    expect(outcome.output[0]).toMatch(/^restoring this window's pre-release backup \(taken .*, before the release\)$/);
    expect(outcome.columns).toEqual(['id', 'name']);
    expect(outcome.rollbackMs).toBeGreaterThan(2000);
  }, 90_000);

  it('a detected release that migrated before its window opened: the stable backup plus the binary log up to the release start', async () => {
    const outcome = await detectedReleaseScenario({ host: '127.0.0.1', port: server.port }, { workDir });
    expect(outcome.problems).toEqual([]);
    expect(outcome.usedStable).toBe(true);
    expect(outcome.output[0]).toMatch(/^restoring the stable backup of v1 taken .*: this window's backup was taken after the release began \(the release was detected, not announced\)$/);
    expect(outcome.replayed).toBe(true);
    // v1's schema, W1 (before the release) kept, W2 and the corruption (after it) gone.
    expect(outcome.columns).toEqual(['id', 'name']);
    expect(outcome.users.map((u) => u.id)).toEqual([1, 2, 3, 100]);
    expect(outcome.users[0]!.name).toBe('ada');
  }, 90_000);
});
