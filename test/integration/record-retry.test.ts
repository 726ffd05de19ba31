/**
 * Item 7 of issue 13: a rollback record whose write fails is not lost. The records directory is
 * replaced by a file (writes fail with ENOTDIR), a real rollback runs, the first write fails; the
 * file is removed and the record (JSON and Markdown, no temp left) is written by a later attempt
 * and listed by /history. Real daemon in process, real files.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';
import { startDaemon, type RunningDaemon } from '../../src/shell/daemon.js';
import { waitFor } from '../helpers/pm2-sandbox.js';

let dir: string;
let app: http.Server;
let versionFile: string;
let daemon: RunningDaemon | undefined;
const logs: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-record-retry-'));
  versionFile = join(dir, 'app-version');
  await writeFile(versionFile, 'v1');
  app = http.createServer(async (_req, res) => {
    const version = (await readFile(versionFile, 'utf8')).trim();
    res.writeHead(version === 'v2' ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ version }));
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
  const port = (app.address() as AddressInfo).port;
  const yaml = stringify({
    service: 'web',
    state_dir: join(dir, 'state'),
    server: { host: '127.0.0.1', port: 0 },
    log: { level: 'info', format: 'json' },
    probes: [{ name: 'health', type: 'http', url: `http://127.0.0.1:${port}/health`, timeout: '1s', version_path: 'version' }],
    schedule: { interval: '200ms', fast_interval: '100ms', fast_for: '1m' },
    release: { version_probe: 'health', window: '1m', initial_delay: '1s', settle: '5m' },
    rules: { health: { probe: 'health', consecutive: 3 } },
    rollback: { steps: [{ type: 'command', command: ['/bin/sh', '-c', 'printf "%s" "$1" > "$0"', versionFile, '{to}'], timeout: '10s' }] },
    verification: { probe: 'health', passes: 3, timeout: '20s' },
    records: { write_attempts: 6 },
  });
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString().split('\n').filter(Boolean)));
  daemon = await startDaemon(parseConfigText(yaml, 'record-retry.yaml'), { log: createLogger({ level: 'info', format: 'json', stream }) });
});

afterAll(async () => {
  await daemon?.stop();
  app?.closeAllConnections();
  await new Promise((resolve) => app?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('record writes are retried', () => {
  it('a record dir with a file in the way: the first write fails, the record is written once the file is gone', async () => {
    const d = daemon!;
    const records = join(dir, 'state', 'rollbacks');
    await waitFor(() => d.guard.current.stable === 'v1', 10_000);
    await rm(records, { recursive: true, force: true });
    await writeFile(records, 'in the way');
    await writeFile(versionFile, 'v2');
    await waitFor(() => d.guard.current.phase === 'rolled_back', 30_000);
    await waitFor(() => logs.some((l) => l.includes('"rollback record could not be written"')), 10_000);
    expect(logs.filter((l) => l.includes('"rollback record written"'))).toEqual([]);

    await rm(records);
    await waitFor(() => logs.some((l) => l.includes('"rollback record written"')), 15_000);
    const names = (await readdir(records)).sort();
    expect(names.filter((n) => n.endsWith('.json'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.md'))).toHaveLength(1);
    expect(names.filter((n) => n.endsWith('.tmp'))).toEqual([]);
    const written = JSON.parse(logs.find((l) => l.includes('"rollback record written"'))!) as { attempt?: number };
    expect(written.attempt).toBeGreaterThanOrEqual(2);
    const history = (await (await fetch(`${d.url}/history`)).json()) as { rollbacks: { from: string; to: string }[] };
    expect(history.rollbacks).toEqual([expect.objectContaining({ from: 'v2', to: 'v1' })]);
  }, 60_000);
});
