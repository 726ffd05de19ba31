/**
 * Docker strategy (the runbook's 容器化回滚, Docker part), every call an argument vector:
 *
 * run mode — replace the container with one of the previous image:
 *   docker inspect --type container --format '{{.Config.Image}} {{.State.Running}}' <container>
 *   docker stop <container>; docker rm <container>
 *   docker run -d --name <container> [-p <port>]… [--env-file <file>] <image>:<to>
 *   then `docker inspect --format '{{.State.Running}} {{.State.Status}}'` every 500 ms until the
 *   container is seen running twice in a row (fails at once when it has exited).
 * compose mode — `docker compose -f <compose_file, {to} expanded> up -d`.
 *
 * Idempotent: run mode looks before it acts — a container that already runs `<image>:<to>` is
 * left alone (a resumed plan only waits for it), and "No such container" from stop or rm counts
 * as done, so a plan that crashed between rm and run converges by running the new container.
 * `compose up -d` converges by itself.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { DockerStrategyConfig } from '../config/schema.js';
import { errorMessage, RollbackError } from '../errors.js';
import type { CommandResult } from './command-runner.js';
import { reportOutput, runProgram, type RunProgramOptions } from './command.js';
import { expandArg } from './placeholders.js';
import { stepScope, versionProblem, type StepScope } from './step.js';
import type { RollbackContext, RollbackStrategy, StrategyDeps, StrategyFactory } from './types.js';

/** How often a new container's state is read while waiting for it to run. */
const RUNNING_POLL_MS = 500;
/** Read-only calls made by `check`. */
const CHECK_TIMEOUT_MS = 30_000;
/** docker's answer for a container (or object) that is not there; its wording varies by version. */
const NO_SUCH = /No such (container|object)/i;

interface ContainerState {
  image: string;
  running: boolean;
}

/** The docker strategy for one config entry; the run and compose modes share its helpers. */
class DockerStrategy implements RollbackStrategy {
  readonly type = 'docker';

  constructor(
    private readonly config: DockerStrategyConfig,
    private readonly deps: StrategyDeps,
  ) {}

  describe({ from, to }: Pick<RollbackContext, 'from' | 'to'>): string {
    if (this.config.mode === 'compose') {
      let file = this.config.compose_file ?? '';
      try {
        file = this.composeFile({ from, to });
      } catch {
        // An unusable version: shown unexpanded; check and execute refuse it.
      }
      return `docker: compose -f ${file} up -d`;
    }
    return `docker: replace container ${this.config.container ?? '?'} with ${this.config.image ?? '?'}:${to}`;
  }

  async checkReadiness(ctx: RollbackContext): Promise<string[]> {
    if (ctx.signal.aborted) throw new RollbackError('check was cancelled', 'check', { cause: ctx.signal.reason });
    return this.problems(ctx);
  }

  async execute(ctx: RollbackContext): Promise<void> {
    if (this.config.mode === 'compose') return this.executeCompose(ctx);
    return this.executeRun(ctx);
  }

  /** `<image>:<to>`, refusing an unusable version or a run-mode config without container and image. */
  private runTarget(to: string): { container: string; ref: string } {
    const issue = versionProblem(to);
    if (issue) throw new RollbackError(`refusing to roll back: ${issue}`, 'validate');
    if (!this.config.container || !this.config.image) throw new RollbackError('docker run mode needs container and image', 'validate');
    return { container: this.config.container, ref: `${this.config.image}:${to}` };
  }

  /** The compose file of `to`, resolved; refuses an unusable version. */
  private composeFile(ctx: Pick<RollbackContext, 'from' | 'to'>): string {
    if (!this.config.compose_file) throw new RollbackError('docker compose mode needs compose_file', 'validate');
    return path.resolve(expandArg(this.config.compose_file, ctx));
  }

  private dockerRun(scope: StepScope, step: string, args: readonly string[], options?: RunProgramOptions): Promise<CommandResult> {
    return runProgram(this.deps.run, scope, step, this.config.docker, args, options);
  }

  /** The container's image and whether it runs, or null when docker has no such container. */
  private async inspect(scope: StepScope, container: string): Promise<ContainerState | null> {
    let result: CommandResult;
    try {
      result = await this.dockerRun(scope, 'inspect', ['inspect', '--type', 'container', '--format', '{{.Config.Image}} {{.State.Running}}', container]);
    } catch (error) {
      if (!scope.signal.aborted && NO_SUCH.test(errorMessage(error))) return null;
      throw error;
    }
    const [image = '', running = ''] = (result.stdoutTail.at(-1) ?? '').trim().split(/\s+/);
    return { image, running: running === 'true' };
  }

  /** `docker <verb> <container>`, where "No such container" means there is nothing left to do. */
  private async removeStep(ctx: RollbackContext, scope: StepScope, verb: 'stop' | 'rm', container: string): Promise<void> {
    try {
      await this.dockerRun(scope, verb, [verb, container]);
    } catch (error) {
      if (scope.signal.aborted || !NO_SUCH.test(errorMessage(error))) throw error;
      ctx.progress(`${container}: no such container; ${verb} not needed`);
    }
  }

  /** Polls until the container is seen running twice in a row; fails when it has stopped. */
  private async waitRunning(ctx: RollbackContext, scope: StepScope, container: string): Promise<void> {
    const args = ['inspect', '--type', 'container', '--format', '{{.State.Running}} {{.State.Status}}', container];
    let seen = 0;
    for (let polls = 0; ; polls += 1) {
      const result = await this.dockerRun(scope, 'wait-running', args, { announce: polls === 0 });
      const [running = '', status = 'unknown'] = (result.stdoutTail.at(-1) ?? '').trim().split(/\s+/);
      if (running === 'true') {
        seen += 1;
        if (seen >= 2) return ctx.progress(`${container} is running`);
      } else if (status === 'exited' || status === 'dead') {
        throw new RollbackError(`${container} did not stay up: status ${status}${await this.logTail(scope, container)}`, 'wait-running');
      } else {
        seen = 0;
      }
      await scope.clock.sleep(RUNNING_POLL_MS, scope.signal);
      if (scope.signal.aborted) {
        const why = scope.caller.aborted ? 'was cancelled' : `timed out after ${scope.timeoutMs} ms`;
        throw new RollbackError(`waiting for ${container} to run ${why} (last status ${status})`, 'wait-running');
      }
    }
  }

  /** The container's last log lines, for the error of a container that exited. */
  private async logTail(scope: StepScope, container: string): Promise<string> {
    try {
      const result = await this.dockerRun(scope, 'wait-running', ['logs', '--tail', '20', container], { announce: false });
      const lines = [...result.stdoutTail, ...result.stderrTail].slice(-5);
      return lines.length > 0 ? `; its last log lines: ${lines.join(' | ')}` : '';
    } catch (error) {
      return `; docker logs failed too: ${errorMessage(error)}`;
    }
  }

  private async executeRun(ctx: RollbackContext): Promise<void> {
    const { container, ref } = this.runTarget(ctx.to);
    const scope = stepScope(ctx, this.config.timeout, this.deps.clock);
    const current = await this.inspect(scope, container);
    if (current === null) {
      ctx.progress(`${container}: no such container (removed by an earlier attempt?)`);
    } else {
      ctx.progress(`${container} runs ${current.image} (${current.running ? 'running' : 'not running'})`);
    }
    if (current?.image === ref && current.running) {
      ctx.progress(`${container} already runs ${ref}; not replaced`);
    } else {
      if (current !== null) {
        await this.removeStep(ctx, scope, 'stop', container);
        await this.removeStep(ctx, scope, 'rm', container);
      }
      const args = ['run', '-d', '--name', container];
      for (const port of this.config.ports) args.push('-p', port);
      if (this.config.env_file) args.push('--env-file', path.resolve(this.config.env_file));
      args.push(ref);
      const result = await this.dockerRun(scope, 'run', args);
      const id = result.stdoutTail.at(-1)?.trim();
      if (id) ctx.progress(`started container ${id.slice(0, 12)}`);
    }
    await this.waitRunning(ctx, scope, container);
  }

  private async executeCompose(ctx: RollbackContext): Promise<void> {
    const file = this.composeFile(ctx);
    const scope = stepScope(ctx, this.config.timeout, this.deps.clock);
    const result = await this.dockerRun(scope, 'compose-up', ['compose', '-f', file, 'up', '-d']);
    // compose reports progress on stderr.
    reportOutput(scope, [...result.stdoutTail, ...result.stderrTail]);
  }

  private async problems(ctx: RollbackContext): Promise<string[]> {
    const found: string[] = [];
    const docker = this.config.docker;
    if ((await this.deps.run.which(docker)) === null) found.push(`${docker} is not installed (not found or not executable)`);
    if (this.config.env_file) {
      const envFile = path.resolve(this.config.env_file);
      try {
        await stat(envFile);
      } catch (error) {
        found.push(`env_file ${envFile} cannot be read: ${errorMessage(error)}`);
      }
    }
    if (this.config.mode === 'compose') {
      let file: string;
      try {
        file = this.composeFile(ctx);
      } catch (error) {
        return [...found, errorMessage(error)];
      }
      try {
        if (!(await stat(file)).isFile()) found.push(`compose file ${file} is not a file`);
      } catch (error) {
        found.push(`compose file ${file} cannot be read: ${errorMessage(error)}`);
      }
      return found;
    }
    let ref: string;
    try {
      ref = this.runTarget(ctx.to).ref;
    } catch (error) {
      return [...found, errorMessage(error)];
    }
    if (found.length > 0) return found; // without docker, asking about the image only repeats that
    const scope = stepScope(ctx, Math.min(CHECK_TIMEOUT_MS, this.config.timeout), this.deps.clock);
    try {
      await this.dockerRun(scope, 'check', ['image', 'inspect', '--format', '{{.Id}}', ref], { announce: false });
    } catch (error) {
      found.push(`image ${ref} is not available locally: ${errorMessage(error)}`);
    }
    return found;
  }
}

export const dockerStrategy: StrategyFactory<DockerStrategyConfig> = (config, deps) => new DockerStrategy(config, deps);
