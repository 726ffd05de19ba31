/**
 * Kill -9 of the real guard daemon during a rollback, then a restart: shared by the integration
 * test (test/integration/orphan-steps.test.ts) and the chaos scenario (kill-points.ts).
 *
 * The world: an http app whose version is a file (v2 answers 500), a guard run as its CLI
 * (`node --import tsx src/cli/main.ts start`), and a plan of command steps that each append
 * "<step> start" / "<step> end" to a journal around a sleep, with a grandchild (`sleep`) in their
 * process group; the last step writes the version file back to {to}. From the journal: how often
 * each step's side effect (its "end") happened; from /proc: which of the plan's processes are
 * still alive after the guard stopped; from the state dir: how many records were written.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { GuardState } from '../../src/core/types.js';
import { PROJECT_ROOT } from '../../test/fixtures/demo-app/releases.js';
import { chaosConfig } from './chaos-kit.js';

export const KILL_STEPS = ['alpha', 'bravo', 'charlie'] as const;

export interface KillOutcome {
  /** Where the kill landed: phase and the step running (or the last one finished). */
  landed: string;
  /** The step-process registry entries the killed guard left. */
  registryAtKill: string[];
  /** Per step: how often it started and how often its side effect ("end") happened. */
  journal: Record<string, { start: number; end: number }>;
  /** Steps whose side effect happened more than once. */
  doubled: string[];
  /** Record files (json, md) in the state dir after the rollback. */
  records: { json: number; md: number };
  /** Processes of the plan still alive once the last guard stopped. */
  orphans: number;
  /** The orphan-stop lines the restarted guard logged, and whether they came before the rerun. */
  orphanStopsLogged: number;
  stoppedBeforeRerun: boolean;
  final: GuardState;
  logs: string[];
}

export interface KillOptions {
  /** Seconds each step sleeps between "start" and "end". */
  stepSleepS?: number;
  /** Where to keep the run (deleted afterwards). */
  baseDir?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function readState(stateDir: string): Promise<GuardState | null> {
  try {
    return JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as GuardState;
  } catch {
    return null;
  }
}

/** Pids of live processes whose command line names `marker` (every plan process names the journal). */
export async function processesNaming(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8');
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      if (cmdline.includes(marker) && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z') out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/**
 * Runs one fault: guard up with v1 stable, v2 deployed (failing), the guard killed with SIGKILL
 * when `killWhen(state, journal)` holds, a new guard started, the rollback finished, the guard
 * stopped with SIGTERM. Always cleans up what it started.
 */
export async function killAndRecover(
  killWhen: (state: GuardState, journal: string) => boolean,
  options: KillOptions = {},
): Promise<KillOutcome> {
  // Longer than a guard takes to start on a loaded machine (tsx compiles on the way).
  const stepSleepS = options.stepSleepS ?? 12;
  const stateDir = await mkdtemp(join(options.baseDir ?? tmpdir(), 'rg-kill-'));
  const journalFile = join(stateDir, 'journal.log');
  const versionFile = join(stateDir, 'app-version');
  await writeFile(journalFile, '');
  await writeFile(versionFile, 'v1');
  const app = http.createServer((_req, res) => {
    void readFile(versionFile, 'utf8').then((v) => {
      const version = v.trim();
      res.writeHead(version === 'v2' ? 500 : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ version }));
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const appPort = (app.address() as AddressInfo).port;
  // The grandchild names the journal ($1) so it can be found; `; :` keeps its shell from exec'ing sleep.
  // A step's first run sleeps longer than a guard takes to start (so a killed guard's orphan is
  // still mid-step when the next guard starts); a rerun (its start already journaled) is quick.
  const script = `if grep -q "^$0 start" "$1"; then s=0.2; else s=${stepSleepS}; fi; echo "$0 start" >> "$1"; sh -c 'sleep 300; :' "$1" >/dev/null 2>&1 & sleep $s; echo "$0 end" >> "$1"`;
  const config = chaosConfig({
    stateDir,
    port: 0,
    healthUrl: `http://127.0.0.1:${appPort}/health`,
    steps: [
      ...KILL_STEPS.map((step) => ({ type: 'command', command: ['/bin/sh', '-c', script, step, journalFile], timeout: '20s' })),
      { type: 'command', command: ['/bin/sh', '-c', 'printf "%s" "$1" > "$0"', versionFile, '{to}'], timeout: '10s' },
    ],
    // Every guard's log is kept in memory for the report: info is enough.
    extra: { log: { level: 'info', format: 'json' } },
  });
  const configFile = join(stateDir, 'config.yaml');
  await writeFile(configFile, stringify(config));
  const logs: string[] = [];
  const children = new Set<ChildProcess>();
  const startGuard = () => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', configFile], {
      cwd: PROJECT_ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const index = logs.push('') - 1;
    child.stderr!.on('data', (chunk: Buffer) => (logs[index] += chunk.toString()));
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  };
  const stop = async (child: ChildProcess, signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  try {
    const first = startGuard();
    await waitFor('v1 stable', async () => (await readState(stateDir))?.stable === 'v1', 30_000, 50);
    await writeFile(versionFile, 'v2');
    const atKill = await waitFor(
      'the kill point',
      async () => {
        const state = await readState(stateDir);
        return state && killWhen(state, await readFile(journalFile, 'utf8')) ? state : null;
      },
      40_000,
      5,
    );
    await stop(first, 'SIGKILL');
    const running = atKill.rollback?.steps.find((s) => s.finishedAt === undefined);
    const landed = `${atKill.phase}${running ? `, step ${running.index + 1} running` : atKill.rollback ? `, ${atKill.rollback.steps.filter((s) => s.ok).length} steps done` : ''}`;

    // What the killed guard noted of its running step groups (the new guard must find these).
    const registryAtKill: string[] = [];
    for (const name of await readdir(join(stateDir, 'step-processes')).catch(() => [] as string[])) {
      registryAtKill.push(await readFile(join(stateDir, 'step-processes', name), 'utf8').catch(() => name));
    }
    const second = startGuard();
    const final = await waitFor('rolled_back', async () => {
      const state = await readState(stateDir);
      return state?.phase === 'rolled_back' ? state : null;
    }, 60_000, 50);
    await waitFor('the record', () => logs.join('').includes('"rollback record written"'), 15_000, 50);
    await stop(second, 'SIGTERM');

    const journal: KillOutcome['journal'] = Object.fromEntries(KILL_STEPS.map((s) => [s, { start: 0, end: 0 }]));
    for (const line of (await readFile(journalFile, 'utf8')).split('\n').filter(Boolean)) {
      const [step, what] = line.split(' ') as [string, 'start' | 'end'];
      journal[step]![what]++;
    }
    const names = await readdir(join(stateDir, 'rollbacks'));
    const restart = logs[1] ?? '';
    const stopLine = restart.indexOf('a previous guard left running mid-step');
    const rerunLine = restart.search(/step \d\/4 started/);
    return {
      landed,
      registryAtKill,
      journal,
      doubled: KILL_STEPS.filter((s) => journal[s]!.end > 1),
      records: { json: names.filter((n) => n.endsWith('.json')).length, md: names.filter((n) => n.endsWith('.md')).length },
      orphans: (await processesNaming(journalFile)).length,
      orphanStopsLogged: restart.split('a previous guard left running mid-step').length - 1,
      stoppedBeforeRerun: stopLine >= 0 && (rerunLine < 0 || stopLine < rerunLine),
      final,
      logs,
    };
  } finally {
    for (const child of children) child.kill('SIGKILL');
    // Whatever the run left (this is cleanup of our own processes, found by our own journal path).
    for (const pid of await processesNaming(journalFile)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone.
      }
    }
    app.closeAllConnections();
    await new Promise((resolve) => app.close(resolve));
    await rm(stateDir, { recursive: true, force: true });
  }
}

/** Kill points: mid-step k (its program has written "start"), or right after step k finished. */
export const midStep = (k: number) => (state: GuardState, journal: string) =>
  state.phase === 'rolling_back' && journal.includes(`${KILL_STEPS[k]} start`) && state.rollback!.steps.some((s) => s.index === k && s.finishedAt === undefined);

export const afterStep = (k: number) => (state: GuardState) =>
  state.phase === 'rolling_back' && state.rollback!.steps.some((s) => s.index === k && s.ok === true);
