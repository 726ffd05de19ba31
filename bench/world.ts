/**
 * One bench world: the demo app in a Capistrano layout (releases/<version> + current symlink)
 * run by a private pm2 daemon (its own PM2_HOME in a temp dir), on a free loopback port.
 *
 * pm2 is driven through its own CLI (node_modules/pm2/bin/pm2 with PM2_HOME set), exactly as a
 * deploy script or monit's rollback script would, so every world is isolated from the others
 * and from the bench process. `cleanup()` kills that pm2 daemon with its apps and removes the
 * directory; the exit hook of proc.ts does the same if the bench dies first.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { buildRelease, freePort, pointCurrent, PROJECT_ROOT, type ReleaseManifest } from '../test/fixtures/demo-app/releases.js';
import { killPm2HomeSync, run, runOk, sleep, trackPm2Home, trackTempDir, untrackPm2Home, untrackTempDir, waitFor } from './proc.js';

export const APP = 'web';
/**
 * How long set-up steps may take (the app answering a version after a start or a reload, the
 * guard learning v1): generous, as a busy machine starts node workers slowly. Nothing measured
 * includes them.
 */
export const SETUP_TIMEOUT_MS = 60_000;
export const PM2_BIN = path.join(PROJECT_ROOT, 'node_modules', 'pm2', 'bin', 'pm2');

export interface WorldOptions {
  execMode: 'cluster' | 'fork';
  instances: number;
  /** Releases to build, by version; the first is started. */
  releases: Record<string, ReleaseManifest>;
  /** Extra environment for the app. */
  env?: Record<string, string>;
  /** Another layout (the git strategy's working tree): prepared before pm2 starts `script`. */
  prepare?: (world: World) => Promise<void>;
  script?: (world: World) => string;
  /** The version the started app reports (default: the first release). */
  startVersion?: string;
}

/** unix sockets live in PM2_HOME: keep the path short. */
function shortTempRoot(): string {
  const root = os.tmpdir();
  return path.join(root, 'rg-bench-xxxxxx', 'pm2', 'interactor.sock').length <= 90 ? root : '/tmp';
}

export class World {
  readonly deployDir: string;
  readonly pm2Home: string;
  /** Created to switch a fault on (release.json `faultFile`). */
  readonly faultFile: string;
  private cleaned = false;

  private constructor(
    readonly root: string,
    readonly appPort: number,
    readonly options: WorldOptions,
  ) {
    this.deployDir = path.join(root, 'app');
    this.pm2Home = path.join(root, 'pm2');
    this.faultFile = path.join(root, 'FAULT');
  }

  static async create(options: WorldOptions): Promise<World> {
    const root = await mkdtemp(path.join(shortTempRoot(), 'rg-bench-'));
    trackTempDir(root);
    const world = new World(root, await freePort(), options);
    try {
      await world.start();
    } catch (error) {
      await world.cleanup();
      throw error;
    }
    return world;
  }

  get healthUrl(): string {
    return `http://127.0.0.1:${this.appPort}/health`;
  }

  get apiUrl(): string {
    return `http://127.0.0.1:${this.appPort}/api/items`;
  }

  /** The pid file pm2 keeps for instance `id` of the app (what monit's process check reads). */
  pidFile(id = 0): string {
    return path.join(this.pm2Home, 'pids', `${APP}-${id}.pid`);
  }

  env(): NodeJS.ProcessEnv {
    return { ...process.env, PM2_HOME: this.pm2Home };
  }

  /** Runs the pm2 CLI against this world's daemon. */
  pm2(args: readonly string[], timeoutMs = 60_000): Promise<string> {
    return runOk(process.execPath, [PM2_BIN, ...args], { env: this.env(), timeoutMs });
  }

  private async start(): Promise<void> {
    const versions = Object.keys(this.options.releases);
    for (const version of versions) {
      await buildRelease(this.deployDir, version, this.options.releases[version]);
    }
    if (versions.length > 0) await pointCurrent(this.deployDir, versions[0]!);
    await this.options.prepare?.(this);
    const ecosystem = path.join(this.root, 'ecosystem.config.cjs');
    const app = {
      name: APP,
      script: this.options.script?.(this) ?? path.join(this.deployDir, 'current', 'server.cjs'),
      exec_mode: this.options.execMode,
      instances: this.options.instances,
      env: { PORT: String(this.appPort), ...this.options.env },
      // pm2's defaults, written out: what a crash loop runs into.
      min_uptime: 1000,
      max_restarts: 16,
      kill_timeout: 1600,
    };
    await writeFile(ecosystem, `module.exports = ${JSON.stringify({ apps: [app] }, null, 2)};\n`);
    trackPm2Home(this.pm2Home);
    await this.pm2(['start', ecosystem]);
    await this.waitForVersion(this.options.startVersion ?? versions[0]!, SETUP_TIMEOUT_MS);
  }

  /** The version /health reports, or null when it does not answer 200. */
  async version(timeoutMs = 1000): Promise<string | null> {
    try {
      const response = await fetch(this.healthUrl, { signal: AbortSignal.timeout(timeoutMs) });
      if (response.status !== 200) return null;
      return ((await response.json()) as { version?: string }).version ?? null;
    } catch {
      return null;
    }
  }

  async waitForVersion(version: string, timeoutMs: number): Promise<void> {
    // Several answers in a row: in cluster mode each instance must be on it.
    let streak = 0;
    await waitFor(
      `the app to answer version ${version}`,
      async () => {
        streak = (await this.version()) === version ? streak + 1 : 0;
        return streak >= 2 * this.options.instances;
      },
      timeoutMs,
      50,
    );
  }

  /** A deploy as a deploy script does it: current -> releases/<version>, pm2 reload. */
  async deploy(version: string): Promise<number> {
    await pointCurrent(this.deployDir, version);
    const at = Date.now();
    await this.pm2(['reload', APP]);
    await this.waitForVersion(version, SETUP_TIMEOUT_MS);
    return at;
  }

  /** Switches the release's fault on: the app sees the file within 10 ms. */
  async injectFault(): Promise<number> {
    await writeFile(this.faultFile, `${Date.now()}\n`);
    return Date.now();
  }

  /** Switches the release's fault off again (a blip's end): the app sees it within 10 ms. */
  async clearFault(): Promise<number> {
    await rm(this.faultFile, { force: true });
    return Date.now();
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    // pm2 kill stops the apps, then the daemon; a daemon that never started makes it a no-op.
    const daemonPid = Number.parseInt(await readFile(path.join(this.pm2Home, 'pm2.pid'), 'utf8').catch(() => ''), 10);
    if (Number.isInteger(daemonPid) && daemonPid > 1) {
      await run(process.execPath, [PM2_BIN, 'kill'], { env: this.env(), timeoutMs: 20_000 });
      for (let i = 0; i < 50 && alive(daemonPid); i++) await sleep(100);
    }
    killPm2HomeSync(this.pm2Home); // anything pm2 kill left behind
    untrackPm2Home(this.pm2Home);
    await rm(this.root, { recursive: true, force: true });
    untrackTempDir(this.root);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
