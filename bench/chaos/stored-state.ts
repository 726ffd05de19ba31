/**
 * Chaos scenario for issue 13 item 4, stored state is not trusted: the built guard
 * (`release-guard start`, its own process) started on a state dir whose state.json is corrupt,
 * foreign or hostile (a rollback in progress whose `from` is "-rf", a release version "../x").
 * Each must be refused with one clear line and a non-zero exit, the file left byte-identical and
 * nothing acted on: the plan's command step (which would write its {from} to a marker file) never
 * runs, no window's data dir appears.
 *
 * The control: the same rollback in progress with a safe `from` is resumed by the same guard (the
 * marker is written), so "nothing acted" is a reading that can fail.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { initialState } from '../../src/core/transition.js';
import { windowId } from '../../src/core/windows.js';
import { GUARD_CLI, launcherNodeFlags, TOKEN, TOKEN_ENV } from '../guard.js';
import { exited, sleep, spawnTracked, stopChild } from '../proc.js';
import { chaosConfig, fileVersionApp, type FileVersionApp } from './chaos-kit.js';
import type { ChaosContext, ChaosRow } from './types.js';

/** A refused start must end within this. */
const EXIT_WITHIN_MS = 20_000;

/** A rollback in progress from `from` to v1, as a guard killed mid-plan leaves it. */
function rollingBack(from: string): Record<string, unknown> {
  const at = Date.parse('2026-01-01T10:00:00.000Z');
  const release = { id: windowId(at, from), version: from, previous: 'v1', startedAt: at, deployedBy: 'ci', source: 'manual' };
  const breach = { trigger: 'rule', rules: ['health'], reason: 'health failed 3 times', verdicts: [], decidedAt: at + 5000, faultAt: at + 4000 };
  return {
    ...initialState(at),
    phase: 'rolling_back',
    stable: 'v1',
    running: from,
    release,
    rollback: { from, to: 'v1', breach, startedAt: at + 5000, attempt: 1, steps: [], verifyPasses: 0 },
  };
}

const VARIANTS: { name: string; content: () => Buffer; quick: boolean }[] = [
  { name: 'truncated JSON (a write cut short)', content: () => Buffer.from(JSON.stringify(rollingBack('v2')).slice(0, 120)), quick: true },
  { name: 'empty file', content: () => Buffer.alloc(0), quick: false },
  { name: 'binary garbage', content: () => randomBytes(4096), quick: false },
  { name: 'foreign JSON (a package.json)', content: () => Buffer.from(JSON.stringify({ name: 'left-pad', version: '1.3.0', dependencies: {} })), quick: true },
  { name: 'wrong schema (phase 42)', content: () => Buffer.from(JSON.stringify({ ...initialState(1), phase: 42 })), quick: false },
  { name: 'rollback in progress, from "-rf"', content: () => Buffer.from(JSON.stringify(rollingBack('-rf'))), quick: true },
  { name: 'rollback in progress, from "../x"', content: () => Buffer.from(JSON.stringify(rollingBack('../x'))), quick: true },
  { name: 'stable version "--help"', content: () => Buffer.from(JSON.stringify({ ...initialState(1), stable: '--help', running: '--help' })), quick: false },
];

interface StartOutcome {
  /** Exit code, or null when the guard was still running after EXIT_WITHIN_MS. */
  code: number | null;
  lines: string[];
  unchanged: boolean;
  /** The marker the plan's step writes, or '' when it never ran. */
  marker: string;
  windows: string[];
}

async function startOn(dir: string, app: FileVersionApp, content: Buffer): Promise<StartOutcome> {
  const stateDir = path.join(dir, 'state');
  await mkdir(stateDir, { recursive: true });
  const stateFile = path.join(stateDir, 'state.json');
  await writeFile(stateFile, content);
  const marker = path.join(dir, 'step-ran');
  const config = path.join(dir, 'config.json');
  // The step would record the {from} it ran with: a hostile one never gets that far.
  const step = { type: 'command', command: ['/bin/sh', '-c', 'printf "%s\\n" "$1" >> "$0"', marker, '{from}'], timeout: '10s' };
  await writeFile(config, JSON.stringify(chaosConfig({ stateDir, port: 0, healthUrl: app.url, steps: [step], extra: { log: { level: 'info', format: 'json' } } })));
  const child = spawnTracked(process.execPath, [...launcherNodeFlags(), GUARD_CLI, 'start', '--config', config], {
    env: { ...process.env, NO_COLOR: '1', [TOKEN_ENV]: TOKEN },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  // Until it exits, or its step ran (the control keeps running once it resumed).
  const deadline = Date.now() + EXIT_WITHIN_MS;
  while (!exited(child) && Date.now() < deadline && (await readFile(marker, 'utf8').catch(() => '')) === '') await sleep(100);
  const ended = exited(child);
  await stopChild(child, 5000);
  return {
    code: ended ? child.exitCode : null,
    lines: stderr.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('{')).map((l) => l.replaceAll(stateFile, 'state.json')),
    unchanged: Buffer.compare(await readFile(stateFile), content) === 0,
    marker: await readFile(marker, 'utf8').catch(() => ''),
    windows: await readdir(path.join(stateDir, 'windows')).catch(() => []),
  };
}

export async function run(ctx: ChaosContext): Promise<ChaosRow[]> {
  const app = await fileVersionApp(path.join(ctx.workDir, 'app'));
  const rows: ChaosRow[] = [];
  try {
    const variants = VARIANTS.filter((v) => !ctx.quick || v.quick);
    let acted = 0;
    for (const [i, variant] of variants.entries()) {
      ctx.log(`stored-state: ${variant.name}`);
      const o = await startOn(path.join(ctx.workDir, `v${i}`), app, variant.content());
      const clear = o.lines.length === 1 && /cannot start: state\.json is not (valid JSON|a valid release-guard state \(.+\)); .*move it aside/.test(o.lines[0]!);
      const didSomething = o.marker !== '' || o.windows.length > 0;
      if (didSomething) acted++;
      rows.push({
        item: '4 stored state: refused',
        input: `state.json: ${variant.name}`,
        measured:
          `${o.code === null ? `still running after ${EXIT_WITHIN_MS / 1000} s` : `exit ${o.code}`}, ${o.lines.length} line(s)${o.lines[0] ? `: ${o.lines[0].slice(0, 150)}` : ''}; ` +
          `file ${o.unchanged ? 'byte-identical' : 'CHANGED'}; ${didSomething ? `acted (step ran: ${JSON.stringify(o.marker.trim())}, windows: ${o.windows.length})` : 'nothing acted'}`,
        target: 'exit ≠ 0, one clear line, file unchanged, nothing acted',
        ok: o.code !== null && o.code !== 0 && clear && o.unchanged && !didSomething,
      });
    }
    // The control: a safe rollback in progress is resumed (the step runs with its from).
    ctx.log('stored-state: control (a safe rollback in progress)');
    const control = await startOn(path.join(ctx.workDir, 'control'), app, Buffer.from(JSON.stringify(rollingBack('v2'))));
    rows.push({
      item: '4 stored state: hostile states acted on',
      input: `${variants.length} hostile state files; control: the same rollback in progress from "v2"`,
      measured: `${acted} (control: ${control.marker.trim() === 'v2' ? 'resumed, step ran with from v2' : `NOT resumed (${control.code === null ? 'running' : `exit ${control.code}`}, marker ${JSON.stringify(control.marker)})`})`,
      target: '0 (control resumed)',
      ok: acted === 0 && control.marker.trim() === 'v2',
    });
    return rows;
  } finally {
    await app.close();
  }
}
