/**
 * The rollback record's timeline picture: rendered for the demo's rollback (v2 answers 500 three
 * seconds after it starts; rolled back and verified about five seconds after the deploy), then
 * converted to PNG by a real SVG renderer (Debian's rsvg-convert, installed when missing) and
 * decoded here: right size, not blank, and the event markers are really drawn where they belong.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDebianPackage } from '../../test/helpers/apt.js';
import { countColor, decodePng } from '../../test/helpers/png.js';
import { EVENT_COLORS, escapeXml, renderTimelineSvg, svgDataUri, type TimelineInput } from './timeline-svg.js';

function run(program: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: 60_000 }, (error, _stdout, stderr) => (error ? reject(new Error(`${program}: ${error.message}\n${stderr}`)) : resolve()));
  });
}

/** The demo's rollback: deploy at +0, fault at +3.67 s, decision +3.78 s, plan done +4.88 s, verified +5.18 s. */
function demoRollback(): TimelineInput {
  const deploy = Date.parse('2026-11-22T13:22:09.302Z');
  const from = deploy - 20_000;
  const to = deploy + 15_000;
  const fault = deploy + 3670;
  const series: TimelineInput['series'] = [
    { name: 'error ratio', unit: 'ratio', points: [] },
    { name: 'p95 latency', unit: 'ms', points: [] },
    { name: 'cpu', unit: 'ratio', points: [] },
    { name: 'memory', unit: 'ratio', points: [] },
  ];
  for (let t = from; t <= to; t += 250) {
    const faulty = t >= fault && t < deploy + 4880;
    const wobble = Math.sin(t / 900);
    series[0]!.points.push([t, faulty ? 0.06 + 0.02 * wobble : 0.002 * (1 + wobble)]);
    series[1]!.points.push([t, faulty ? 40 + 5 * wobble : 12 + 3 * wobble]);
    series[2]!.points.push([t, 0.2 + 0.05 * wobble + (t >= deploy && t < deploy + 1500 ? 0.3 : 0)]);
    series[3]!.points.push([t, 0.41 + 0.01 * wobble]);
  }
  return {
    title: 'web: v2 → v1, rolled back and verified',
    from,
    to,
    series,
    events: [
      { at: deploy, kind: 'release', label: 'release v2' },
      { at: deploy + 3780, kind: 'breach', label: 'error_rate: 5.9% (2/34) > 5%' },
      { at: deploy + 4880, kind: 'rollback', label: 'rolled back to v1' },
      { at: deploy + 5180, kind: 'verified', label: 'verified on v1 (3/3)' },
    ],
  };
}

describe('renderTimelineSvg: the SVG', () => {
  it('draws one chart per series, a marker per event, and nothing external', () => {
    const svg = renderTimelineSvg(demoRollback());
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" width="900"')).toBe(true);
    for (const name of ['error ratio', 'p95 latency', 'cpu', 'memory']) expect(svg).toContain(`data-series="${name}"`);
    for (const kind of ['release', 'breach', 'rollback', 'verified']) expect(svg).toContain(`data-event="${kind}"`);
    expect(svg).toContain('error_rate: 5.9% (2/34) &gt; 5%');
    expect(svg).toMatch(/<polyline [^>]*points="[\d., ]+"/);
    expect(svg).not.toMatch(/<script|@import|href=|url\(/i);
  });

  it('escapes < & > and quotes in every text', () => {
    const svg = renderTimelineSvg({
      title: 'a <b> & "c"',
      from: 0,
      to: 10_000,
      series: [{ name: 'p95 <latency> & co', unit: 'ms & <x>', points: [[1000, 1], [2000, 2]] }],
      events: [{ at: 5000, kind: 'breach', label: 'p95 <script>alert(1)</script> & "x" > 3×' }],
    });
    expect(svg).not.toContain('<script>');
    expect(svg).not.toContain('<b>');
    expect(svg).toContain('a &lt;b&gt; &amp; &quot;c&quot;');
    expect(svg).toContain('p95 &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot; &gt; 3×');
    expect(svg).toContain('p95 &lt;latency&gt; &amp; co');
    expect(escapeXml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&#39;');
    // Every & in the document starts an entity.
    expect(svg.match(/&(?!(amp|lt|gt|quot|#39);)/g)).toBeNull();
  });

  it('says "no data" for an empty series and survives no series and no events', () => {
    const svg = renderTimelineSvg({
      title: 'empty',
      from: 1000,
      to: 61_000,
      series: [
        { name: 'error ratio', unit: 'ratio', points: [] },
        { name: 'cpu', unit: 'ratio', points: [[1000, Number.NaN]] },
      ],
      events: [],
    });
    expect(svg.match(/>no data</g)).toHaveLength(2);
    expect(renderTimelineSvg({ title: 'nothing', from: 0, to: 0, series: [], events: [] })).toContain('no data');
  });

  it('svgDataUri embeds the SVG as base64', () => {
    const svg = renderTimelineSvg(demoRollback());
    const uri = svgDataUri(svg);
    expect(uri.startsWith('data:image/svg+xml;base64,')).toBe(true);
    expect(Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64').toString('utf8')).toBe(svg);
  });
});

describe('renderTimelineSvg: rendered to PNG by rsvg-convert', () => {
  let rsvg: string;
  let dir: string;

  beforeAll(async () => {
    rsvg = (await ensureDebianPackage('rsvg-convert', 'librsvg2-bin')).path;
    dir = await mkdtemp(join(tmpdir(), 'rg-svg-'));
  }, 600_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('renders to a PNG with rsvg-convert: 900 px wide, not blank, events drawn where they belong', async () => {
    const input = demoRollback();
    const svg = renderTimelineSvg(input);
    const svgFile = join(dir, 'timeline.svg');
    const pngFile = join(dir, 'timeline.png');
    await writeFile(svgFile, svg);
    await run(rsvg, ['-f', 'png', '-o', pngFile, svgFile]);
    const data = await readFile(pngFile);
    const png = decodePng(data);
    const declaredHeight = Number(/height="(\d+)"/.exec(svg)?.[1]);
    expect(png.width).toBe(900);
    expect(png.height).toBe(declaredHeight);
    expect(png.height).toBeGreaterThan(4 * 110);
    expect(data.length).toBeGreaterThan(10_000);

    // Not blank: a white background with many other colours on it.
    const colours = new Set<number>();
    let nonWhite = 0;
    for (let i = 0; i < png.pixels.length; i += 4) {
      colours.add(png.pixels.readUInt32BE(i));
      if (png.pixels[i]! < 240 || png.pixels[i + 1]! < 240 || png.pixels[i + 2]! < 240) nonWhite++;
    }
    expect(colours.size).toBeGreaterThan(50);
    expect(nonWhite / (png.width * png.height)).toBeGreaterThan(0.03);
    expect(png.pixels.readUInt32BE(0)).toBe(0xffffffff);

    // Each event's vertical line is really painted in its colour, down through the charts.
    for (const kind of ['release', 'breach', 'rollback', 'verified'] as const) {
      const x = Number(new RegExp(`data-event="${kind}" data-x="([\\d.]+)"`).exec(svg)?.[1]);
      expect(Number.isFinite(x), kind).toBe(true);
      const painted = countColor(png, x, 100, png.height - 120, EVENT_COLORS[kind]);
      expect(painted, `${kind} marker at x=${x}`).toBeGreaterThan(100);
    }
    // And the release marker sits where the deploy happened: 20 s into a 35 s range.
    const releaseX = Number(/data-event="release" data-x="([\d.]+)"/.exec(svg)?.[1]);
    expect(releaseX).toBeCloseTo(76 + (20 / 35) * (900 - 76 - 24), 0);
  });
});
