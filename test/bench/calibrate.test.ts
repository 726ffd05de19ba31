/**
 * `npm run calibrate --quick`, in this process: the shape of its results, that they are
 * deterministic (the same seed gives the same figures, whoever runs which windows), and a few gross
 * facts of the rules. Never timings or rates near a target: those are the calibration's business.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { cells, runWindow } from '../../bench/calibrate-sim.js';
import { DEFAULT_SEED, QUICK_WINDOWS, renderMarkdown, renderTable, renderTargets, runCalibration, summarise, type CalibrationResults } from '../../bench/calibrate.js';

describe('calibrate --quick', () => {
  let results: CalibrationResults;
  beforeAll(async () => {
    results = await runCalibration({ windows: QUICK_WINDOWS, seed: DEFAULT_SEED, quick: true, workers: 0 });
  }, 300_000);

  it('reports every cell with its counts, and one verdict per target', () => {
    expect(results.tool).toBe('release-guard calibrate');
    expect(results.totals.healthy).toBeGreaterThanOrEqual(36);
    expect(results.totals.faulty).toBeGreaterThanOrEqual(120);
    for (const c of results.cells) {
      expect(c.windows).toBeGreaterThan(0);
      if (c.expect === 'healthy' || c.expect === 'benign') {
        expect(c.falseRollback!.ci95[0]).toBeLessThanOrEqual(c.falseRollback!.rate);
        expect(c.falseRollback!.ci95[1]).toBeGreaterThanOrEqual(c.falseRollback!.rate);
        expect(c.detection).toBeNull();
      } else {
        expect(c.detection!.of).toBe(c.windows - c.early);
        if (c.detection!.detected > 0) expect(c.delaySeconds!.p50).toBeLessThanOrEqual(c.delaySeconds!.p95!);
      }
    }
    expect(results.targets.map((t) => t.id)).toEqual(['false-rollbacks', 'benign-latency', 'blip-0.5s', 'detect-all', 'errors-10pct-50rps', 'late-fault-5s', 'health-outage']);
    expect(renderTargets(results).every((line) => /^(PASS|FAIL) /.test(line))).toBe(true);
    expect(renderTable(results).length).toBeGreaterThan(50);
    expect(renderMarkdown(results, 'x.json')).toContain('## Calibration');
  });

  it('gives the same figures for the same seed, window by window', () => {
    const list = cells(QUICK_WINDOWS);
    const picks = [0, 7, 30, 55, list.length - 2];
    for (const i of picks) {
      const again = Array.from({ length: list[i]!.windows }, (_, w) => runWindow(list[i]!, w, DEFAULT_SEED));
      expect(summarise(list[i]!, again)).toEqual(results.cells[i]);
    }
    // …and other figures for another seed (requests until detection of a persistent fault).
    const fault = list.findIndex((c) => c.scenario === 'errors 10%' && c.rate === 50);
    const other = Array.from({ length: list[fault]!.windows }, (_, w) => runWindow(list[fault]!, w, DEFAULT_SEED + 1));
    expect(summarise(list[fault]!, other).delayRequests).not.toEqual(results.cells[fault]!.delayRequests);
  });

  it('detects 100 % errors in every window, and never rolls back for a 0.5 s blip', () => {
    const total = results.cells.filter((c) => c.scenario === 'errors 100%');
    expect(total.length).toBeGreaterThan(0);
    for (const c of total) expect(c.detection!.detected).toBe(c.detection!.of);
    const blips = results.cells.filter((c) => c.scenario.includes('blip 0.5s'));
    expect(blips.length).toBeGreaterThan(0);
    for (const c of blips) expect(c.rolledBack).toBe(0);
    for (const c of results.cells.filter((x) => x.scenario === 'health: outage (refused)')) expect(c.detection!.detected).toBe(c.windows);
  });
});
