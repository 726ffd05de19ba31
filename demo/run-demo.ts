/**
 * `npm run demo`: a demo app under a private pm2, a bad release, the automatic rollback.
 *
 * Builds releases v1 (good) and v2 (answers 5xx a few seconds after it starts) in a Capistrano
 * layout, runs v1 in pm2 cluster mode, starts release-guard on the embedded file store, deploys
 * v2 under steady traffic, and shows how the guard detects the fault, rolls back to v1 and
 * verifies it. Prints the timeline and the rollback record, then stops everything it started.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfigText } from '../src/config/load.js';
import { formatDuration } from '../src/config/duration.js';
import { createLogger } from '../src/log.js';
import { Pm2ApiClient } from '../src/pm2/pm2-api-client.js';
import { startDaemon, type RunningDaemon } from '../src/shell/daemon.js';
import { buildRelease, freePort, pointCurrent } from '../test/fixtures/demo-app/releases.js';
import { startLoad } from './load.js';

const APP = 'demo-web';
const FAULT_AFTER_MS = 3000;
const t0 = Date.now();
const say = (message: string) => console.log(`[demo +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, check: () => T | null | undefined | false, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(50);
  }
}

async function main(): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'rg-demo-'));
  const deployDir = join(root, 'app');
  const pm2Home = join(root, 'pm2');
  const stateDir = join(root, 'state');
  const keep = process.argv.includes('--keep');
  const pm2 = new Pm2ApiClient({ home: pm2Home });
  let daemon: RunningDaemon | null = null;
  let exit = 1;
  try {
    say(`working in ${root}`);
    const appPort = await freePort();
    await buildRelease(deployDir, 'v1');
    await buildRelease(deployDir, 'v2', { fault: '5xx', faultAfterMs: FAULT_AFTER_MS });
    await pointCurrent(deployDir, 'v1');
    say(`built releases v1 (good) and v2 (answers 500 ${FAULT_AFTER_MS / 1000}s after it starts); current -> releases/v1`);

    await pm2.connect();
    await pm2.start({ name: APP, script: join(deployDir, 'current', 'server.cjs'), execMode: 'cluster', instances: 2, env: { PORT: String(appPort) } });
    const health = `http://127.0.0.1:${appPort}/health`;
    say(`v1 running under a private pm2 (cluster mode, 2 instances) on ${health}`);

    const token = 'demo-token';
    process.env.RELEASE_GUARD_DEMO_TOKEN = token;
    const config = parseConfigText(
      stringify({
        service: APP,
        state_dir: stateDir,
        server: { host: '127.0.0.1', port: 0, token_env: 'RELEASE_GUARD_DEMO_TOKEN' },
        log: { level: 'info', format: 'pretty' },
        pm2: { home: pm2Home, app: APP },
        probes: [
          { name: 'health', type: 'http', url: health, timeout: '1s', version_path: 'version', json_field: { path: 'status', equals: 'ok' } },
          { name: 'host', type: 'system' },
        ],
        schedule: { interval: '500ms', fast_interval: '100ms', fast_for: '1m' },
        release: { version_probe: 'health', window: '30s', initial_delay: '5s', settle: '2s' },
        rules: {
          health: { probe: 'health', consecutive: 3 },
          error_rate: { probe: 'health', threshold: 0.05, window: '10s', min_samples: 20 },
          latency_ratio: { probe: 'health', ratio: 3, floor: '50ms', window: '10s', min_samples: 10 },
          cpu: { probe: 'host' },
          memory: { probe: 'host' },
        },
        rollback: { steps: [{ type: 'releases', dir: deployDir, pm2_app: APP, restart_mode: 'reload', timeout: '30s' }] },
        verification: { probe: 'health', passes: 3, timeout: '20s' },
      }),
      'demo config',
    );
    await writeFile(join(root, 'release-guard.yaml'), stringify(config));
    const log = createLogger({ level: 'info', format: 'pretty', stream: process.stdout });
    daemon = await startDaemon(config, { log, pm2 });
    const guard = daemon.guard;
    say(`release-guard started (API ${daemon.url}); waiting until it knows v1 as stable`);
    say(`watch it live in a browser: ${daemon.url}/`);
    await waitFor('v1 stable', () => guard.current.stable === 'v1', 15_000);
    await waitFor("v1's latency baseline", () => guard.baseline('v1', 'health'), 30_000);
    say(`baseline learnt: v1 health p95 ${guard.baseline('v1', 'health')!.toFixed(1)}ms`);

    const load = startLoad(`http://127.0.0.1:${appPort}/api/items`, 50, 120_000);
    await sleep(1000);
    say('deploying v2: current -> releases/v2, pm2 reload (as a deploy script would)');
    await pointCurrent(deployDir, 'v2');
    const deployedAt = Date.now();
    await pm2.reload(APP);
    say('v2 is live; release-guard should notice the new version by itself');
    await waitFor('the release window', () => guard.current.phase === 'guarding' || guard.current.phase === 'rolling_back', 15_000);
    say(`release window open for v2 (previous v1); v2 turns bad ${FAULT_AFTER_MS / 1000}s after it starts`);

    let last = guard.current.phase;
    const final = await waitFor(
      'the rollback to finish',
      () => {
        const s = guard.current;
        if (s.phase !== last) {
          say(`state: ${last} -> ${s.phase}${s.rollback && s.phase === 'rolling_back' ? ` (${s.rollback.breach.reason})` : ''}`);
          last = s.phase;
        }
        if (s.phase === 'promoted') throw new Error('v2 was promoted: the guard did not see the fault');
        return s.phase === 'rolled_back' || s.phase === 'failed' ? s : null;
      },
      60_000,
    );
    await sleep(1000);
    const traffic = await load.stop();

    const answer = (await (await fetch(health)).json()) as { version: string };
    const records = await guard.history();
    const record = records.rollbacks[0];
    console.log('');
    if (final.phase !== 'rolled_back' || !record) {
      say(`the rollback did not complete: ${final.phase} ${final.failure ?? ''}`);
      return 1;
    }
    const rb = final.rollback!;
    const breach = rb.breach;
    const line = (label: string, at: number) => console.log(`  ${label.padEnd(24)} ${new Date(at).toISOString()}  (+${formatDuration(at - deployedAt)} after deploy)`);
    console.log('Timeline');
    line('v2 deployed', deployedAt);
    line('fault began', breach.faultAt);
    line('rollback decided', breach.decidedAt);
    line('rolled back (plan done)', rb.executedAt ?? breach.decidedAt);
    line('verified on v1', final.since);
    console.log(`  detection: ${formatDuration(breach.decidedAt - breach.faultAt)} after the fault; recovery: ${formatDuration(final.since - breach.faultAt)}`);
    console.log(`  traffic: ${traffic.sent} requests at 50/s, ${traffic.failed} failed; versions served: ${traffic.versions.join(' -> ')}`);
    console.log(`  the app now answers version ${answer.version}`);
    const md = await readFile(join(stateDir, 'rollbacks', `${record.id}.md`), 'utf8');
    console.log(`\nRollback record (${join(stateDir, 'rollbacks', `${record.id}.md`)}):\n`);
    console.log(md);
    exit = answer.version === 'v1' ? 0 : 1;
    return exit;
  } finally {
    if (keep && daemon) {
      say(`--keep: release-guard and the app stay up; the page is at ${daemon.url}/ (token: demo-token). Ctrl-C stops them`);
      await new Promise((resolve) => ['SIGINT', 'SIGTERM'].forEach((signal) => process.once(signal, resolve)));
    }
    say('cleaning up: stopping release-guard, the app and the private pm2');
    await daemon?.stop().catch((e: unknown) => say(`guard stop: ${String(e)}`));
    await pm2.delete(APP).catch(() => undefined);
    await pm2.killDaemon().catch(() => undefined);
    await pm2.disconnect().catch(() => undefined);
    if (!keep) await rm(root, { recursive: true, force: true });
    else say(`kept ${root}`);
    say(exit === 0 ? 'demo finished: bad release caught and rolled back' : 'demo FAILED');
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  },
);
