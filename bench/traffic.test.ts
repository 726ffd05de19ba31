import { describe, expect, it } from 'vitest';
import { summarize } from './results.js';
import { failuresBetween, impactOf, type RequestRecord } from './traffic.js';

const ok = (sentAt: number, version: string): RequestRecord => ({ sentAt, doneAt: sentAt + 5, outcome: 'ok', status: 200, version });
const bad = (sentAt: number, outcome: RequestRecord['outcome'] = 'http'): RequestRecord => ({ sentAt, doneAt: sentAt + 5, outcome });

describe('impactOf', () => {
  it('recovers at the first answer of the final all-good run on the old version', () => {
    const records = [ok(0, 'v2'), ok(100, 'v2'), bad(200), bad(300), ok(400, 'v1'), bad(500, 'conn'), ok(600, 'v1'), ok(700, 'v1')];
    const impact = impactOf(records, 150, 'v1');
    expect(impact.recoveredAt).toBe(605);
    expect(impact.failedAfterFault).toBe(3);
    expect(impact.failedByOutcome).toEqual({ http: 2, conn: 1 });
  });

  it('a degraded but answering new version is not recovery', () => {
    const records = [ok(0, 'v2'), ok(200, 'v2'), ok(400, 'v2')];
    expect(impactOf(records, 100, 'v1').recoveredAt).toBeNull();
  });

  it('no recovery when the recording ends bad', () => {
    const records = [ok(0, 'v2'), bad(200), ok(300, 'v1'), bad(400)];
    expect(impactOf(records, 100, 'v1').recoveredAt).toBeNull();
  });

  it('counts failures answered after the fault, including requests sent before it', () => {
    const records = [{ sentAt: 50, doneAt: 2050, outcome: 'timeout' as const }, ok(200, 'v1')];
    expect(impactOf(records, 100, 'v1').failedAfterFault).toBe(1);
    expect(failuresBetween(records, 0, 3000, ['timeout'])).toBe(0);
  });
});

describe('summarize', () => {
  it('median and range, ignoring missing values', () => {
    expect(summarize([3, null, 1, 2])).toEqual({ n: 3, median: 2, min: 1, max: 3 });
    expect(summarize([4, 1])).toEqual({ n: 2, median: 2.5, min: 1, max: 4 });
    expect(summarize([null, undefined])).toEqual({ n: 0, median: null, min: null, max: null });
  });
});
