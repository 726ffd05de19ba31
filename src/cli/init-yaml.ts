/**
 * The starter config `release-guard init` writes, as YAML text with comments: the values the
 * questions found, a comment saying what each section does, and a `# TODO:` where they found
 * nothing. Written by hand rather than by a YAML library, which cannot place these comments.
 */
import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import { NGINX_TIMED_FORMAT, type AccessLogFormat } from '../probes/access-log-parse.js';

/** The name of the access_log probe in the starter config. */
export const ACCESS_LOG_PROBE = 'access-log';

export interface AccessLogDoc {
  path: string;
  format: AccessLogFormat;
  /** Its recent lines are in `format`: written as a live probe, else commented out. */
  enabled: boolean;
}

/** What the starter config says, before it is YAML. */
export interface StarterDoc {
  service: string;
  state_dir: string;
  pm2: { app: string; home?: string } | undefined;
  health: Record<string, unknown>;
  traffic: Record<string, unknown> | undefined;
  accessLog: AccessLogDoc | null;
  /** The probe the error and latency rules judge. */
  source: string;
  step: Record<string, unknown>;
}

type Notes = Record<string, string[]>;

/** A YAML scalar: plain when unambiguous, else JSON-quoted (JSON strings are YAML strings). */
function scalar(value: unknown): string {
  if (typeof value === 'string') {
    const plain = /^[A-Za-z0-9_/][A-Za-z0-9_./:@-]*$/.test(value) && !/^(true|false|yes|no|on|off|null|~|y|n)$/i.test(value) && !/^[\d.+-]/.test(value);
    return plain ? value : JSON.stringify(value);
  }
  return JSON.stringify(value);
}

function flow(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(flow).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    return `{ ${Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}: ${flow(v)}`).join(', ')} }`;
  }
  return scalar(value);
}

const comment = (indent: string, text: string) => `${indent}# TODO: ${text}`;

/** The config schema shipped with this installation: config.schema.json at the package root. */
export function shippedSchemaPath(): string {
  return join(packageRoot(), 'config.schema.json');
}

/** A line with a trailing comment, aligned when the line is short enough. */
const c = (text: string, note: string) => `${text.padEnd(38)} # ${note}`;
/** The TODO comments of one section. */
const notesFor = (notes: Notes, section: string, indent = '') => (notes[section] ?? []).map((text) => comment(indent, text));

export function renderYaml(doc: StarterDoc, notes: Notes, summary: { inferred: string[]; todo: string[] }): string {
  const lines: string[] = [
    // Editors with the YAML language server (VS Code, Neovim, …) complete and check the file against it.
    `# yaml-language-server: $schema=${shippedSchemaPath()}`,
    `# release-guard starter config for ${doc.service}, written by \`release-guard init\` on ${new Date().toISOString().slice(0, 10)}.`,
    '# Every key is documented in docs/configuration.md; check this file with:',
    '#   release-guard config validate <this file>',
  ];
  if (summary.todo.length > 0) lines.push(`# ${summary.todo.length} thing${summary.todo.length === 1 ? '' : 's'} could not be inferred: search for TODO.`);
  lines.push('');
  lines.push(...serviceLines(doc, notes), ...probeLines(doc, notes));
  if (doc.accessLog) lines.push(...accessLogLines(doc.accessLog, notes));
  lines.push(...ruleLines(doc), ...rollbackLines(doc, notes));
  return lines.join('\n');
}

/** service, state_dir, server and pm2. */
function serviceLines(doc: StarterDoc, notes: Notes): string[] {
  const lines: string[] = [];
  lines.push(...notesFor(notes, 'service'), `service: ${scalar(doc.service)}`);
  lines.push(c(`state_dir: ${scalar(doc.state_dir)}`, 'state, history and rollback records'));
  lines.push(
    '',
    c('server:', '/metrics, /status and the control API'),
    '  host: 127.0.0.1',
    '  port: 9464',
    c('  # token_file: /etc/release-guard/token', 'bearer token for rollback, pause, resume (chmod 600);'),
    c('', 'without it, the token comes from $RELEASE_GUARD_TOKEN'),
  );
  if (doc.pm2) {
    lines.push('', c('pm2:', "crashes of a new version are seen on pm2's event bus"), `  app: ${scalar(doc.pm2.app)}`);
    if (doc.pm2.home !== undefined) lines.push(`  home: ${scalar(doc.pm2.home)}`);
  }
  return lines;
}

/** The health, host and Prometheus probes. */
function probeLines(doc: StarterDoc, notes: Notes): string[] {
  const lines: string[] = [];
  lines.push('', 'probes:', ...notesFor(notes, 'health', '  '));
  lines.push('  - name: health', '    type: http', `    url: ${scalar(doc.health.url)}`);
  if (doc.health.json_field !== undefined) lines.push(c(`    json_field: ${flow(doc.health.json_field)}`, 'a check passes only with this field'));
  lines.push(c(`    version_path: ${scalar(doc.health.version_path)}`, 'where the running version is in the JSON body'));
  lines.push('  - name: host', c('    type: system', 'host CPU, memory and disk from /proc'));
  lines.push(...notesFor(notes, 'probes', '  '));
  if (doc.traffic) {
    const queries = doc.traffic.queries as Record<string, string>;
    lines.push(
      c('  - name: traffic', 'real traffic from Prometheus'),
      '    type: prometheus',
      `    url: ${scalar(doc.traffic.url)}`,
      '    queries:',
      ...(notes.traffic ?? []).map((text) => comment('      ', text)),
      '      # Examples: adjust the metric names and labels to what your app exports.',
      `      error_ratio: ${scalar(queries.error_ratio)}`,
      `      p95_ms: ${scalar(queries.p95_ms)}`,
    );
  }
  return lines;
}

/** The access_log probe: live when its lines are in a format it reads, else commented out with how to get there. */
function accessLogLines(log: AccessLogDoc, notes: Notes): string[] {
  const lines: string[] = [];
  const probe = [
    c(`- name: ${ACCESS_LOG_PROBE}`, 'every request the web server answered, from its access log'),
    '  type: access_log',
    `  path: ${scalar(log.path)}`,
    ...(log.format === 'nginx' ? [] : [`  format: ${log.format}`]),
  ];
  lines.push(...notesFor(notes, 'access_log', '  '));
  if (log.enabled) lines.push(...probe.map((line) => `  ${line}`));
  else {
    lines.push(
      '  # The probe expects nginx to log in the timed format (combined + request time + upstream). In',
      "  # nginx's http block:",
      `  #   log_format timed '${NGINX_TIMED_FORMAT}';`,
      `  #   access_log ${log.path} timed;`,
      '  # then nginx -s reload, uncomment the probe, and point rules.error_rate and rules.latency_ratio at it.',
      '  # Other layouts: set format (apache, json) or log_format; see docs/configuration.md.',
      ...probe.map((line) => `  # ${line}`),
    );
  }
  return lines;
}

/** release and rules: the error and latency rules judge `doc.source`. */
function ruleLines(doc: StarterDoc): string[] {
  const lines: string[] = [];
  lines.push('', 'release:', '  version_probe: health', c('  window: 10m', 'a release is guarded this long, then promoted'));
  const later =
    doc.traffic && doc.source === 'health'
      ? '; probe: traffic once its queries answer'
      : doc.accessLog && !doc.accessLog.enabled && doc.source === 'health'
        ? `; probe: ${ACCESS_LOG_PROBE} once it is enabled`
        : '';
  lines.push(
    '',
    c('rules:', "the runbook's thresholds are the defaults"),
    c('  health: { probe: health }', '3 consecutive failed checks'),
    c(`  error_rate: { probe: ${doc.source} }`, `errors > 5 %${later}`),
    c(`  latency_ratio: { probe: ${doc.source} }`, `p95 > 3 × the previous version's${later}`),
    c('  cpu: { probe: host }', '> 70 % for 60 s'),
    c('  memory: { probe: host }', '> 80 % for 60 s'),
  );
  return lines;
}

/** rollback and verification. */
function rollbackLines(doc: StarterDoc, notes: Notes): string[] {
  const lines: string[] = [];
  lines.push('', 'rollback:', '  steps:', ...notesFor(notes, 'rollback', '    '));
  const [first, ...rest] = Object.entries(doc.step);
  lines.push(`    - ${first![0]}: ${flow(first![1])}`, ...rest.map(([key, value]) => `      ${key}: ${flow(value)}`));
  lines.push('', c('verification: { probe: health, passes: 3 }', 'the previous version must answer 3 times'), '');
  return lines;
}
