/**
 * The samples each probe returned, kept in launch order (the rules binary-search the window start)
 * for as long as any rule window, sustain duration or record timeline can look back.
 */
import { insertionIndex } from '../../core/rules.js';
import type { Sample } from '../../core/types.js';

/** Samples older than this are dropped: longer than any rule window or sustain duration. */
const RETENTION_MS = 15 * 60_000;
const MAX_SAMPLES_PER_PROBE = 20_000;

export class SampleBuffer {
  /** Per probe name, in launch order: what the rules and the record timelines read. */
  readonly lists = new Map<string, Sample[]>();

  constructor(probeNames: readonly string[]) {
    for (const name of probeNames) this.lists.set(name, []);
  }

  of(probe: string): readonly Sample[] {
    return this.lists.get(probe) ?? [];
  }

  /** Whether the probe's newest sample failed. */
  lastFailed(probe: string): boolean {
    return this.lists.get(probe)?.at(-1)?.ok === false;
  }

  /**
   * Keeps `sample` in its place by launch time: a sample that completed after a later-launched
   * one goes before it (nearly always it is the newest). Returns whether it is the newest and
   * opens a failure streak.
   */
  add(probe: string, sample: Sample): { opensFailureStreak: boolean } {
    let list = this.lists.get(probe);
    if (!list) this.lists.set(probe, (list = []));
    const index = insertionIndex(list, sample.startedAt);
    const opensFailureStreak = !sample.ok && index === list.length && list.at(-1)?.ok !== false;
    list.splice(index, 0, sample);
    // Retention: drop the oldest in one splice (shift() per sample moves the whole list each time).
    const horizon = sample.at - RETENTION_MS;
    let expired = Math.max(0, list.length - MAX_SAMPLES_PER_PROBE);
    while (expired < list.length && list[expired]!.at < horizon) expired++;
    if (expired > 0) list.splice(0, expired);
    return { opensFailureStreak };
  }

  /** The newest samples of `probe` launched at or after `since`, newest first. */
  *newestSince(probe: string, since: number): Generator<Sample> {
    const list = this.of(probe);
    for (let i = list.length - 1; i >= 0 && list[i]!.startedAt >= since; i--) yield list[i]!;
  }

  /** The latest host CPU and memory readings of the given system probes, for the resources check. */
  latestResources(systemProbes: readonly string[]): { cpu?: number; memory?: number } {
    const out: { cpu?: number; memory?: number } = {};
    for (const name of systemProbes) {
      const samples = this.of(name);
      for (let i = samples.length - 1; i >= 0 && (out.cpu === undefined || out.memory === undefined); i--) {
        out.cpu ??= samples[i]!.values.cpu;
        out.memory ??= samples[i]!.values.memory;
      }
    }
    return out;
  }
}
