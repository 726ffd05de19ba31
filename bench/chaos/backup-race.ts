/**
 * Chaos scenario for issue 13, items 1 and 10: stale restores, counted over repeated runs of the
 * scenarios the integration test asserts on (backup-race-scenarios.ts), against a throwaway
 * MariaDB with log_bin on. A restore is stale when the rollback failed or left the database other
 * than it was just before the release (schema, rows, writes made before the release).
 */
import { startBenchDb } from '../mariadb.js';
import { backupRaceScenario, detectedReleaseScenario, type ScenarioOutcome } from './backup-race-scenarios.js';
import type { ChaosContext, ChaosRow } from './types.js';

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

export async function run(ctx?: ChaosContext): Promise<ChaosRow[]> {
  const rounds = ctx?.quick ? 1 : 3;
  const workDir = ctx?.workDir ?? (await import('node:os')).tmpdir();
  const say = (line: string) => ctx?.log(`backup-race: ${line}`);
  const db = await startBenchDb({ logBin: true });
  const server = { host: db.host, port: db.port };
  try {
    const race: (ScenarioOutcome & { waited: boolean })[] = [];
    for (let i = 0; i < rounds; i++) {
      race.push(await backupRaceScenario(server, { workDir, dumpDelayMs: 4000 }));
      say(`race ${i + 1}/${rounds}: ${race.at(-1)!.correct ? 'restored' : race.at(-1)!.problems.join('; ')}`);
    }
    const detected: (ScenarioOutcome & { replayed: boolean; usedStable: boolean })[] = [];
    for (let i = 0; i < rounds; i++) {
      detected.push(await detectedReleaseScenario(server, { workDir }));
      say(`detected ${i + 1}/${rounds}: ${detected.at(-1)!.correct ? 'restored' : detected.at(-1)!.problems.join('; ')}`);
    }
    const staleRace = race.filter((o) => !o.correct).length;
    const staleDetected = detected.filter((o) => !o.correct).length;
    return [
      {
        item: '1 backup still running at rollback: stale restores',
        input: `pre-release mysqldump output held back 4 s, rollback decided as soon as the dump is taken; ${rounds} run(s)`,
        measured: `${staleRace} (waited for the dump in ${race.filter((o) => o.waited).length}/${rounds}; rollback ${(median(race.map((o) => o.rollbackMs)) / 1000).toFixed(1)} s median)`,
        target: '0',
        ok: staleRace === 0,
      },
      {
        item: '10 detected release, migrated before its window: stale restores',
        input: `stable backup of v1, write W1, unannounced v2 migrates + writes W2; log_bin on; ${rounds} run(s)`,
        measured:
          `${staleDetected} (stable backup used ${detected.filter((o) => o.usedStable).length}/${rounds}, ` +
          `binlog replayed ${detected.filter((o) => o.replayed).length}/${rounds}, W1 kept ${detected.filter((o) => o.users.some((u) => u.id === 100)).length}/${rounds}, ` +
          `W2 gone ${detected.filter((o) => !o.users.some((u) => u.id === 101)).length}/${rounds})`,
        target: '0',
        ok: staleDetected === 0,
      },
    ];
  } finally {
    await db.stop();
  }
}
