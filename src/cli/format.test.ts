import { describe, expect, it } from 'vitest';
import type { HistoryView, StatusView } from '../api/types.js';
import { formatDuration, formatHistory, formatStatus } from './format.js';

const guarding: StatusView = {
  service: 'web',
  phase: 'guarding',
  paused: false,
  since: '2024-05-01T12:00:00.000Z',
  stable: '1.4.1',
  running: '1.5.0',
  release: {
    version: '1.5.0',
    previous: '1.4.1',
    startedAt: '2024-05-01T12:00:00.000Z',
    deployedBy: 'deploy-bot',
    source: 'detected',
    windowEndsAt: '2024-05-01T12:10:00.000Z',
  },
  rollback: null,
  wouldRollBack: null,
  pendingRollback: null,
  failure: null,
  rules: [
    { rule: 'health', outcome: 'pass', observed: 0, threshold: 3, unit: 'failures', message: 'health: 0 consecutive failures < 3' },
    { rule: 'error_rate', outcome: 'fail', observed: 0.12, threshold: 0.05, unit: 'ratio', message: 'error_rate: 12.0 % failed > 5.0 % over 60s' },
    { rule: 'latency_ratio', outcome: 'inconclusive', observed: null, threshold: 3, unit: 'x', message: 'latency_ratio: 4 samples < 20 needed' },
    { rule: 'latency_max', outcome: 'error', observed: null, threshold: 500, unit: 'ms', message: 'latency_max: probe unavailable' },
    { rule: 'cpu', outcome: 'skipped', observed: null, threshold: 0.7, unit: 'ratio', message: 'cpu: within initial_delay' },
  ],
  lastRollback: { id: 'rb-20240430-1', from: '1.4.0', to: '1.3.9', outcome: 'rolled_back', finishedAt: '2024-04-30T09:15:00.000Z' },
  now: '2024-05-01T12:01:48.000Z',
};

describe('formatStatus', () => {
  const text = formatStatus(guarding, { color: false });

  it('shows the phase, the versions and the window countdown', () => {
    expect(text).toContain('web: guarding for 1m48s (since 2024-05-01 12:00:00Z)');
    expect(text).toMatch(/stable\s+1\.4\.1/);
    expect(text).toMatch(/running\s+1\.5\.0/);
    expect(text).toMatch(/paused\s+no/);
    expect(text).toContain('1.5.0 (from 1.4.1), detected by deploy-bot at 2024-05-01 12:00:00Z; window ends in 8m12s');
  });

  it('shows one aligned row per rule with its mark and message', () => {
    const rows = text.split('\n').filter((line) => /^ {2}[✔✖?!–] /.test(line));
    expect(rows).toEqual([
      '  ✔  health         pass          0 consecutive failures < 3',
      '  ✖  error_rate     fail          12.0 % failed > 5.0 % over 60s',
      '  ?  latency_ratio  inconclusive  4 samples < 20 needed',
      '  !  latency_max    error         probe unavailable',
      '  –  cpu            skipped       within initial_delay',
    ]);
  });

  it('shows the last rollback', () => {
    expect(text).toContain('last rollback  1.4.0 → 1.3.9 rolled_back at 2024-04-30 09:15:00Z (rb-20240430-1)');
  });

  it('has no colour codes without color, and colours the marks with it', () => {
    expect(text).not.toContain('\u001b[');
    const colored = formatStatus(guarding, { color: true });
    expect(colored).toContain('\u001b[32m✔\u001b[0m');
    expect(colored).toContain('\u001b[31m✖\u001b[0m');
    expect(colored).toContain('\u001b[33m?\u001b[0m');
    expect(colored).toContain('\u001b[33m!\u001b[0m');
    expect(colored).toContain('\u001b[90m–\u001b[0m');
    // Colour codes do not disturb the alignment.
    // eslint-disable-next-line no-control-regex -- the ANSI escape (ESC) is what this strips
    expect(colored.replace(/\u001b\[[0-9;]*m/g, '')).toBe(text);
  });

  it('shows an ended window, a pause, a rollback in progress and a failure', () => {
    const view: StatusView = {
      ...guarding,
      phase: 'rolling_back',
      paused: true,
      now: '2024-05-01T12:11:00.000Z',
      rollback: { from: '1.5.0', to: '1.4.1', reason: 'error_rate breached', trigger: 'rule', startedAt: '2024-05-01T12:10:30.000Z', attempt: 2 },
      wouldRollBack: 'error_rate breached while paused',
      failure: 'verification timed out',
      rules: [],
      lastRollback: null,
    };
    const out = formatStatus(view, { color: false });
    expect(out).toContain('window ended');
    expect(out).toMatch(/paused\s+yes/);
    expect(out).toContain('1.5.0 → 1.4.1 (rule: error_rate breached), attempt 2');
    expect(out).toMatch(/would roll back\s+error_rate breached while paused/);
    expect(out).toMatch(/failure\s+verification timed out/);
    expect(out).toContain('no verdicts yet');
    expect(out).toMatch(/last rollback\s+none/);
  });
});

describe('formatHistory', () => {
  const view: HistoryView = {
    service: 'web',
    deployments: [
      { version: '1.3.9', at: '2024-04-29T08:00:00.000Z', status: 'success', deployedBy: 'alice' },
      { version: '1.4.0', at: '2024-04-30T09:00:00.000Z', status: 'rolled_back', deployedBy: 'deploy-bot', note: 'error_rate breached' },
      { version: '1.4.1', at: '2024-04-30T10:00:00.000Z', status: 'success', deployedBy: 'api' },
    ],
    candidates: ['1.4.1', '1.3.9'],
    previousStable: '1.3.9',
    rollbacks: [{ id: 'rb-1', from: '1.4.0', to: '1.3.9', outcome: 'rolled_back', finishedAt: '2024-04-30T09:15:00.000Z', reason: 'error_rate breached' }],
  };
  const text = formatHistory(view, { color: false });
  const lines = text.split('\n');

  it('prints the deployments newest first as an aligned table', () => {
    const header = lines.findIndex((line) => line.includes('TIME') && line.includes('DEPLOYED BY'));
    const table = lines.slice(header, header + 4);
    expect(table).toEqual([
      '  TIME                  VERSION  STATUS       DEPLOYED BY  NOTE',
      '  2024-04-30 10:00:00Z  1.4.1    success      api',
      '  2024-04-30 09:00:00Z  1.4.0    rolled_back  deploy-bot   error_rate breached',
      '  2024-04-29 08:00:00Z  1.3.9    success      alice',
    ]);
    // Every column starts at the same offset in every row.
    for (const column of ['VERSION', 'STATUS', 'DEPLOYED BY']) {
      const at = table[0]!.indexOf(column);
      for (const row of table.slice(1)) expect(row[at - 1]).toBe(' ');
      for (const row of table.slice(1)) expect(row[at]).not.toBe(' ');
    }
    expect(lines.every((line) => line === line.trimEnd())).toBe(true);
  });

  it('prints the rollbacks, the previous stable version and the candidates', () => {
    expect(text).toMatch(/TIME\s+FROM\s+TO\s+OUTCOME\s+REASON\s+ID/);
    expect(text).toContain('2024-04-30 09:15:00Z  1.4.0  1.3.9  rolled_back  error_rate breached  rb-1');
    expect(text).toMatch(/previous stable\s+1\.3\.9/);
    expect(text).toMatch(/rollback candidates\s+1\.4\.1, 1\.3\.9/);
  });

  it('says when there is nothing yet', () => {
    const empty = formatHistory({ service: 'web', deployments: [], candidates: [], previousStable: null, rollbacks: [] }, { color: false });
    expect(empty).toContain('none recorded yet');
    expect(empty).toMatch(/rollback candidates\s+none/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0s'],
    [45_900, '45s'],
    [492_000, '8m12s'],
    [3_900_000, '1h05m'],
    [2 * 86_400_000 + 3 * 3_600_000, '2d03h'],
    [-5000, '0s'],
  ])('%i ms → %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});
