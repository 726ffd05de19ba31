/**
 * Chaos scenario (issue 13, items 5 and 7): kill -9 of the real guard daemon at each step
 * boundary and in the middle of each step of a three-step plan (command steps appending to a
 * journal, each with a grandchild in its process group), then a restart. Counted per kill point:
 * steps whose side effect happened twice (double rollbacks, target 0), rollback records lost
 * (target 0), plan processes still alive once the guard stopped (orphans, target 0).
 * The run itself is the shared harness of test/integration/orphan-steps.test.ts.
 */
import { afterStep, KILL_STEPS, killAndRecover, midStep, type KillOutcome } from './kill-harness.js';
import type { ChaosContext, ChaosRow } from './types.js';

interface KillPoint {
  name: string;
  when: Parameters<typeof killAndRecover>[0];
}

function killPoints(quick: boolean): KillPoint[] {
  const mid = KILL_STEPS.map((step, k) => ({ name: `mid-step ${k + 1} (${step})`, when: midStep(k) }));
  const boundaries = KILL_STEPS.slice(0, -1).map((step, k) => ({ name: `boundary after step ${k + 1} (${step})`, when: afterStep(k) }));
  const all = [...mid, ...boundaries];
  return quick ? [all[1]!, all[3]!] : all;
}

export async function run(ctx?: Partial<ChaosContext>): Promise<ChaosRow[]> {
  const rows: ChaosRow[] = [];
  const totals = { doubled: 0, lost: 0, orphans: 0, points: 0, failed: 0 };
  for (const point of killPoints(ctx?.quick ?? false)) {
    ctx?.log?.(`kill-points: kill -9 at ${point.name}`);
    let outcome: KillOutcome;
    try {
      outcome = await killAndRecover(point.when, ctx?.workDir ? { baseDir: ctx.workDir } : {});
    } catch (error) {
      totals.failed++;
      rows.push({ item: 'kill -9 mid-plan', input: `kill -9 at ${point.name}`, measured: `run failed: ${String(error).slice(0, 160)}`, target: 'rollback finishes once', ok: false });
      continue;
    }
    totals.points++;
    const lost = Math.max(0, 1 - Math.min(outcome.records.json, outcome.records.md));
    totals.doubled += outcome.doubled.length;
    totals.lost += lost;
    totals.orphans += outcome.orphans;
    const ok = outcome.doubled.length === 0 && lost === 0 && outcome.orphans === 0 && outcome.final.phase === 'rolled_back';
    rows.push({
      item: 'kill -9 mid-plan',
      input: `kill -9 at ${point.name}; landed: ${outcome.landed}; restart`,
      measured: `double side effects ${outcome.doubled.length}${outcome.doubled.length ? ` (${outcome.doubled.join(', ')})` : ''}, records lost ${lost}, orphans ${outcome.orphans}, orphan groups stopped ${outcome.orphanStopsLogged}`,
      target: '0 double, 0 lost, 0 orphans',
      ok,
    });
  }
  rows.push(
    { item: 'double rollbacks (kill -9)', input: `${totals.points} kill points`, measured: String(totals.doubled), target: '0', ok: totals.doubled === 0 && totals.failed === 0 },
    { item: 'records lost (kill -9)', input: `${totals.points} kill points`, measured: String(totals.lost), target: '0', ok: totals.lost === 0 && totals.failed === 0 },
    { item: 'orphan step processes left (kill -9)', input: `${totals.points} kill points`, measured: String(totals.orphans), target: '0', ok: totals.orphans === 0 && totals.failed === 0 },
  );
  return rows;
}
