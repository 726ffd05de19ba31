/**
 * Blue-green strategy (type `blue_green`), the runbook's "蓝绿部署回滚方案": the release under guard
 * runs on the colour that receives traffic now; rolling back sends traffic to the other colour.
 *
 *   nginx       `upstream_file` is an include holding `upstream <upstream_name> { server <addr>; }`.
 *               The active colour is the one whose `colors` address every server line names. The
 *               servers are rewritten to the other colour's address (other parameters and the rest of
 *               the file kept), written atomically (temp file + rename), `nginx -t` checks the whole
 *               config with it (`nginx_args` pass -p/-c/-e), and only then `nginx -s reload` (a
 *               graceful reload: old workers finish their requests). If the test fails the previous
 *               file is put back at once, so a broken config is never left in place, and the step
 *               fails with nginx's own words. The original is also kept as `<dataDir>/upstream.before`.
 *   kubernetes  `kubectl -n <ns> get service <svc> -o jsonpath={.spec.selector.<label>}` reads the
 *               active colour (`colors` maps colour → selector value), `kubectl -n <ns> patch service
 *               <svc> --type=merge -p {"spec":{"selector":{"<label>":"<value>"}}}` switches it, and a
 *               second read confirms it.
 *
 * Idempotent: before switching, `{from, to}` is written to `<dataDir>/blue-green.json`. A resumed or
 * repeated rollback of the same release reads it and converges on `to` (it never flips back because
 * `to` has become the active colour). `prepare` removes that file when a new window opens for the
 * version, so a later redeploy of the same version does not inherit an old decision.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BlueGreenStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import { writeJsonAtomic } from '../store/atomic-write.js';
import type { CommandRunner } from './command-runner.js';
import { stepScope, within, type StepScope } from './step.js';
import type { ReleaseContext, RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

export type Color = 'blue' | 'green';
const COLORS: readonly Color[] = ['blue', 'green'];
export const BLUE_GREEN_STATE = 'blue-green.json';
const UPSTREAM_BACKUP = 'upstream.before';

/** What a rollback decided, kept so a resumed one converges instead of flipping back. */
export interface SwitchState {
  mode: BlueGreenStrategyConfig['mode'];
  from: Color;
  to: Color;
  at: string;
}

function other(color: Color): Color {
  return color === 'blue' ? 'green' : 'blue';
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Where the `upstream <name> { … }` block's body is in `text`, or null. */
function upstreamBody(text: string, name: string): { start: number; end: number } | null {
  const match = new RegExp(`(^|[\\s;}])upstream\\s+${escapeRegExp(name)}\\s*\\{`, 'm').exec(text);
  if (!match) return null;
  const start = match.index + match[0].length;
  const end = text.indexOf('}', start);
  return end < 0 ? null : { start, end };
}

const SERVER = /(^|[\s;{])(server\s+)([^\s;#]+)/g;

/** Addresses of the `server` lines of upstream `name` (comments ignored); null when there is no such block. */
export function upstreamServers(text: string, name: string): string[] | null {
  const body = upstreamBody(text, name);
  if (!body) return null;
  const code = text
    .slice(body.start, body.end)
    .split('\n')
    .map((line) => line.replace(/#.*$/, ''))
    .join('\n');
  return [...code.matchAll(SERVER)].map((m) => m[3] ?? '');
}

/** `text` with upstream `name`'s servers at `from` pointed at `to`; everything else unchanged. */
export function switchUpstream(text: string, name: string, from: string, to: string): string {
  const body = upstreamBody(text, name);
  if (!body) return text;
  const replaced = text
    .slice(body.start, body.end)
    .replace(SERVER, (whole, lead: string, keyword: string, address: string) => (address === from ? `${lead}${keyword}${to}` : whole));
  return text.slice(0, body.start) + replaced + text.slice(body.end);
}

/** The colour whose address (or selector value) matches every one of `values`, or an error in words. */
export function activeColor(values: readonly string[], colors: Partial<Record<Color, string>>): Color | string {
  if (values.length === 0) return 'no server is listed';
  for (const color of COLORS) {
    if (colors[color] !== undefined && values.every((v) => v === colors[color])) return color;
  }
  return `${values.join(', ')} is neither blue (${colors.blue ?? 'not configured'}) nor green (${colors.green ?? 'not configured'})`;
}

function isColor(value: string): value is Color {
  return value === 'blue' || value === 'green';
}

/** Writes `text` to `file` through a temp file in the same directory and a rename, keeping its mode. */
async function replaceFile(file: string, text: string): Promise<void> {
  const mode = (await stat(file)).mode & 0o7777;
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.rollback-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(temp, text, { mode });
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function readState(dataDir: string): Promise<SwitchState | null> {
  const file = path.join(dataDir, BLUE_GREEN_STATE);
  try {
    const state = JSON.parse(await readFile(file, 'utf8')) as SwitchState;
    if (!isColor(state.to) || !isColor(state.from)) throw new Error(`"to" and "from" must be blue or green`);
    return state;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RollbackError(`${file} cannot be read: ${errorMessage(error)}`, 'state', { cause: error });
  }
}

async function writeState(dataDir: string, state: SwitchState): Promise<void> {
  const file = path.join(dataDir, BLUE_GREEN_STATE);
  await writeJsonAtomic(file, state, { mode: 0o600 });
}

class BlueGreenStrategy implements RollbackStrategy {
  readonly type = 'blue_green';
  private readonly colors: Partial<Record<Color, string>>;
  private readonly run: CommandRunner;
  // nginx mode
  private readonly upstreamFile: string;
  private readonly nginxArgs: readonly string[];
  // kubernetes mode
  private readonly namespaceArgs: string[];
  private readonly service: string;
  private readonly selectorPath: string;

  constructor(
    private readonly config: BlueGreenStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {
    this.colors = config.colors as Partial<Record<Color, string>>;
    this.run = deps.run;
    this.upstreamFile = config.upstream_file ? path.resolve(config.upstream_file) : '';
    this.nginxArgs = config.nginx_args;
    this.namespaceArgs = ['-n', config.namespace];
    this.service = config.service ?? '';
    // JSONPath needs the dots of a label such as app.kubernetes.io/color escaped.
    this.selectorPath = `jsonpath={.spec.selector.${config.selector_label.replace(/\./g, '\\.')}}`;
  }

  describe(): string {
    const config = this.config;
    return config.mode === 'nginx'
      ? `blue_green: upstream ${config.upstream_name} in ${this.upstreamFile} to the other colour, nginx -s reload`
      : `blue_green: service ${this.service} (namespace ${config.namespace}) selector ${config.selector_label} to the other colour`;
  }

  async prepare(ctx: ReleaseContext): Promise<void> {
    // A new window for this version: a decision left by an earlier rollback of it is stale.
    const file = path.join(ctx.dataDir, BLUE_GREEN_STATE);
    if (await stat(file).then(() => true, () => false)) {
      await rm(file, { force: true });
      ctx.progress(`removed ${file} left by an earlier rollback of ${ctx.version}`);
    }
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    const config = this.config;
    const found = this.colorProblems();
    const scope = stepScope(ctx, Math.min(config.timeout, 30_000), this.deps.clock);
    const program = config.mode === 'nginx' ? config.nginx : config.kubectl;
    if (!(await this.run.which(program))) {
      found.push(`${program} is not installed (not found on PATH)`);
      return found;
    }
    if (config.mode === 'nginx') {
      try {
        await this.readUpstream();
      } catch (error) {
        found.push(errorMessage(error));
      }
      try {
        await this.nginxTest(scope, 'check');
      } catch (error) {
        found.push(errorMessage(error));
      }
    } else {
      try {
        await this.activeInCluster(scope, 'check');
      } catch (error) {
        found.push(errorMessage(error));
      }
    }
    return found;
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const problems = this.colorProblems();
    if (problems.length > 0) throw new RollbackError(problems.join('; '), 'validate');
    const scope = stepScope(ctx, this.config.timeout, this.deps.clock);
    if (this.config.mode === 'nginx') await this.executeNginx(ctx, scope);
    else await this.executeKubernetes(ctx, scope);
  }

  private colorProblems(): string[] {
    const colors = this.colors;
    const missing = COLORS.filter((c) => !colors[c]);
    if (missing.length > 0) return [`colors must name both blue and green; missing: ${missing.join(', ')}`];
    if (colors.blue === colors.green) return [`blue and green are both ${colors.blue}: switching would change nothing`];
    return [];
  }

  /** The colour to switch to: the recorded one on a resumed rollback, else the one not active now. */
  private async decide(ctx: RollbackContext, active: Color): Promise<Color> {
    const state = await readState(ctx.dataDir);
    if (state) {
      ctx.progress(`this rollback already chose ${state.to} (from ${state.from}, at ${state.at}); converging on it`);
      return state.to;
    }
    const to = other(active);
    await writeState(ctx.dataDir, { mode: this.config.mode, from: active, to, at: new Date(this.deps.clock.now()).toISOString() });
    return to;
  }

  // ------------------------------------------------------------------------------------------- nginx

  private async nginxTest(scope: StepScope, step: string): Promise<void> {
    await this.run.run(this.config.nginx, [...this.nginxArgs, '-t'], { timeoutMs: scope.timeoutMs, signal: scope.signal }).catch((error: unknown) => {
      throw new RollbackError(`nginx -t failed: ${errorMessage(error)}`, step, { cause: error });
    });
  }

  private async readUpstream(): Promise<{ text: string; active: Color }> {
    const { upstreamFile, config } = this;
    const text = await readFile(upstreamFile, 'utf8').catch((error: unknown) => {
      throw new RollbackError(`upstream_file ${upstreamFile} cannot be read: ${errorMessage(error)}`, 'read', { cause: error });
    });
    const servers = upstreamServers(text, config.upstream_name);
    if (servers === null) throw new RollbackError(`${upstreamFile} has no "upstream ${config.upstream_name} { … }" block`, 'read');
    const active = activeColor(servers, this.colors);
    if (!isColor(active)) throw new RollbackError(`cannot tell the active colour of upstream ${config.upstream_name} in ${upstreamFile}: ${active}`, 'read');
    return { text, active };
  }

  private async executeNginx(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const { upstreamFile, config, colors } = this;
    const { text, active } = await this.readUpstream();
    const to = await this.decide(ctx, active);
    const address = colors[to]!;
    if (active === to) {
      ctx.progress(`upstream ${config.upstream_name} already routes to ${to} (${address}); reloading nginx to be sure it serves it`);
      await within(scope, 'nginx-test', 'nginx -t', () => this.nginxTest(scope, 'nginx-test'));
    } else {
      const backup = path.join(ctx.dataDir, UPSTREAM_BACKUP);
      if (!(await stat(backup).then(() => true, () => false))) await writeFile(backup, text);
      await replaceFile(upstreamFile, switchUpstream(text, config.upstream_name, colors[active]!, address));
      ctx.progress(`${upstreamFile}: upstream ${config.upstream_name} ${active} (${colors[active]}) -> ${to} (${address})`);
      try {
        await within(scope, 'nginx-test', 'nginx -t', () => this.nginxTest(scope, 'nginx-test'));
      } catch (error) {
        // Never leave a config nginx refuses: the next reload (ours or anyone's) would fail on it.
        await replaceFile(upstreamFile, text);
        ctx.progress(`nginx -t failed; ${upstreamFile} restored (still ${active})`);
        throw new RollbackError(`${errorMessage(error)}; ${upstreamFile} was restored, traffic still goes to ${active}`, 'nginx-test', {
          cause: error,
        });
      }
    }
    ctx.progress(`nginx -s reload`);
    await within(scope, 'nginx-reload', 'nginx -s reload', () =>
      this.run.run(config.nginx, [...this.nginxArgs, '-s', 'reload'], { timeoutMs: scope.timeoutMs, signal: scope.signal }),
    );
  }

  // -------------------------------------------------------------------------------------- kubernetes

  private async selectorValue(scope: StepScope, step: string): Promise<string> {
    const service = this.service;
    const result = await within(scope, step, `kubectl get service ${service}`, () =>
      this.run.run(this.config.kubectl, [...this.namespaceArgs, 'get', 'service', service, '-o', this.selectorPath], {
        timeoutMs: scope.timeoutMs,
        signal: scope.signal,
      }),
    );
    return (result.stdoutTail.at(-1) ?? '').trim();
  }

  private async activeInCluster(scope: StepScope, step: string): Promise<Color> {
    const value = await this.selectorValue(scope, step);
    const active = activeColor(value === '' ? [] : [value], this.colors);
    if (!isColor(active)) {
      const config = this.config;
      throw new RollbackError(
        `cannot tell the active colour of service ${this.service} (namespace ${config.namespace}): selector ${config.selector_label}=${value || '(unset)'}: ${active}`,
        step,
      );
    }
    return active;
  }

  private async executeKubernetes(ctx: RollbackContext, scope: StepScope): Promise<void> {
    const { config, service } = this;
    const active = await this.activeInCluster(scope, 'read');
    const to = await this.decide(ctx, active);
    const value = this.colors[to]!;
    if (active === to) {
      ctx.progress(`service ${service} already selects ${config.selector_label}=${value} (${to})`);
      return;
    }
    const patch = JSON.stringify({ spec: { selector: { [config.selector_label]: value } } });
    ctx.progress(`kubectl -n ${config.namespace} patch service ${service} --type=merge -p ${patch}`);
    await within(scope, 'patch', `kubectl patch service ${service}`, () =>
      this.run.run(config.kubectl, [...this.namespaceArgs, 'patch', 'service', service, '--type=merge', '-p', patch], {
        timeoutMs: scope.timeoutMs,
        signal: scope.signal,
      }),
    );
    const now = await this.activeInCluster(scope, 'confirm');
    if (now !== to) throw new RollbackError(`service ${service} still selects ${now} after the patch`, 'confirm');
    ctx.progress(`service ${service}: ${active} -> ${to}`);
  }
}

export const blueGreenStrategy: StrategyFactory<BlueGreenStrategyConfig> = (config, deps) => new BlueGreenStrategy(config, deps);
