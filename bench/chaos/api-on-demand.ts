/**
 * Chaos scenario for issue 13 item 3, work on demand, against the built guard (its own process):
 *
 * - many concurrent `GET /preflight` without a token while a window is open: the readiness check
 *   is real work (a kubernetes step whose `kubectl` journals each run and takes 300 ms, as an API
 *   call would), counted from the journal: one preflight run for all of them;
 * - a forced run (`?fresh=1`) without the token: refused, nothing run;
 * - `/history` over thousands of records (record files as an older guard left them; the guard
 *   indexes them once): every page bounded in time and size, and walking the pages by `next`
 *   lists every record once, newest first.
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { GuardProcess } from '../guard.js';
import { sleep, waitFor } from '../proc.js';
import { fileVersionApp, startAppGuard } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

/** A /history page must answer within this (p95) and stay under this size. */
const PAGE_P95_MS = 250;
const PAGE_MAX_BYTES = 64 * 1024;

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))] ?? 0;

async function kubectlRuns(journal: string): Promise<number> {
  return (await readFile(journal, 'utf8')).split('\n').filter(Boolean).length;
}

async function preflightRows(ctx: ChaosContext, dir: string): Promise<ChaosRow[]> {
  const concurrent = ctx.quick ? 20 : 100;
  const app = await fileVersionApp(dir);
  const journal = path.join(dir, 'kubectl.journal');
  const kubectl = path.join(dir, 'kubectl');
  await writeFile(journal, '');
  await writeFile(kubectl, `#!/bin/sh\necho "$*" >> '${journal}'\nsleep 0.3\necho deployment.apps/web\n`);
  await chmod(kubectl, 0o755);
  let guard: GuardProcess | undefined;
  try {
    guard = await startAppGuard(dir, app.url, [{ type: 'kubernetes', deployment: 'web', kubectl, timeout: '10s' }], {
      release: { version_probe: 'health', window: '10m', initial_delay: '1s', settle: '5m' },
    });
    const g = guard;
    await waitFor('v1 stable', async () => (await g.state())?.stable === 'v1', 30_000, 100);
    // v3 answers 200 (only v2 fails): a window opens, nothing rolls back.
    await app.set('v3');
    await waitFor('the v3 window', async () => (await g.state())?.release?.version === 'v3', 30_000, 100);
    // The window's own preflight runs once when it opens: wait until the journal is still.
    let settled = -1;
    const perRun = await waitFor('the window preflight to finish', async () => {
      const now = await kubectlRuns(journal);
      const done = now > 0 && now === settled;
      settled = now;
      return done ? now : 0;
    }, 30_000, 1500);
    const before = await kubectlRuns(journal);
    const started = performance.now();
    const answers = await Promise.all(
      Array.from({ length: concurrent }, () =>
        fetch(`${g.url}/preflight`, { signal: AbortSignal.timeout(30_000) }).then(async (r) => ({ status: r.status, body: (await r.json()) as { checkedAt?: string; cached?: boolean } })),
      ),
    );
    const tookMs = performance.now() - started;
    await sleep(1000);
    const runs = ((await kubectlRuns(journal)) - before) / perRun;
    const ok200 = answers.filter((a) => a.status === 200).length;
    const results = new Set(answers.map((a) => a.body.checkedAt)).size;
    const forced = await fetch(`${g.url}/preflight?fresh=1`);
    await sleep(1000);
    const forcedRuns = ((await kubectlRuns(journal)) - before) / perRun - runs;
    return [
      {
        item: '3 work on demand: preflight runs for concurrent GETs',
        input: `${concurrent} concurrent GET /preflight, no token, window open (kubectl journals each readiness check, 300 ms each)`,
        measured: `${runs} run(s) (${ok200}/${concurrent} answered 200, ${results} distinct result(s), all in ${Math.round(tookMs)} ms)`,
        target: '1 run',
        ok: runs === 1 && ok200 === concurrent && results === 1,
      },
      {
        item: '3 work on demand: forced preflight without the token',
        input: 'GET /preflight?fresh=1, no token',
        measured: `HTTP ${forced.status}, ${forcedRuns} run(s)`,
        target: '401, 0 runs',
        ok: forced.status === 401 && forcedRuns === 0,
      },
    ];
  } finally {
    await guard?.stop();
    await app.close();
  }
}

/** `count` records as an older guard left them: JSON and Markdown, one minute apart. */
async function seedRecords(stateDir: string, count: number): Promise<void> {
  const dir = path.join(stateDir, 'rollbacks');
  await mkdir(dir, { recursive: true });
  const base = Date.parse('2025-01-01T00:00:00.000Z');
  for (let i = 0; i < count; i++) {
    const finishedAt = base + i * 60_000;
    const id = `seed-${String(i).padStart(6, '0')}`;
    const release = { id: `w${i}`, version: `v${i + 2}`, previous: 'v1', startedAt: finishedAt - 30_000, deployedBy: 'ci', source: 'manual' };
    const record = {
      id,
      from: release.version,
      to: 'v1',
      release,
      breach: { trigger: 'rule', rules: ['health'], reason: `health failed 3 times (record ${i})`, decidedAt: finishedAt - 20_000, faultAt: finishedAt - 25_000 },
      outcome: 'rolled_back',
      startedAt: finishedAt - 20_000,
      executedAt: finishedAt - 19_000,
      finishedAt,
      attempts: 1,
      steps: [{ index: 0, type: 'command', description: 'switch back', ok: true, startedAt: finishedAt - 19_000, finishedAt: finishedAt - 18_000, output: ['done'], attempt: 1 }],
      verification: { healthPasses: 3, checks: [] },
    };
    await writeFile(path.join(dir, `${id}.md`), `# Rollback: web ${release.version} → v1\n`);
    await writeFile(path.join(dir, `${id}.json`), JSON.stringify(record));
  }
}

async function historyRows(ctx: ChaosContext, dir: string): Promise<ChaosRow[]> {
  const count = ctx.quick ? 300 : 5000;
  const limit = 50;
  const app = await fileVersionApp(dir);
  const stateDir = path.join(dir, 'state');
  await seedRecords(stateDir, count);
  let guard: GuardProcess | undefined;
  try {
    guard = await startAppGuard(dir, app.url, [{ type: 'command', command: ['/bin/true'] }]);
    const g = guard;
    // The first read indexes the records an older guard left; timed apart from the pages.
    const firstStarted = performance.now();
    await fetch(`${g.url}/history?limit=1`);
    const firstMs = performance.now() - firstStarted;
    const seen: string[] = [];
    const times: number[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    let ordered = true;
    let lastAt = Infinity;
    for (let page = 0; page < count / limit + 5; page++) {
      const started = performance.now();
      const response = await fetch(`${g.url}/history?limit=${limit}${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`);
      const text = await response.text();
      times.push(performance.now() - started);
      sizes.push(Buffer.byteLength(text));
      const body = JSON.parse(text) as { rollbacks: { id: string; finishedAt: string }[]; next?: string | null };
      for (const r of body.rollbacks) {
        const at = Date.parse(r.finishedAt);
        if (!(at < lastAt)) ordered = false;
        lastAt = at;
        seen.push(r.id);
      }
      cursor = body.next ?? null;
      if (cursor === null) break;
    }
    const distinct = new Set(seen).size;
    const duplicates = seen.length - distinct;
    const p95 = percentile(times, 0.95);
    const largest = Math.max(...sizes);
    return [
      {
        item: '3 work on demand: /history pages, time and size',
        input: `${count} records, ${times.length} pages of ${limit} (first read indexes them: ${Math.round(firstMs)} ms)`,
        measured: `median ${Math.round(percentile(times, 0.5))} ms, p95 ${Math.round(p95)} ms, max ${Math.round(Math.max(...times))} ms (load average ${os.loadavg()[0]!.toFixed(1)}); largest page ${(largest / 1024).toFixed(1)} KB`,
        target: `p95 ≤ ${PAGE_P95_MS} ms, page ≤ ${PAGE_MAX_BYTES / 1024} KB`,
        ok: p95 <= PAGE_P95_MS && largest <= PAGE_MAX_BYTES,
      },
      {
        item: '3 work on demand: /history pages consistent',
        input: `walk every page by \`next\` over ${count} records`,
        measured: `${distinct}/${count} listed, ${duplicates} duplicate(s), ${ordered ? 'newest first' : 'out of order'}`,
        target: `${count}/${count}, 0 duplicates, newest first`,
        ok: distinct === count && duplicates === 0 && ordered,
      },
    ];
  } finally {
    await guard?.stop();
    await app.close();
  }
}

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  ctx.log('api-on-demand: concurrent preflight');
  const rows = await preflightRows(ctx, path.join(ctx.workDir, 'preflight'));
  ctx.log('api-on-demand: paginated history');
  rows.push(...(await historyRows(ctx, path.join(ctx.workDir, 'history'))));
  return rows;
}
