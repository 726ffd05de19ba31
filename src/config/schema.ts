/**
 * The configuration schema: the one source of the config's types, defaults, validation and
 * documentation. Defaults are the runbooks' thresholds (errors > 5 %, latency > 3× baseline,
 * CPU > 70 %, memory > 80 %, 3 consecutive health failures). Unknown keys are errors, never
 * silently dropped: a misspelt threshold must stop the guard, not weaken it.
 */
import cron from 'node-cron';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { notifiersSchema } from '../notify/schema.js';
import { verificationChecksSchema } from '../verification/schema.js';
import { APACHE_TIMED_FORMAT, NGINX_TIMED_FORMAT, resolveLineSettings } from '../probes/access-log-parse.js';
import { duration, mysqlConnection, nameList, quoted, ratio, redisConnection, safeName, SAFE_NAME, url } from './schema-helpers.js';
import { acceptedProbeTypes, describeMinSamples, describeSources, PROBE_RULES } from '../core/rule-catalog.js';
import type { RuleName } from '../core/types.js';

export { SAFE_NAME };

const httpProbe = z
  .object({
    type: z.literal('http'),
    name: safeName('Probe name, used by rules and in metrics'),
    url: url('Endpoint to request'),
    method: z.enum(['GET', 'HEAD', 'POST']).default('GET').describe('HTTP method'),
    headers: z.record(z.string(), z.string()).default({}).describe('Extra request headers'),
    timeout: duration('Give up after this long; a timeout is a failed check').default(2000),
    expect_status: z
      .array(z.number().int().min(100).max(599))
      .min(1)
      .default([200])
      .describe('Status codes that count as healthy'),
    json_field: z
      .object({
        path: z.string().min(1).describe('Dot path into the JSON body, e.g. status or checks.db'),
        equals: z.union([z.string(), z.number(), z.boolean()]).describe('Expected value'),
      })
      .strict()
      .optional()
      .describe('A JSON field the body must carry for the check to pass'),
    body_contains: z.string().min(1).optional().describe('Text the body must contain'),
    max_body_bytes: z
      .number()
      .int()
      .positive()
      .max(64 * 1024 * 1024)
      .default(64 * 1024)
      .describe('Bodies larger than this are cut off and the check fails'),
    version_path: z
      .string()
      .min(1)
      .optional()
      .describe('Dot path of the running version in the JSON body (how releases are detected)'),
  })
  .strict();

const systemProbe = z
  .object({
    type: z.literal('system'),
    name: safeName('Probe name'),
    disk_path: z.string().min(1).default('/').describe('Filesystem whose usage is reported as disk'),
  })
  .strict();

const processProbe = z
  .object({
    type: z.literal('process'),
    name: safeName('Probe name'),
    pm2_app: safeName('pm2 app whose CPU (share of the cores its instances can use) and memory (share of the host) are read').optional(),
    pid_file: z.string().min(1).optional().describe('Or: a pid file; the process is read from /proc/<pid>'),
  })
  .strict()
  .refine((p) => (p.pm2_app === undefined) !== (p.pid_file === undefined), {
    message: 'set exactly one of pm2_app or pid_file',
    path: ['pm2_app'],
  });

const prometheusProbe = z
  .object({
    type: z.literal('prometheus'),
    name: safeName('Probe name'),
    url: url('Prometheus base URL, e.g. http://127.0.0.1:9090'),
    queries: z
      .record(
        z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'a value name in snake_case, e.g. error_ratio or p95_ms'),
        z.string().min(1).describe('PromQL returning one scalar or a one-element vector'),
      )
      .refine((q) => Object.keys(q).length > 0, 'at least one query')
      .describe('Value name -> PromQL instant query. error_ratio (0..1) and p95_ms feed the error_rate and latency rules'),
    timeout: duration('Per-query timeout').default(5000),
    auth_header_file: z
      .string()
      .min(1)
      .optional()
      .describe('File whose content is sent as the Authorization header (e.g. "Bearer …"); not readable by group or others'),
  })
  .strict();

const scrapeProbe = z
  .object({
    type: z.literal('scrape'),
    name: safeName('Probe name'),
    url: url("The app's own /metrics endpoint (Prometheus text format)"),
    timeout: duration('Scrape timeout').default(2000),
    max_body_bytes: z
      .number()
      .int()
      .positive()
      .max(64 * 1024 * 1024)
      .default(8 * 1024 * 1024)
      .describe('Larger bodies fail the scrape (a failed sample naming the size, never a traffic breach). The body is read as it streams, never held whole'),
    max_series: z
      .number()
      .int()
      .positive()
      .max(1_000_000)
      .default(20_000)
      .describe(
        "Most series each metric the probe reads (requests_metric, the duration histogram's _bucket, identity_metric) may have in one scrape; more fail the scrape (a failed sample naming the count, never a traffic breach). Other metrics are skipped unparsed, however many series they have",
      ),
    requests_metric: z.string().min(1).default('http_requests_total').describe('Counter of requests, labelled by status'),
    status_label: z.string().min(1).default('status').describe('Label of requests_metric holding the HTTP status'),
    error_status: z.string().min(1).default('^5..$').describe('Regular expression: statuses that count as errors'),
    duration_metric: z
      .string()
      .min(1)
      .default('http_request_duration_seconds')
      .describe('Histogram of request durations in seconds (its _bucket series give p95)'),
    identity_labels: z
      .array(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name'))
      .default(['instance', 'pid', 'worker'])
      .describe(
        'Labels that name the process a series comes from: series carrying any of them are counted per process and only differenced against the same process; [] when no label does',
      ),
    identity_metric: z
      .string()
      .regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, 'a Prometheus metric name')
      .optional()
      .describe(
        'A gauge that differs between processes, e.g. process_start_time_seconds: when its value changes between two scrapes, another process answered and the interval is skipped',
      ),
    keepalive_interval: duration(
      "Keeps the scrape connection (pinned to one pm2 worker) open: when idle this long, it is scraped once more (answer discarded). Never longer than half the server's announced Keep-Alive timeout; keep it below the app's keepAliveTimeout (Node: 5s)",
    )
      .default(2000)
      .refine((ms) => ms >= 100, 'must be at least 100ms'),
  })
  .strict();

const accessLogProbe = z
  .object({
    type: z.literal('access_log'),
    name: safeName('Probe name'),
    path: z
      .string()
      .min(1)
      .describe('The access log file; followed from its end (history is never read), through rotation by rename or copytruncate'),
    format: z
      .enum(['nginx', 'apache', 'json'])
      .default('nginx')
      .describe(
        `nginx: lines as log_format (default the combined format + " $request_time $upstream_addr": ${NGINX_TIMED_FORMAT}); ` +
          `apache: the combined LogFormat + " %D" (microseconds), read as ${APACHE_TIMED_FORMAT}; ` +
          'json: one JSON object per line (pino-http, morgan with a JSON format, …)',
      ),
    log_format: z
      .string()
      .min(1)
      .optional()
      .describe(
        'nginx/apache: the line layout in nginx log_format syntax, $variable between literal text, as nginx.conf has it without its quotes (default: the format\'s own, see format)',
      ),
    status_field: z
      .string()
      .min(1)
      .optional()
      .describe('Where the HTTP status is: a log_format variable (default status) or a JSON dotted path (default res.statusCode)'),
    latency_field: z
      .string()
      .min(1)
      .nullable()
      .optional()
      .describe(
        'Where the request time is: a log_format variable (default request_time for nginx, request_time_us for apache) or a JSON dotted path (default responseTime); null: the log has no latencies (no p95_ms)',
      ),
    latency_unit: z
      .enum(['s', 'ms', 'us'])
      .optional()
      .describe('Unit of latency_field (default: s for nginx $request_time, us for apache %D, ms for json responseTime)'),
    error_status: z.string().min(1).default('^5..$').describe('Regular expression: statuses that count as errors'),
    where: z
      .object({
        field: z.string().min(1).describe('A log_format variable (e.g. upstream_addr) or a JSON dotted path (e.g. version)'),
        matches: z.string().min(1).describe('Regular expression the field must match for the request to count'),
      })
      .strict()
      .optional()
      .describe("Count only the requests whose field matches: one upstream's or one version's share, judged apart (define one probe per share)"),
    max_line_bytes: z
      .number()
      .int()
      .min(256)
      .max(1024 * 1024)
      .default(16 * 1024)
      .describe('Longer lines (and binary ones) are skipped and counted in lines_skipped, never buffered whole'),
    max_read_bytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(256 * 1024 * 1024)
      .default(8 * 1024 * 1024)
      .describe('Read at most this much per sample; the rest is read by the next one and the sample says how far behind it is (bytes_behind)'),
  })
  .strict()
  .superRefine((probe, ctx) => {
    const resolved = resolveLineSettings(probe);
    if (!Array.isArray(resolved)) return;
    for (const problem of resolved) ctx.addIssue({ code: 'custom', path: problem.key.split('.'), message: problem.message });
  });

const mysqlProbe = z
  .object({
    type: z.literal('mysql'),
    name: safeName('Probe name'),
    ...mysqlConnection('A read-only account'),
    database: z.string().min(1).optional().describe('Database to use'),
    query: z.string().min(1).default('SELECT 1').describe('Read-only query whose latency is measured (seed: DB query < 100 ms)'),
    timeout: duration('Connect + query timeout; a timeout is a failed sample').default(2000),
    pool_size: z.number().int().min(1).max(16).default(2).describe('Connections kept open'),
  })
  .strict();

const redisProbe = z
  .object({
    type: z.literal('redis'),
    name: safeName('Probe name'),
    ...redisConnection,
    db: z.number().int().min(0).default(0).describe('Database number'),
    timeout: duration('PING timeout').default(1000),
  })
  .strict();

export const probeSchema = z.discriminatedUnion('type', [
  httpProbe,
  systemProbe,
  processProbe,
  prometheusProbe,
  scrapeProbe,
  accessLogProbe,
  mysqlProbe,
  redisProbe,
]);

const releasesStrategy = z
  .object({
    type: z.literal('releases'),
    dir: z
      .string()
      .min(1)
      .describe('Deploy root holding releases/<version>/ and the current symlink (Capistrano layout)'),
    current: z.string().min(1).default('current').describe('Name of the symlink inside dir'),
    pm2_app: safeName('pm2 app to reload after the symlink swap'),
    restart_mode: z
      .enum(['reload', 'restart'])
      .default('reload')
      .describe('reload is zero-downtime in cluster mode; restart stops and starts'),
    timeout: duration('Give up on this step after this long').default(60_000),
  })
  .strict();

const pm2Strategy = z
  .object({
    type: z.literal('pm2'),
    action: z
      .enum(['restart', 'reload', 'start_previous'])
      .default('restart')
      .describe(
        'restart/reload the app; start_previous stops the app and starts the app definition named <app_prefix><previous version>',
      ),
    pm2_app: safeName('pm2 app to restart, reload or stop'),
    app_prefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" or "-" only')
      .optional()
      .describe('start_previous: the previous version runs as pm2 app <app_prefix><version>'),
    ecosystem: z
      .string()
      .min(1)
      .optional()
      .describe('start_previous: ecosystem file that defines the previous app, if it is not already known to pm2'),
    timeout: duration('Give up on this step after this long').default(60_000),
  })
  .strict();

/** A program and its arguments, run without a shell. `{from}` / `{to}` in arguments become versions. */
const argv = (description: string) =>
  z.array(z.string().min(1)).min(1, 'a program and its arguments, e.g. [npm, ci]').describe(description);

const stepTimeout = (ms: number) => duration('Give up on this step after this long').default(ms);

const gitStrategy = z
  .object({
    type: z.literal('git'),
    dir: z.string().min(1).describe('Working tree of the deployed app'),
    tag_prefix: z.string().regex(/^[A-Za-z0-9._/-]*$/, 'letters, digits, ".", "_", "/" or "-"').default('').describe('Tag of version V is <tag_prefix>V'),
    install: argv('Install command run in dir after checkout').default(['npm', 'ci']).nullable(),
    build: argv('Build command run in dir after install').default(['npm', 'run', 'build']).nullable(),
    pm2_app: safeName('pm2 app restarted after the build').optional(),
    timeout: stepTimeout(600_000),
  })
  .strict();

const configFilesStrategy = z
  .object({
    type: z.literal('config'),
    dir: z.string().min(1).describe('Directory the files are relative to'),
    files: z.array(z.string().min(1)).min(1).describe('Config files snapshot when a window opens and restored on rollback (.env.local, next.config.mjs, …)'),
    stable_backup_every: duration(
      'Also keep a snapshot of the stable version\'s files, taken when it becomes stable and again this often (the last 2, in <state_dir>/stable/). ' +
        'A release the guard only detected (not announced) is restored from it; 0 = off',
    ).default(4 * 60 * 60 * 1000),
    pm2_app: safeName('pm2 app restarted after the restore').optional(),
    restart_mode: z.enum(['restart', 'reload']).default('restart').describe('How the app picks the restored files up'),
    timeout: stepTimeout(60_000),
  })
  .strict();

const databaseStrategy = z
  .object({
    type: z.literal('database'),
    ...mysqlConnection('Account allowed to dump and restore'),
    database: z.string().regex(/^[A-Za-z0-9_$]{1,64}$/, 'a database name: letters, digits, "_" or "$"').describe('Database to back up and restore'),
    backup_on_release: z.boolean().default(true).describe('mysqldump the database when a release window opens'),
    stable_backup_every: duration(
      'Also keep a backup of the stable version, taken when it becomes stable and again this often (the last 2 are kept, in <state_dir>/stable/). ' +
        'A release the guard only detected (not announced) is restored from it, plus the binary log up to the release start when the server keeps one; 0 = off',
    ).default(4 * 60 * 60 * 1000),
    migrate_down: argv('Migration-down command, e.g. [npx, knex, migrate:rollback]').optional(),
    migrate_cwd: z.string().min(1).optional().describe('Working directory of migrate_down'),
    restore: z
      .enum(['never', 'automatic'])
      .default('never')
      .describe('Restore the pre-release backup on rollback. It loses every write since the backup: automatic only when you accept that'),
    stop_app: safeName('pm2 app stopped before a restore (no writes during it) and started after').optional(),
    check_tables: z.array(z.string().regex(/^[A-Za-z0-9_$]{1,64}$/, 'a table name')).default([]).describe('Tables that must exist, with row counts not below the pre-release snapshot'),
    mysqldump: z.string().min(1).default('mysqldump').describe('mysqldump program'),
    mysql: z.string().min(1).default('mysql').describe('mysql client program'),
    mysqlbinlog: z
      .string()
      .min(1)
      .default('mysqlbinlog')
      .describe('mysqlbinlog program: replays the binary log from a stable backup up to the release start (reads it from the server: REPLICATION SLAVE privilege)'),
    timeout: stepTimeout(600_000),
  })
  .strict();

const redisStrategy = z
  .object({
    type: z.literal('redis'),
    ...redisConnection,
    timeout: stepTimeout(120_000),
  })
  .strict();

const dockerStrategy = z
  .object({
    type: z.literal('docker'),
    mode: z.enum(['run', 'compose']).default('run').describe('run: replace the container with the previous image; compose: up -d the previous compose file'),
    container: safeName('Container name (run mode)').optional(),
    image: z.string().regex(/^[a-z0-9][a-z0-9._/:-]*$/, 'an image repository, e.g. registry/my-app').optional().describe('Image repository; the previous version runs <image>:<version>'),
    ports: z.array(z.string().regex(/^[0-9.:]+(\/(tcp|udp))?$/, 'host:container, e.g. 3000:3000')).default([]).describe('Published ports'),
    env_file: z.string().min(1).optional().describe('--env-file for the container'),
    compose_file: z.string().min(1).optional().describe('compose mode: the previous file; {to} becomes the version, e.g. docker-compose.{to}.yml'),
    docker: z.string().min(1).default('docker').describe('docker program'),
    timeout: stepTimeout(300_000),
  })
  .strict()
  .refine((d) => (d.mode === 'run' ? Boolean(d.container && d.image) : Boolean(d.compose_file)), {
    message: 'run mode needs container and image; compose mode needs compose_file',
  });

const kubernetesStrategy = z
  .object({
    type: z.literal('kubernetes'),
    deployment: safeName('Deployment to roll back'),
    namespace: safeName('Namespace').default('default'),
    context: z.string().min(1).optional().describe('kubectl context'),
    to_revision: z.number().int().min(1).optional().describe('Revision to return to (default: the previous one)'),
    kubectl: z.string().min(1).default('kubectl').describe('kubectl program'),
    timeout: stepTimeout(300_000),
  })
  .strict();

const blueGreenStrategy = z
  .object({
    type: z.literal('blue_green'),
    mode: z.enum(['nginx', 'kubernetes']).default('nginx').describe('How traffic is switched'),
    colors: z
      .record(z.enum(['blue', 'green']), z.string().min(1))
      .describe('nginx: colour -> upstream server (127.0.0.1:3001); kubernetes: colour -> selector value'),
    upstream_file: z.string().min(1).optional().describe('nginx: the include file holding the upstream block'),
    upstream_name: safeName('nginx: upstream name').default('app'),
    nginx: z.string().min(1).default('nginx').describe('nginx program'),
    nginx_args: z.array(z.string()).default([]).describe('Extra nginx arguments, e.g. [-c, /etc/nginx/nginx.conf]'),
    service: safeName('kubernetes: Service whose selector is switched').optional(),
    selector_label: z.string().min(1).default('color').describe('kubernetes: the selector label'),
    namespace: safeName('kubernetes: namespace').default('default'),
    kubectl: z.string().min(1).default('kubectl').describe('kubectl program'),
    timeout: stepTimeout(60_000),
  })
  .strict()
  .refine((b) => (b.mode === 'nginx' ? Boolean(b.upstream_file) : Boolean(b.service)), {
    message: 'nginx mode needs upstream_file; kubernetes mode needs service',
  });

const commandStrategy = z
  .object({
    type: z.literal('command'),
    command: argv('Program and arguments, e.g. [/usr/local/bin/notify-cdn, purge, "{to}"]'),
    cwd: z.string().min(1).optional().describe('Working directory'),
    env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name'), z.string()).default({}).describe('Extra environment'),
    timeout: stepTimeout(60_000),
  })
  .strict();

export const strategySchema = z.discriminatedUnion('type', [
  releasesStrategy,
  pm2Strategy,
  gitStrategy,
  configFilesStrategy,
  databaseStrategy,
  redisStrategy,
  dockerStrategy,
  kubernetesStrategy,
  blueGreenStrategy,
  commandStrategy,
]);

/** Where state, records and the lease live: the embedded file store, or Redis for HA and fleets. */
const storeSchema = z
  .discriminatedUnion('type', [
    z
      .object({
        type: z.literal('file').describe('The embedded file store in state_dir: one guard per instance, no server needed'),
      })
      .strict(),
    z
      .object({
        type: z.literal('redis').describe('Redis: several guards per instance (one acts, the others stand by) and fleets of hosts'),
        ...redisConnection,
        db: z.number().int().min(0).default(0).describe('Database number'),
        key_prefix: z
          .string()
          .regex(/^[A-Za-z0-9._:{}-]{1,100}$/, 'letters, digits and . _ : { } - only')
          .optional()
          .describe('Prefix of every key (default release-guard:<service>:); hosts of one fleet share it'),
        lease_ttl: duration(
          'Lease of the acting guard, renewed every third of it; a standby takes over within this after the leader dies',
        ).default(10_000),
        shared_dir: z
          .string()
          .min(1)
          .optional()
          .describe(
            "A directory every guard of this instance mounts (NFS, a shared volume): rollback steps' prepared data (pre-release dumps, config snapshots, stable backups) live here, so a standby that takes over can undo what the acting guard prepared. Checked at start (exists, writable, each guard's marker visible). Required when a rollback step prepares data",
          ),
        fleet: z
          .boolean()
          .default(true)
          .describe(
            "Share release verdicts with the other hosts under key_prefix: a rollback on one host rolls the release back on all, and a release is promoted only when every host's window ended clean",
          ),
        fleet_wait: duration(
          'How long a host whose window ended clean waits for every other host to end clean; then the release is not promoted',
        ).default(600_000),
      })
      .strict(),
  ])
  .default({ type: 'file' })
  .describe('Where state, history, records and the lease are kept');

const ruleBase = { enabled: z.boolean().default(true).describe('Turn the rule off') };

/** Evidence must span this long before a rule breaches, so a sub-second blip never rolls a release back. */
const minSpan = (what: string) => duration(what).default(1000);

/** The sequential test's knobs, shared by error_rate and latency_ratio. */
const sequential = {
  budget: z
    .number()
    .gt(0)
    .max(0.1)
    .default(0.001)
    .describe('False-rollback budget: the most probability per release window of rolling back a release at the tolerance, however often it looks'),
  min_span: minSpan('Evidence must span at least this long before it can breach: shorter blips never roll back'),
};

/** A rule's `probe` key: which probe types it reads and what it judges of each (the rule catalog). */
const ruleProbe = (rule: RuleName) => safeName(describeSources(rule));

/** A rule's `min_samples` key, with the catalog's defaults by source. */
const minSamples = (rule: RuleName, what: string) =>
  z.number().int().min(1).optional().describe(`Fewer samples ${what} in the window: inconclusive (default by probe type: ${describeMinSamples(rule)})`);

export const configSchema = z
  .object({
    service: safeName('Name of the guarded service (labels, records)'),
    environment: z
      .enum(['production', 'staging', 'development'])
      .default('production')
      .describe('What the guarded target is; rollback drills refuse production unless drill.allow_production'),
    drill: z
      .object({
        schedule: z
          .string()
          .refine((expr) => cron.validate(expr), 'not a cron expression; e.g. "0 4 * * 1" (Mondays 04:00)')
          .optional()
          .describe('Run a drill on this cron schedule (node-cron syntax)'),
        allow_production: z.boolean().default(false).describe('Allow drills on a target marked environment: production'),
      })
      .strict()
      .default({ allow_production: false })
      .describe('Rollback drills: roll back to the previous version and forward again, and record both durations'),
    state_dir: z
      .string()
      .min(1)
      .default('/var/lib/release-guard')
      .describe('Where the embedded file store keeps state, history and rollback records'),
    state: z
      .object({
        keep_windows: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(10)
          .describe(
            "Release windows whose prepared data (pre-release dumps, config snapshots, markers) is kept in state_dir/windows; older ones are removed when a window closes (the current and the last window are always kept)",
          ),
        max_mb: z.number().int().min(1).default(10_240).describe('Preflight reports a problem when state_dir uses more than this many MiB'),
        min_free_mb: z
          .number()
          .int()
          .min(0)
          .default(512)
          .describe('Preflight reports a problem when the filesystem holding state_dir has less free space than this many MiB (a pre-release or emergency dump may not fit)'),
      })
      .strict()
      .default({ keep_windows: 10, max_mb: 10_240, min_free_mb: 512 })
      .describe("state_dir's release windows and disk use"),
    host_id: safeName(
      "This host's name in a fleet (redis store): it names the guarded instance, so guards watching the same instance share it (default: the machine's hostname)",
    ).optional(),
    store: storeSchema,
    server: z
      .object({
        host: z.string().min(1).default('127.0.0.1').describe('Address of the metrics and control API'),
        port: z.number().int().min(0).max(65535).default(9464).describe('Port (0 = any free port)'),
        token_file: z
          .string()
          .min(1)
          .optional()
          .describe('File holding the bearer token for POST endpoints (must not be world-readable)'),
        token_env: z
          .string()
          .regex(/^[A-Z_][A-Z0-9_]*$/, 'an environment variable name, e.g. RELEASE_GUARD_TOKEN')
          .default('RELEASE_GUARD_TOKEN')
          .describe('Environment variable holding the token when token_file is not set'),
        preflight_cache: duration(
          'How long GET /preflight answers the last result before it runs the readiness checks again (they talk to the database, git, pm2…). One run at a time whatever the value; 0 = a new run per request, still one at a time. POST /preflight or ?fresh=1 with the token forces a run',
        ).default(30_000),
        liveness: duration(
          "GET /healthz answers 503 (so a watchdog restarts the guard) when the guard's tick loop has not run for this long, or its event loop was blocked more than half of this long",
        )
          .refine((ms) => ms >= 5000, 'must be at least 5s (the tick loop runs every second)')
          .default(30_000),
      })
      .strict()
      .default({ host: '127.0.0.1', port: 9464, token_env: 'RELEASE_GUARD_TOKEN', preflight_cache: 30_000, liveness: 30_000 })
      .describe('The one HTTP server: /metrics, /healthz, /status, /history and the control API'),
    log: z
      .object({
        level: z.enum(['error', 'warn', 'info', 'debug']).default('info').describe('Least severe level logged'),
        format: z
          .enum(['auto', 'json', 'pretty'])
          .default('auto')
          .describe('auto: readable on a terminal, JSON lines otherwise (systemd, pm2)'),
      })
      .strict()
      .default({ level: 'info', format: 'auto' }),
    pm2: z
      .object({
        home: z.string().min(1).optional().describe('PM2_HOME of the pm2 daemon running the app (default: pm2\'s own)'),
        app: safeName('pm2 app of the guarded service; its crashes are watched on the pm2 event bus'),
        crash_exits: z
          .number()
          .int()
          .min(1)
          .default(1)
          .describe('Unplanned exits of the new version within crash_window that count as a crash breach'),
        crash_window: duration('Window for crash_exits').default(60_000),
      })
      .strict()
      .optional()
      .describe('The pm2 daemon and app to watch for crashes'),
    records: z
      .object({
        log_lines: z.number().int().min(0).max(10_000).default(40).describe("Lines of the app's pm2 logs kept in a rollback record"),
        log_bytes: z
          .number()
          .int()
          .min(0)
          .max(16 * 1024 * 1024)
          .default(64 * 1024)
          .describe('At most this many bytes of each log file are read for those lines (a flooding release cannot make the guard read its whole log)'),
        write_attempts: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(8)
          .describe('A record write that fails is tried again (backoff 1 s, doubling up to 1 min) this many times in all; then a critical notification'),
      })
      .strict()
      .default({ log_lines: 40, log_bytes: 64 * 1024, write_attempts: 8 })
      .describe('Rollback records: the log tail they quote and how their writes are retried'),
    probes: z.array(probeSchema).min(1, 'at least one probe is needed').describe('What is observed'),
    triggers: z
      .object({
        alertmanager: z
          .object({
            match: z
              .record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name'), z.string())
              .default({})
              .describe('Labels an alert must carry with exactly these values, e.g. { service: web, severity: critical }'),
            match_re: z
              .record(
                z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'a Prometheus label name'),
                z.string().refine((re) => {
                  try {
                    new RegExp(`^(?:${re})$`);
                    return true;
                  } catch {
                    return false;
                  }
                }, 'not a regular expression'),
              )
              .default({})
              .describe('Labels whose values must match these regular expressions (anchored, as in Alertmanager)'),
          })
          .strict()
          .refine((m) => Object.keys(m.match).length + Object.keys(m.match_re).length > 0, 'give match or match_re: an empty matcher would take every alert of the Alertmanager')
          .optional()
          .describe(
            'Alertmanager as an input: POST /alertmanager (bearer token) takes its webhook; a matching alert firing inside a release window, begun after the release, is a breach of rule alert',
          ),
      })
      .strict()
      .default({})
      .describe('Outside signals that can decide a rollback'),
    schedule: z
      .object({
        interval: duration('Probe interval outside the fast part of a window').default(1000),
        fast_interval: duration('Probe interval early in a release window and while verifying').default(250),
        fast_for: duration('How long after a release starts probes run at fast_interval').default(120_000),
        max_in_flight: z
          .number()
          .int()
          .min(1)
          .max(64)
          .default(8)
          .describe('Probes of one kind running at once; a slow probe never delays the next launch'),
        fast_timeout: z
          .union([z.string(), z.number()])
          .transform((value, ctx): 'auto' | number => {
            if (value === 'auto') return 'auto';
            const ms = parseDuration(value);
            if (ms !== null) return ms;
            ctx.addIssue({ code: 'custom', message: `${quoted(value)} is neither auto nor a duration; use auto or e.g. 500ms, 1s` });
            return z.NEVER;
          })
          .default('auto')
          .describe(
            "How long an http check waits while probes run at fast_interval (never longer than the probe's own timeout). " +
              "auto: 10 × the stable version's p99 check latency, at least 500ms, so a hang early in a window is judged in well under the timeout; the probe's timeout until that p99 is known",
          ),
      })
      .strict()
      .default({ interval: 1000, fast_interval: 250, fast_for: 120_000, max_in_flight: 8, fast_timeout: 'auto' }),
    release: z
      .object({
        version_probe: safeName('http probe whose version_path reports the running version'),
        window: duration('How long a release is guarded before it is promoted').default(600_000),
        initial_delay: duration('Resource rules (cpu, memory) are skipped this long after a release starts').default(
          30_000,
        ),
        settle: duration('How long rolled_back / promoted are shown before returning to stable').default(30_000),
        rollout_grace: duration(
          'A rolling deploy serves old and new versions side by side: the previous version seen within this of the release start is not taken for a rollback done outside the guard',
        ).default(30_000),
      })
      .strict(),
    rules: z
      .object({
        health: z
          .object({
            ...ruleBase,
            probe: ruleProbe('health'),
            consecutive: z.number().int().min(1).default(3).describe('Consecutive failed checks that breach'),
            min_span: minSpan('…and only when they span at least this long, from the first one\'s launch to the last one\'s answer'),
          })
          .strict()
          .optional(),
        error_rate: z
          .object({
            ...ruleBase,
            probe: ruleProbe('error_rate'),
            threshold: z
              .number()
              .gt(0, 'must be above 0')
              .lt(1, 'must be below 1 (a fraction: 0.05 = 5 %; no error ratio is above 100 %)')
              .describe('Roll back when there is enough evidence that the error ratio is above this')
              .default(0.05),
            tolerance: ratio(
              'An error ratio at or below this is rolled back with probability at most budget per window (default: 40 % of threshold, raised to the previous version\'s learnt ratio, never above 80 % of threshold)',
            ).optional(),
            ...sequential,
            window: duration('prometheus source only: the median of its readings in this window is compared with the threshold').default(60_000),
            min_samples: minSamples('error_rate', 'with data'),
            min_requests: z
              .number()
              .int()
              .min(1)
              .optional()
              .describe('No longer used: the sequential test decides when the requests suffice. Accepted so older configs load'),
          })
          .strict()
          .refine((r) => r.tolerance === undefined || r.tolerance < r.threshold, { message: 'must be below threshold: the tolerance is an error ratio never rolled back, the threshold one that is', path: ['tolerance'] })
          .optional(),
        latency_ratio: z
          .object({
            ...ruleBase,
            probe: safeName(`${describeSources('latency_ratio')}, compared with the stable version's p95`),
            ratio: z
              .number()
              .gt(1)
              .default(3)
              .describe('Roll back when there is enough evidence that p95 is above ratio × baseline p95, i.e. that over 5 % of requests are slower than that'),
            floor: duration('Never count a request as slow below this, so tiny baselines do not flap').default(50),
            tolerance: z
              .number()
              .gt(0)
              .lt(0.05)
              .default(0.02)
              .describe('A release with at most this share of requests slower than ratio × baseline p95 is rolled back with probability at most budget per window'),
            ...sequential,
            window: duration('prometheus source only: sliding window for p95').default(30_000),
            min_samples: minSamples('latency_ratio', 'with a latency'),
          })
          .strict()
          .optional(),
        latency_max: z
          .object({
            ...ruleBase,
            probe: ruleProbe('latency_max'),
            threshold: duration('Absolute p95 SLO (API 500 ms, page 2 s)').default(500),
            window: duration('Sliding window for p95').default(30_000),
            min_samples: minSamples('latency_max', 'with a latency'),
          })
          .strict()
          .optional(),
        cpu: z
          .object({
            ...ruleBase,
            probe: ruleProbe('cpu'),
            threshold: ratio('Breach when CPU use stays above this fraction').default(0.7),
            for: duration('…for at least this long').default(60_000),
          })
          .strict()
          .optional(),
        memory: z
          .object({
            ...ruleBase,
            probe: ruleProbe('memory'),
            threshold: ratio('Breach when memory use stays above this fraction').default(0.8),
            for: duration('…for at least this long').default(60_000),
          })
          .strict()
          .optional(),
        db_latency: z
          .object({
            ...ruleBase,
            probe: ruleProbe('db_latency'),
            threshold: duration('Breach when the query stays slower than this (seed: DB query < 100 ms)').default(100),
            for: duration('…for at least this long; a failed query counts as slow').default(10_000),
          })
          .strict()
          .optional(),
      })
      .strict()
      .describe('Rules judged against the probes; a missing rule is not evaluated'),
    rollback: z
      .object({
        automatic: z.boolean().default(true).describe('Roll back by itself on a breach inside a release window'),
        max_per_hour: z.number().int().min(0).default(3).describe('Automatic rollbacks allowed per hour'),
        cooldown: duration('No automatic rollback within this long after the previous automatic one finished (flap protection; 0: none)').default(300_000),
        veto: duration('Announce "rolling back in N s unless vetoed" and wait this long (0: act at once)').default(0),
        steps: z.array(strategySchema).min(1, 'at least one rollback step is needed').describe('The plan, in order'),
      })
      .strict(),
    verification: z
      .object({
        probe: safeName('http probe that must pass and report the previous version'),
        passes: z.number().int().min(1).default(3).describe('Consecutive passing checks that prove the rollback'),
        timeout: duration('Verification fails if not proven within this').default(60_000),
        checks: verificationChecksSchema.describe(
          'After health is proven: functional, performance, data, security and resource checks (seed §3); any failure ends in failed',
        ),
      })
      .strict(),
    notifiers: notifiersSchema.describe('Where release detected, breaches, rollbacks and promotions are announced'),
  })
  .strict();

/**
 * Cross-references between keys (a rule naming a probe that does not exist, …). Checked on the raw
 * input, defensively, so they are reported together with shape errors instead of one round later.
 */
export function referenceProblems(input: unknown): { path: string; message: string }[] {
  const problems: { path: string; message: string }[] = [];
  if (!isRecord(input)) return problems;
  const probes = Array.isArray(input.probes) ? input.probes.filter(isRecord) : [];
  const byName = new Map<string, Record<string, unknown>>();
  probes.forEach((probe, index) => {
    if (typeof probe.name !== 'string') return;
    if (byName.has(probe.name)) problems.push({ path: `probes[${index}].name`, message: `duplicate probe name ${quoted(probe.name)}` });
    byName.set(probe.name, probe);
  });
  const known = nameList([...byName.keys()]) || 'none';
  const needProbe = (path: string, name: unknown, types: string[]) => {
    if (typeof name !== 'string') return; // the shape check reports it
    const probe = byName.get(name);
    if (!probe) problems.push({ path, message: `no probe named ${quoted(name)}; defined probes: ${known}` });
    // A probe without a usable type is reported by the shape check.
    else if (typeof probe.type === 'string' && !types.includes(probe.type)) {
      problems.push({ path, message: `probe ${quoted(name)} is of type ${quoted(probe.type, 30).slice(1, -1)}; this needs a ${types.join(' or ')} probe` });
    }
  };
  const release = isRecord(input.release) ? input.release : {};
  needProbe('release.version_probe', release.version_probe, ['http']);
  const versionProbe = typeof release.version_probe === 'string' ? byName.get(release.version_probe) : undefined;
  if (versionProbe?.type === 'http' && versionProbe.version_path === undefined) {
    problems.push({ path: 'release.version_probe', message: `probe ${quoted(release.version_probe)} has no version_path; set one so releases can be detected` });
  }
  const verification = isRecord(input.verification) ? input.verification : {};
  needProbe('verification.probe', verification.probe, ['http']);
  const rules = isRecord(input.rules) ? input.rules : {};
  for (const rule of PROBE_RULES) {
    const config = rules[rule];
    if (isRecord(config)) needProbe(`rules.${rule}.probe`, config.probe, acceptedProbeTypes(rule));
  }
  // Under HA the guard that rolls back may not be the one that prepared: prepared data must be shared.
  const store = isRecord(input.store) ? input.store : {};
  const rollback = isRecord(input.rollback) ? input.rollback : {};
  const preparing = (Array.isArray(rollback.steps) ? rollback.steps : []).filter(isRecord).flatMap((step) =>
    (step.type === 'database' && step.backup_on_release !== false) || step.type === 'config' || step.type === 'redis' || step.type === 'blue_green' ? [String(step.type)] : [],
  );
  if (store.type === 'redis' && store.shared_dir === undefined && preparing.length > 0) {
    problems.push({
      path: 'store.shared_dir',
      message:
        `required with the redis store when a rollback step prepares data (${[...new Set(preparing)].join(', ')}): ` +
        "a standby that takes over must reach the acting guard's backups and snapshots; set it to a directory every guard of this instance mounts",
    });
  }
  const schedule = isRecord(input.schedule) ? input.schedule : {};
  // Raw input: anything but a string or a number is a shape error, reported by the schema.
  const asDuration = (value: unknown, fallback: number) =>
    value === undefined ? fallback : typeof value === 'string' || typeof value === 'number' ? parseDuration(value) : null;
  const fast = asDuration(schedule.fast_interval, 250);
  const slow = asDuration(schedule.interval, 1000);
  if (fast !== null && slow !== null && fast > slow) {
    problems.push({ path: 'schedule.fast_interval', message: 'must not be longer than schedule.interval' });
  }
  return problems;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

export type Config = z.infer<typeof configSchema>;
export type StoreConfig = Config['store'];
export type RedisStoreConfig = Extract<StoreConfig, { type: 'redis' }>;
export type ConfigInput = z.input<typeof configSchema>;
export type ProbeConfig = z.infer<typeof probeSchema>;
export type HttpProbeConfig = Extract<ProbeConfig, { type: 'http' }>;
export type SystemProbeConfig = Extract<ProbeConfig, { type: 'system' }>;
export type ProcessProbeConfig = Extract<ProbeConfig, { type: 'process' }>;
export type PrometheusProbeConfig = Extract<ProbeConfig, { type: 'prometheus' }>;
export type ScrapeProbeConfig = Extract<ProbeConfig, { type: 'scrape' }>;
export type AccessLogProbeConfig = Extract<ProbeConfig, { type: 'access_log' }>;
export type MysqlProbeConfig = Extract<ProbeConfig, { type: 'mysql' }>;
export type RedisProbeConfig = Extract<ProbeConfig, { type: 'redis' }>;
export type StrategyConfig = z.infer<typeof strategySchema>;
export type ReleasesStrategyConfig = Extract<StrategyConfig, { type: 'releases' }>;
export type Pm2StrategyConfig = Extract<StrategyConfig, { type: 'pm2' }>;
export type GitStrategyConfig = Extract<StrategyConfig, { type: 'git' }>;
export type ConfigFilesStrategyConfig = Extract<StrategyConfig, { type: 'config' }>;
export type DatabaseStrategyConfig = Extract<StrategyConfig, { type: 'database' }>;
export type RedisStrategyConfig = Extract<StrategyConfig, { type: 'redis' }>;
export type DockerStrategyConfig = Extract<StrategyConfig, { type: 'docker' }>;
export type KubernetesStrategyConfig = Extract<StrategyConfig, { type: 'kubernetes' }>;
export type BlueGreenStrategyConfig = Extract<StrategyConfig, { type: 'blue_green' }>;
export type CommandStrategyConfig = Extract<StrategyConfig, { type: 'command' }>;
export type RulesConfig = Config['rules'];
