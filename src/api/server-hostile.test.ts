/**
 * Hostile requests against the control API: malformed and oversized bodies, wrong content types,
 * missing or wrong credentials, and versions built to reach a shell, a path or a ref. For each,
 * the control behind the server receives nothing and its state does not change. Plus: the daemon
 * refuses to start with a token file others can read (through startDaemon and through the CLI).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../config/load.js';
import { initialState } from '../core/transition.js';
import type { GuardState } from '../core/types.js';
import { PROJECT_ROOT } from '../../test/fixtures/demo-app/releases.js';
import { GuardError } from '../errors.js';
import { createLogger } from '../log.js';
import { startDaemon } from '../shell/daemon.js';
import { startApiServer, type ApiServer } from './server.js';
import type { ControlRequest, ControlResult, GuardControl } from './types.js';

const TOKEN = 'hostile-test-token-0123456789abcdef';

/** A control that keeps a state and changes it only through `control()`, recording every call. */
function recordingControl() {
  const calls: ControlRequest[] = [];
  const initial: GuardState = {
    ...initialState(0),
    phase: 'guarding',
    stable: '1.4.1',
    running: '1.5.0',
    release: { id: '1970-01-01T00-00-00-000Z_1.5.0', version: '1.5.0', previous: '1.4.1', startedAt: 0, deployedBy: 'ci', source: 'manual' },
  };
  let state = structuredClone(initial);
  const control: GuardControl = {
    status: () => ({
      service: 'web', phase: state.phase, paused: state.paused, since: new Date(state.since).toISOString(), stable: state.stable, running: state.running,
      release: null, rollback: null, wouldRollBack: null, pendingRollback: null, failure: null, rules: [], lastRollback: null, now: new Date(0).toISOString(),
    }),
    history: async () => ({ service: 'web', deployments: [], candidates: [], previousStable: state.stable, rollbacks: [] }),
    metrics: async () => ({ contentType: 'text/plain', body: '' }),
    liveTimeline: () => ({ series: [], events: [], from: 0, to: 1000, title: 'web' }),
    recordDocument: async () => null,
    lastDrill: async () => null,
    lastPreflight: () => null,
    drill: async () => ({ ok: false, error: 'no drills here' }),
    alertmanager: async () => ({ ok: false, error: 'triggers.alertmanager is not configured' }),
    preflight: async () => ({ ready: true, from: state.running, to: state.stable, problems: [], steps: [], checkedAt: new Date(0).toISOString() }),
    control: async (request): Promise<ControlResult> => {
      calls.push(request);
      state = { ...state, paused: request.action === 'pause' ? true : state.paused };
      return { ok: true, state };
    },
  };
  return { control, calls, initial, current: () => state };
}

let server: ApiServer;
let fake: ReturnType<typeof recordingControl>;
let logs: string[];

beforeEach(async () => {
  fake = recordingControl();
  logs = [];
  server = await startApiServer({
    host: '127.0.0.1',
    port: 0,
    token: TOKEN,
    control: fake.control,
    log: (level, message, fields) => logs.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`),
  });
});

afterEach(async () => {
  await server.close();
  for (const line of logs) expect(line).not.toContain(TOKEN);
});

/** Nothing reached the control and its state is what it was. */
function expectUntouched(): void {
  expect(fake.calls).toEqual([]);
  expect(fake.current()).toEqual(fake.initial);
}

const send = (path: string, init: { body?: string | Buffer; headers?: Record<string, string>; method?: string } = {}) =>
  fetch(`${server.url}${path}`, {
    method: init.method ?? 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers },
    ...(init.body !== undefined ? { body: typeof init.body === 'string' ? init.body : new Uint8Array(init.body) } : {}),
  });

/** Sends raw bytes and returns the raw answer (status line and all), for requests fetch will not make. */
function raw(bytes: string | Buffer): Promise<string> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('end', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.on('error', (error) => (answer ? resolve(answer) : reject(error)));
    socket.setTimeout(5_000, () => socket.destroy());
    socket.write(bytes);
  });
}

const HOSTILE_VERSIONS: [string, unknown][] = [
  ['a shell injection', 'v1;rm -rf /'],
  ['a command substitution', '$(id)'],
  ['backticks', 'v1`id`'],
  ['a pipe', 'v1|sh'],
  ['a path traversal', '../../etc'],
  ['a traversal after a valid start', 'v1/../../etc'],
  ['an absolute path', '/etc/passwd'],
  ['a dot', '.'],
  ['two dots', '..'],
  ['a newline', 'v1\nX'],
  ['a carriage return', 'v1\rX'],
  ['a NUL', 'v1\u0000'],
  ['a leading dash (option injection)', '-v1'],
  ['--help', '--help'],
  ['a leading dot (hidden file)', '.v1'],
  ['two dots inside', 'v1..2'],
  ['a git option', '--upload-pack=touch /tmp/x'],
  ['a ref expression', 'v1^{commit}'],
  ['a reflog expression', 'HEAD@{1}'],
  ['a placeholder', '{to}'],
  ['a glob', 'v1*'],
  ['spaces', 'v 1'],
  ['a trailing space', 'v1 '],
  ['a 10,000-character version', `v${'1'.repeat(9_999)}`],
  ['a 129-character version', `v${'1'.repeat(128)}`],
  ['fullwidth letters', 'ｖ１'],
  ['a Cyrillic v', 'ѵ1.0'],
  ['a zero-width space', 'v1\u200b'],
  ['a right-to-left override', 'v1\u202e0.1'],
  ['an encoded traversal', '..%2f..%2fetc'],
  ['an empty string', ''],
  ['an array', ['v1']],
  ['an object', { toString: 'v1' }],
  ['null', null],
  ['a boolean', true],
];

describe('control API under hostile input: malformed bodies and content types', () => {
  it.each([
    ['truncated JSON', '{"version": "1.6.0"'],
    ['trailing garbage', '{"version": "1.6.0"} {"version": "x"}'],
    ['single quotes', "{'version': '1.6.0'}"],
    ['a bare string', '"1.6.0"'],
    ['NaN', 'NaN'],
    ['a NUL byte', '{"version": "1.6.0"\u0000}'],
    ['deeply nested arrays', `${'['.repeat(5_000)}${']'.repeat(5_000)}`],
    ['deeply nested objects', `${'{"a":'.repeat(1_000)}1${'}'.repeat(1_000)}`],
    ['a __proto__ key', '{"__proto__": {"deployedBy": "root"}, "version": "1.6.0"}'],
    ['a constructor key', '{"constructor": {"prototype": {"x": 1}}, "version": "1.6.0"}'],
    ['null', 'null'],
    ['a number', '1.6'],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0x76, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
  ])('malformed body (%s): 400, nothing acted on', async (_name, body) => {
    const response = await send('/releases', { body });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error.length).toBeLessThan(500);
    expectUntouched();
  });

  it('duplicate keys: the last one wins and is validated like any other', async () => {
    const response = await send('/releases', { body: '{"version": "1.6.0", "version": "v1;rm -rf /"}' });
    expect(response.status).toBe(400);
    expectUntouched();
  });

  it.each([
    ['text/plain', 'text/plain'],
    ['a form', 'application/x-www-form-urlencoded'],
    ['multipart', 'multipart/form-data; boundary=x'],
    ['jsonp', 'application/jsonp'],
    ['xml', 'application/xml'],
    ['an empty type', ''],
    ['a json lookalike', 'application/json-seq'],
  ])('wrong content type (%s): refused, nothing acted on', async (_name, type) => {
    const response = await send('/releases', { body: '{"version":"1.6.0"}', headers: { 'content-type': type } });
    expect([400, 415]).toContain(response.status);
    expectUntouched();
  });
});

describe('control API under hostile input: oversized and malformed HTTP', () => {
  it('a body of 16 KiB + 1 byte: 413', async () => {
    const body = JSON.stringify({ reason: 'r'.repeat(16 * 1024) });
    const response = await send('/rollback', { body });
    expect(response.status).toBe(413);
    expectUntouched();
  });

  it('a declared 1 GB body (no bytes sent): 413 at once, nothing read', async () => {
    const started = Date.now();
    const answer = await raw(
      `POST /rollback HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${1024 ** 3}\r\n\r\n{"reason":`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(Date.now() - started).toBeLessThan(2_000);
    expectUntouched();
  });

  it('Content-Length and Transfer-Encoding together (request smuggling): refused by the parser', async () => {
    const answer = await raw(
      `POST /pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nPOST /resume HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 0\r\n\r\n`,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expectUntouched();
  });

  it('a header block over 16 KiB: refused by the parser (431)', async () => {
    const answer = await raw(`POST /pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nX-Pad: ${'p'.repeat(20 * 1024)}\r\nContent-Length: 0\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
    expectUntouched();
  });

  it('garbage instead of HTTP: 400, the server keeps serving', async () => {
    expect(await raw('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello to a plain port\r\n\r\n')).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expectUntouched();
  });
});

describe('control API under hostile input: credentials and paths', () => {
  const B64 = (text: string) => Buffer.from(text).toString('base64');
  it.each<[string, Record<string, string>]>([
    ['no Authorization header', {}],
    ['an empty Authorization header', { authorization: '' }],
    ['"Bearer" alone', { authorization: 'Bearer' }],
    ['"Bearer " with nothing after', { authorization: 'Bearer ' }],
    ['a shorter token', { authorization: `Bearer ${TOKEN.slice(0, 8)}` }],
    ['a longer token', { authorization: `Bearer ${TOKEN}x` }],
    ['the token twice', { authorization: `Bearer ${TOKEN}${TOKEN}` }],
    ['a 4 KB token', { authorization: `Bearer ${'t'.repeat(4096)}` }],
    ['the token and another word', { authorization: `Bearer ${TOKEN} admin` }],
    ['the token as Basic password', { authorization: `Basic ${B64(`admin:${TOKEN}`)}` }],
    ['the token as Basic user', { authorization: `Basic ${B64(`${TOKEN}:`)}` }],
    ['the raw token without a scheme', { authorization: TOKEN }],
    ['a Token scheme', { authorization: `Token ${TOKEN}` }],
    ['the token in a cookie', { cookie: `token=${TOKEN}` }],
    ['the token in X-Api-Key', { 'x-api-key': TOKEN }],
    ['a unicode lookalike of the token', { authorization: `Bearer ${TOKEN.replace('o', 'о')}` }],
  ])('unauthenticated: %s → 401 with no detail', async (_name, headers) => {
    const response = await fetch(`${server.url}/pause`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{}',
    }).catch((error: unknown) => error as Error);
    // fetch itself refuses header values outside Latin-1 (the Cyrillic lookalike): also nothing acted on.
    if (!(response instanceof Error)) {
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: 'unauthorized' });
      expect(response.headers.get('www-authenticate')).toBe('Bearer');
    }
    expectUntouched();
  });

  it('the token in the query string does not authenticate', async () => {
    const response = await fetch(`${server.url}/pause?token=${TOKEN}&access_token=${TOKEN}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(response.status).toBe(401);
    expectUntouched();
  });

  it('a unicode lookalike token sent as raw bytes: 401', async () => {
    const answer = await raw(Buffer.concat([
      Buffer.from('POST /pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer '),
      Buffer.from(TOKEN.replace('o', 'о'), 'utf8'),
      Buffer.from('\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'),
    ]));
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expectUntouched();
  });

  it('a GET with the token cannot act, and query parameters never become a version', async () => {
    expect((await send('/rollback?reason=x', { method: 'GET', headers: { 'x-http-method-override': 'POST' } })).status).toBe(405);
    const response = await send('/releases?version=1.6.0', { body: '' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/^version: required/);
    expectUntouched();
  });

  it.each(['/Rollback', '/rollback/', '//rollback', '/rollback%00', '/rollback;x', '/%72ollback', '/api/../../rollback/..'])('path tricks (%s) reach no control endpoint', async (path) => {
    const response = await send(path, { body: '{"reason":"x"}' });
    expect([401, 404, 405, 400]).toContain(response.status);
    expectUntouched();
  });
});

describe('control API under hostile input: hostile versions, actors and reasons', () => {
  it.each(HOSTILE_VERSIONS)('release of %s: 400, nothing acted on', async (_name, version) => {
    const response = await send('/releases', { body: JSON.stringify({ version }) });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: string };
    expect(error).toMatch(/^version: /);
    // The answer names the rule, not an echo of a 10 KB payload.
    expect(error.length).toBeLessThan(300);
    expectUntouched();
  });

  it.each([['--help'], ['../../etc'], ['v1;rm'], ['v1..2']])('release %s: the 400 names the rule for versions', async (version) => {
    const response = await send('/releases', { body: JSON.stringify({ version }) });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: string };
    expect(error).toBe(`version: version ${JSON.stringify(version)} is not allowed: use 1-128 letters, digits, ".", "_", "+" or "-", not starting with "-" or "." and without ".."`);
    expectUntouched();
  });

  it.each(HOSTILE_VERSIONS)('rollback to %s: 400, nothing acted on', async (_name, to) => {
    const response = await send('/rollback', { body: JSON.stringify({ to, reason: 'bad release' }) });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/^to: /);
    expectUntouched();
  });

  it.each([
    ['a newline in by', { by: 'alice\nINFO forged log line' }],
    ['a shell injection in by', { by: 'alice;id' }],
    ['a 10,000-character by', { by: 'a'.repeat(10_000) }],
    ['an ANSI escape in by', { by: 'alice\u001b[2J' }],
    ['an unknown field', { by: 'alice', admin: true }],
  ])('pause with %s: 400, nothing acted on', async (_name, body) => {
    const response = await send('/pause', { body: JSON.stringify(body) });
    expect(response.status).toBe(400);
    expectUntouched();
  });

  it.each([
    ['an ANSI escape', 'bad\u001b[31m release'],
    ['a tab', 'bad\trelease'],
    ['a DEL', 'bad\u007frelease'],
    ['only spaces', '     '],
  ])('a rollback reason with %s: 400, nothing acted on', async (_name, reason) => {
    const response = await send('/rollback', { body: JSON.stringify({ reason }) });
    expect(response.status).toBe(400);
    expectUntouched();
  });

  it('after all of that, a proper request still works (the server was not wedged)', async () => {
    for (const [, version] of HOSTILE_VERSIONS.slice(0, 5)) await send('/releases', { body: JSON.stringify({ version }) });
    const response = await send('/releases', { body: JSON.stringify({ version: '1.6.0', deployedBy: 'ci' }) });
    expect(response.status).toBe(200);
    expect(fake.calls).toEqual([{ action: 'release', version: '1.6.0', deployedBy: 'ci' }]);
  });
});

describe('token file permissions', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rg-token-hostile-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  async function configWithToken(mode: number): Promise<{ file: string; yaml: string; tokenFile: string; stateDir: string }> {
    const tokenFile = join(dir, `token-${mode.toString(8)}`);
    await writeFile(tokenFile, `${TOKEN}\n`);
    await chmod(tokenFile, mode);
    const stateDir = join(dir, `state-${mode.toString(8)}`);
    const yaml = stringify({
      service: 'web',
      state_dir: stateDir,
      server: { host: '127.0.0.1', port: 0, token_file: tokenFile },
      log: { level: 'debug', format: 'json' },
      probes: [{ name: 'health', type: 'http', url: 'http://127.0.0.1:9/health', version_path: 'version' }],
      release: { version_probe: 'health' },
      rules: { health: { probe: 'health' } },
      rollback: { steps: [{ type: 'command', command: ['true'] }] },
      verification: { probe: 'health' },
    });
    const file = join(dir, `config-${mode.toString(8)}.yaml`);
    await writeFile(file, yaml);
    return { file, yaml, tokenFile, stateDir };
  }

  it.each([0o644, 0o604, 0o640, 0o660])('startDaemon refuses a token file with mode %s, naming the file and the fix', async (mode) => {
    const { yaml, tokenFile } = await configWithToken(mode);
    const stream = new PassThrough();
    const lines: string[] = [];
    stream.on('data', (chunk: Buffer) => lines.push(chunk.toString()));
    const started = startDaemon(parseConfigText(yaml, 'test'), { log: createLogger({ level: 'debug', format: 'json', stream }) });
    await expect(started).rejects.toThrow(GuardError);
    await expect(started).rejects.toMatchObject({ code: 'token_insecure' });
    await expect(started).rejects.toThrow(new RegExp(`token file ${tokenFile} is readable by group or others .*chmod 600 ${tokenFile}`));
    // Refused before anything listens or anything is logged with the token.
    expect(lines.join('')).not.toContain(TOKEN);
  });

  it('the CLI exits 1 with the reason and no stack trace; a 0600 file is accepted', async () => {
    const { file, tokenFile } = await configWithToken(0o644);
    const run = (config: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'src/cli/main.ts'), 'start', '--config', config], {
          cwd: PROJECT_ROOT,
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        let stopped = false;
        child.stderr.on('data', (chunk: Buffer) => {
          stderr += chunk.toString();
          // The accepted one runs until stopped: stop it (once) when it says it runs.
          if (!stopped && stderr.includes('release-guard running')) {
            stopped = true;
            child.kill('SIGTERM');
          }
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, stderr });
        });
      });
    const refused = await run(file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`token file ${tokenFile} is readable by group or others (mode 644); run: chmod 600 ${tokenFile}`);
    expect(refused.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(refused.stderr).not.toContain(TOKEN);

    await chmod(tokenFile, 0o600);
    const accepted = await run(file);
    expect(accepted.stderr).toContain('release-guard running');
    expect(accepted.code).toBe(0);
    expect(accepted.stderr).not.toContain(TOKEN);
  }, 60_000);
});
