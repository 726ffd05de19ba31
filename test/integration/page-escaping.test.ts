/**
 * The operator page in a real Chromium against the real API server, fed by a GuardControl that
 * answers hostile text: a version string with HTML in it (the guard itself refuses such versions,
 * core/versions.ts, so only a stand-in can produce one), a rule message, a reason and a record's
 * log lines with markup. Everything shows as text, nothing runs, the console stays clean; with
 * JavaScript off the page still shows the state; the controls need the token.
 */
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import type { ControlRequest, GuardControl, StatusView } from '../../src/api/types.js';
import { launchChromium, openWatched, screenshot } from '../helpers/browser.js';

const TOKEN = 'page-token-0123456789';
const HOSTILE_VERSION = '<b>v2</b><img src=x onerror="document.title=\'pwned\'">';
const start = Date.parse('2026-01-01T12:00:00Z');

let browser: Browser;
let server: ApiServer;
const requests: ControlRequest[] = [];
let paused = false;

function status(): StatusView {
  return {
    service: 'web',
    phase: 'guarding',
    paused,
    since: new Date(start).toISOString(),
    stable: 'v1',
    running: HOSTILE_VERSION,
    release: { version: HOSTILE_VERSION, previous: 'v1', startedAt: new Date(start).toISOString(), deployedBy: 'ci', source: 'detected', windowEndsAt: new Date(start + 600_000).toISOString() },
    rollback: null,
    wouldRollBack: null,
    pendingRollback: null,
    failure: null,
    rules: [
      {
        rule: 'error_rate',
        outcome: 'pass',
        observed: 0.012,
        threshold: 0.05,
        unit: 'ratio',
        message: 'error_rate: 1.2% <script>document.title="pwned"</script>',
        evidence: { statistic: 1.5, needed: 9.21, budget: 0.001, tolerance: 0.02, threshold: 0.05, p1: 0.033, looks: 10_000, minSpanMs: 1000, n: 400, k: 5, excursion: { from: start + 60_000, n: 50, k: 3 }, crossed: false },
      },
    ],
    lastRollback: null,
    now: new Date(start + 120_000).toISOString(),
  };
}

const control: GuardControl = {
  status,
  history: async () => ({
    service: 'web',
    deployments: [{ version: HOSTILE_VERSION, at: new Date(start).toISOString(), status: 'rolled_back', deployedBy: 'ci' }],
    candidates: ['v1'],
    previousStable: 'v1',
    rollbacks: [{ id: '2026-01-01T12-01-00-000Z_x_to_v1', from: HOSTILE_VERSION, to: 'v1', outcome: 'rolled_back', finishedAt: new Date(start + 60_000).toISOString(), reason: 'manual: <i>by hand</i>' }],
  }),
  metrics: async () => ({ contentType: 'text/plain', body: '' }),
  drill: async () => ({ ok: false, error: 'no drills here' }),
  alertmanager: async () => ({ ok: false, error: 'not configured' }),
  preflight: async () => ({ ready: true, from: 'v2', to: 'v1', problems: [], steps: [], checkedAt: new Date(start).toISOString() }),
  liveTimeline: () => ({
    series: [{ name: 'error ratio (checks)', unit: 'ratio', points: [[start, 0], [start + 60_000, 0.5]] }],
    events: [{ at: start, label: `release ${HOSTILE_VERSION}`, kind: 'release' }],
    from: start - 10_000,
    to: start + 120_000,
    title: `web: window of ${HOSTILE_VERSION}`,
  }),
  recordDocument: async () => ({
    markdown: ['# Rollback: web x → v1', '', '## Application logs (last lines)', '', '<script>document.title="pwned"</script>', '', '```', '<img src=x onerror=alert(1)>', '```', ''].join('\n'),
    svg: null,
  }),
  lastPreflight: () => ({ ready: false, from: 'v2', to: 'v1', problems: [], steps: [{ index: 0, type: 'releases', description: 'swap', problems: ['releases/v1 <missing>'] }], checkedAt: new Date(start).toISOString() }),
  lastDrill: async () => ({
    id: '2026-01-01T11-00-00-000Z_drill_v1_v0',
    service: 'web',
    by: 'ops',
    startedAt: start - 3_600_000,
    finishedAt: start - 3_590_000,
    ok: true,
    legs: [
      { from: 'v1', to: 'v0', ok: true, planMs: 1800, verifyMs: 900, totalMs: 2700, steps: [] },
      { from: 'v0', to: 'v1', ok: true, planMs: 1700, verifyMs: 800, totalMs: 2500, steps: [] },
    ],
  }),
  control: async (request) => {
    requests.push(request);
    if (request.action === 'pause') paused = true;
    if (request.action === 'resume') paused = false;
    return { ok: true, state: { phase: 'guarding', paused } as never };
  },
};

beforeAll(async () => {
  browser = await launchChromium();
  server = await startApiServer({ host: '127.0.0.1', port: 0, token: TOKEN, control });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('the operator page with hostile text', () => {
  it('shows a version with HTML in it as text, runs nothing from the app, and logs no console error', async () => {
    const { page, problems } = await openWatched(browser);
    await page.goto(`${server.url}/`, { waitUntil: 'networkidle0' });
    // The script ran and polled at least once.
    await page.waitForFunction(() => document.getElementById('live-status')?.textContent?.startsWith('live'), { timeout: 10_000 });
    const shown = await page.$eval('[data-field="release"]', (el) => ({ text: el.textContent, children: el.children.length }));
    expect(shown).toEqual({ text: HOSTILE_VERSION, children: 0 });
    expect(await page.$$eval('img[src="x"], b', (els) => els.length)).toBe(0);
    expect(await page.$$eval('body script', (els) => els.length)).toBe(0);
    const rules = await page.$eval('#rules', (el) => el.textContent ?? '');
    expect(rules).toContain('<script>document.title="pwned"</script>');
    expect(rules).toMatch(/statistic 1\.5 of 9\.21 needed/);
    expect(rules).toContain('5 bad / 400 trials');
    const record = await page.$eval('details.record', (el) => ({ open: (el as HTMLDetailsElement).open, text: el.textContent ?? '' }));
    expect(record.open).toBe(true);
    expect(record.text).toContain('<script>document.title="pwned"</script>');
    expect(record.text).toContain('<img src=x onerror=alert(1)>');
    expect(record.text).toContain('manual: <i>by hand</i>');
    // The chart is the record timeline's SVG; its labels are text too.
    expect(await page.$eval('#chart svg', (el) => el.textContent ?? '')).toContain(`release ${HOSTILE_VERSION}`);
    expect(await page.title()).toBe('release-guard · web');
    const history = await page.$eval('#history', (el) => el.textContent ?? '');
    expect(history).toMatch(/Last drill\s+passed at 2026-01-01 11:00:10Z by ops/);
    expect(history).toContain('v1 → v0: ok, plan 1.8s, verified after 900ms');
    expect(history).toMatch(/NOT ready to roll back v2 → v1, checked 2026-01-01 12:00:00Z\s*step 1 \(releases\): releases\/v1 <missing>/);
    await screenshot(page, 'hostile-text');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('reads with JavaScript off: the state, the rules and the records are in the served HTML', async () => {
    const { page, problems } = await openWatched(browser, { javaScript: false });
    await page.goto(`${server.url}/`, { waitUntil: 'load' });
    expect(await page.$eval('#phase', (el) => el.textContent)).toBe('guarding');
    expect(await page.$eval('[data-field="release"]', (el) => el.textContent)).toBe(HOSTILE_VERSION);
    expect(await page.$eval('#live-status', (el) => el.textContent)).toMatch(/live updates need JavaScript/);
    // No controls without the script (they need the token in a header).
    expect(await page.$eval('#controls', (el) => (el as HTMLElement).hidden)).toBe(true);
    expect(await page.$$eval('details.record', (els) => els.length)).toBe(1);
    await screenshot(page, 'javascript-off');
    expect(problems).toEqual([]);
    await page.close();
  });

  it('shows the control buttons only with a token, shows the API\'s refusal of a wrong one and acts with the right one', async () => {
    const { page, problems } = await openWatched(browser);
    await page.goto(`${server.url}/`, { waitUntil: 'networkidle0' });
    expect(await page.$eval('#controls', (el) => (el as HTMLElement).hidden)).toBe(false);
    expect(await page.$eval('#actions', (el) => (el as HTMLElement).hidden)).toBe(true);
    expect(await page.$$eval('#actions button[data-action]', (els) => els.filter((b) => (b as HTMLElement).offsetParent !== null).length)).toBe(0);

    await page.type('#token', 'not-the-token');
    await page.click('#token-form button[type=submit]');
    await page.waitForSelector('#actions button[data-action="pause"]', { visible: true });
    // Promote applies while guarding; resume and veto do not.
    const visible = await page.$$eval('#actions button[data-action]', (els) => els.filter((b) => !(b as HTMLElement).hidden).map((b) => b.getAttribute('data-action')));
    expect(visible.sort()).toEqual(['pause', 'preflight', 'promote', 'rollback']);
    await page.click('#actions button[data-action="pause"]');
    await page.waitForFunction(() => document.getElementById('control-result')?.textContent?.includes('refused'), { timeout: 5000 });
    expect(await page.$eval('#control-result', (el) => el.textContent)).toBe('pause refused (401): unauthorized');
    expect(requests).toEqual([]);
    // A rollback without a reason is not even sent.
    await page.click('#actions button[data-action="rollback"]');
    expect(await page.$eval('#control-result', (el) => el.textContent)).toMatch(/say why/);

    await page.click('#forget');
    await page.waitForSelector('#token-form', { visible: true });
    await page.type('#token', TOKEN);
    await page.click('#token-form button[type=submit]');
    await page.click('#actions button[data-action="pause"]');
    await page.waitForFunction(() => document.getElementById('control-result')?.textContent?.includes('done'), { timeout: 5000 });
    expect(requests).toEqual([{ action: 'pause', by: 'web page' }]);
    // The next poll shows the paused banner and offers resume instead of pause.
    await page.waitForSelector('[data-banner="paused"]', { timeout: 5000 });
    await page.waitForSelector('#actions button[data-action="resume"]', { visible: true, timeout: 5000 });
    await screenshot(page, 'controls-paused');
    // Roll back with a reason: sent as typed (markup included; the API and the page treat it as text).
    await page.type('#reason', 'checkout <b>broken</b>');
    await page.click('#actions button[data-action="rollback"]');
    await page.waitForFunction(() => document.getElementById('control-result')?.textContent?.startsWith('rollback: done'), { timeout: 5000 });
    expect(requests.at(-1)).toEqual({ action: 'rollback', reason: 'checkout <b>broken</b>', by: 'web page' });
    // The token never went into a cookie.
    expect(await page.cookies()).toEqual([]);
    // The refused request itself (Chromium logs a failed load for it) is the only problem.
    expect(problems.filter((p) => !p.includes('401'))).toEqual([]);
    expect(problems.length).toBeGreaterThan(0);
    await page.close();
  });
});
