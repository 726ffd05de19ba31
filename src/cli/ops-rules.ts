/**
 * `release-guard ops rules [--runbook-base URL] [--job NAME]`: prints the shipped Prometheus alert
 * rules (prometheus/release-guard.rules.yml), with each alert's runbook_url made absolute when a
 * base is given, and the scrape job the up/absent alerts watch renamed when a job is given (the
 * shipped rules assume `job_name: release-guard`; a site that scrapes the guard under another job
 * would otherwise get a ReleaseGuardAbsent that fires forever and a ReleaseGuardDown that never
 * does). Alertmanager and the pager show runbook_url as a link, and a relative
 * `docs/operations.md#…` leads nowhere from there; where the runbooks are published (a wiki, the
 * repository's web view) is known only to the operator.
 *
 * The file is rewritten line by line, not re-serialised, so its comments and layout stay as
 * shipped and a diff against the shipped file shows only the links.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { GuardError } from '../errors.js';
import { packageRoot } from '../package-root.js';

/**
 * The alert rules as shipped: prometheus/ at the package root (found from src/, dist/ and build/src/
 * alike). A function, so importing the CLI's commands does not search the disk.
 */
export function rulesFile(): string {
  return join(packageRoot(), 'prometheus', 'release-guard.rules.yml');
}

/** The shipped links: the runbook section of docs/operations.md, one anchor per alert. */
const RELATIVE_RUNBOOK = /^(\s*runbook_url:\s*)"docs\/operations\.md#([a-z0-9-]+)"\s*$/;

/**
 * The rules text with absolute runbook links. `base` is the published runbook page (the link gets
 * `#<alert name in lower case>`, the anchor of the alert's section), or a URL with `{alert}` in it
 * for one page per alert (replaced by the alert's name).
 */
export function rulesWithRunbookBase(rulesText: string, base: string): string {
  checkBase(base);
  const alerts = (parse(rulesText) as { groups: { rules: { alert?: string }[] }[] }).groups
    .flatMap((group) => group.rules)
    .map((rule) => rule.alert)
    .filter((alert): alert is string => alert !== undefined);
  const byAnchor = new Map(alerts.map((alert) => [alert.toLowerCase(), alert]));
  let replaced = 0;
  const lines = rulesText.split('\n').map((line) => {
    const match = RELATIVE_RUNBOOK.exec(line);
    if (!match) return line;
    const alert = byAnchor.get(match[2]!);
    if (alert === undefined) throw new Error(`rules file: runbook anchor #${match[2]} names no alert`);
    replaced++;
    const url = base.includes('{alert}') ? base.replaceAll('{alert}', encodeURIComponent(alert)) : `${base}#${match[2]}`;
    return `${match[1]}${JSON.stringify(url)}`;
  });
  // Every alert has a runbook (test/ops/dashboards.test.ts): one left relative would be a bug here.
  if (replaced !== alerts.length) throw new Error(`rules file: ${replaced} runbook links rewritten for ${alerts.length} alerts`);
  return lines.join('\n');
}

function checkBase(base: string): void {
  let url: URL;
  try {
    url = new URL(base.replaceAll('{alert}', 'alert'));
  } catch {
    throw new GuardError(`--runbook-base ${JSON.stringify(base)} is not an absolute URL; use e.g. https://wiki.example.com/release-guard/ops`, 'usage');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new GuardError(`--runbook-base ${JSON.stringify(base)} must be an http:// or https:// URL`, 'usage');
  }
  if (url.hash !== '' && !base.includes('{alert}')) {
    throw new GuardError(`--runbook-base ${JSON.stringify(base)} already has a #fragment; give the page (each alert's #anchor is added) or put {alert} where the alert's name goes`, 'usage');
  }
}

/** The job name the shipped rules use, in their selectors and in the text around them. */
const SHIPPED_JOB = 'release-guard';

/**
 * A job name that can stand inside a PromQL string literal and a YAML line unquoted and unescaped;
 * Prometheus allows any string, but job names in scrape configs are words like these in practice,
 * and refusing the rest is simpler than escaping for two languages at once.
 */
const JOB_NAME = /^[A-Za-z0-9_.:/-]{1,128}$/;

/** The rules text with every `job="release-guard"` selector (and its mentions) naming `job`. */
export function rulesWithJob(rulesText: string, job: string): string {
  if (!JOB_NAME.test(job)) {
    throw new GuardError(`--job ${JSON.stringify(job)} is not a usable job name; allowed: 1–128 letters, digits and _ . : / -, as in the scrape config's job_name`, 'usage');
  }
  const selector = `job="${SHIPPED_JOB}"`;
  if (!rulesText.includes(selector)) throw new Error(`rules file: no ${selector} selector to rename`);
  return rulesText.replaceAll(selector, `job="${job}"`).replaceAll(`job "${SHIPPED_JOB}"`, `job "${job}"`);
}

export interface OpsRulesOptions {
  /** Where docs/operations.md is published (see rulesWithRunbookBase). */
  runbookBase?: string;
  /** The scrape job the guard's /metrics is collected under, when not "release-guard". */
  job?: string;
}

/** The rules as shipped, or fitted to the site: absolute runbook links, another job name. */
export async function opsRules(options: OpsRulesOptions = {}): Promise<string> {
  let text = await readFile(rulesFile(), 'utf8');
  const args: string[] = [];
  if (options.runbookBase !== undefined) {
    text = rulesWithRunbookBase(text, options.runbookBase);
    args.push('--runbook-base', options.runbookBase);
  }
  if (options.job !== undefined) {
    text = rulesWithJob(text, options.job);
    args.push('--job', options.job);
  }
  return args.length === 0 ? text : `# Generated by \`release-guard ops rules ${args.join(' ')}\` from the shipped rules.\n${text}`;
}
