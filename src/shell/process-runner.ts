/**
 * The real CommandRunner: `spawn` with `shell: false`, a timeout and an abort signal that kill
 * the program's whole process group (SIGTERM, then SIGKILL), bounded output tails, stdin from a
 * file or text, stdout optionally streamed to a file. Each program leads its own process group
 * (see process-group.ts): what it leaves running in that group when it exits is stopped too, and
 * with a registry the group is known to the next guard process if this one is killed mid-step.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RollbackError } from '../errors.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../strategies/command-runner.js';
import { clockTimeout, systemClock, type Clock } from './clock.js';
import { GROUP_KILL_GRACE_MS, GROUP_TOKEN_ENV, groupGone, signalGroup, type GroupRegistry } from './process-group.js';
import { stepEnvironment } from './step-env.js';

const TAIL_LINES = 40;
const TAIL_BYTES = 16 * 1024;
const KILL_GRACE_MS = 2000;

/** Keeps the last lines of a stream without holding all of it. */
class Tail {
  private text = '';
  push(chunk: Buffer): void {
    this.text = (this.text + chunk.toString('utf8')).slice(-TAIL_BYTES);
  }
  lines(): string[] {
    return this.text.split('\n').filter((l) => l.trim() !== '').slice(-TAIL_LINES);
  }
}

/**
 * The process group a program leads: stopped with SIGTERM then, after a grace, SIGKILL; `stopped`
 * says why it was stopped (a timeout, a cancel), if it was.
 */
class StepGroup {
  stopped: string | null = null;
  /** Aborts the pending SIGKILL of the grace. */
  private cancelKill: AbortController | undefined;

  constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly clock: Clock,
  ) {}

  private get pgid(): number | undefined {
    return this.child.pid;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.pgid === undefined) return;
    try {
      signalGroup(this.pgid, signal);
    } catch {
      // EPERM: a member changed its user; the leader at least is ours to signal.
      this.child.kill(signal);
    }
  }

  /** SIGTERM to the group now, SIGKILL after the grace. */
  terminate(): void {
    this.kill('SIGTERM');
    this.cancelKill?.abort();
    const cancel = (this.cancelKill = new AbortController());
    void this.clock.sleep(KILL_GRACE_MS, cancel.signal).then(() => {
      if (!cancel.signal.aborted) this.kill('SIGKILL');
    });
  }

  stop(why: string): void {
    if (this.stopped) return;
    this.stopped = why;
    this.terminate();
  }

  /** Whether anything of the group still runs. */
  alive(): boolean {
    return this.pgid !== undefined && signalGroup(this.pgid, 0);
  }

  /** Resolves once nothing of the group is left (bounded). */
  gone(): Promise<unknown> {
    return this.pgid === undefined ? Promise.resolve() : groupGone(this.pgid, GROUP_KILL_GRACE_MS, this.clock);
  }

  /** The step is over: a member that ignored SIGTERM gets SIGKILL now. */
  end(): void {
    this.cancelKill?.abort();
    if (this.alive()) this.kill('SIGKILL');
  }
}

/**
 * Connects the program's stdio as the options say. I/O results are judged once the program has
 * exited; until then a rejection must not go unhandled, or it would take the daemon down.
 */
function connectStdio(child: ChildProcessWithoutNullStreams, options: CommandOptions): { stdout: Tail; stderr: Tail; io: Promise<unknown>[] } {
  const stdout = new Tail();
  const stderr = new Tail();
  const io: Promise<unknown>[] = [];
  const track = (work: Promise<unknown>) => {
    work.catch(() => undefined);
    io.push(work);
  };
  if (options.stdoutFile) track(pipeline(child.stdout, createWriteStream(options.stdoutFile, { mode: 0o600 })));
  else child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => stderr.push(c));
  if (options.stdin && 'file' in options.stdin) {
    // A program that exits without reading all of stdin is judged by its exit code, not EPIPE.
    track(
      pipeline(createReadStream(options.stdin.file), child.stdin).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE' && error.code !== 'ERR_STREAM_PREMATURE_CLOSE') throw error;
      }),
    );
  } else child.stdin.end(options.stdin && 'text' in options.stdin ? options.stdin.text : undefined);
  child.stdin.on('error', () => undefined);
  return { stdout, stderr, io };
}

/** What a closed program's run came to: null when it exited 0 and its I/O went well. */
async function outcome(
  label: string,
  command: string,
  group: StepGroup,
  stdio: { stderr: Tail; io: Promise<unknown>[] },
  code: number | null,
  signal: NodeJS.Signals | null,
): Promise<RollbackError | null> {
  // Judged only once nothing of the group is left (bounded), so a stopped step is stopped.
  const all = await Promise.allSettled([...stdio.io, group.gone()]);
  const ioError = all.slice(0, stdio.io.length).find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  const tail = stdio.stderr.lines().slice(-5).join(' | ');
  if (group.stopped) return new RollbackError(`${label}: ${group.stopped}${tail ? `; stderr: ${tail}` : ''}`, command);
  // A failed stdin/stdout file is the cause when the program then dies of it (SIGPIPE).
  if (ioError) return new RollbackError(`${label}: ${String(ioError.reason)}`, command, { cause: ioError.reason });
  if (code !== 0) {
    const how = code === null ? `killed by ${signal}` : `exited with code ${code}`;
    return new RollbackError(`${label}: ${how}${tail ? `; stderr: ${tail}` : ''}`, command);
  }
  return null;
}

export class ProcessRunner implements CommandRunner {
  private readonly clock: Clock;

  /**
   * `registry`: where running groups are noted for the next start (the daemon gives its state
   * dir's). `clock`: the timeouts, the kill grace and the durations run on it (the system's unless
   * given, so a test can drive them).
   */
  constructor(private readonly options: { registry?: GroupRegistry; clock?: Clock } = {}) {
    this.clock = options.clock ?? systemClock;
  }

  async which(command: string): Promise<string | null> {
    if (command.includes('/')) return (await access(command, constants.X_OK).then(() => true, () => false)) ? command : null;
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (!dir) continue;
      const candidate = join(dir, command);
      if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
    }
    return null;
  }

  run(command: string, args: readonly string[], options: CommandOptions): Promise<CommandResult> {
    const started = this.clock.now();
    const label = [command, ...args].join(' ');
    return new Promise<CommandResult>((resolve, reject) => {
      // Noted before the spawn, so a kill -9 of the guard at any moment after it leaves a trace.
      const token = this.options.registry?.prepare(label);
      const child = spawn(command, [...args], {
        cwd: options.cwd,
        // A minimal environment, never the guard's own (its secrets): see step-env.ts.
        env: stepEnvironment({ ...options.env, ...(token ? { [GROUP_TOKEN_ENV]: token } : {}) }),
        shell: false,
        stdio: ['pipe', 'pipe', 'pipe'],
        // Its own process group: stopping the step stops everything the program started.
        detached: true,
      });
      const group = new StepGroup(child, this.clock);
      // The program exited: what it left running in its group (a background job holding the
      // output pipe open, a server it forgot) is stopped, or the step would never end or leak it.
      child.once('exit', () => {
        if (group.alive()) group.terminate();
      });
      const deadline = clockTimeout(this.clock, options.timeoutMs);
      deadline.signal.addEventListener('abort', () => group.stop(`timed out after ${options.timeoutMs}ms`), { once: true });
      const onAbort = () => group.stop('cancelled');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();
      const stdio = connectStdio(child, options);

      const finish = (error: RollbackError | null, code: number) => {
        deadline.clear();
        // A member that ignored SIGTERM gets SIGKILL now; then the group is gone and forgotten.
        group.end();
        if (token) this.options.registry?.remove(token);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) return reject(error);
        resolve({ code, stdoutTail: stdio.stdout.lines(), stderrTail: stdio.stderr.lines(), durationMs: this.clock.now() - started });
      };
      child.on('error', (error: NodeJS.ErrnoException) => {
        const message = error.code === 'ENOENT' ? `${command}: not installed (not found on PATH)` : `${label}: ${error.message}`;
        finish(new RollbackError(message, command, { cause: error }), -1);
      });
      child.on('close', (code, signal) => {
        void outcome(label, command, group, stdio, code, signal).then((error) => finish(error, error ? code ?? -1 : 0));
      });
    });
  }
}
