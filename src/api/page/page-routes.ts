/**
 * The operator page at `/`: the guard's live view for a browser, on the API server's own port.
 *
 * - `GET /`: the whole page, rendered here, so it reads with JavaScript off.
 * - `GET /page/live?known=id:hash,…`: the sections whose content changed since those hashes (the
 *   page's script polls it every second and swaps them in).
 * - `GET /page/app.js`, `/page/app.css`: the script and style (assets.ts); `GET /page/record.svg?id=`:
 *   a rollback record's timeline picture, as the store kept it.
 *
 * Read-only like /status: the control buttons post to the API's own endpoints with the bearer
 * token, so nothing here gets around the API's auth. What anyone can make it do is bounded: one
 * rendering per second whoever asks (shared by every viewer), Markdown rendered once per record,
 * the last drill read from the store, and the last preflight as the guard kept it (a page view
 * never starts one).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../shell/clock.js';
import { escapeXml as esc } from '../../records/timeline-svg.js';
import { redact, redactText } from '../../redact.js';
import type { GuardControl } from '../types.js';
import { contentHash, PAGE_ICON, PAGE_SCRIPT, PAGE_STYLE, SCRIPT_HASH, STYLE_HASH } from './assets.js';
import { renderSections, type PageData, type PageRecord, type Section } from './sections.js';

/** How often the sections are rendered at most, whoever asks: the page polls at this pace. */
const RENDER_EVERY_MS = 1000;
/** Rollback records listed; the newest few have their Markdown rendered into the page. */
const RECORDS_LISTED = 10;
const RECORDS_RENDERED = 3;
const RECORD_ID = /^[\w.+-]{1,200}$/;

export interface PageSources {
  control: GuardControl;
  clock: Clock;
}

export type PageHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};
/** Scripts, styles and images from this daemon only; the inline SVG needs no script or style. */
const CONTENT_SECURITY_POLICY = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...headers });
  res.end(body);
}

/** The page's routes, keyed by path, for the API server's table. */
export function pageRoutes(sources: PageSources): Record<string, PageHandler> {
  const markdownCache = new Map<string, string | null>();
  // Loaded on the first page view: a guard nobody looks at does not hold markdown-it in memory.
  let recordHtml: Promise<typeof import('./markdown-html.js').recordHtml> | null = null;
  let rendered: { at: number; sections: Promise<(Section & { hash: string })[]> } | null = null;

  const renderedRecord = async (id: string): Promise<string | null> => {
    if (markdownCache.has(id)) return markdownCache.get(id)!;
    const document = await sources.control.recordDocument(id);
    recordHtml ??= import('./markdown-html.js').then((m) => m.recordHtml);
    const html = document ? (await recordHtml)(redactText(document.markdown), document.svg === null ? null : { name: `${id}.svg`, url: `page/record.svg?id=${encodeURIComponent(id)}` }) : null;
    // A record is written once and not changed: its HTML is kept (a handful, the newest).
    if (document) markdownCache.set(id, html);
    if (markdownCache.size > RECORDS_LISTED * 2) markdownCache.delete(markdownCache.keys().next().value!);
    return html;
  };

  const gather = async (): Promise<PageData> => {
    const { control } = sources;
    const history = redact(await control.history({ limit: RECORDS_LISTED }));
    const records: PageRecord[] = await Promise.all(
      history.rollbacks.map(async (r, i) => ({ ...r, html: i < RECORDS_RENDERED ? await renderedRecord(r.id) : null })),
    );
    return {
      status: redact(control.status()),
      history,
      timeline: redact(control.liveTimeline()),
      records,
      lastDrill: redact(await control.lastDrill()),
      lastPreflight: redact(control.lastPreflight()),
    };
  };

  /** The sections, rendered at most once per RENDER_EVERY_MS for every viewer together. */
  const sections = (): Promise<(Section & { hash: string })[]> => {
    const now = sources.clock.now();
    if (rendered && now - rendered.at < RENDER_EVERY_MS && now >= rendered.at) return rendered.sections;
    const next = gather().then((data) => renderSections(data).map((s) => ({ ...s, hash: contentHash(s.html) })));
    rendered = { at: now, sections: next };
    // A failed rendering is not kept: the next request tries again.
    next.catch(() => {
      if (rendered?.sections === next) rendered = null;
    });
    return next;
  };

  return {
    '/': async (_req, res) => {
      const live = await sections();
      send(res, 200, 'text/html; charset=utf-8', pageDocument(live, sources.control.status().service), { 'content-security-policy': CONTENT_SECURITY_POLICY, 'cache-control': 'no-store' });
    },
    '/page/live': async (req, res) => {
      const knownParam = new URL(req.url ?? '/', 'http://localhost').searchParams.get('known') ?? '';
      const known = new Map(knownParam.split(',').slice(0, 20).map((pair) => pair.split(':', 2) as [string, string]));
      const live = await sections();
      const body = JSON.stringify({ sections: live.map((s) => (known.get(s.id) === s.hash ? { id: s.id, hash: s.hash } : s)) });
      send(res, 200, 'application/json; charset=utf-8', body, { 'cache-control': 'no-store' });
    },
    '/page/app.js': async (_req, res) => send(res, 200, 'text/javascript; charset=utf-8', PAGE_SCRIPT, { 'cache-control': 'public, max-age=86400, immutable' }),
    '/page/icon.svg': async (_req, res) => send(res, 200, 'image/svg+xml; charset=utf-8', PAGE_ICON, { 'cache-control': 'public, max-age=86400, immutable' }),
    '/page/app.css': async (_req, res) => send(res, 200, 'text/css; charset=utf-8', PAGE_STYLE, { 'cache-control': 'public, max-age=86400, immutable' }),
    '/page/record.svg': async (req, res) => {
      const id = new URL(req.url ?? '/', 'http://localhost').searchParams.get('id') ?? '';
      const document = RECORD_ID.test(id) ? await sources.control.recordDocument(id) : null;
      if (!document?.svg) return send(res, 404, 'text/plain; charset=utf-8', 'no such record picture');
      // Served as an image (an <img> runs no script in an SVG), and locked down if opened directly.
      send(res, 200, 'image/svg+xml; charset=utf-8', document.svg, { 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'", 'cache-control': 'private, max-age=3600' });
    },
  };
}

/** The whole page: header, the live sections (each in a holder the script swaps), the controls. */
export function pageDocument(live: readonly (Section & { hash: string })[], service: string): string {
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>release-guard · ${esc(redactText(service))}</title>`,
    '<link rel="icon" href="page/icon.svg" type="image/svg+xml">',
    `<link rel="stylesheet" href="page/app.css?v=${STYLE_HASH}">`,
    `<script src="page/app.js?v=${SCRIPT_HASH}" defer></script>`,
    '</head><body>',
    '<header><h1>release-guard</h1><span id="live-status">as of the page load; live updates need JavaScript</span></header>',
    ...live.slice(0, 1).map(holder),
    CONTROLS,
    ...live.slice(1).map(holder),
    '</body></html>',
  ].join('\n');
}

const holder = (s: Section & { hash: string }) => `<div id="${esc(s.id)}-live" data-live="${esc(s.id)}" data-hash="${esc(s.hash)}">\n${s.html}\n</div>`;

/** Hidden until the script runs; the buttons appear once a token is entered. */
const CONTROLS = `<section id="controls" hidden>
<h2>Control</h2>
<form id="token-form"><label>Bearer token <input type="password" id="token" autocomplete="off"></label> <button type="submit">Use token</button> <small>kept in this tab only (sessionStorage), sent as a header</small></form>
<div id="actions" hidden>
<button type="button" data-action="pause">Pause</button>
<button type="button" data-action="resume">Resume</button>
<button type="button" data-action="promote">Promote</button>
<button type="button" data-action="veto">Veto the pending rollback</button>
<label>Reason <input type="text" id="reason" maxlength="500" placeholder="why (needed to roll back)"></label>
<button type="button" data-action="rollback">Roll back</button>
<button type="button" data-action="preflight">Run preflight</button>
<button type="button" id="forget">Forget token</button>
</div>
<p id="control-result" role="status"></p>
</section>
<noscript><p class="muted">Controls need JavaScript (the token is sent as a header); the CLI does the same: release-guard pause | resume | promote | rollback --reason … | veto.</p></noscript>`;
