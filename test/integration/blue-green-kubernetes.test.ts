/**
 * The blue_green strategy in kubernetes mode. There is no cluster here (kubectl may be installed,
 * but nothing answers it), so a fake `kubectl` first on PATH records its arguments and keeps the
 * Service's selector in a JSON file: `get … -o jsonpath={.spec.selector.<label>}` prints it, `patch …
 * -p <json>` merges into it. The strategy runs it through the real ProcessRunner, as it would run kubectl.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { strategySchema, type BlueGreenStrategyConfig } from '../../src/config/schema.js';
import { RollbackError } from '../../src/errors.js';
import type { Pm2Client } from '../../src/pm2/client.js';
import { ProcessRunner } from '../../src/shell/process-runner.js';
import { BLUE_GREEN_STATE } from '../../src/strategies/blue-green.js';
import { createStrategy } from '../../src/strategies/index.js';
import type { RollbackContext } from '../../src/strategies/types.js';
import { systemClock } from '../../src/shell/clock.js';

describe('blue_green strategy, kubernetes mode (fake kubectl on PATH)', () => {
  let bin: string;
  let log: string;
  let state: string;
  let dataDir: string;
  let savedPath: string | undefined;
  const deps = { pm2: {} as Pm2Client, run: new ProcessRunner(), clock: systemClock };

  const configOf = (input: Partial<Record<keyof BlueGreenStrategyConfig, unknown>> = {}): BlueGreenStrategyConfig => {
    const parsed = strategySchema.parse({
      type: 'blue_green',
      mode: 'kubernetes',
      service: 'frontend-service',
      namespace: 'yyc3-short-drama',
      selector_label: 'version',
      colors: { blue: 'blue', green: 'green' },
      timeout: '30s',
      ...input,
    });
    if (parsed.type !== 'blue_green') throw new Error('schema returned the wrong strategy type');
    return parsed;
  };
  const context = (progress: string[] = []): RollbackContext => ({
    service: 'shop',
    from: 'v2',
    to: 'v1',
    signal: new AbortController().signal,
    progress: (message) => progress.push(message),
    dataDir,
  });
  const calls = async () =>
    (await readFile(log, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as string[]);
  const selector = async () => (JSON.parse(await readFile(state, 'utf8')) as { selector: Record<string, string> }).selector;

  beforeAll(async () => {
    bin = await mkdtemp(path.join(os.tmpdir(), 'rg-fake-kubectl-'));
    log = path.join(bin, 'calls.jsonl');
    state = path.join(bin, 'service.json');
    const script = `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');
const service = JSON.parse(fs.readFileSync(${JSON.stringify(state)}, 'utf8'));
if (args[2] === 'get') {
  const path = args[args.indexOf('-o') + 1];
  const label = /^jsonpath=\\{\\.spec\\.selector\\.(.*)\\}$/.exec(path)[1].replace(/\\\\\\./g, '.');
  process.stdout.write(service.selector[label] ?? '');
} else if (args[2] === 'patch') {
  Object.assign(service.selector, JSON.parse(args[args.indexOf('-p') + 1]).spec.selector);
  fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(service));
  process.stdout.write('service/' + args[4] + ' patched\\n');
} else {
  process.stderr.write('fake kubectl: unsupported ' + args.join(' ') + '\\n');
  process.exit(1);
}
`;
    await writeFile(path.join(bin, 'kubectl'), script);
    await chmod(path.join(bin, 'kubectl'), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}${path.delimiter}${savedPath ?? ''}`;
  });

  afterAll(async () => {
    process.env.PATH = savedPath;
    await rm(bin, { recursive: true, force: true });
  });

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'rg-bg-k8s-'));
    await writeFile(state, JSON.stringify({ selector: { app: 'frontend', version: 'green' } }));
    await rm(log, { force: true });
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('reads the active colour, patches the selector to the other one, confirms; the runbook command exactly', async () => {
    const strategy = await createStrategy(configOf(), deps);
    expect(await strategy.checkReadiness(context())).toEqual([]);
    const progress: string[] = [];
    await strategy.execute(context(progress));

    const get = ['-n', 'yyc3-short-drama', 'get', 'service', 'frontend-service', '-o', 'jsonpath={.spec.selector.version}'];
    expect(await calls()).toEqual([
      get, // check
      get, // active colour
      ['-n', 'yyc3-short-drama', 'patch', 'service', 'frontend-service', '--type=merge', '-p', '{"spec":{"selector":{"version":"blue"}}}'],
      get, // confirmation
    ]);
    expect(await selector()).toEqual({ app: 'frontend', version: 'blue' });
    expect(progress.at(-1)).toBe('service frontend-service: green -> blue');
    expect(JSON.parse(await readFile(path.join(dataDir, BLUE_GREEN_STATE), 'utf8'))).toMatchObject({ mode: 'kubernetes', from: 'green', to: 'blue' });

    // Resumed: blue is active and was the decision; nothing is patched again.
    await rm(log);
    const again: string[] = [];
    await strategy.execute(context(again));
    expect(await calls()).toEqual([get]);
    expect(again.at(-1)).toBe('service frontend-service already selects version=blue (blue)');
    expect(await selector()).toEqual({ app: 'frontend', version: 'blue' });
  });

  it('escapes the dots of a label such as app.kubernetes.io/color and maps colours to selector values', async () => {
    await writeFile(state, JSON.stringify({ selector: { 'app.kubernetes.io/color': 'shop-blue' } }));
    const strategy = await createStrategy(
      configOf({ selector_label: 'app.kubernetes.io/color', colors: { blue: 'shop-blue', green: 'shop-green' }, namespace: 'shop' }),
      deps,
    );
    await strategy.execute(context());
    const recorded = await calls();
    expect(recorded[0]).toEqual(['-n', 'shop', 'get', 'service', 'frontend-service', '-o', 'jsonpath={.spec.selector.app\\.kubernetes\\.io/color}']);
    expect(recorded[1]).toEqual([
      '-n',
      'shop',
      'patch',
      'service',
      'frontend-service',
      '--type=merge',
      '-p',
      '{"spec":{"selector":{"app.kubernetes.io/color":"shop-green"}}}',
    ]);
    expect(await selector()).toEqual({ 'app.kubernetes.io/color': 'shop-green' });
  });

  it('an unknown selector value: check names it, execute refuses before patching', async () => {
    await writeFile(state, JSON.stringify({ selector: { version: 'canary' } }));
    const strategy = await createStrategy(configOf(), deps);
    const expected = 'cannot tell the active colour of service frontend-service (namespace yyc3-short-drama): selector version=canary: canary is neither blue (blue) nor green (green)';
    expect(await strategy.checkReadiness(context())).toEqual([expected]);
    const error = await strategy.execute(context()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RollbackError);
    expect((error as RollbackError).message).toBe(expected);
    expect((await calls()).some((args) => args.includes('patch'))).toBe(false);
  });
});
