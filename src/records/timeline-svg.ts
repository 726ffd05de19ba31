/**
 * The picture in a rollback record: a self-contained SVG timeline of the release window, one small
 * chart per series (error ratio, p95 latency, CPU, memory, …) sharing one time axis, with a
 * vertical marker for each event (release, breach, rollback, verified, failed).
 *
 * Pure string building: no DOM, no browser, no fonts or scripts fetched from anywhere (generic
 * font families only), every text escaped. 900 px wide; renders in browsers, GitHub and
 * rsvg-convert alike.
 *
 * Embedding, recommended: write the SVG next to the Markdown record (`<id>.svg` beside `<id>.md`)
 * and link it with a relative image, `![timeline](<id>.svg)`: GitHub, GitLab and most Markdown
 * viewers show it, and the .md stays readable as text. `svgDataUri()` is there for a single
 * self-contained file (an HTML report, a chat message), but GitHub strips `data:` image URIs in
 * Markdown and a 30 KB base64 line makes the .md hard to read.
 */

export type TimelineEventKind = 'release' | 'breach' | 'rollback' | 'verified' | 'failed';

export interface TimelineSeries {
  /** 'error ratio' | 'p95 latency' | 'cpu' | 'memory' | anything else. */
  name: string;
  /** `ratio` (0..1, shown as %), `%`, `ms`, `s`, `bytes`, or any label shown after the value. */
  unit: string;
  /** [epoch ms, value] pairs, in any order; non-finite values are gaps. */
  points: [t: number, v: number][];
}

export interface TimelineEvent {
  at: number;
  label: string;
  kind: TimelineEventKind;
}

export interface TimelineInput {
  series: TimelineSeries[];
  events: TimelineEvent[];
  /** The time range shown, epoch ms. */
  from: number;
  to: number;
  title: string;
}

/** Layout constants (px). */
const WIDTH = 900;
const LEFT = 76;
const RIGHT = 24;
const PLOT_WIDTH = WIDTH - LEFT - RIGHT;
const CHART_HEIGHT = 110;
const CHART_TITLE = 22;
const CHART_GAP = 16;
const AXIS_HEIGHT = 22;
const LABEL_ROW = 16;
const FONT = "font-family=\"'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif\"";

export const EVENT_COLORS: Record<TimelineEventKind, string> = {
  release: '#1f6feb',
  breach: '#d97706',
  rollback: '#dc2626',
  verified: '#16a34a',
  failed: '#7f1d1d',
};
const LINE_COLOR = '#334155';
const GRID_COLOR = '#e2e8f0';
const TEXT_COLOR = '#0f172a';
const MUTED = '#64748b';

/** Escapes text for SVG/XML text nodes and attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
    // Control characters are not allowed in XML 1.0.
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

/** `data:image/svg+xml;base64,…`, for embedding the SVG where a separate file is not possible. */
export function svgDataUri(svg: string): string {
  return `data:image/svg+xml;base64,${Buffer.from(svg, 'utf8').toString('base64')}`;
}

const num = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(1));

/** A value with its unit, compact: `5.9%`, `812 ms`, `1.5 GB`, `0.42`. */
export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '—';
  const compact = (v: number) => {
    const abs = Math.abs(v);
    if (abs === 0) return '0';
    if (abs >= 100) return String(Math.round(v));
    if (abs >= 10) return String(+v.toFixed(1));
    if (abs >= 1) return String(+v.toFixed(2));
    return String(+v.toPrecision(2));
  };
  switch (unit) {
    case 'ratio':
      return `${compact(value * 100)}%`;
    case '%':
      return `${compact(value)}%`;
    case 'bytes': {
      const units = ['B', 'KB', 'MB', 'GB', 'TB'];
      let v = value;
      let i = 0;
      while (Math.abs(v) >= 1024 && i < units.length - 1) {
        v /= 1024;
        i += 1;
      }
      return `${compact(v)} ${units[i]}`;
    }
    case '':
      return compact(value);
    default:
      return `${compact(value)} ${unit}`;
  }
}

/** A "nice" upper bound and step for an axis from 0 (or min) to max: 1, 2, 2.5, 5 × 10^n. */
function niceScale(min: number, max: number, ticks = 4): { lo: number; hi: number; step: number } {
  if (!(max > min)) {
    const base = max === 0 ? 1 : Math.abs(max);
    return niceScale(Math.min(min, 0), max + base, ticks);
  }
  const raw = (max - min) / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude);
  return { lo: Math.floor(min / step) * step, hi: Math.ceil(max / step) * step, step };
}

/** Time ticks every 1/2/5/10/15/30 s, 1/2/5/10/15/30 min or hours, about 6 across. */
function timeTicks(from: number, to: number): { at: number; label: string }[] {
  const span = Math.max(1, to - from);
  const steps = [100, 250, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000];
  const step = steps.find((s) => span / s <= 7) ?? 43_200_000;
  const ticks: { at: number; label: string }[] = [];
  const showMs = step < 1000;
  const showSeconds = step < 60_000;
  for (let at = Math.ceil(from / step) * step; at <= to; at += step) {
    const iso = new Date(at).toISOString();
    ticks.push({ at, label: showMs ? iso.slice(11, 23) : showSeconds ? iso.slice(11, 19) : iso.slice(11, 16) });
  }
  return ticks;
}

/** Relative offset from the start, as in the records: `+3.67s`, `+2m05s`. */
function offset(ms: number): string {
  const sign = ms < 0 ? '-' : '+';
  const abs = Math.abs(ms);
  if (abs < 1000) return `${sign}${Math.round(abs)}ms`;
  if (abs < 60_000) return `${sign}${+(abs / 1000).toFixed(2)}s`;
  const minutes = Math.floor(abs / 60_000);
  const seconds = Math.floor((abs % 60_000) / 1000);
  return `${sign}${minutes}m${String(seconds).padStart(2, '0')}s`;
}

/** Rough width of a label in the 11 px font: enough to keep labels from overlapping. */
const textWidth = (text: string, size = 11) => [...text].length * size * 0.58;

/** Where an event's label goes: the row above the charts where it overlaps no other label. */
interface PlacedLabel {
  event: TimelineEvent;
  text: string;
  lineX: number;
  anchorEnd: boolean;
  row: number;
}

export function renderTimelineSvg(input: TimelineInput): string {
  const from = Number.isFinite(input.from) ? input.from : 0;
  const to = Number.isFinite(input.to) && input.to > from ? input.to : from + 1000;
  const x = (t: number) => LEFT + ((t - from) / (to - from)) * PLOT_WIDTH;
  const events = [...input.events].filter((e) => Number.isFinite(e.at)).sort((a, b) => a.at - b.at);
  const { placed, rows } = placeLabels(events.filter((e) => e.at >= from && e.at <= to), x);

  const titleHeight = 48;
  const labelsTop = titleHeight;
  const labelsHeight = Math.max(1, rows) * LABEL_ROW + 6;
  const chartsTop = labelsTop + labelsHeight;
  const series = input.series.length > 0 ? input.series : [{ name: 'no series', unit: '', points: [] }];
  const chartsHeight = series.length * (CHART_TITLE + CHART_HEIGHT + CHART_GAP);
  const axisTop = chartsTop + chartsHeight - CHART_GAP;
  const legendTop = axisTop + AXIS_HEIGHT + 18;
  const legendHeight = events.length * 16 + (events.length > 0 ? 22 : 0);
  const height = Math.ceil(legendTop + legendHeight + 10);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" ${FONT} font-size="11">`,
    `<title>${escapeXml(input.title)}</title>`,
    `<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="22" font-size="15" font-weight="bold" fill="${TEXT_COLOR}">${escapeXml(input.title)}</text>`,
    `<text x="${LEFT}" y="38" fill="${MUTED}">${escapeXml(`${new Date(from).toISOString()} → ${new Date(to).toISOString()} (UTC, ${offset(to - from).slice(1)})`)}</text>`,
  );

  // Charts.
  series.forEach((s, index) => chartSvg(out, s, chartsTop + index * (CHART_TITLE + CHART_HEIGHT + CHART_GAP) + CHART_TITLE, from, to, x));
  // Shared time axis.
  out.push(`<line x1="${LEFT}" y1="${axisTop}" x2="${LEFT + PLOT_WIDTH}" y2="${axisTop}" stroke="${MUTED}"/>`);
  for (const tick of timeTicks(from, to)) {
    const tx = num(x(tick.at));
    // Labels at the very ends are aligned inwards, so they are not cut off.
    const half = textWidth(tick.label) / 2;
    const anchor = x(tick.at) + half > WIDTH - 2 ? 'end' : x(tick.at) - half < 2 ? 'start' : 'middle';
    out.push(
      `<line x1="${tx}" y1="${axisTop}" x2="${tx}" y2="${axisTop + 4}" stroke="${MUTED}"/>`,
      `<text x="${tx}" y="${axisTop + 16}" text-anchor="${anchor}" fill="${MUTED}">${escapeXml(tick.label)}</text>`,
    );
  }

  eventMarkersSvg(out, placed, labelsTop, axisTop);
  legendSvg(out, events, legendTop, from, to);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Event labels above the charts, in as many rows as needed so none overlaps another. */
function placeLabels(visible: TimelineEvent[], x: (t: number) => number): { placed: PlacedLabel[]; rows: number } {
  const rowEnds: number[] = [];
  const placed = visible.map((event) => {
    const text = `${event.label}`;
    const width = textWidth(text);
    const lineX = x(event.at);
    // Right-align labels that would run off the right edge.
    const anchorEnd = lineX + width > WIDTH - 4;
    const start = anchorEnd ? lineX - width : lineX;
    let row = rowEnds.findIndex((end) => end + 8 <= start);
    if (row === -1) {
      row = rowEnds.length;
      rowEnds.push(0);
    }
    rowEnds[row] = start + width;
    return { event, text, lineX, anchorEnd, row };
  });
  return { placed, rows: rowEnds.length };
}

/** One series' chart, its top edge at `top`: title, frame, and the plot or "no data". */
function chartSvg(out: string[], s: TimelineSeries, top: number, from: number, to: number, x: (t: number) => number): void {
  const points = s.points.filter(([t, v]) => Number.isFinite(t) && t >= from && t <= to && Number.isFinite(v)).sort((a, b) => a[0] - b[0]);
  const unitLabel = s.unit === 'ratio' ? '%' : s.unit;
  out.push(`<g data-series="${escapeXml(s.name)}">`);
  out.push(
    `<text x="${LEFT}" y="${top - 7}" font-size="12" font-weight="bold" fill="${TEXT_COLOR}">${escapeXml(s.name)}${unitLabel ? ` <tspan font-weight="normal" fill="${MUTED}">(${escapeXml(unitLabel)})</tspan>` : ''}</text>`,
    `<rect x="${LEFT}" y="${top}" width="${PLOT_WIDTH}" height="${CHART_HEIGHT}" fill="#f8fafc" stroke="${GRID_COLOR}"/>`,
  );
  if (points.length === 0) {
    out.push(`<text x="${LEFT + PLOT_WIDTH / 2}" y="${top + CHART_HEIGHT / 2 + 4}" text-anchor="middle" font-size="13" fill="${MUTED}">no data</text>`);
  } else {
    chartLines(out, s, points, top, x);
  }
  out.push('</g>');
}

/** A chart's grid, value labels, line (broken across long gaps) and max/last summary. */
function chartLines(out: string[], s: TimelineSeries, points: [number, number][], top: number, x: (t: number) => number): void {
  const bottom = top + CHART_HEIGHT;
  const values = points.map(([, v]) => v);
  // Bytes get steps in whole KB/MB/GB, not in powers of ten of bytes.
  const peakAbs = Math.max(...values.map(Math.abs));
  const scale = s.unit === 'bytes' && peakAbs >= 1024 ? 1024 ** Math.floor(Math.log(peakAbs) / Math.log(1024)) : 1;
  const nice = niceScale(Math.min(0, ...values) / scale, Math.max(...values) / scale);
  const [lo, hi, step] = [nice.lo * scale, nice.hi * scale, nice.step * scale];
  const y = (v: number) => bottom - ((v - lo) / (hi - lo)) * CHART_HEIGHT;
  for (let v = lo; v <= hi + step / 2; v += step) {
    const gy = y(v);
    out.push(
      `<line x1="${LEFT}" y1="${num(gy)}" x2="${LEFT + PLOT_WIDTH}" y2="${num(gy)}" stroke="${GRID_COLOR}"/>`,
      `<text x="${LEFT - 6}" y="${num(gy + 4)}" text-anchor="end" fill="${MUTED}">${escapeXml(formatValue(v, s.unit))}</text>`,
    );
  }
  // Break the line across gaps much longer than the usual sampling interval.
  const intervals = points.slice(1).map((p, i) => p[0] - points[i]![0]).sort((a, b) => a - b);
  const usual = intervals[Math.floor(intervals.length / 2)] ?? 0;
  const segments: [number, number][][] = [[]];
  points.forEach((p, i) => {
    if (i > 0 && usual > 0 && p[0] - points[i - 1]![0] > usual * 5) segments.push([]);
    segments.at(-1)!.push(p);
  });
  for (const segment of segments) {
    if (segment.length === 1) {
      const [t, v] = segment[0]!;
      out.push(`<circle cx="${num(x(t))}" cy="${num(y(v))}" r="2.5" fill="${LINE_COLOR}"/>`);
    } else {
      out.push(`<polyline fill="none" stroke="${LINE_COLOR}" stroke-width="1.5" stroke-linejoin="round" points="${segment.map(([t, v]) => `${num(x(t))},${num(y(v))}`).join(' ')}"/>`);
    }
  }
  const last = points.at(-1)!;
  const peak = points.reduce((a, b) => (b[1] > a[1] ? b : a));
  out.push(
    `<text x="${LEFT + PLOT_WIDTH}" y="${top - 7}" text-anchor="end" fill="${MUTED}">${escapeXml(`max ${formatValue(peak[1], s.unit)} · last ${formatValue(last[1], s.unit)}`)}</text>`,
  );
}

/** Event markers: a line through every chart, the label above them. */
function eventMarkersSvg(out: string[], placed: PlacedLabel[], labelsTop: number, axisTop: number): void {
  for (const { event, text, lineX, anchorEnd, row } of placed) {
    const color = EVENT_COLORS[event.kind] ?? LINE_COLOR;
    const labelY = labelsTop + (row + 1) * LABEL_ROW - 4;
    const lx = num(lineX);
    out.push(
      `<g data-event="${escapeXml(event.kind)}" data-x="${lx}">`,
      `<line x1="${lx}" y1="${labelY + 3}" x2="${lx}" y2="${axisTop}" stroke="${color}" stroke-width="2"${event.kind === 'breach' ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${num(anchorEnd ? lineX - 3 : lineX + 3)}" y="${labelY}"${anchorEnd ? ' text-anchor="end"' : ''} font-weight="bold" fill="${color}">${escapeXml(text)}</text>`,
      '</g>',
    );
  }
}

/** Legend: every event with its time, also those outside the range. */
function legendSvg(out: string[], events: TimelineEvent[], legendTop: number, from: number, to: number): void {
  if (events.length > 0) {
    out.push(`<text x="${LEFT}" y="${legendTop}" font-size="12" font-weight="bold" fill="${TEXT_COLOR}">Events</text>`);
    // Times relative to the release when there is one (as in the record's timeline), else to the start.
    const origin = events.find((e) => e.kind === 'release')?.at ?? from;
    const originName = events.some((e) => e.kind === 'release') ? 'release' : 'start';
    events.forEach((event, i) => {
      const ly = legendTop + 16 * (i + 1);
      const color = EVENT_COLORS[event.kind] ?? LINE_COLOR;
      const when = `${new Date(event.at).toISOString().slice(11, 23)}Z (${event.at === origin ? originName : `${offset(event.at - origin)} after ${originName}`})`;
      out.push(
        `<rect x="${LEFT}" y="${ly - 9}" width="10" height="10" fill="${color}"/>`,
        `<text x="${LEFT + 16}" y="${ly}" fill="${TEXT_COLOR}"><tspan font-weight="bold" fill="${color}">${escapeXml(event.kind)}</tspan>  ${escapeXml(when)}  ${escapeXml(event.label)}${event.at < from || event.at > to ? ' (outside the chart)' : ''}</text>`,
      );
    });
  }
}
