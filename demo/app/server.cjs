'use strict';
// The demo and test application: a small HTTP service whose release can be made to go bad.
// Its version and fault come from release.json beside it (written when a release is built),
// overridable by environment variables so tests can run one file in many shapes:
//   APP_VERSION   version reported by /health
//   APP_FAULT     none | 5xx | hang | crash | slow | error_ratio | cpu
//   (slow and 5xx apply to every request, error_ratio to /api only)
//   APP_FAULT_AFTER_MS  the fault starts this long after the process starts (default 0)
//   APP_ERROR_RATIO     fraction of /api requests answered 500 when APP_FAULT=error_ratio
//   APP_SLOW_MS         extra latency when APP_FAULT=slow
//   PORT          port to listen on (pm2 cluster mode shares it between instances)
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
const port = Number(process.env.PORT ?? 3000);
const startedAt = Date.now();
let requests = 0;

const faulty = () => fault !== 'none' && Date.now() - startedAt >= faultAfterMs;

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

if (fault === 'crash') {
  setTimeout(() => {
    console.error(`version ${version}: crashing on purpose`);
    process.exit(1);
  }, faultAfterMs);
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
  if (faulty()) {
    if (fault === 'hang') return; // never answer
    if (fault === '5xx') return reply(500, { status: 'error', version, error: 'injected fault' });
    if (fault === 'slow') return void setTimeout(() => reply(200, { status: 'ok', version }), slowMs);
    if (fault === 'cpu') {
      // Burn the CPU for every request, as a hot loop introduced by a release would.
      const until = Date.now() + 20;
      while (Date.now() < until);
    }
    if (fault === 'error_ratio' && req.url.startsWith('/api') && requests % Math.round(1 / errorRatio) === 0) {
      return reply(500, { status: 'error', version });
    }
  }
  if (req.url.startsWith('/health')) return reply(200, { status: 'ok', version, uptimeMs: Date.now() - startedAt });
  if (req.url.startsWith('/api')) return reply(200, { ok: true, version, n: requests });
  reply(404, { error: 'not found' });
});

server.keepAliveTimeout = 1000;
server.listen(port, '127.0.0.1', () => {
  console.log(`version ${version} listening on 127.0.0.1:${port} (fault: ${fault} after ${faultAfterMs} ms)`);
  if (process.send) process.send('ready');
});
process.on('SIGINT', () => server.close(() => process.exit(0)));
