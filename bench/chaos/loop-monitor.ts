/**
 * Preloaded into a guard under chaos (`node --import …/loop-monitor.js dist/cli/main.js start`):
 * measures how long the guard's event loop is blocked, from inside the real daemon, without
 * changing a line of it. Not part of the product: only the chaos runner loads it.
 *
 * A 2 ms timer's lateness is the time the loop could not run it: blocked. On a busy machine part
 * of that is the process waiting for a core, which is not the guard's doing, so each lateness is
 * paired with the CPU time the process used meanwhile (process.cpuUsage): the smaller of the two
 * is the block the guard's own work caused. Every second the window's longest of each is
 * appended as one JSON line to $CHAOS_LOOP_FILE, so the runner can leave the start-up out.
 */
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** One second of the guard's event loop. */
export interface LoopWindow {
  /** Epoch ms at the end of the window. */
  at: number;
  /** Longest lateness of the 2 ms timer, ms: the longest the loop could not run, for any reason. */
  maxMs: number;
  /** Longest lateness that the process spent on CPU, ms: the longest block of the guard's own work. */
  maxCpuMs: number;
}

const TICK_MS = 2;
const file = process.env.CHAOS_LOOP_FILE;
if (file) {
  let last = performance.now();
  let lastCpu = process.cpuUsage();
  let windowStart = last;
  let maxMs = 0;
  let maxCpuMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    const cpu = process.cpuUsage();
    const late = Math.max(0, now - last - TICK_MS);
    const cpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    maxMs = Math.max(maxMs, late);
    maxCpuMs = Math.max(maxCpuMs, Math.min(late, cpuMs));
    last = now;
    lastCpu = cpu;
    if (now - windowStart < 1000) return;
    const window: LoopWindow = { at: Date.now(), maxMs, maxCpuMs };
    windowStart = now;
    maxMs = 0;
    maxCpuMs = 0;
    try {
      appendFileSync(file, `${JSON.stringify(window)}\n`);
    } catch {
      // the runner removed its directory: nothing left to tell
    }
  }, TICK_MS);
  timer.unref();
}
