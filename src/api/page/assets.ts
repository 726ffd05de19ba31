/**
 * The page's stylesheet and script, served by the daemon itself (no CDN, no build step at run
 * time: they ship inside dist/ as these string modules, so `npm pack` needs no extra files).
 *
 * The script only (1) polls `page/live` every second and swaps in the sections the server says
 * changed, and (2) offers the control buttons once the operator entered the bearer token, which it
 * keeps in sessionStorage and sends as an Authorization header (no cookies, so no CSRF). It never
 * builds HTML from data: the server renders and escapes every section; messages are set with
 * textContent.
 */
import { createHash } from 'node:crypto';

export const PAGE_STYLE = `
:root { color-scheme: light; --muted: #64748b; --line: #e2e8f0; --ok: #16a34a; --bad: #dc2626; --warn: #d97706; --blue: #1f6feb; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1000px; padding: 0 16px 48px; font: 14px/1.45 'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif; color: #0f172a; background: #fff; }
header { display: flex; align-items: baseline; justify-content: space-between; gap: 12px; border-bottom: 1px solid var(--line); padding: 12px 0 8px; }
header h1 { font-size: 18px; margin: 0; }
#live-status { color: var(--muted); font-size: 12px; }
#live-status.offline { color: var(--bad); font-weight: bold; }
h2 { font-size: 16px; margin: 20px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
small, .muted { color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid var(--line); }
.facts th { width: 170px; color: var(--muted); font-weight: normal; }
.version { font-family: 'DejaVu Sans Mono', 'Liberation Mono', monospace; overflow-wrap: anywhere; }
.phase { display: inline-block; padding: 1px 10px; border-radius: 10px; color: #fff; background: var(--muted); font-size: 14px; }
.phase-guarding { background: var(--blue); } .phase-rolling_back { background: var(--bad); } .phase-verifying { background: var(--warn); }
.phase-rolled_back { background: #7c3aed; } .phase-promoted, .phase-stable { background: var(--ok); } .phase-failed { background: #7f1d1d; }
.banner { padding: 8px 12px; border-radius: 4px; margin: 8px 0; font-weight: bold; }
.banner.paused, .banner.pending, .banner.would { background: #fef3c7; border: 1px solid var(--warn); }
.banner.frozen { background: #fee2e2; border: 1px solid var(--bad); }
.rules .outcome { font-weight: bold; }
.outcome-pass .outcome { color: var(--ok); } .outcome-fail .outcome { color: var(--bad); } .outcome-inconclusive .outcome, .outcome-error .outcome { color: var(--warn); }
.evidence { color: var(--muted); font-size: 12px; margin-top: 4px; }
meter { width: 80px; vertical-align: middle; }
.chart svg, img.timeline { max-width: 100%; height: auto; display: block; }
details.record { border: 1px solid var(--line); border-radius: 4px; margin: 6px 0; padding: 4px 8px; }
details.record summary { cursor: pointer; }
.markdown h1 { font-size: 16px; } .markdown h2 { font-size: 14px; }
.markdown pre { background: #f8fafc; padding: 8px; overflow-x: auto; font-size: 12px; }
#controls { border: 1px solid var(--line); border-radius: 4px; padding: 8px 12px; margin-top: 16px; }
#controls button { margin: 2px 4px 2px 0; }
#control-result { min-height: 1.4em; }
#control-result.error { color: var(--bad); font-weight: bold; }
input[type=text], input[type=password] { padding: 3px 6px; min-width: 260px; }
`;

export const PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var TOKEN_KEY = 'release-guard-token';
  var POLL_MS = 1000;
  var known = {};
  var byId = function (id) { return document.getElementById(id); };

  function token() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }

  function sectionsNow() {
    document.querySelectorAll('[data-live]').forEach(function (el) { known[el.getAttribute('data-live')] = el.getAttribute('data-hash'); });
  }

  function setLive(ok, message) {
    var el = byId('live-status');
    el.textContent = message;
    el.className = ok ? '' : 'offline';
  }

  function swap(id, hash, html) {
    var holder = byId(id + '-live');
    if (!holder) return;
    // Keep what the operator opened: a record's details.
    var open = {};
    holder.querySelectorAll('details[id]').forEach(function (d) { open[d.id] = d.open; });
    holder.innerHTML = html;
    holder.setAttribute('data-hash', hash);
    holder.querySelectorAll('details[id]').forEach(function (d) { if (d.id in open) d.open = open[d.id]; });
  }

  function poll() {
    var have = Object.keys(known).map(function (id) { return id + ':' + known[id]; }).join(',');
    fetch('page/live?known=' + encodeURIComponent(have), { cache: 'no-store' })
      .then(function (res) {
        if (!res.ok) throw new Error('HTTP ' + res.status);
        return res.json();
      })
      .then(function (data) {
        data.sections.forEach(function (s) {
          known[s.id] = s.hash;
          if (typeof s.html === 'string') swap(s.id, s.hash, s.html);
        });
        setLive(true, 'live, updated ' + new Date().toLocaleTimeString());
        showControls();
      })
      .catch(function (error) { setLive(false, 'not updating (' + error.message + '); retrying'); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  // Which buttons apply now, from the state section's attributes (the API refuses the others anyway).
  function applies(action) {
    var state = byId('state-live').querySelector('#state');
    if (!state) return false;
    var phase = state.getAttribute('data-phase');
    var paused = state.getAttribute('data-paused') === 'true';
    switch (action) {
      case 'pause': return !paused;
      case 'resume': return paused || phase === 'failed';
      case 'promote': return phase === 'guarding';
      case 'veto': return state.getAttribute('data-pending') === 'true';
      case 'rollback': return state.getAttribute('data-running') !== '';
      default: return true;
    }
  }

  function showControls() {
    var has = token() !== null;
    byId('controls').hidden = false;
    byId('token-form').hidden = has;
    byId('actions').hidden = !has;
    if (!has) return;
    document.querySelectorAll('#actions [data-action]').forEach(function (button) {
      button.hidden = !applies(button.getAttribute('data-action'));
    });
  }

  function report(ok, message) {
    var el = byId('control-result');
    el.textContent = message;
    el.className = ok ? '' : 'error';
  }

  function send(action) {
    var body = action === 'preflight' ? {} : { by: 'web page' };
    if (action === 'rollback' || action === 'veto') {
      var reason = byId('reason').value.trim();
      if (action === 'rollback' && reason === '') return report(false, 'say why you roll back (the reason is recorded)');
      if (reason !== '') body.reason = reason;
    }
    report(true, action + '…');
    fetch(action, {
      method: 'POST',
      cache: 'no-store',
      headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token() },
      body: JSON.stringify(body),
    })
      .then(function (res) {
        return res.json().then(function (answer) {
          if (res.ok && action === 'preflight') report(answer.ready, 'preflight: ' + (answer.ready ? 'ready to roll back' : 'NOT ready') + ' (shown under History)');
          else if (res.ok) report(true, action + ': done, now ' + answer.phase + (answer.paused ? ' (paused)' : ''));
          else report(false, action + ' refused (' + res.status + '): ' + answer.error);
        });
      })
      .catch(function (error) { report(false, action + ' failed: ' + error.message); });
  }

  byId('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    var value = byId('token').value.trim();
    if (value === '') return;
    sessionStorage.setItem(TOKEN_KEY, value);
    byId('token').value = '';
    report(true, 'token kept for this tab; the API checks it on every action');
    showControls();
  });
  byId('forget').addEventListener('click', function () {
    sessionStorage.removeItem(TOKEN_KEY);
    report(true, 'token forgotten');
    showControls();
  });
  document.querySelectorAll('#actions [data-action]').forEach(function (button) {
    button.addEventListener('click', function () { send(button.getAttribute('data-action')); });
  });

  sectionsNow();
  showControls();
  setTimeout(poll, POLL_MS);
})();
`;

/** The tab's icon (a shield), so the browser does not ask for /favicon.ico. */
export const PAGE_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path d="M8 1l6 2.5v4C14 11 11.5 14 8 15 4.5 14 2 11 2 7.5v-4z" fill="#1f6feb"/></svg>';

/** A short content hash, for cache-busting asset URLs and for the sections' change detection. */
export function contentHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 12);
}

export const STYLE_HASH = contentHash(PAGE_STYLE);
export const SCRIPT_HASH = contentHash(PAGE_SCRIPT);
