import { describe, expect, it } from 'vitest';
import type { RollbackRecord, RuleVerdict, Sample } from '../core/types.js';
import { trafficImpact } from './impact.js';
import { renderRecordMarkdown } from './markdown.js';

const interval = (startedAt: number, requests: number, errors: number): Sample => ({
  probe: 'traffic',
  startedAt,
  at: startedAt + 5,
  ok: true,
  values: { requests },
  traffic: { requests, errors },
});

describe('rollback record: impact and evidence', () => {
  const samples: Sample[] = [
    interval(900, 40, 0), // before the release: not counted
    interval(1000, 50, 0),
    { probe: 'traffic', startedAt: 1250, at: 1255, ok: true, values: {}, error: 'socket changed: base taken' },
    interval(1500, 50, 10),
    { probe: 'traffic', startedAt: 1750, at: 1760, ok: false, unavailable: true, values: {} },
    interval(2000, 50, 5),
    interval(2600, 50, 0), // after the rollback was verified: not counted
  ];

  it('counts what the release served from its start until the rollback ended', () => {
    expect(trafficImpact(samples, 'traffic', 1000, 2500)).toEqual({ probe: 'traffic', from: 1000, to: 2500, requests: 150, errors: 15, uncounted: 1 });
  });

  it('the Markdown states the impact and the sequential evidence of each rule', () => {
    const verdict: RuleVerdict = {
      rule: 'error_rate',
      outcome: 'fail',
      observed: 0.1,
      threshold: 0.05,
      unit: 'ratio',
      message: 'error_rate: 10% (15/150 requests since the evidence began) > 5%: evidence 14.1 >= 13.77 (budget 0.1%, tolerance 2%)',
      since: 1000,
      evidence: { statistic: 14.1, needed: 13.77, budget: 0.001, tolerance: 0.02, threshold: 0.05, p1: 0.0992, looks: 960, minSpanMs: 1000, n: 150, k: 15, excursion: { from: 1000, n: 150, k: 15 }, crossed: true },
    };
    const release = { id: '1970-01-01T00-00-01-000Z_v2', version: 'v2', previous: 'v1', startedAt: 1000, deployedBy: 'ci', source: 'detected' as const };
    const record: RollbackRecord = {
      id: 'r1',
      from: 'v2',
      to: 'v1',
      release,
      breach: { trigger: 'rule', rules: ['error_rate'], reason: verdict.message, verdicts: [verdict], decidedAt: 2100, faultAt: 1000 },
      outcome: 'rolled_back',
      startedAt: 2100,
      executedAt: 2300,
      finishedAt: 2500,
      attempts: 1,
      steps: [],
      verification: { healthPasses: 3, checks: [] },
    };
    const markdown = renderRecordMarkdown(record, {
      service: 'web',
      verificationProbe: 'health',
      requiredPasses: 3,
      logs: [],
      impact: trafficImpact(samples, 'traffic', 1000, 2500),
    });
    expect(markdown).toContain('- **Impact:** 150 requests served, 15 failed (10.0%), from the release start to the verified rollback (1.5s), as counted by probe `traffic`; 1 interval(s) could not be counted');
    expect(markdown).toContain('| error_rate | 14.1 | 13.77 | 1970-01-01T00:00:01.000Z | 15 / 150 | 15 / 150 | 0.02 | 0.05 | 0.001 | 1s |');
  });
});
