/**
 * Kubernetes strategy (the runbook's 容器化回滚, Kubernetes part, and k8s-rollback.sh):
 *   kubectl [--context c] -n <ns> rollout history deployment/<d>      (recorded: 查看部署历史)
 *   kubectl [--context c] -n <ns> rollout undo deployment/<d> [--to-revision=N]
 *   kubectl [--context c] -n <ns> rollout status deployment/<d> --timeout=<timeout>s
 *
 * Idempotency. `rollout undo` is not idempotent: undo copies the target revision's template into
 * a new, highest revision, so a second undo "rolls back the rollback" to the bad release. Before
 * undoing, the step reads the deployment's current revision (its
 * `deployment.kubernetes.io/revision` annotation) and records `{revisionBefore, targetRevision}`
 * in `<dataDir>/kubernetes.json` (atomically). Run again — a plan resumed after a crash — with
 * that record present and the revision now above `revisionBefore`, the undo has happened and is
 * skipped; only `rollout status` is waited for. With the revision still at `revisionBefore`, the
 * undo never took effect and is issued again. (A deploy made between the crash and the resume
 * also moves the revision on; the step then does not undo it either, which is the safe side.)
 *
 * The rollback target is a revision, not a version: `to` is not passed to kubectl; the guard's
 * verification confirms that the previous version answers.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { KubernetesStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import { writeJsonAtomic } from '../store/atomic-write.js';
import type { CommandResult } from './command-runner.js';
import { reportOutput, runProgram, type RunProgramOptions } from './command.js';
import { stepScope, type StepScope } from './step.js';
import type { RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** What the step records before `rollout undo`, so a resumed run can tell whether it happened. */
export interface UndoRecord {
  schemaVersion: 1;
  namespace: string;
  deployment: string;
  /** The deployment's revision before the undo. */
  revisionBefore: number;
  /** The revision undone to: `to_revision`, or the previous one in the history (null if none). */
  targetRevision: number | null;
  at: string;
}

/** File name of the UndoRecord inside the step's data directory. */
export const UNDO_RECORD = 'kubernetes.json';
const CHECK_TIMEOUT_MS = 30_000;
const REVISION_JSONPATH = 'jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}';

/** Revision numbers listed by `kubectl rollout history` (the lines under `REVISION  CHANGE-CAUSE`). */
export function parseHistory(lines: readonly string[]): number[] {
  return lines
    .map((line) => /^\s*(\d+)(\s|$)/.exec(line)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

/** The kubernetes strategy for one config entry: one deployment, undone by `kubectl rollout undo`. */
class KubernetesStrategy implements RollbackStrategy {
  readonly type = 'kubernetes';
  /** `deployment/<name>`, as kubectl names it. */
  private readonly target: string;
  /** Options that go before every kubectl command: the context, if any, and the namespace. */
  private readonly globalArgs: readonly string[];
  private readonly undoArgs: readonly string[];

  constructor(
    private readonly config: KubernetesStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {
    this.target = `deployment/${config.deployment}`;
    this.globalArgs = [...(config.context ? ['--context', config.context] : []), '-n', config.namespace];
    this.undoArgs = ['rollout', 'undo', this.target, ...(config.to_revision ? [`--to-revision=${config.to_revision}`] : [])];
  }

  describe(): string {
    const { config } = this;
    const to = config.to_revision ? ` --to-revision=${config.to_revision}` : '';
    return `kubernetes: rollout undo ${this.target}${to} in ${config.namespace}${config.context ? ` (context ${config.context})` : ''}, wait for rollout status`;
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    return this.problems(ctx);
  }

  async execute(ctx: RollbackContext): Promise<void> {
    const { config, target } = this;
    const scope = stepScope(ctx, config.timeout, this.deps.clock);
    const recordFile = path.join(ctx.dataDir, UNDO_RECORD);

    const { lines, revisions } = await this.history(scope, 'history', true);
    reportOutput(scope, lines);
    const revision = await this.currentRevision(scope, 'history');
    const record = await this.readRecord(recordFile);

    if (record && revision > record.revisionBefore) {
      ctx.progress(
        `undo already done: ${target} is at revision ${revision}, past ${record.revisionBefore} recorded before the undo ` +
          `(a second undo would return to the bad release); not undoing again`,
      );
    } else {
      if (config.to_revision !== undefined && !revisions.includes(config.to_revision)) {
        throw new RollbackError(
          `revision ${config.to_revision} is not in the rollout history of ${target} (it has ${revisions.join(', ') || 'none'})`,
          'undo',
        );
      }
      if (record) {
        ctx.progress(`an earlier undo was recorded but ${target} is still at revision ${revision}; undoing again`);
      } else {
        const previous = revisions.filter((r) => r < revision).sort((a, b) => b - a)[0] ?? null;
        await this.writeRecord(recordFile, {
          schemaVersion: 1,
          namespace: config.namespace,
          deployment: config.deployment,
          revisionBefore: revision,
          targetRevision: config.to_revision ?? previous,
          at: new Date(this.deps.clock.now()).toISOString(),
        });
      }
      const result = await this.kubectl(scope, 'undo', this.undoArgs);
      reportOutput(scope, result.stdoutTail);
    }

    const seconds = Math.max(1, Math.ceil(config.timeout / 1000));
    const status = await this.kubectl(scope, 'status', ['rollout', 'status', target, `--timeout=${seconds}s`]);
    reportOutput(scope, status.stdoutTail);
    ctx.progress(`${target} is at revision ${await this.currentRevision(scope, 'status')} (was ${record?.revisionBefore ?? revision})`);
  }

  private kubectl(scope: StepScope, step: string, args: readonly string[], options?: RunProgramOptions): Promise<CommandResult> {
    return runProgram(this.deps.run, scope, step, this.config.kubectl, [...this.globalArgs, ...args], options);
  }

  private async history(scope: StepScope, step: string, announce: boolean): Promise<{ lines: string[]; revisions: number[] }> {
    const lines = (await this.kubectl(scope, step, ['rollout', 'history', this.target], { announce })).stdoutTail;
    return { lines, revisions: parseHistory(lines) };
  }

  private async currentRevision(scope: StepScope, step: string): Promise<number> {
    const result = await this.kubectl(scope, step, ['get', this.target, '-o', REVISION_JSONPATH], { announce: false });
    const text = (result.stdoutTail.at(-1) ?? '').trim();
    const revision = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(revision)) {
      throw new RollbackError(`${this.target} in ${this.config.namespace} has no revision annotation (got "${text}")`, step);
    }
    return revision;
  }

  private async readRecord(file: string): Promise<UndoRecord | null> {
    const { config, target } = this;
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new RollbackError(`${file} cannot be read: ${errorMessage(error)}`, 'undo', { cause: error });
    }
    let record: Partial<UndoRecord>;
    try {
      record = JSON.parse(text) as Partial<UndoRecord>;
    } catch (error) {
      throw new RollbackError(`${file} is not valid JSON; remove it only if no undo was issued`, 'undo', { cause: error });
    }
    if (record.schemaVersion !== 1 || typeof record.revisionBefore !== 'number') {
      throw new RollbackError(`${file} is not an undo record (schemaVersion 1); remove it only if no undo was issued`, 'undo');
    }
    if (record.deployment !== config.deployment || record.namespace !== config.namespace) {
      throw new RollbackError(
        `${file} records an undo of deployment/${record.deployment} in ${record.namespace}, not ${target} in ${config.namespace}`,
        'undo',
      );
    }
    return record as UndoRecord;
  }

  private async writeRecord(file: string, record: UndoRecord): Promise<void> {
    try {
      await writeJsonAtomic(file, record, { mode: 0o600 });
    } catch (error) {
      throw new RollbackError(`could not record the undo in ${file}: ${errorMessage(error)}`, 'undo', { cause: error });
    }
  }

  private async problems(ctx: RollbackContext): Promise<string[]> {
    const { config, target } = this;
    if ((await this.deps.run.which(config.kubectl)) === null) return [`${config.kubectl} is not installed (not found or not executable)`];
    const scope = stepScope(ctx, Math.min(CHECK_TIMEOUT_MS, config.timeout), this.deps.clock);
    try {
      await this.kubectl(scope, 'check', ['get', target, '-o', 'name'], { announce: false });
    } catch (error) {
      return [`${target} cannot be read in namespace ${config.namespace}: ${errorMessage(error)}`];
    }
    if (config.to_revision === undefined) return [];
    try {
      const { revisions } = await this.history(scope, 'check', false);
      if (!revisions.includes(config.to_revision)) {
        return [`revision ${config.to_revision} is not in the rollout history of ${target} (it has ${revisions.join(', ') || 'none'})`];
      }
    } catch (error) {
      return [`rollout history of ${target} cannot be read: ${errorMessage(error)}`];
    }
    return [];
  }
}

export const kubernetesStrategy: StrategyFactory<KubernetesStrategyConfig> = (config, deps) => new KubernetesStrategy(config, deps);
