/**
 * Docker and Kubernetes cannot run on this machine (no Docker daemon, no cluster), so the docker
 * and kubernetes strategies are exercised through fakes that record arguments: executable
 * `docker` and `kubectl` node scripts in a temp directory put first on PATH. Each appends its
 * argv as one JSON line to a log, answers like the real tool for the subcommands the strategies
 * use (state kept in a JSON file: containers and images; deployment revisions), and fails on
 * demand (state.fail["<subcommand>"] = { stderr, code, times }). The strategies run through the
 * real ProcessRunner, so spawning, argument vectors and stderr tails are real; only the tools
 * are not.
 */
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type DockerStrategyConfig, type KubernetesStrategyConfig } from '../../src/config/schema.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { dockerStrategy } from '../../src/strategies/docker.js';
import { createStrategy } from '../../src/strategies/index.js';
import { kubernetesStrategy, parseHistory, UNDO_RECORD } from '../../src/strategies/kubernetes.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import { rejection } from '../helpers/rejection.js';
import { systemClock } from '../../src/shell/clock.js';

/** Shared by both fakes: argv log, state file, failure injection. */
const FAKE_COMMON = String.raw`
const fs = require('node:fs');
// Steps run with a minimal environment (never the guard's own): the fakes find this test's files
// through a pointer file beside them, not through the environment.
const where = JSON.parse(fs.readFileSync(require('node:path').join(__dirname, 'fake-env.json'), 'utf8'));
const stateFile = where.state;
const argv = process.argv.slice(2);
fs.appendFileSync(where.log, JSON.stringify({ tool: TOOL, argv }) + '\n');
const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
const save = () => fs.writeFileSync(stateFile, JSON.stringify(state, null, 2));
function fail(stderr, code = 1) {
  process.stderr.write(stderr.endsWith('\n') ? stderr : stderr + '\n');
  process.exit(code);
}
function maybeFail(key) {
  const failure = state.fail && state.fail[key];
  if (!failure) return;
  if (failure.times !== undefined) {
    failure.times -= 1;
    if (failure.times <= 0) delete state.fail[key];
    save();
  }
  fail(failure.stderr, failure.code ?? 1);
}
`;

const FAKE_DOCKER = String.raw`#!/usr/bin/env node
const TOOL = 'docker';
${FAKE_COMMON}
const option = (name) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
const render = (format, c) =>
  format.replaceAll('{{.Config.Image}}', c.image).replaceAll('{{.State.Running}}', String(c.running)).replaceAll('{{.State.Status}}', c.status);
const [command, sub] = argv;
const key = command === 'image' ? 'image ' + sub : command === 'compose' ? 'compose ' + argv[argv.indexOf('-f') + 2] : command;
maybeFail(key);
const name = argv.at(-1);
const container = state.containers[name];
switch (key) {
  case 'inspect':
    if (!container) fail('Error: No such container: ' + name);
    console.log(render(option('--format'), container));
    break;
  case 'stop':
    if (!container) fail('Error response from daemon: No such container: ' + name);
    Object.assign(container, { running: false, status: 'exited' });
    if (container.autoRemove) delete state.containers[name]; // docker run --rm
    save();
    console.log(name);
    break;
  case 'rm':
    if (!container) fail('Error response from daemon: No such container: ' + name);
    if (container.running) fail('Error response from daemon: You cannot remove a running container ' + name + '. Stop the container before attempting removal or force remove');
    delete state.containers[name];
    save();
    console.log(name);
    break;
  case 'run': {
    const containerName = option('--name');
    if (state.containers[containerName]) fail('docker: Error response from daemon: Conflict. The container name "/' + containerName + '" is already in use.', 125);
    if (!state.images.includes(name)) fail("Unable to find image '" + name + "' locally", 125);
    state.containers[containerName] = state.crashOnStart
      ? { image: name, running: false, status: 'exited' }
      : { image: name, running: true, status: 'running' };
    save();
    console.log('4f1c0ffee'.padEnd(64, '0'));
    break;
  }
  case 'image inspect':
    if (!state.images.includes(name)) fail('Error response from daemon: No such image: ' + name);
    console.log('sha256:' + '1'.repeat(64));
    break;
  case 'compose up': {
    const file = option('-f');
    if (!fs.existsSync(file)) fail('open ' + file + ': no such file or directory', 14);
    state.compose = file;
    save();
    console.error(' Container app-web-1  Started');
    break;
  }
  case 'logs':
    console.error('Error: DATABASE_URL is not set');
    break;
  default:
    fail('fake docker: unsupported command ' + JSON.stringify(argv), 2);
}
`;

const FAKE_KUBECTL = String.raw`#!/usr/bin/env node
const TOOL = 'kubectl';
${FAKE_COMMON}
// Global flags may come anywhere; the rest are the command words and their own flags.
let namespace = 'default';
let context = 'default';
const rest = [];
for (let i = 0; i < argv.length; i += 1) {
  if (argv[i] === '-n' || argv[i] === '--namespace') namespace = argv[++i];
  else if (argv[i] === '--context') context = argv[++i];
  else rest.push(argv[i]);
}
const [verb, sub] = rest;
const key = verb === 'rollout' ? 'rollout ' + sub : verb;
maybeFail(key);
const resource = verb === 'rollout' ? rest[2] : rest[1];
const name = String(resource).replace(/^deployment\//, '');
const deployment = state.namespace === namespace && state.context === context ? state.deployments[name] : undefined;
if (!deployment) fail('Error from server (NotFound): deployments.apps "' + name + '" not found');
const current = () => deployment.revisions.find((r) => r.n === deployment.current);
switch (key) {
  case 'get': {
    const output = rest[rest.indexOf('-o') + 1];
    if (output === 'name') console.log('deployment.apps/' + name);
    else if (output === 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}') process.stdout.write(String(deployment.current));
    else fail('fake kubectl: unsupported output ' + output, 2);
    break;
  }
  case 'rollout history':
    console.log('deployment.apps/' + name);
    console.log('REVISION  CHANGE-CAUSE');
    for (const r of deployment.revisions) console.log(String(r.n).padEnd(10) + '<none>');
    console.log('');
    break;
  case 'rollout undo': {
    const flag = rest.find((a) => a.startsWith('--to-revision='));
    const wanted = flag ? Number(flag.split('=')[1]) : [...deployment.revisions].map((r) => r.n).filter((n) => n < deployment.current).sort((a, b) => b - a)[0];
    const target = deployment.revisions.find((r) => r.n === wanted);
    if (!target) fail('error: unable to find specified revision ' + wanted + ' in history');
    if (target.image === current().image) {
      console.log('deployment.apps/' + name + ' skipped rollback (current template already matches revision ' + wanted + ')');
      break;
    }
    // As Kubernetes does: the target's template becomes a new, highest revision.
    const next = Math.max(...deployment.revisions.map((r) => r.n)) + 1;
    deployment.revisions = deployment.revisions.filter((r) => r.n !== wanted).concat({ n: next, image: target.image });
    deployment.current = next;
    save();
    console.log('deployment.apps/' + name + ' rolled back');
    break;
  }
  case 'rollout status':
    console.log('Waiting for deployment "' + name + '" rollout to finish: 1 old replicas are pending termination...');
    console.log('deployment "' + name + '" successfully rolled out');
    break;
  default:
    fail('fake kubectl: unsupported command ' + JSON.stringify(argv), 2);
}
`;

interface LogLine {
  tool: 'docker' | 'kubectl';
  argv: string[];
}

const deps = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };
let bin: string;
let work: string;
let stateFile: string;
let logFile: string;
let dataDir: string;
const savedEnv = { PATH: process.env.PATH, RG_FAKE_STATE: process.env.RG_FAKE_STATE, RG_FAKE_LOG: process.env.RG_FAKE_LOG };

beforeAll(async () => {
  bin = await mkdtemp(path.join(os.tmpdir(), 'rg-fake-bin-'));
  for (const [name, source] of [
    ['docker', FAKE_DOCKER],
    ['kubectl', FAKE_KUBECTL],
  ] as const) {
    await writeFile(path.join(bin, name), source);
    await chmod(path.join(bin, name), 0o755);
  }
  // The runner passes its own environment on: the fakes shadow any real docker/kubectl.
  process.env.PATH = `${bin}${path.delimiter}${process.env.PATH ?? ''}`;
});

afterAll(async () => {
  for (const [key, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  await rm(bin, { recursive: true, force: true });
});

beforeEach(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'rg-fake-work-'));
  stateFile = path.join(work, 'state.json');
  logFile = path.join(work, 'calls.jsonl');
  dataDir = path.join(work, 'data');
  await writeFile(logFile, '');
  await mkdir(dataDir);
  process.env.RG_FAKE_STATE = stateFile;
  process.env.RG_FAKE_LOG = logFile;
  await writeFile(path.join(bin, 'fake-env.json'), JSON.stringify({ state: stateFile, log: logFile }));
});

afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

async function setState(state: unknown): Promise<void> {
  await writeFile(stateFile, JSON.stringify(state, null, 2));
}

async function state<T>(): Promise<T> {
  return JSON.parse(await readFile(stateFile, 'utf8')) as T;
}

async function calls(tool?: LogLine['tool']): Promise<string[][]> {
  const lines = (await readFile(logFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine);
  return lines.filter((l) => !tool || l.tool === tool).map((l) => l.argv);
}

async function clearCalls(): Promise<void> {
  await writeFile(logFile, '');
}

function context(overrides: Partial<RollbackContext> = {}): RollbackContext & { lines: string[] } {
  const lines: string[] = [];
  return {
    service: 'web',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => lines.push(message),
    dataDir,
    lines,
    ...overrides,
  };
}

describe('docker strategy (fake docker on PATH)', () => {
  type DockerState = {
    containers: Record<string, { image: string; running: boolean; status: string; autoRemove?: boolean }>;
    images: string[];
    compose?: string;
    crashOnStart?: boolean;
    fail?: Record<string, { stderr: string; code?: number; times?: number }>;
  };
  let envFile: string;

  const configOf = (input: Record<string, unknown>): DockerStrategyConfig => {
    const parsed = strategySchema.parse({ type: 'docker', timeout: '20s', ...input });
    if (parsed.type !== 'docker') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };
  const runConfig = () =>
    configOf({ container: 'web', image: 'registry/app', ports: ['3000:3000', '9464:9464'], env_file: envFile });

  const INSPECT_IMAGE = ['inspect', '--type', 'container', '--format', '{{.Config.Image}} {{.State.Running}}', 'web'];
  const INSPECT_STATE = ['inspect', '--type', 'container', '--format', '{{.State.Running}} {{.State.Status}}', 'web'];
  const runArgs = () => ['run', '-d', '--name', 'web', '-p', '3000:3000', '-p', '9464:9464', '--env-file', envFile, 'registry/app:v1'];

  beforeEach(async () => {
    envFile = path.join(work, '.env.local');
    await writeFile(envFile, 'PORT=3000\n');
    await setState({
      containers: { web: { image: 'registry/app:v2', running: true, status: 'running' } },
      images: ['registry/app:v1', 'registry/app:v2'],
    } satisfies DockerState);
  });

  it('replaces the container with the previous image and waits until it runs', async () => {
    const ctx = context();
    await (await createStrategy(runConfig(), deps)).execute(ctx);

    expect(await calls('docker')).toEqual([INSPECT_IMAGE, ['stop', 'web'], ['rm', 'web'], runArgs(), INSPECT_STATE, INSPECT_STATE]);
    expect((await state<DockerState>()).containers.web).toEqual({ image: 'registry/app:v1', running: true, status: 'running' });
    expect(ctx.lines).toContain('web runs registry/app:v2 (running)');
    expect(ctx.lines).toContain('web is running');
  });

  it('is idempotent: run again, a container already on the target image is left alone', async () => {
    const strategy = dockerStrategy(runConfig(), deps);
    await strategy.execute(context());
    await clearCalls();

    const ctx = context();
    await strategy.execute(ctx);
    expect(await calls('docker')).toEqual([INSPECT_IMAGE, INSPECT_STATE, INSPECT_STATE]);
    expect(ctx.lines).toContain('web already runs registry/app:v1; not replaced');
  });

  it('converges when resumed after a crash between rm and run', async () => {
    await setState({
      ...(await state<DockerState>()),
      fail: { run: { stderr: 'docker: Error response from daemon: failed to create task: OCI runtime create failed', code: 125, times: 1 } },
    });
    const strategy = dockerStrategy(runConfig(), deps);
    const error = await rejection(strategy.execute(context()));
    expect(error.step).toBe('run');
    expect(error.message).toContain('exited with code 125');
    expect(error.message).toContain('OCI runtime create failed');
    expect((await state<DockerState>()).containers).toEqual({});

    await clearCalls();
    const ctx = context();
    await strategy.execute(ctx);
    // No container left to stop or remove: straight to run.
    expect(await calls('docker')).toEqual([INSPECT_IMAGE, runArgs(), INSPECT_STATE, INSPECT_STATE]);
    expect(ctx.lines).toContain('web: no such container (removed by an earlier attempt?)');
    expect((await state<DockerState>()).containers.web?.image).toBe('registry/app:v1');
  });

  it('tolerates "No such container" from rm (a container started with --rm is gone once stopped)', async () => {
    await setState({
      ...(await state<DockerState>()),
      containers: { web: { image: 'registry/app:v2', running: true, status: 'running', autoRemove: true } },
    });
    const ctx = context();
    await dockerStrategy(runConfig(), deps).execute(ctx);
    expect(await calls('docker')).toEqual([INSPECT_IMAGE, ['stop', 'web'], ['rm', 'web'], runArgs(), INSPECT_STATE, INSPECT_STATE]);
    expect(ctx.lines).toContain('web: no such container; rm not needed');
    expect((await state<DockerState>()).containers.web?.image).toBe('registry/app:v1');
  });

  it('does not swallow other errors of stop or rm', async () => {
    await setState({
      ...(await state<DockerState>()),
      fail: { stop: { stderr: 'Error response from daemon: cannot stop container: web: permission denied' } },
    });
    const error = await rejection(dockerStrategy(runConfig(), deps).execute(context()));
    expect(error.step).toBe('stop');
    expect(error.message).toContain('permission denied');
    expect((await calls('docker')).map((argv) => argv[0])).toEqual(['inspect', 'stop']);
  });

  it('fails at once, with its logs, when the new container exits', async () => {
    await setState({ ...(await state<DockerState>()), crashOnStart: true });
    const started = Date.now();
    const error = await rejection(dockerStrategy(runConfig(), deps).execute(context()));
    expect(error.step).toBe('wait-running');
    expect(error.message).toContain('web did not stay up: status exited');
    expect(error.message).toContain('DATABASE_URL is not set');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await calls('docker')).at(-1)).toEqual(['logs', '--tail', '20', 'web']);
  });

  it('runs `docker compose -f <file of {to}> up -d` in compose mode', async () => {
    const file = path.join(work, 'docker-compose.v1.yml');
    await writeFile(file, 'services: {}\n');
    const config = configOf({ mode: 'compose', compose_file: path.join(work, 'docker-compose.{to}.yml') });
    const strategy = dockerStrategy(config, deps);
    expect(strategy.describe({ from: 'v2', to: 'v1' })).toBe(`docker: compose -f ${file} up -d`);
    expect(await strategy.checkReadiness(context())).toEqual([]);

    const ctx = context();
    await strategy.execute(ctx);
    await strategy.execute(ctx); // up -d converges: running it twice is the same call
    expect(await calls('docker')).toEqual([
      ['compose', '-f', file, 'up', '-d'],
      ['compose', '-f', file, 'up', '-d'],
    ]);
    expect((await state<DockerState>()).compose).toBe(file);
    expect(ctx.lines).toContain('   Container app-web-1  Started');

    expect(await strategy.checkReadiness(context({ to: 'v0' }))).toEqual([
      expect.stringContaining(`compose file ${path.join(work, 'docker-compose.v0.yml')} cannot be read`),
    ]);
  });

  it('checks that docker is installed and the image is there', async () => {
    expect(await dockerStrategy(runConfig(), deps).checkReadiness(context())).toEqual([]);
    expect(await dockerStrategy(runConfig(), deps).checkReadiness(context({ to: 'v0' }))).toEqual([
      expect.stringMatching(/^image registry\/app:v0 is not available locally: .*No such image: registry\/app:v0/),
    ]);
    const missing = configOf({ container: 'web', image: 'registry/app', docker: 'release-guard-no-docker' });
    expect(await dockerStrategy(missing, deps).checkReadiness(context())).toEqual([
      'release-guard-no-docker is not installed (not found or not executable)',
    ]);
    expect(await calls('docker')).toEqual([
      ['image', 'inspect', '--format', '{{.Id}}', 'registry/app:v1'],
      ['image', 'inspect', '--format', '{{.Id}}', 'registry/app:v0'],
    ]);
  });

  it('never lets a version like "v1;rm -rf /" reach docker', async () => {
    const evil = context({ to: 'v1;rm -rf /' });
    const run = await rejection(dockerStrategy(runConfig(), deps).execute(evil));
    expect(run.step).toBe('validate');
    const compose = await rejection(
      dockerStrategy(configOf({ mode: 'compose', compose_file: 'docker-compose.{to}.yml' }), deps).execute(evil),
    );
    expect(compose.step).toBe('validate');
    expect(await dockerStrategy(runConfig(), deps).checkReadiness(evil)).toEqual([expect.stringContaining('not allowed')]);
    expect(await calls()).toEqual([]);
  });
});

describe('kubernetes strategy (fake kubectl on PATH)', () => {
  type KubeState = {
    namespace: string;
    context: string;
    deployments: Record<string, { current: number; revisions: { n: number; image: string }[] }>;
    fail?: Record<string, { stderr: string; code?: number; times?: number }>;
  };
  const REVISION = ['get', 'deployment/web', '-o', 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}'];
  const HISTORY = ['rollout', 'history', 'deployment/web'];
  const STATUS = ['rollout', 'status', 'deployment/web', '--timeout=120s'];
  const ns = ['-n', 'prod'];

  const configOf = (input: Record<string, unknown> = {}): KubernetesStrategyConfig => {
    const parsed = strategySchema.parse({ type: 'kubernetes', deployment: 'web', namespace: 'prod', timeout: '2m', ...input });
    if (parsed.type !== 'kubernetes') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };
  const web = async () => (await state<KubeState>()).deployments.web!;
  const image = async () => {
    const d = await web();
    return d.revisions.find((r) => r.n === d.current)?.image;
  };

  beforeEach(async () => {
    await setState({
      namespace: 'prod',
      context: 'default',
      deployments: {
        web: {
          current: 3,
          revisions: [
            { n: 1, image: 'app:v0' },
            { n: 2, image: 'app:v1' },
            { n: 3, image: 'app:v2' },
          ],
        },
      },
    } satisfies KubeState);
  });

  it('records the history, undoes to the previous revision and waits for the rollout', async () => {
    const ctx = context();
    await (await createStrategy(configOf(), deps)).execute(ctx);

    expect(await calls('kubectl')).toEqual([
      [...ns, ...HISTORY],
      [...ns, ...REVISION],
      [...ns, 'rollout', 'undo', 'deployment/web'],
      [...ns, ...STATUS],
      [...ns, ...REVISION],
    ]);
    expect(await image()).toBe('app:v1');
    expect((await web()).current).toBe(4);
    expect(ctx.lines).toContain('  REVISION  CHANGE-CAUSE');
    expect(ctx.lines).toContain('  deployment "web" successfully rolled out');
    expect(ctx.lines.at(-1)).toBe('deployment/web is at revision 4 (was 3)');
    expect(JSON.parse(await readFile(path.join(dataDir, UNDO_RECORD), 'utf8'))).toMatchObject({
      schemaVersion: 1,
      namespace: 'prod',
      deployment: 'web',
      revisionBefore: 3,
      targetRevision: 2,
    });
  });

  it('passes --context and --to-revision', async () => {
    await setState({ ...(await state<KubeState>()), context: 'staging' });
    await kubernetesStrategy(configOf({ context: 'staging', to_revision: 1 }), deps).execute(context());
    const global = ['--context', 'staging', ...ns];
    expect(await calls('kubectl')).toEqual([
      [...global, ...HISTORY],
      [...global, ...REVISION],
      [...global, 'rollout', 'undo', 'deployment/web', '--to-revision=1'],
      [...global, ...STATUS],
      [...global, ...REVISION],
    ]);
    expect(await image()).toBe('app:v0');
  });

  it('is idempotent: run again, it does not undo the undo', async () => {
    const strategy = kubernetesStrategy(configOf(), deps);
    await strategy.execute(context());
    await clearCalls();

    const ctx = context();
    await strategy.execute(ctx);
    expect(await calls('kubectl')).toEqual([[...ns, ...HISTORY], [...ns, ...REVISION], [...ns, ...STATUS], [...ns, ...REVISION]]);
    expect(await image()).toBe('app:v1');
    expect(ctx.lines.some((l) => l.startsWith('undo already done: deployment/web is at revision 4, past 3'))).toBe(true);

    // Why the record matters: without it (a fresh data directory) a second undo flips back.
    await kubernetesStrategy(configOf(), deps).execute(context({ dataDir: await mkdtemp(path.join(work, 'fresh-')) }));
    expect(await image()).toBe('app:v2');
  });

  it('undoes again on resume when the first undo never took effect, with the stderr tail in the error', async () => {
    await setState({
      ...(await state<KubeState>()),
      fail: { 'rollout undo': { stderr: 'error: Unable to connect to the server: dial tcp 10.0.0.1:6443: i/o timeout', times: 1 } },
    });
    const strategy = kubernetesStrategy(configOf(), deps);
    const error = await rejection(strategy.execute(context()));
    expect(error.step).toBe('undo');
    expect(error.message).toContain('exited with code 1');
    expect(error.message).toContain('dial tcp 10.0.0.1:6443: i/o timeout');
    expect((await web()).current).toBe(3);

    await clearCalls();
    const ctx = context();
    await strategy.execute(ctx);
    expect(await calls('kubectl')).toEqual([
      [...ns, ...HISTORY],
      [...ns, ...REVISION],
      [...ns, 'rollout', 'undo', 'deployment/web'],
      [...ns, ...STATUS],
      [...ns, ...REVISION],
    ]);
    expect(ctx.lines).toContain('an earlier undo was recorded but deployment/web is still at revision 3; undoing again');
    expect(await image()).toBe('app:v1');
  });

  it('only waits for the rollout on resume when the undo happened but the status failed', async () => {
    await setState({
      ...(await state<KubeState>()),
      fail: { 'rollout status': { stderr: 'error: deployment "web" exceeded its progress deadline', times: 1 } },
    });
    const strategy = kubernetesStrategy(configOf(), deps);
    const error = await rejection(strategy.execute(context()));
    expect(error.step).toBe('status');
    expect(error.message).toContain('exceeded its progress deadline');
    expect(await image()).toBe('app:v1');

    await clearCalls();
    await strategy.execute(context());
    expect((await calls('kubectl')).some((argv) => argv.includes('undo'))).toBe(false);
    expect(await image()).toBe('app:v1');
  });

  it('checks kubectl, the deployment and the target revision', async () => {
    expect(await kubernetesStrategy(configOf({ to_revision: 2 }), deps).checkReadiness(context())).toEqual([]);
    expect(await kubernetesStrategy(configOf({ to_revision: 9 }), deps).checkReadiness(context())).toEqual([
      'revision 9 is not in the rollout history of deployment/web (it has 1, 2, 3)',
    ]);
    expect(await kubernetesStrategy(configOf({ namespace: 'staging' }), deps).checkReadiness(context())).toEqual([
      expect.stringMatching(/^deployment\/web cannot be read in namespace staging: .*deployments.apps "web" not found/),
    ]);
    expect(await kubernetesStrategy(configOf({ kubectl: 'release-guard-no-kubectl' }), deps).checkReadiness(context())).toEqual([
      'release-guard-no-kubectl is not installed (not found or not executable)',
    ]);
    // check is read-only.
    expect((await calls('kubectl')).every((argv) => argv.includes('get') || argv.includes('history'))).toBe(true);
    expect((await web()).current).toBe(3);
  });

  it('refuses an unknown to_revision before undoing anything', async () => {
    const error = await rejection(kubernetesStrategy(configOf({ to_revision: 9 }), deps).execute(context()));
    expect(error.step).toBe('undo');
    expect((await calls('kubectl')).some((argv) => argv.includes('undo'))).toBe(false);
  });

  it('never passes the version to kubectl, whatever it is', async () => {
    await kubernetesStrategy(configOf(), deps).execute(context({ to: 'v1;rm -rf /', from: '$(reboot)' }));
    const all = (await calls()).flat();
    expect(all.some((arg) => arg.includes(';') || arg.includes('$('))).toBe(false);
  });

  it.each([
    [['deployment.apps/web', 'REVISION  CHANGE-CAUSE', '1         <none>', '12        kubectl set image'], [1, 12]],
    [['deployment.apps/web', 'REVISION  CHANGE-CAUSE'], []],
  ])('parseHistory(%j) = %j', (lines, expected) => {
    expect(parseHistory(lines)).toEqual(expected);
  });
});
