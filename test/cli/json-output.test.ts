/**
 * `--json` on every command that prints, against a small fake daemon (the real API server with
 * its bearer token, a fake GuardControl whose state the control requests change): stdout is
 * exactly one JSON document with stable field names, progress stays on stderr, and an error is a
 * `release-guard: …` line on stderr with the exit code and nothing on stdout.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startApiServer, type ApiServer } from '../../src/api/server.js';
import type { ControlRequest, GuardControl, StatusView } from '../../src/api/types.js';
import { main } from '../../src/cli/main.js';
import { initialState } from '../../src/core/transition.js';
import { newRelease } from '../../src/core/windows.js';
import type { GuardState } from '../../src/core/types.js';
import { freePort } from '../helpers/pm2-sandbox.js';

const TOKEN = 'json-test-token-0123456789';

/** The fake daemon's state; control requests move it as the real one would, roughly. */
let state: GuardState;
let requests: ControlRequest[] = [];
/** What the next control request answers instead of ok (a refusal). */
let refuse: string | null = null;
/** After a `release`, the phase the window ends in (what --wait then sees). */
let windowEndsIn: 'promoted' | 'failed' = 'promoted';

function view(): StatusView {
  const now = new Date().toISOString();
  return {
    service: 'web',
    phase: state.phase,
    paused: state.paused,
    since: new Date(state.since).toISOString(),
    stable: state.stable,
    running: state.running,
    release: null,
    rollback: null,
    wouldRollBack: null,
    pendingRollback: null,
    failure: state.failure,
    rules: [],
    lastRollback: null,
    now,
  } as StatusView;
}

function apply(request: ControlRequest): void {
  switch (request.action) {
    case 'release':
      if (windowEndsIn === 'promoted') state = { ...state, phase: 'stable', release: null, rollback: null, drill: null, failure: null, stable: request.version, running: request.version };
      else state = { ...state, phase: 'failed', release: newRelease({ version: request.version, previous: state.stable, startedAt: Date.now(), deployedBy: 'ci', source: 'manual' }), rollback: null, drill: null, running: request.version, failure: 'rollback step 1 exited 1' };
      break;
    case 'pause':
      state = { ...state, paused: true };
      break;
    case 'resume':
      state = { ...state, paused: false };
      break;
    default:
      break;
  }
}

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    env: { RELEASE_GUARD_TOKEN: TOKEN, ...env },
    out: (text) => void (stdout += text),
    err: (text) => void (stderr += text),
    color: false,
  });
  return { code, stdout, stderr };
}

describe('--json on every command that prints', () => {
  let server: ApiServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-json-'));
    const control = {
      status: () => view(),
      control: async (request: ControlRequest) => {
        requests.push(request);
        if (refuse !== null) return { ok: false as const, error: refuse };
        apply(request);
        return { ok: true as const, state };
      },
    };
    // Cast: only status() and control() are reached by these commands.
    server = await startApiServer({ host: '127.0.0.1', port: 0, token: TOKEN, control: control as unknown as GuardControl });
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    state = { ...initialState(Date.now()), phase: 'stable', stable: 'v1', running: 'v1' };
    requests = [];
    refuse = null;
    windowEndsIn = 'promoted';
  });

  const summaryKeys = ['action', 'ok', 'paused', 'phase', 'release', 'running', 'stable'];

  it.each([
    [['promote'], 'promote'],
    [['pause'], 'pause'],
    [['resume'], 'resume'],
    [['veto', '--reason', 'looks fine'], 'veto'],
    [['rollback', '--reason', 'manual', '--to', 'v0'], 'rollback'],
    [['release', 'v2'], 'release'],
  ])('%j --json prints the daemon\'s summary as one JSON object', async (args, action) => {
    const { code, stdout, stderr } = await cli([...args, '--json', '--url', server.url]);
    expect(code, stderr).toBe(0);
    const summary = JSON.parse(stdout) as Record<string, unknown>;
    expect(Object.keys(summary).sort()).toEqual(summaryKeys);
    expect(summary).toMatchObject({ ok: true, action });
    expect(requests.map((r) => r.action)).toEqual([action]);
    if (action === 'pause') expect(summary.paused).toBe(true);
  });

  it('without --json the same command prints one line for people', async () => {
    const { code, stdout } = await cli(['pause', '--url', server.url]);
    expect(code).toBe(0);
    expect(stdout).toBe('pause: ok (phase stable, stable v1, paused)\n');
  });

  it('release --wait --json ends with one outcome object on stdout, progress on stderr: promoted, exit 0', async () => {
    const { code, stdout, stderr } = await cli(['release', 'v2', '--wait', '--json', '--url', server.url]);
    expect(code, stderr).toBe(0);
    expect(JSON.parse(stdout)).toEqual({ version: 'v2', outcome: 'promoted', code: 0, message: 'v2 promoted' });
    expect(stderr).toContain('release v2 announced; following its window');
  });

  it('release --wait --json: a failed rollback is outcome rollback_failed, exit 3', async () => {
    windowEndsIn = 'failed';
    const { code, stdout } = await cli(['release', 'v2', '--wait', '--json', '--url', server.url]);
    expect(code).toBe(3);
    const outcome = JSON.parse(stdout) as Record<string, unknown>;
    expect(outcome).toMatchObject({ version: 'v2', outcome: 'rollback_failed', code: 3 });
    expect(outcome.message).toMatch(/rollback step 1 exited 1/);
  });

  it('release --wait --json: a refused release is outcome no_verdict, exit 4', async () => {
    refuse = 'automation is frozen';
    const { code, stdout } = await cli(['release', 'v2', '--wait', '--json', '--url', server.url]);
    expect(code).toBe(4);
    expect(JSON.parse(stdout)).toMatchObject({ version: 'v2', outcome: 'no_verdict', code: 4 });
  });

  it('release --wait with no daemon to reach is no_verdict, exit 4 (never 1, which reads as rolled back)', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const { code, stdout } = await cli(['release', 'v2', '--wait', '--json', '--url', gone]);
    expect(code).toBe(4);
    expect(JSON.parse(stdout)).toMatchObject({ version: 'v2', outcome: 'no_verdict', code: 4, message: expect.stringMatching(/cannot reach release-guard/) });
  });

  it('an error with --json is one line on stderr, exit 1, nothing on stdout', async () => {
    refuse = 'nothing to roll back to';
    const { code, stdout, stderr } = await cli(['rollback', '--reason', 'x', '--json', '--url', server.url]);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^release-guard: .*nothing to roll back to/);
  });

  it('a usage error with --json is exit 2, nothing on stdout', async () => {
    const { code, stdout, stderr } = await cli(['release', 'not a version!', '--json', '--url', server.url]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^release-guard: /);
  });

  it('config validate --json prints {file, ok} for a valid file; problems go to stderr with exit 1', async () => {
    const file = join(dir, 'config.yaml');
    const init = await cli(['init', '--json', '-o', file, '--service', 'web', '--state-dir', join(dir, 'state')], { PM2_HOME: join(dir, 'pm2') });
    expect(init.code, init.stderr).toBe(0);
    const report = JSON.parse(init.stdout) as { file: string; inferred: unknown; todo: unknown };
    expect(Object.keys(report).sort()).toEqual(['file', 'inferred', 'todo']);
    expect(report.file).toBe(file);
    expect(Array.isArray(report.inferred) && Array.isArray(report.todo)).toBe(true);

    const valid = await cli(['config', 'validate', '--json', file]);
    expect(valid.code, valid.stderr).toBe(0);
    expect(JSON.parse(valid.stdout)).toEqual({ file, ok: true });

    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'service: 42\n');
    const invalid = await cli(['config', 'validate', '--json', bad]);
    expect(invalid.code).toBe(1);
    expect(invalid.stdout).toBe('');
    expect(invalid.stderr).toMatch(/^release-guard: /);
  });
});
