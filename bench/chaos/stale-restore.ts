/**
 * Chaos: "stale restores (0)". The redeploy scenario (redeploy-scenario.ts) against a throwaway
 * MariaDB through the real guard daemon and the real database strategy: v2 deployed, rolled back,
 * rows written on v1, v2 deployed again and rolled back again. A second rollback that restored
 * the first window's dump would lose the rows written between the windows: a stale restore.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBenchDb } from '../mariadb.js';
import { runRedeployScenario } from './redeploy-scenario.js';
import type { ChaosContext, ChaosRow } from './types.js';

export async function run(ctx?: ChaosContext): Promise<ChaosRow[]> {
  const log = ctx?.log ?? (() => undefined);
  const workDir = ctx?.workDir ?? (await mkdtemp(join(tmpdir(), 'rg-chaos-stale-')));
  log('stale-restore: starting a throwaway MariaDB');
  const db = await startBenchDb();
  try {
    // The bench server's root has no password and may create databases (loopback only).
    const result = await runRedeployScenario({ db: { host: db.host, port: db.port, user: 'root' }, workDir, log: (line) => log(`stale-restore: ${line}`) });
    const stale = result.keptAfterSecondRollback < result.writtenBetween ? 1 : 0;
    const input = 'v1 → v2, rollback, 3 writes on v1, v2 again, rollback (real MariaDB, real guard)';
    return [
      {
        item: 'step data per window: stale restores',
        input,
        measured: `${stale} (second rollback kept ${result.keptAfterSecondRollback}/${result.writtenBetween} rows written between the windows)`,
        target: '0',
        ok: stale === 0 && result.damageUndone.every(Boolean),
      },
      {
        item: 'step data per window: undo and migrate_down skipped on a redeploy',
        input,
        measured: `rollout undo ran ${result.undoRuns}/2, migrate_down ran ${result.migrateDownRuns}/2`,
        target: '2/2 each (0 skipped)',
        ok: result.undoRuns === 2 && result.migrateDownRuns === 2,
      },
    ];
  } finally {
    await db.stop();
    if (!ctx) await rm(workDir, { recursive: true, force: true });
  }
}
