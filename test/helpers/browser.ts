/**
 * A real headless Chromium for the operator page's tests: Debian's `chromium` package (installed
 * when missing, as other test programs are, see apt.ts), driven through puppeteer-core (which
 * downloads no browser of its own). Each page collects its console errors, uncaught exceptions,
 * failed requests and the bytes of every response, so tests can assert there were none and
 * measure what the page weighs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { PROJECT_ROOT } from '../fixtures/demo-app/releases.js';
import { ensureDebianPackage } from './apt.js';

/** Screenshots and measurements go here (gitignored, kept as CI artifacts). */
export const ARTIFACTS_DIR = path.join(PROJECT_ROOT, 'test-artifacts', 'page');

export async function launchChromium(): Promise<Browser> {
  const chromium = await ensureDebianPackage('chromium', 'chromium');
  return puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    // Root in a container: Chromium's sandbox needs user namespaces it may not have; /dev/shm is small.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  });
}

export interface WatchedPage {
  page: Page;
  /** Console errors, uncaught exceptions and failed requests, as text. */
  problems: string[];
  /** Bytes of each response body by URL (the last response for a URL wins). */
  bytes: Map<string, number>;
}

export async function openWatched(browser: Browser, options: { javaScript?: boolean } = {}): Promise<WatchedPage> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 900 });
  if (options.javaScript === false) await page.setJavaScriptEnabled(false);
  const problems: string[] = [];
  const bytes = new Map<string, number>();
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${String(error)}`));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()} ${request.failure()?.errorText ?? ''}`));
  page.on('dialog', (dialog) => {
    problems.push(`dialog opened: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('response', (response) => {
    // Redirects have no body; everything else is counted as delivered (uncompressed: the API does not compress).
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
    if (response.status() >= 300 && response.status() < 400) return;
    response
      .buffer()
      .then((body) => bytes.set(response.url(), body.length))
      .catch(() => undefined);
  });
  return { page, problems, bytes };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file as `${string}.png`, fullPage: true });
  return file;
}

export async function writeArtifact(name: string, content: string): Promise<void> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  await writeFile(path.join(ARTIFACTS_DIR, name), content);
}
