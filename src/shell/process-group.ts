/**
 * Process groups of step programs. Each program a step runs is started as the leader of its own
 * process group (spawn `detached`), so a timeout, a lost lease or a SIGTERM stops everything it
 * started (npm under a script, mysql under a shell), not only the direct child.
 *
 * Each program is also written to a small registry in the state dir before it is spawned, with
 * a random token it carries in its environment, so a guard started after a `kill -9` of the
 * previous one finds the processes the interrupted step left running (by that token, in
 * /proc/<pid>/environ) and stops their group before the step runs again. Found by the token,
 * never by a remembered pid: a pid the kernel has since given to another program is never
 * signalled.
 */
import { mkdirSync, openSync, closeSync, fsyncSync, renameSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { systemClock, type Clock } from './clock.js';

/** How long a group gets to exit after SIGTERM before it is sent SIGKILL. */
export const GROUP_KILL_GRACE_MS = 2000;

interface ProcStat {
  pgrp: number;
  /** Clock ticks after boot when the process started (field 22 of /proc/<pid>/stat). */
  startTicks: number;
}

/** /proc/<pid>/stat, or null when the process is gone (or /proc is not there: not Linux). */
function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const pgrp = Number(fields[2]);
  const startTicks = Number(fields[19]);
  return Number.isFinite(pgrp) && Number.isFinite(startTicks) ? { pgrp, startTicks } : null;
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** The pids of every live process in group `pgid` (zombies included: they are gone in a moment). */
export async function groupMembers(pgid: number): Promise<number[]> {
  const names = await readdir('/proc').catch(() => [] as string[]);
  return names
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => procStat(pid)?.pgrp === pgid && !isZombie(pid))
    .sort((a, b) => a - b);
}

function isZombie(pid: number): boolean {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2, text.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Sends `signal` to every process of group `pgid`; false when the group is gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** One step program, as written to the registry before it is started. */
export interface GroupEntry {
  /** Unique; the program and everything it starts carry it as RG_STEP_GROUP in their environment. */
  token: string;
  /** What runs: the command line, to say which step's program was stopped. */
  command: string;
  /** The guard process that started it, and when (a live guard's programs are its own business). */
  guardPid: number;
  guardStartTicks: number;
  bootId: string;
  startedAt: string;
}

/** The environment variable that marks every process of one step program. */
export const GROUP_TOKEN_ENV = 'RG_STEP_GROUP';

/** Pids of live processes whose environment carries `RG_STEP_GROUP=<token>`, with their group. */
async function processesCarrying(token: string): Promise<{ pid: number; pgrp: number }[]> {
  const marker = Buffer.from(`\0${GROUP_TOKEN_ENV}=${token}\0`);
  const out: { pid: number; pgrp: number }[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      // Leading NUL so the first variable matches like the others.
      const environ = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]);
      if (environ.indexOf(marker) < 0 || isZombie(pid)) continue;
      const stat = procStat(pid);
      if (stat) out.push({ pid, pgrp: stat.pgrp });
    } catch {
      // Gone, or not ours to read.
    }
  }
  return out;
}

/**
 * The registry of step programs: one file per program in `dir`, written and fsynced BEFORE the
 * program is spawned (so a kill -9 of the guard at any moment after the spawn leaves a trace),
 * removed once its group is gone. The entry holds a random token the program (and every process
 * it starts) carries in its environment: the next guard finds exactly those processes, with no
 * pid that may have been recycled in between.
 */
export class GroupRegistry {
  constructor(readonly dir: string) {}

  /** Notes a program about to start; returns the token to put in its environment. */
  prepare(command: string): string {
    const token = randomBytes(12).toString('hex');
    const entry: GroupEntry = { token, command, guardPid: process.pid, guardStartTicks: procStat(process.pid)?.startTicks ?? -1, bootId: bootId(), startedAt: new Date().toISOString() };
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const file = join(this.dir, `${token}.json`);
    const temp = `${file}.tmp`;
    writeFileSync(temp, JSON.stringify(entry), { mode: 0o640 });
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
    return token;
  }

  remove(token: string): void {
    rmSync(join(this.dir, `${token}.json`), { force: true });
  }

  /**
   * Stops every program a previous guard process left running (it was killed mid-step), with
   * its whole group, and empties the registry. Called on start, before an interrupted plan is
   * resumed. Returns what was stopped.
   */
  async stopOrphans(log: Logger, clock: Clock = systemClock): Promise<GroupEntry[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') || n.endsWith('.tmp'));
    const stopped: GroupEntry[] = [];
    for (const name of names) {
      const file = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // A note never completed: its program was never spawned (the note comes first).
        await rm(file, { force: true });
        continue;
      }
      let entry: GroupEntry;
      try {
        entry = JSON.parse(await readFile(file, 'utf8')) as GroupEntry;
      } catch (error) {
        log.warn('unreadable entry in the step process registry: ignored', { component: 'steps', file, error: errorMessage(error) });
        await rm(file, { force: true });
        continue;
      }
      const guard = procStat(entry.guardPid);
      if (guard && guard.startTicks === entry.guardStartTicks && entry.bootId === bootId()) continue; // Its guard still runs.
      const found = entry.bootId === bootId() ? await processesCarrying(entry.token) : [];
      if (found.length > 0) {
        const groups = [...new Set(found.map((p) => p.pgrp))];
        log.warn(`stopping process group ${groups.join(', ')} a previous guard left running mid-step (${entry.command})`, { component: 'steps', pids: found.map((p) => p.pid), guardPid: entry.guardPid });
        await Promise.all(groups.map((pgid) => stopGroup(pgid, clock)));
        // A process that left the group (setsid) but still carries the token.
        for (const { pid } of await processesCarrying(entry.token)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Gone.
          }
        }
        stopped.push(entry);
      }
      await rm(file, { force: true });
    }
    return stopped;
  }
}

/** SIGTERM to the group, SIGKILL after the grace; resolves once no member is left (bounded). */
export async function stopGroup(pgid: number, clock: Clock = systemClock, graceMs = GROUP_KILL_GRACE_MS): Promise<void> {
  if (!signalGroup(pgid, 'SIGTERM')) return;
  const deadline = clock.now() + graceMs;
  while (clock.now() < deadline) {
    if ((await groupMembers(pgid)).length === 0) return;
    await clock.sleep(50);
  }
  signalGroup(pgid, 'SIGKILL');
  const killDeadline = clock.now() + graceMs;
  while (clock.now() < killDeadline && (await groupMembers(pgid)).length > 0) await clock.sleep(20);
}

/**
 * Resolves once group `pgid` has no live member. The members were told to stop (SIGTERM) when the
 * leader exited or the step was stopped; those still there after the grace get SIGKILL. Bounded.
 */
export async function groupGone(pgid: number, graceMs = GROUP_KILL_GRACE_MS, clock: Clock = systemClock): Promise<void> {
  const killAt = clock.now() + graceMs;
  const giveUpAt = killAt + graceMs;
  for (;;) {
    if ((await groupMembers(pgid)).length === 0) return;
    const now = clock.now();
    if (now >= giveUpAt) return;
    if (now >= killAt) signalGroup(pgid, 'SIGKILL');
    await clock.sleep(20);
  }
}
