/**
 * Item 5 of issue 13: a step's program runs in its own process group, and a guard killed with
 * SIGKILL mid-step leaves that group running; the next guard must stop it before it runs the
 * step again. Without that, the orphaned first run finishes its side effect and the rerun does it
 * a second time, and its grandchildren live on. Real daemon (the CLI), real processes.
 */
import { describe, expect, it } from 'vitest';
import { KILL_STEPS, killAndRecover, midStep } from '../../bench/chaos/kill-harness.js';

describe('orphaned step groups after a kill -9 of the guard', () => {
  it.each([0, 1])('killed while step %i runs: the orphan group is stopped before the step reruns, no side effect twice, no process left', async (k) => {
    const outcome = await killAndRecover(midStep(k));
    expect(outcome.landed).toBe(`rolling_back, step ${k + 1} running`);
    expect(outcome.orphanStopsLogged, outcome.logs[1]).toBe(1);
    expect(outcome.stoppedBeforeRerun).toBe(true);
    // The interrupted step started twice (killed run, rerun) but its side effect happened once.
    expect(outcome.journal[KILL_STEPS[k]!]).toEqual({ start: 2, end: 1 });
    expect(outcome.doubled).toEqual([]);
    for (const step of KILL_STEPS) expect(outcome.journal[step]!.end, step).toBe(1);
    expect(outcome.orphans).toBe(0);
    expect(outcome.records).toEqual({ json: 1, md: 1 });
    expect(outcome.final).toMatchObject({ phase: 'rolled_back', running: 'v1', stable: 'v1' });
  }, 120_000);
});
