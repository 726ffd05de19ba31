/**
 * The real CommandRunner: `spawn` with `shell: false`, a timeout and an abort signal that kill
 * the program (SIGTERM, then SIGKILL), bounded output tails, stdin from a file or text, stdout
 * optionally streamed to a file.
 */
import { spawn } from 'node:child_process';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { RollbackError } from '../errors.js';
import type { CommandOptions, CommandResult, CommandRunner } from '../strategies/command-runner.js';

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

export class ProcessRunner implements CommandRunner {
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
    const started = Date.now();
    const label = [command, ...args].join(' ');
    return new Promise<CommandResult>((resolve, reject) => {
      const stdout = new Tail();
      const stderr = new Tail();
      const child = spawn(command, [...args], {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        shell: false,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stopped: string | null = null;
      let killTimer: NodeJS.Timeout | undefined;
      const stop = (why: string) => {
        if (stopped || child.exitCode !== null) return;
        stopped = why;
        child.kill('SIGTERM');
        killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      };
      const timer = setTimeout(() => stop(`timed out after ${options.timeoutMs}ms`), options.timeoutMs);
      const onAbort = () => stop('cancelled');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      if (options.signal?.aborted) onAbort();

      // I/O results are judged once the program has exited (below); until then a rejection must
      // not go unhandled, or it would take the daemon down.
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

      const finish = (error: RollbackError | null, code: number) => {
        clearTimeout(timer);
        clearTimeout(killTimer);
        options.signal?.removeEventListener('abort', onAbort);
        if (error) return reject(error);
        resolve({ code, stdoutTail: stdout.lines(), stderrTail: stderr.lines(), durationMs: Date.now() - started });
      };
      child.on('error', (error: NodeJS.ErrnoException) => {
        const message = error.code === 'ENOENT' ? `${command}: not installed (not found on PATH)` : `${label}: ${error.message}`;
        finish(new RollbackError(message, command, { cause: error }), -1);
      });
      child.on('close', (code, signal) => {
        void Promise.allSettled(io).then((results) => {
          const ioError = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
          const tail = stderr.lines().slice(-5).join(' | ');
          if (stopped) return finish(new RollbackError(`${label}: ${stopped}${tail ? `; stderr: ${tail}` : ''}`, command), code ?? -1);
          // A failed stdin/stdout file is the cause when the program then dies of it (SIGPIPE).
          if (ioError) return finish(new RollbackError(`${label}: ${String(ioError.reason)}`, command, { cause: ioError.reason }), code ?? -1);
          if (code !== 0) {
            const how = code === null ? `killed by ${signal}` : `exited with code ${code}`;
            return finish(new RollbackError(`${label}: ${how}${tail ? `; stderr: ${tail}` : ''}`, command), code ?? -1);
          }
          finish(null, 0);
        });
      });
    });
  }
}
