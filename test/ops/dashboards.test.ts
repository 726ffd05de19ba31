/**
 * What ships for operators beside the code: the Prometheus alert rules and the Grafana dashboard.
 * - `promtool check rules` accepts the rules file, and `promtool test rules` shows the main
 *   alerts firing (and staying quiet) on synthetic series;
 * - every `release_guard_*` metric they use is one the code really exports (read from a real
 *   GuardMetrics registry, never a hard-coded list);
 * - the dashboard is valid JSON, every panel has a datasource and a query, and every query parses
 *   as PromQL (promtool checks them as recording rules); every release_guard_* selector in it
 *   filters on the `job` and `instance` variables;
 * - `release-guard ops rules --runbook-base URL --job NAME` prints rules promtool accepts, with every alert's
 *   runbook link absolute and the up/absent alerts firing for the named scrape job.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { main } from '../../src/cli/main.js';
import { GuardMetrics } from '../../src/metrics.js';
import { ensurePrometheus } from '../helpers/prometheus.js';

const root = resolve(import.meta.dirname, '../..');
const RULES = join(root, 'prometheus', 'release-guard.rules.yml');
const DASHBOARD = join(root, 'grafana', 'release-guard.json');

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  annotations: { list: { name: string; expr?: string; datasource?: { uid?: string } }[] };
  templating: { list: { name: string; type: string; query?: unknown }[] };
}

function promtool(binary: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    execFile(binary, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      done({ code, output: `${stdout}${stderr}` });
    });
  });
}

/** `release_guard_*` names in a text, histogram series folded onto their metric. */
function metricNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [name] of text.matchAll(/\brelease_guard_[a-zA-Z0-9_]+/g)) names.add(name.replace(/_(bucket|sum|count)$/, ''));
  return names;
}

/** Panels, including those nested in collapsed rows. */
function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

/** Grafana's variables replaced by values Prometheus accepts, so the expressions can be parsed. */
function concrete(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
    .replace(/\$\{?(job|instance)\}?/g, '.*');
}

describe('Prometheus rules and Grafana dashboard', () => {
  let promtoolPath: string;
  let dir: string;
  let dashboardText: string;
  let dashboard: Dashboard;
  let rulesText: string;

  beforeAll(async () => {
    promtoolPath = join(dirname(await ensurePrometheus()), 'promtool');
    dir = await mkdtemp(join(tmpdir(), 'rg-ops-'));
    dashboardText = await readFile(DASHBOARD, 'utf8');
    dashboard = JSON.parse(dashboardText) as Dashboard;
    rulesText = await readFile(RULES, 'utf8');
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('promtool check rules passes', async () => {
    const { code, output } = await promtool(promtoolPath, ['check', 'rules', RULES]);
    expect(output).toContain('SUCCESS');
    expect(code, output).toBe(0);
  });

  it('every alert has a severity, a summary, a description and a runbook in docs/operations.md', async () => {
    const rules = (parse(rulesText) as { groups: { rules: { alert?: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(6);
    for (const rule of rules) {
      expect(rule.alert).toBeTruthy();
      expect(['critical', 'warning', 'info']).toContain(rule.labels?.severity);
      expect(rule.annotations?.summary, rule.alert).toBeTruthy();
      expect(rule.annotations?.description, rule.alert).toBeTruthy();
      expect(rule.annotations?.runbook_url, rule.alert).toBe(`docs/operations.md#${rule.alert!.toLowerCase()}`);
    }
    // Each runbook anchor exists: operations.md has a heading named after the alert.
    const operations = await readFile(join(root, 'docs', 'operations.md'), 'utf8');
    for (const rule of rules) expect(operations, `docs/operations.md has no "### ${rule.alert}" section`).toMatch(new RegExp(`^#+ ${rule.alert}\\b`, 'm'));
  });

  it('the alerts fire on synthetic series (promtool test rules)', async () => {
    // Annotations are templates checked by `check rules`; here only expressions, `for` and labels.
    const doc = parse(rulesText) as { groups: { rules: Record<string, unknown>[] }[] };
    for (const group of doc.groups) for (const rule of group.rules) delete rule.annotations;
    const rulesCopy = join(dir, 'rules.yml');
    await writeFile(rulesCopy, stringify(doc));
    const guard = 'job="release-guard",instance="web-1:9464"';
    const labels = { job: 'release-guard', instance: 'web-1:9464' };
    const tests = {
      rule_files: [rulesCopy],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: `up{${guard}}`, values: '1 1 0x10' },
            { series: `release_guard_state{state="failed",${guard}}`, values: '0 0 1x10' },
            { series: `release_guard_state{state="guarding",${guard}}`, values: '1x12' },
            { series: `release_guard_rule_inconclusive{rule="error_rate",${guard}}`, values: '0 1x11' },
            { series: `release_guard_rule_inconclusive{rule="health",${guard}}`, values: '0x12' },
            { series: `release_guard_paused{${guard}}`, values: '0x12' },
            { series: `release_guard_rollback_duration_seconds_count{${guard}}`, values: '0 1 2 3 3x8' },
          ],
          alert_rule_test: [
            { eval_time: '1m', alertname: 'ReleaseGuardRollbackFailed', exp_alerts: [] },
            { eval_time: '3m', alertname: 'ReleaseGuardRollbackFailed', exp_alerts: [{ exp_labels: { ...labels, severity: 'critical' } }] },
            { eval_time: '4m', alertname: 'ReleaseGuardFrozen', exp_alerts: [] },
            { eval_time: '8m', alertname: 'ReleaseGuardFrozen', exp_alerts: [{ exp_labels: { ...labels, severity: 'critical' } }] },
            { eval_time: '3m', alertname: 'ReleaseGuardDown', exp_alerts: [] },
            { eval_time: '5m', alertname: 'ReleaseGuardDown', exp_alerts: [{ exp_labels: { ...labels, severity: 'critical' } }] },
            { eval_time: '2m', alertname: 'ReleaseGuardReleaseWindowInconclusive', exp_alerts: [] },
            { eval_time: '4m', alertname: 'ReleaseGuardReleaseWindowInconclusive', exp_alerts: [{ exp_labels: { ...labels, severity: 'warning' } }] },
            { eval_time: '2m', alertname: 'ReleaseGuardRepeatedRollbacks', exp_alerts: [] },
            { eval_time: '5m', alertname: 'ReleaseGuardRepeatedRollbacks', exp_alerts: [{ exp_labels: { ...labels, severity: 'warning' } }] },
            { eval_time: '10m', alertname: 'ReleaseGuardPausedTooLong', exp_alerts: [] },
            { eval_time: '10m', alertname: 'ReleaseGuardAbsent', exp_alerts: [] },
          ],
        },
        {
          interval: '1m',
          input_series: [{ series: 'up{job="something-else",instance="x"}', values: '1x20' }],
          alert_rule_test: [{ eval_time: '15m', alertname: 'ReleaseGuardAbsent', exp_alerts: [{ exp_labels: { job: 'release-guard', severity: 'warning' } }] }],
        },
      ],
    };
    const testFile = join(dir, 'rules.test.yml');
    await writeFile(testFile, stringify(tests));
    const { code, output } = await promtool(promtoolPath, ['test', 'rules', testFile]);
    expect(code, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });

  it('uses only release_guard_* metrics that the code exports', async () => {
    const exported = new Set((await new GuardMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name));
    expect(exported.size).toBeGreaterThan(5);
    const used = new Set([...metricNames(dashboardText), ...metricNames(rulesText)]);
    // The dashboard covers the guard's own metrics, not a token subset.
    for (const name of ['release_guard_state', 'release_guard_release_info', 'release_guard_rollbacks_total', 'release_guard_probe_duration_seconds']) {
      expect(used).toContain(name);
    }
    const unknown = [...used].filter((name) => !exported.has(name));
    expect(unknown, `not exported by src/metrics.ts: ${unknown.join(', ')}`).toEqual([]);
  });

  it('the dashboard parses, and every panel has a datasource and at least one query', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const variables = dashboard.templating.list.map((v) => v.name);
    expect(variables).toEqual(expect.arrayContaining(['datasource', 'job', 'instance']));
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const panels = allPanels(dashboard.panels).filter((panel) => panel.type !== 'row');
    expect(panels.length).toBeGreaterThanOrEqual(8);
    const ids = new Set<number>();
    for (const panel of panels) {
      expect(ids.has(panel.id), `duplicate panel id ${panel.id}`).toBe(false);
      ids.add(panel.id);
      expect(panel.datasource?.uid, `panel "${panel.title}" has no datasource`).toBe('${datasource}');
      expect(panel.targets?.length ?? 0, `panel "${panel.title}" has no target`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        expect(target.expr?.trim(), `panel "${panel.title}" has a target without a query`).toBeTruthy();
      }
    }
    const annotations = dashboard.annotations.list.filter((a) => a.expr !== undefined).map((a) => a.name);
    expect(annotations).toEqual(expect.arrayContaining(['Releases', 'Rollbacks']));
    const types = new Set(panels.map((panel) => panel.type));
    expect(types).toContain('state-timeline');
  });

  it('every dashboard query is valid PromQL', async () => {
    const exprs = [
      ...allPanels(dashboard.panels).flatMap((panel) => (panel.targets ?? []).map((t) => ({ where: panel.title, expr: t.expr ?? '' }))),
      ...dashboard.annotations.list.filter((a) => a.expr !== undefined).map((a) => ({ where: `annotation ${a.name}`, expr: a.expr! })),
    ];
    const rules = exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: concrete(e.expr) }));
    const file = join(dir, 'dashboard-queries.yml');
    await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
    const { code, output } = await promtool(promtoolPath, ['check', 'rules', file]);
    expect(code, `${output}\n${exprs.map((e, i) => `query_${i} (${e.where}): ${e.expr}`).join('\n')}`).toBe(0);
  });

  it('every release_guard_* selector in the dashboard filters on the job and instance variables', () => {
    const job = dashboard.templating.list.find((v) => v.name === 'job');
    expect(job?.type).toBe('query');
    // The variable's own values come from a metric the guard exports, so it lists real jobs.
    expect(JSON.stringify(job?.query)).toMatch(/label_values\(release_guard_[a-z_]+, job\)/);
    const exprs = [
      ...allPanels(dashboard.panels).flatMap((panel) => (panel.targets ?? []).map((t) => ({ where: panel.title, expr: t.expr ?? '' }))),
      ...dashboard.annotations.list.filter((a) => a.expr !== undefined).map((a) => ({ where: `annotation ${a.name}`, expr: a.expr! })),
    ];
    let selectors = 0;
    for (const { where, expr } of exprs) {
      for (const [selector, matchers] of expr.matchAll(/\brelease_guard_[a-zA-Z0-9_]+(?:\{([^}]*)\})?/g)) {
        selectors++;
        expect(matchers ?? '', `${where}: ${selector} does not select job=~"$job"`).toContain('job=~"$job"');
        expect(matchers ?? '', `${where}: ${selector} does not select instance=~"$instance"`).toContain('instance=~"$instance"');
      }
    }
    expect(selectors).toBeGreaterThan(15);
  });

  async function opsRules(args: string[]) {
    let stdout = '';
    let stderr = '';
    const code = await main(['ops', 'rules', ...args], { env: {}, out: (t) => void (stdout += t), err: (t) => void (stderr += t), color: false });
    return { code, stdout, stderr };
  }

  it('ops rules --runbook-base prints rules promtool accepts, every runbook link absolute', async () => {
    const base = 'https://wiki.example.com/release-guard/ops';
    const { code, stdout, stderr } = await opsRules(['--runbook-base', base]);
    expect(code, stderr).toBe(0);
    const file = join(dir, 'rules-absolute.yml');
    await writeFile(file, stdout);
    const checked = await promtool(promtoolPath, ['check', 'rules', file]);
    expect(checked.code, checked.output).toBe(0);
    const rules = (parse(stdout) as { groups: { rules: { alert: string; expr: string; annotations: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules);
    const shipped = (parse(rulesText) as { groups: { rules: { alert: string; expr: string; annotations: Record<string, string> }[] }[] }).groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(shipped.map((r) => r.alert));
    for (const [i, rule] of rules.entries()) {
      expect(rule.annotations.runbook_url).toBe(`${base}#${rule.alert.toLowerCase()}`);
      // Only the link changes.
      expect({ ...rule, annotations: { ...rule.annotations, runbook_url: '' } }).toEqual({ ...shipped[i], annotations: { ...shipped[i]!.annotations, runbook_url: '' } });
    }

    const perAlert = await opsRules(['--runbook-base', 'https://runbooks.example.com/{alert}.html']);
    expect(perAlert.code, perAlert.stderr).toBe(0);
    expect(perAlert.stdout).toContain('runbook_url: "https://runbooks.example.com/ReleaseGuardFrozen.html"');

    // Without a base: the rules exactly as shipped, relative links.
    expect((await opsRules([])).stdout).toBe(rulesText);
  });

  it('ops rules --job fits the up/absent alerts to another scrape job: they fire for it, not for "release-guard" (promtool test rules)', async () => {
    const { code, stdout, stderr } = await opsRules(['--job', 'node-guards', '--runbook-base', 'https://wiki.example.com/ops']);
    expect(code, stderr).toBe(0);
    expect(stdout).not.toContain('job="release-guard"');
    expect(stdout.split('\n')[0]).toBe('# Generated by `release-guard ops rules --runbook-base https://wiki.example.com/ops --job node-guards` from the shipped rules.');
    const doc = parse(stdout) as { groups: { rules: Record<string, unknown>[] }[] };
    for (const group of doc.groups) for (const rule of group.rules) delete rule.annotations;
    const rulesFile = join(dir, 'rules-job.yml');
    await writeFile(rulesFile, stringify(doc));
    const tests = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: 'up{job="node-guards",instance="web-1:9464"}', values: '1 1 0x10' },
            // The shipped job name is now just another job: its target being down is not this alert's.
            { series: 'up{job="release-guard",instance="web-2:9464"}', values: '0x12' },
          ],
          alert_rule_test: [
            { eval_time: '5m', alertname: 'ReleaseGuardDown', exp_alerts: [{ exp_labels: { job: 'node-guards', instance: 'web-1:9464', severity: 'critical' } }] },
            { eval_time: '11m', alertname: 'ReleaseGuardAbsent', exp_alerts: [] },
          ],
        },
        {
          interval: '1m',
          input_series: [{ series: 'up{job="release-guard",instance="x"}', values: '1x20' }],
          alert_rule_test: [{ eval_time: '15m', alertname: 'ReleaseGuardAbsent', exp_alerts: [{ exp_labels: { job: 'node-guards', severity: 'warning' } }] }],
        },
      ],
    };
    const testFile = join(dir, 'rules-job.test.yml');
    await writeFile(testFile, stringify(tests));
    const tested = await promtool(promtoolPath, ['test', 'rules', testFile]);
    expect(tested.code, tested.output).toBe(0);
  });

  it('ops rules refuses a --job that cannot stand in a selector (usage error, exit 2, nothing printed)', async () => {
    for (const bad of ['', 'guards"} or vector(1) #', 'a b']) {
      const { code, stdout, stderr } = await opsRules(['--job', bad]);
      expect(code, bad).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/^release-guard: --job ".*" is not a usable job name; allowed: /);
    }
  });

  it('ops rules refuses a --runbook-base that is not an absolute http(s) URL (usage error, exit 2, nothing printed)', async () => {
    for (const bad of ['wiki/ops', 'ftp://wiki.example.com/ops', 'https://wiki.example.com/ops#runbooks']) {
      const { code, stdout, stderr } = await opsRules(['--runbook-base', bad]);
      expect(code, bad).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toMatch(/^release-guard: --runbook-base ".*" (is not an absolute URL|must be an http|already has a #fragment)/);
    }
  });
});
