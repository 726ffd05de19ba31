'use strict';
// The demo and test application: a small HTTP service whose release can be made to go bad.
// Its version and fault come from release.json beside it (written when a release is built),
// overridable by environment variables so tests can run one file in many shapes:
//   APP_VERSION   version reported by /health
//   APP_FAULT     none | 5xx | hang | crash | slow | error_ratio | cpu
//                 | memory | health_blip | command
//   (slow and 5xx apply to every request, error_ratio to /api only)
//   APP_FAULT_AFTER_MS  the fault starts this long after the process starts (default 0)
//   APP_FAULT_FILE      instead: the fault is on while this file exists (checked every 10 ms
//                       and on each request), so a benchmark knows the exact injection time
//   APP_ERROR_RATIO     fraction of /api requests answered 500 when APP_FAULT=error_ratio
//   APP_SLOW_MS         extra latency when APP_FAULT=slow
//   APP_CPU_BURN_MS     CPU burnt per request when APP_FAULT=cpu (default 20)
//   APP_BASE_LATENCY_MS latency of every /api request, faulty or not (default 0: a real API
//                       does some work; gives the latency rules a baseline above the floor)
//   APP_WARMUP_CPU_MS   burn ~75 % of a core for this long after start (a JIT/cache warm-up)
//   PORT          port to listen on (pm2 cluster mode shares it between instances)
// Manifest-only settings: memoryMbPerSec / memoryMaxMb (memory: heap growth while faulty),
// blipCount (health_blip: that many /health checks answer 500 once the fault is on, counted
// across all workers of a cluster when a fault file is used),
// faultCommand (command: an argument array run while the fault is on, e.g. a database client
// holding a lock; killed when the fault ends or the process exits) and faultCommandInput (text
// written to its stdin, which stays open). crash with a fault file
// is a crash loop: the process exits when the file appears, and right after each start while
// it exists.
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');

let manifest = {};
try {
  manifest = JSON.parse(fs.readFileSync(path.join(__dirname, 'release.json'), 'utf8'));
} catch {
  // No manifest: environment variables and defaults only.
}
const setting = (env, key, fallback) => process.env[env] ?? manifest[key] ?? fallback;

const version = String(setting('APP_VERSION', 'version', 'dev'));
const fault = String(setting('APP_FAULT', 'fault', 'none'));
const faultAfterMs = Number(setting('APP_FAULT_AFTER_MS', 'faultAfterMs', 0));
const errorRatio = Number(setting('APP_ERROR_RATIO', 'errorRatio', 0.1));
const slowMs = Number(setting('APP_SLOW_MS', 'slowMs', 200));
const faultFile = setting('APP_FAULT_FILE', 'faultFile', '');
const cpuBurnMs = Number(setting('APP_CPU_BURN_MS', 'cpuBurnMs', 20));
const baseLatencyMs = Number(setting('APP_BASE_LATENCY_MS', 'baseLatencyMs', 0));
const warmupCpuMs = Number(setting('APP_WARMUP_CPU_MS', 'warmupCpuMs', 0));
const memoryMbPerSec = Number(manifest.memoryMbPerSec ?? 50);
const memoryMaxMb = Number(manifest.memoryMaxMb ?? 1024);
const blipCount = Number(manifest.blipCount ?? 1);
const faultCommand = Array.isArray(manifest.faultCommand) ? manifest.faultCommand.map(String) : null;
const port = Number(process.env.PORT ?? 3000);
const startedAt = Date.now();
let requests = 0;

// With a fault file the fault follows the file (polled every 10 ms, and looked at on each
// request); otherwise it starts faultAfterMs after the process.
let fileFault = false;
const lookAtFaultFile = () => {
  const on = fs.existsSync(faultFile);
  if (on !== fileFault) {
    fileFault = on;
    onFaultChange(on);
  }
  return on;
};
const faulty = () => fault !== 'none' && (faultFile ? lookAtFaultFile() : Date.now() - startedAt >= faultAfterMs);

// Its own Prometheus metrics, written by hand so the app needs no dependency: a request counter
// by status and a latency histogram, as most instrumented apps expose them. /metrics itself is
// not counted. Counters start at zero with the process, so a restart is a counter reset.
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const byStatus = new Map();
const bucketCounts = BUCKETS.map(() => 0);
let durationSum = 0;
let durationCount = 0;
function observe(status, seconds) {
  byStatus.set(status, (byStatus.get(status) || 0) + 1);
  BUCKETS.forEach((le, i) => {
    if (seconds <= le) bucketCounts[i] += 1;
  });
  durationSum += seconds;
  durationCount += 1;
}
function metricsText() {
  const lines = ['# HELP http_requests_total Requests served, by status.', '# TYPE http_requests_total counter'];
  for (const [status, n] of byStatus) lines.push(`http_requests_total{status="${status}"} ${n}`);
  lines.push('# HELP http_request_duration_seconds Request latency.', '# TYPE http_request_duration_seconds histogram');
  BUCKETS.forEach((le, i) => lines.push(`http_request_duration_seconds_bucket{le="${le}"} ${bucketCounts[i]}`));
  lines.push(`http_request_duration_seconds_bucket{le="+Inf"} ${durationCount}`);
  lines.push(`http_request_duration_seconds_sum ${durationSum}`, `http_request_duration_seconds_count ${durationCount}`);
  lines.push('# HELP app_version_info The running version.', '# TYPE app_version_info gauge', `app_version_info{version="${version}"} 1`);
  return `${lines.join('\n')}\n`;
}

const crash = () => {
  console.error(`version ${version}: crashing on purpose`);
  process.exit(1);
};
if (fault === 'crash' && !faultFile) setTimeout(crash, faultAfterMs);

// Background faults: what a release does by itself, whether or not it is asked anything.
let hoard = [];
let hoardTimer = null;
let blipsLeft = 0;
// With a fault file the blips are counted for the whole app, not per process: pm2 cluster
// workers claim each one by creating a marker file beside the fault file (exclusive create), so
// "one failed health check" stays one however many workers serve /health.
function claimBlip() {
  if (!faultFile) {
    blipsLeft -= 1;
    return true;
  }
  for (let i = 0; i < blipCount; i++) {
    try {
      fs.closeSync(fs.openSync(`${faultFile}.blip-${i}`, 'wx'));
      blipsLeft -= 1;
      return true;
    } catch {
      // claimed by this or another worker
    }
  }
  blipsLeft = 0;
  return false;
}
let faultChild = null;
function stopFaultChild() {
  if (faultChild && faultChild.exitCode === null) {
    try {
      faultChild.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  faultChild = null;
}
function onFaultChange(on) {
  if (fault === 'crash' && on) return crash();
  if (fault === 'health_blip') blipsLeft = on ? blipCount : 0;
  if (fault === 'memory') {
    clearInterval(hoardTimer);
    hoardTimer = null;
    if (on) {
      // Live heap (strings in arrays, not Buffers), as a leak would keep it: 10 slices a second.
      hoardTimer = setInterval(() => {
        if (hoard.length * (memoryMbPerSec / 10) >= memoryMaxMb) return; // bounded
        const slice = [];
        const strings = Math.round((memoryMbPerSec / 10) * 1024); // ~1 KiB each
        for (let i = 0; i < strings; i++) slice.push(`${i}:${Math.random()}`.padEnd(1000, 'x'));
        hoard.push(slice);
      }, 100);
    } else hoard = [];
  }
  if (fault === 'command' && faultCommand) {
    if (on && !faultChild) {
      const input = manifest.faultCommandInput;
      faultChild = require('node:child_process').spawn(faultCommand[0], faultCommand.slice(1), {
        stdio: [typeof input === 'string' ? 'pipe' : 'ignore', 'ignore', 'inherit'],
      });
      faultChild.on('error', (error) => console.error(`fault command failed: ${error.message}`));
      // Its stdin stays open: a client reading commands keeps its session (and locks) until killed.
      if (typeof input === 'string') {
        faultChild.stdin.on('error', () => undefined);
        faultChild.stdin.write(input);
      }
    } else if (!on) stopFaultChild();
  }
}
if (faultFile && fault !== 'none') {
  setInterval(lookAtFaultFile, 10).unref();
  if (fault === 'crash' && fs.existsSync(faultFile)) {
    // A crash loop: every new process dies right after it started, while the file exists.
    setTimeout(crash, 100);
  }
}
process.on('exit', stopFaultChild);

if (warmupCpuMs > 0) {
  // ~75 % of a core in 15 ms slices, so requests are still answered, only slower.
  const warmUpUntil = startedAt + warmupCpuMs;
  const slice = () => {
    if (Date.now() >= warmUpUntil) return;
    const until = Date.now() + 15;
    while (Date.now() < until);
    setTimeout(slice, 5);
  };
  setTimeout(slice, 0);
}

const server = http.createServer((req, res) => {
  if (req.url.startsWith('/metrics')) {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    return res.end(metricsText());
  }
  requests += 1;
  const begun = process.hrtime.bigint();
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
    observe(status, Number(process.hrtime.bigint() - begun) / 1e9);
  };
  const isApi = req.url.startsWith('/api');
  const answer = () => {
    if (req.url.startsWith('/health')) return reply(200, { status: 'ok', version, uptimeMs: Date.now() - startedAt });
  if (req.url.startsWith('/admin')) {
    // A protected endpoint; a release with adminOpen forgets the check (a security regression).
    const open = setting('APP_ADMIN_OPEN', 'adminOpen', false) === true || process.env.APP_ADMIN_OPEN === '1';
    const authorized = req.headers.authorization === `Bearer ${process.env.APP_ADMIN_TOKEN ?? 'admin-secret'}`;
    return open || authorized ? reply(200, { admin: true, version }) : reply(401, { error: 'unauthorized' });
  }
    if (isApi) return reply(200, { ok: true, version, n: requests });
    reply(404, { error: 'not found' });
  };
  // A real API does some work: every /api request takes baseLatencyMs, faulty or not.
  const later = (extraMs) => {
    const delay = (isApi ? baseLatencyMs : 0) + extraMs;
    if (delay > 0) setTimeout(answer, delay);
    else answer();
  };
  if (faulty()) {
    if (fault === 'hang') return; // never answer
    if (fault === '5xx') return reply(500, { status: 'error', version, error: 'injected fault' });
    if (fault === 'slow') return later(slowMs);
    if (fault === 'cpu') {
      // Burn the CPU for every request, as a hot loop introduced by a release would.
      const until = Date.now() + cpuBurnMs;
      while (Date.now() < until);
    }
    if (fault === 'error_ratio' && isApi && requests % Math.round(1 / errorRatio) === 0) {
      return reply(500, { status: 'error', version });
    }
    if (fault === 'health_blip' && blipsLeft > 0 && req.url.startsWith('/health') && claimBlip()) {
      return reply(500, { status: 'error', version, error: 'injected blip' });
    }
  }
  later(0);
});

server.keepAliveTimeout = 1000;
server.listen(port, '127.0.0.1', () => {
  console.log(`version ${version} listening on 127.0.0.1:${port} (fault: ${fault} after ${faultAfterMs} ms)`);
  if (process.send) process.send('ready');
});
process.on('SIGINT', () => server.close(() => process.exit(0)));
