/**
 * Process groups of step programs. Each program a step runs is started as the leader of its own
 * process group (spawn `detached`), so a timeout, a lost lease or a SIGTERM stops everything it
 * started (npm under a script, mysql under a shell), not only the direct child.
 *
 * Each running group is also written to a small registry in the state dir before the step goes
 * on, so a guard started after a `kill -9` of the previous one finds a group the interrupted step
 * left running and stops it before the step runs again. A registry entry names the leader's start
 * time (from /proc/<pid>/stat) and the boot it belongs to: a pid the kernel has since given to
 * another program is never signalled.
 */
import { mkdirSync, openSync, closeSync, fsyncSync, renameSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
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

/** One running group of a step program, as written to the registry. */
export interface GroupEntry {
  pgid: number;
  startTicks: number;
  bootId: string;
  /** What runs: the command line, to say which step's program was stopped. */
  command: string;
  /** The guard process that started it, and when (a live guard's groups are its own business). */
  guardPid: number;
  guardStartTicks: number;
  startedAt: string;
}

/**
 * The registry of running groups: one file per group in `dir`, written synchronously right after
 * the spawn (before the event loop can run anything else, so before the step can be persisted as
 * done or the guard can go on) and removed once the group is gone.
 */
export class GroupRegistry {
  constructor(readonly dir: string) {}

  add(pgid: number, command: string): void {
    const stat = procStat(pgid);
    if (!stat) return; // Already gone, or no /proc: nothing a later start could check safely.
    const guardStartTicks = procStat(process.pid)?.startTicks ?? -1;
    const entry: GroupEntry = { pgid, startTicks: stat.startTicks, bootId: bootId(), command, guardPid: process.pid, guardStartTicks, startedAt: new Date().toISOString() };
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const file = join(this.dir, `${pgid}.json`);
    const temp = `${file}.tmp`;
    writeFileSync(temp, JSON.stringify(entry), { mode: 0o640 });
    const fd = openSync(temp, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, file);
  }

  remove(pgid: number): void {
    rmSync(join(this.dir, `${pgid}.json`), { force: true });
  }

  /**
   * Stops every group a previous guard process left running (it was killed mid-step) and empties
   * the registry. Called on start, before an interrupted plan is resumed. Returns what was stopped.
   */
  async stopOrphans(log: Logger, clock: Clock = systemClock): Promise<GroupEntry[]> {
    const names = (await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
    const stopped: GroupEntry[] = [];
    for (const name of names) {
      const file = join(this.dir, name);
      let entry: GroupEntry;
      try {
        entry = JSON.parse(await readFile(file, 'utf8')) as GroupEntry;
      } catch (error) {
        log.warn('unreadable entry in the step process registry: ignored', { component: 'steps', file, error: errorMessage(error) });
        await rm(file, { force: true });
        continue;
      }
      const guard = procStat(entry.guardPid);
      if (guard && guard.startTicks === entry.guardStartTicks) continue; // Its guard still runs (and owns it).
      if (await this.stillOurs(entry)) {
        log.warn(`stopping process group ${entry.pgid} a previous guard left running mid-step (${entry.command})`, { component: 'steps', pgid: entry.pgid, guardPid: entry.guardPid });
        await stopGroup(entry.pgid, clock);
        stopped.push(entry);
      }
      await rm(file, { force: true });
    }
    return stopped;
  }

  /**
   * Whether the group is still the one recorded: same boot, and the leader (if alive) started at
   * the recorded tick. A dead leader's pid stays reserved by the kernel while its group has
   * members, so members of group `pgid` that started no earlier than the leader are its own.
   */
  private async stillOurs(entry: GroupEntry): Promise<boolean> {
    if (entry.bootId !== bootId()) return false;
    const leader = procStat(entry.pgid);
    if (leader) return leader.startTicks === entry.startTicks && leader.pgrp === entry.pgid;
    const members = await groupMembers(entry.pgid);
    return members.length > 0 && members.every((pid) => (procStat(pid)?.startTicks ?? -1) >= entry.startTicks);
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
