/**
 * The reverse proxy in front of the bench app, as users run it: a real nginx (the Debian
 * package) on a free loopback port, proxying to the pm2 cluster's port and writing every request
 * to its access log in the timed format (nginx's `combined` with `$request_time $upstream_addr`
 * appended: the access_log probe's default) that the guard's `access_log` probe follows.
 *
 * A throwaway instance: everything in a temp prefix (`-p DIR -c DIR/nginx.conf -e DIR/error.log`),
 * in the foreground (`daemon off`) as a tracked child of the bench, stopped with the run (and by
 * proc.ts's exit hook should the bench die first). One worker process, no upstream keep-alive
 * (nginx's default HTTP/1.0 to the upstream: a new connection per request, which pm2 cluster
 * mode hands round-robin to its workers, so both workers get the traffic); clients (the load)
 * keep their connections alive to nginx.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../test/fixtures/demo-app/releases.js';
import { NGINX_TIMED_FORMAT } from '../src/probes/access-log-parse.js';
import { findBinary, run, runOk, spawnTracked, stopChild, waitFor } from './proc.js';

/** The access_log probe's default nginx layout: `combined` + `$request_time $upstream_addr`. */
export const TIMED_LOG_FORMAT = `'${NGINX_TIMED_FORMAT}'`;

/** The nginx binary, installed from Debian when missing (as root). */
export async function ensureNginx(): Promise<string> {
  let nginx = findBinary('nginx');
  if (!nginx && process.getuid?.() === 0) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '--no-install-recommends', 'nginx'];
    await runOk('apt-get', install, { env, timeoutMs: 15 * 60_000 }).catch(async () => {
      await runOk('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'update'], { env, timeoutMs: 15 * 60_000 });
      await runOk('apt-get', install, { env, timeoutMs: 15 * 60_000 });
    });
    nginx = findBinary('nginx');
  }
  if (!nginx) throw new Error('nginx is not installed (apt-get install nginx)');
  return nginx;
}

export async function nginxVersion(nginx: string): Promise<string> {
  // nginx -v prints to stderr.
  const out = await run(nginx, ['-v']);
  return /nginx\/([\d.]+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
}

/**
 * Writes `dir`/nginx.conf for an nginx that runs in the foreground with its pid, logs and temp files
 * in `dir` (a run's or a test's temp dir), around the given lines of its `http` block; returns the
 * arguments to start nginx with it.
 */
export async function writeNginxConf(dir: string, options: { workers: number; connections: number; http: readonly string[] }): Promise<string[]> {
  const conf = path.join(dir, 'nginx.conf');
  await writeFile(
    conf,
    [
      'daemon off;',
      `worker_processes ${options.workers};`,
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log warn;`,
      `events { worker_connections ${options.connections}; }`,
      'http {',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${dir}/${t}_temp;`),
      ...options.http.map((line) => `    ${line}`),
      '}',
      '',
    ].join('\n'),
  );
  return ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')];
}

export class Nginx {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    /** The access log in the timed format. */
    readonly accessLog: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts nginx in `dir` (created; the run's temp dir) in front of 127.0.0.1:`appPort`. */
  static async start(nginxBin: string, dir: string, appPort: number): Promise<Nginx> {
    await mkdir(dir, { recursive: true });
    // As root, nginx's worker runs as nobody: it must reach the temp paths.
    await chmod(dir, 0o755);
    for (let p = path.dirname(dir); p !== path.dirname(p); p = path.dirname(p)) await chmod(p, 0o755).catch(() => undefined);
    const port = await freePort();
    const accessLog = path.join(dir, 'access.log');
    const args = await writeNginxConf(dir, {
      workers: 1,
      connections: 512,
      http: [
        `log_format timed ${TIMED_LOG_FORMAT};`,
        `access_log ${accessLog} timed;`,
        'upstream app {',
        `    server 127.0.0.1:${appPort};`,
        '}',
        'server {',
        `    listen 127.0.0.1:${port};`,
        '    location / {',
        '        proxy_pass http://app;',
        '    }',
        '}',
      ],
    });
    const child = spawnTracked(nginxBin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const nginx = new Nginx(child, port, accessLog);
    try {
      await waitFor(
        'nginx to answer',
        async () => {
          if (child.exitCode !== null) throw new Error(`nginx exited with code ${child.exitCode}: ${stderr}`);
          return (await fetch(`${nginx.url}/health`, { signal: AbortSignal.timeout(1000) })).status === 200;
        },
        15_000,
        50,
      );
    } catch (error) {
      await nginx.stop();
      throw error;
    }
    return nginx;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, 5000);
  }
}
