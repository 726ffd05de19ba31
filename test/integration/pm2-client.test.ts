/**
 * Pm2ApiClient against a real pm2 daemon in a sandboxed PM2_HOME, running the demo app.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pm2ProcessEvent } from '../../src/pm2/client.js';
import { Pm2ApiClient, replacedInstance } from '../../src/pm2/pm2-api-client.js';
import { createPm2Sandbox, DEMO_APP, freePort, getJson, waitFor, type Pm2Sandbox } from '../helpers/pm2-sandbox.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('Pm2ApiClient (real pm2)', () => {
  let sandbox: Pm2Sandbox;
  let port: number;

  beforeAll(async () => {
    sandbox = await createPm2Sandbox();
    port = await freePort();
    await sandbox.client.start({
      name: 'demo',
      script: DEMO_APP,
      execMode: 'fork',
      env: { PORT: String(port), APP_VERSION: 'client-test' },
    });
  });

  afterAll(async () => {
    await sandbox?.cleanup();
  });

  /** Collects bus events until the returned stop function is called. */
  async function recordEvents(): Promise<{ events: Pm2ProcessEvent[]; stop: () => void }> {
    const events: Pm2ProcessEvent[] = [];
    const stop = await sandbox.client.onProcessEvent((event) => events.push(event));
    return { events, stop };
  }

  it('starts the demo app in fork mode and describes it online, with memory', async () => {
    const [instance] = await waitFor(async () => {
      const instances = await sandbox.client.describe('demo');
      return instances.length === 1 && instances[0]!.status === 'online' && instances[0]!.memoryBytes > 0 && instances;
    }, 15_000);
    expect(instance).toMatchObject({ name: 'demo', status: 'online', execMode: 'fork_mode', execPath: DEMO_APP });
    expect(instance!.pid).toBeGreaterThan(0);
    expect(instance!.memoryBytes).toBeGreaterThan(0);
    expect(instance!.cpuPercent).toBeGreaterThanOrEqual(0);

    const health = await waitFor(() => getJson(`http://127.0.0.1:${port}/health`), 10_000);
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', version: 'client-test' } });

    expect((await sandbox.client.list()).map((i) => i.name)).toContain('demo');
  });

  it('describes an unknown app as no processes', async () => {
    expect(await sandbox.client.describe('no-such-app')).toEqual([]);
  });

  it('reports a crash as an exit with manually=false', async () => {
    const recorder = await recordEvents();
    try {
      await sandbox.client.start({
        name: 'crashy',
        script: DEMO_APP,
        execMode: 'fork',
        autorestart: false,
        env: { PORT: String(await freePort()), APP_FAULT: 'crash', APP_FAULT_AFTER_MS: '300' },
      });
      const crash = await waitFor(
        () => recorder.events.find((e) => e.app === 'crashy' && e.event === 'exit'),
        10_000,
      );
      expect(crash).toMatchObject({ app: 'crashy', event: 'exit', manually: false });
      expect(crash.pmId).toBeGreaterThanOrEqual(0);
      expect(crash.at).toBeGreaterThan(Date.now() - 60_000);
    } finally {
      recorder.stop();
      await sandbox.client.delete('crashy');
    }
  });

  it('reports a manual restart, and the exits it causes, with manually=true', async () => {
    const recorder = await recordEvents();
    try {
      await sandbox.client.restart('demo');
      const restart = await waitFor(
        () => recorder.events.find((e) => e.app === 'demo' && e.event === 'restart'),
        10_000,
      );
      expect(restart.manually).toBe(true);
      // pm2 itself flags these exits manually=false; the client must not let them look like crashes.
      const exits = recorder.events.filter((e) => e.app === 'demo' && e.event === 'exit');
      expect(exits.length).toBeGreaterThan(0);
      expect(exits.every((e) => e.manually)).toBe(true);
    } finally {
      recorder.stop();
    }
    await waitFor(async () => (await sandbox.client.describe('demo'))[0]?.status === 'online', 10_000);
  });

  it("tails the app's log with its listening line", async () => {
    const lines = await waitFor(async () => {
      const tail = await sandbox.client.logTail('demo', 20);
      return tail.some((line) => line.includes('listening')) && tail;
    }, 10_000);
    expect(lines.find((line) => line.includes('listening'))).toContain(`version client-test listening on 127.0.0.1:${port}`);
    expect(await sandbox.client.logTail('demo', 0)).toEqual([]);
    expect(await sandbox.client.logTail('no-such-app', 5)).toEqual([]);
  });

  it('names the operation and the app when pm2 refuses, with the cause', async () => {
    const error = await sandbox.client.restart('no-such-app').then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/pm2 restart no-such-app failed/);
    expect((error as Error).cause).toBeDefined();
  });

  it("waits for another client's reload instead of failing on pm2's reload lock", async () => {
    // A deploy script and the guard share one pm2 daemon: the second reload comes while the
    // first holds the lock. pm2 refuses it ("Reload in progress"); the client waits and reloads.
    const other = new Pm2ApiClient({ home: sandbox.home });
    try {
      const before = (await sandbox.client.describe('demo'))[0]!.restarts;
      await Promise.all([other.reload('demo'), sandbox.client.reload('demo')]);
      const [instance] = await waitFor(async () => {
        const instances = await sandbox.client.describe('demo');
        return instances[0]?.status === 'online' && instances;
      }, 15_000);
      expect(instance!.restarts).toBe(before + 2);
    } finally {
      await other.disconnect();
    }
  });

  it('tells as each cluster worker is replaced, before pm2 answers; disconnect waits for the answer, freeing the reload lock', async () => {
    const name = 'replaced';
    const appPort = await freePort();
    // A release that never answers: each replaced worker waits for its open requests until
    // pm2's kill_timeout, so pm2 answers the reload about that long after the new worker listens.
    await sandbox.client.start({
      name,
      script: DEMO_APP,
      execMode: 'cluster',
      instances: 2,
      killTimeoutMs: 2000,
      env: { PORT: String(appPort), APP_FAULT: 'hang' },
    });
    const other = new Pm2ApiClient({ home: sandbox.home });
    try {
      const ids = await waitFor(async () => {
        const instances = await sandbox.client.describe(name);
        return instances.length === 2 && instances.every((i) => i.status === 'online') && instances.map((i) => i.pmId);
      }, 15_000);
      for (let i = 0; i < 4; i += 1) {
        const req = request({ host: '127.0.0.1', port: appPort, path: '/health', agent: false });
        req.on('error', () => undefined); // reset when pm2 kills the worker
        req.end();
      }
      const told: Array<{ pmId: number; at: number }> = [];
      let answeredAt = 0;
      void other.reload(name, { onReplacing: (pmId) => told.push({ pmId, at: Date.now() }) }).then(() => (answeredAt = Date.now()));
      await waitFor(() => told.length === 2, 20_000);
      expect(answeredAt).toBe(0);

      await other.disconnect();
      expect(answeredAt).toBeGreaterThan(0);
      expect(told.map((t) => t.pmId).sort()).toEqual([...ids].sort());
      expect(told.every((t) => t.at < answeredAt)).toBe(true);
      // pm2's reload lock is a timestamp in PM2_HOME, emptied by the client pm2 answered.
      expect(await readFile(path.join(sandbox.home, 'reload.lock'), 'utf8')).toBe('');
    } finally {
      await other.disconnect();
      await sandbox.client.delete(name);
    }
  });

  it('refuses an ecosystem path pm2 would run as a script', async () => {
    await expect(sandbox.client.startEcosystem(path.join(sandbox.dir, 'apps.js'), 'x')).rejects.toThrow(
      /not an ecosystem file name/,
    );
  });

  it('lets a Node process exit after unsubscribing and disconnecting (no leaked handles)', async () => {
    const script = path.join(sandbox.dir, 'bus-exit.mts');
    await writeFile(
      script,
      [
        `import { Pm2ApiClient } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'src/pm2/pm2-api-client.ts')).href)};`,
        `const client = new Pm2ApiClient({ home: ${JSON.stringify(sandbox.home)} });`,
        `const first = await client.onProcessEvent(() => {});`,
        `await client.onProcessEvent(() => {});`,
        `first();`,
        `if ((await client.describe('demo')).length !== 1) throw new Error('demo not visible');`,
        `await client.disconnect();`,
        `console.log('disconnected');`,
      ].join('\n'),
    );
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
      cwd: REPO_ROOT,
      timeout: 20_000,
      killSignal: 'SIGKILL',
    });
    expect(stdout).toContain('disconnected');
    // The shared daemon and its app are untouched by the other client's disconnect.
    expect((await sandbox.client.describe('demo'))[0]?.status).toBe('online');
  });
});

describe('replacedInstance', () => {
  it("reads the instance from pm2's line for a replaced process of the app", () => {
    expect(replacedInstance('Stopping app:web id:_old_3', 'web')).toBe(3);
    expect(replacedInstance('Stopping app:my app id:_old_0', 'my app')).toBe(0);
  });

  it('ignores other apps, processes no reload replaced, and other lines', () => {
    expect(replacedInstance('Stopping app:web-2 id:_old_0', 'web')).toBeNull();
    expect(replacedInstance('Stopping app:web id:0', 'web')).toBeNull();
    expect(replacedInstance('-reload- New worker listening', 'web')).toBeNull();
    expect(replacedInstance('Stopping app:web id:_old_1 and more', 'web')).toBeNull();
  });
});
