/**
 * Reads only the metric families a probe needs out of a Prometheus text exposition, chunk by chunk
 * as the body arrives, in bounded memory.
 *
 * Why not parse the whole body: an app whose release explodes its label cardinality (500,000
 * series of some other metric, ~8 MB) made the whole-body parser keep every sample of every metric
 * — hundreds of MB for a probe that reads three families — and block the event loop while it
 * parsed. A release like that is exactly the one to roll back, so the guard must stay alive.
 *
 * How it stays cheap and bounded:
 * - Lines are found in the raw bytes (`Buffer.indexOf`); a line of another metric is recognised by
 *   its first bytes and counted, never decoded or parsed, and nothing of it is kept.
 * - Only lines of the wanted sample names are decoded and parsed (parseSampleLine), and handed to
 *   `onSample` at once: the reader keeps no samples.
 * - A line split across two chunks waits in one fixed buffer of `maxLineBytes`; a longer line is
 *   skipped to its end without being kept (a wanted one is a cap failure).
 * - Each wanted name may have at most `maxSeries` series: past that nothing more of it is parsed
 *   (only counted, so the error can say how many there were), and the scrape fails.
 * - Only `# TYPE` lines of the `typed` families are recorded.
 * No prom-client or other library does this: they parse a whole exposition string into objects.
 * Pure: no I/O, never throws.
 */
import { parseSampleLine, type MetricSample } from './prometheus-text.js';

export interface FamilyReaderOptions {
  /** Sample names to read exactly as they appear on sample lines (e.g. `x_total`, `x_bucket`). */
  names: readonly string[];
  /** Families whose `# TYPE` declaration is recorded (e.g. to tell a declared counter with no series yet). */
  typed: readonly string[];
  /** Most series of one wanted name in one body; more is a cap failure. */
  maxSeries: number;
  /** Longest line kept while it waits for the rest of it; longer lines are skipped. */
  maxLineBytes: number;
}

/** What one body showed, besides the samples handed over. */
export interface FamilyReadResult {
  /** `# TYPE` of the typed families found. */
  types: Record<string, string>;
  /** Sample lines of the wanted names handed to onSample. */
  read: number;
  /** Lines that look like samples of other metrics (counted by their name only, never parsed). */
  other: number;
  /** Lines that are neither a comment nor plausibly a sample, and wanted lines that did not parse. */
  skipped: number;
  /** The first few of them, cut short, for error messages. */
  skippedExamples: string[];
  /** Series seen per wanted name, including those over the cap. */
  series: Record<string, number>;
  /**
   * The first cap exceeded, in words naming the cap and the value seen. When set, the samples
   * handed over are incomplete and must not be used.
   */
  overCap?: string;
}

const NEWLINE = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const HASH = 0x23;
const BRACE = 0x7b;
/** `# TYPE name type` is short; longer comments (HELP texts) are not even decoded. */
const MAX_TYPE_LINE = 512;
const MAX_EXAMPLES = 3;
const EXAMPLE_CHARS = 80;

/** [a-zA-Z_:] */
const isNameStart = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || c === 0x3a;

export class FamilyReader {
  private readonly names: { text: string; bytes: Buffer }[];
  private readonly typed: ReadonlySet<string>;
  private readonly types: Record<string, string> = Object.create(null) as Record<string, string>;
  private readonly series: Record<string, number> = Object.create(null) as Record<string, number>;
  private read = 0;
  private other = 0;
  private skipped = 0;
  private readonly skippedExamples: string[] = [];
  /** The first cap exceeded: which name, and whether by its series or by one line. */
  private overCap: { name: string; by: 'series' | 'line' } | undefined;
  /** The start of a line whose end has not arrived yet. */
  private carry: Buffer | undefined;
  private carryLength = 0;
  /** Inside an over-long line: everything up to the next newline is dropped. */
  private skipping = false;

  constructor(
    private readonly options: FamilyReaderOptions,
    private readonly onSample: (sample: MetricSample) => void,
  ) {
    this.names = [...new Set(options.names)].map((text) => ({ text, bytes: Buffer.from(text, 'utf8') }));
    this.typed = new Set(options.typed);
    for (const { text } of this.names) this.series[text] = 0;
  }

  /** Takes the next chunk of the body. Keeps nothing of it but an unfinished line (≤ maxLineBytes). */
  write(chunk: Buffer): void {
    let pos = 0;
    if (this.skipping) {
      const nl = chunk.indexOf(NEWLINE);
      if (nl === -1) return;
      this.skipping = false;
      pos = nl + 1;
    } else if (this.carryLength > 0) {
      pos = this.continueCarry(chunk);
      if (pos === -1) return;
    }
    const max = this.options.maxLineBytes;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, pos);
      if (nl === -1) break;
      if (nl - pos > max) this.tooLong(chunk, pos, pos + max);
      else this.line(chunk, pos, nl);
      pos = nl + 1;
    }
    const rest = chunk.length - pos;
    if (rest === 0) return;
    if (rest > max) {
      this.tooLong(chunk, pos, pos + max);
      this.skipping = true;
      return;
    }
    this.carry ??= Buffer.allocUnsafe(max);
    chunk.copy(this.carry, 0, pos);
    this.carryLength = rest;
  }

  /** The body ended: its last line needs no newline. */
  end(): FamilyReadResult {
    if (this.carryLength > 0 && !this.skipping) this.line(this.carry!, 0, this.carryLength);
    this.carryLength = 0;
    this.carry = undefined;
    const result: FamilyReadResult = {
      types: this.types,
      read: this.read,
      other: this.other,
      skipped: this.skipped,
      skippedExamples: this.skippedExamples,
      series: this.series,
    };
    const over = this.overCap;
    if (over?.by === 'series') {
      result.overCap = `metric ${over.name} has ${this.series[over.name]} series in one scrape, over max_series ${this.options.maxSeries}`;
    } else if (over?.by === 'line') {
      result.overCap = `a line of metric ${over.name} is longer than ${this.options.maxLineBytes} bytes, the longest line the probe reads`;
    }
    return result;
  }

  /** The rest of the carried line from the new chunk; the position after it, or -1 when the chunk is used up. */
  private continueCarry(chunk: Buffer): number {
    const carry = this.carry!;
    const max = this.options.maxLineBytes;
    const nl = chunk.indexOf(NEWLINE);
    const take = nl === -1 ? chunk.length : nl;
    if (this.carryLength + take > max) {
      // Its first bytes (all a classification needs) are in the carry already.
      chunk.copy(carry, this.carryLength, 0, max - this.carryLength);
      this.tooLong(carry, 0, max);
      this.carryLength = 0;
      if (nl === -1) {
        this.skipping = true;
        return -1;
      }
      return nl + 1;
    }
    chunk.copy(carry, this.carryLength, 0, take);
    this.carryLength += take;
    if (nl === -1) return -1;
    const length = this.carryLength;
    this.carryLength = 0;
    this.line(carry, 0, length);
    return nl + 1;
  }

  /** One complete line, `buf[start, end)` without its newline. */
  private line(buf: Buffer, start: number, end: number): void {
    if (end > start && buf[end - 1] === CR) end--;
    while (start < end && (buf[start] === SPACE || buf[start] === TAB)) start++;
    if (start === end) return;
    const first = buf[start]!;
    if (first === HASH) {
      if (end - start <= MAX_TYPE_LINE && this.typed.size > 0) this.comment(buf.toString('utf8', start, end));
      return;
    }
    const name = this.wanted(buf, start, end);
    if (name === undefined) {
      if (this.looksLikeSample(buf, start)) this.other++;
      else this.unreadable(buf, start, end);
      return;
    }
    const count = ++this.series[name]!;
    if (count > this.options.maxSeries) {
      this.overCap ??= { name, by: 'series' };
      return;
    }
    if (this.overCap !== undefined) return; // the body failed already: parse nothing more
    const text = buf.toString('utf8', start, end).trim();
    const sample = parseSampleLine(text);
    if (sample === null) {
      this.unreadable(buf, start, end);
      return;
    }
    this.read++;
    this.onSample(sample);
  }

  /** A line longer than maxLineBytes; `buf[start, end)` is its first maxLineBytes bytes. */
  private tooLong(buf: Buffer, start: number, end: number): void {
    while (start < end && (buf[start] === SPACE || buf[start] === TAB)) start++;
    if (start === end || buf[start] === HASH) return;
    const name = this.wanted(buf, start, end);
    if (name !== undefined) {
      this.series[name]!++;
      this.overCap ??= { name, by: 'line' };
    } else if (this.looksLikeSample(buf, start)) this.other++;
    else this.unreadable(buf, start, end);
  }

  /** Which wanted name the line is a sample of: the name, then `{`, a space or a tab. */
  private wanted(buf: Buffer, start: number, end: number): string | undefined {
    // An indexed loop, not for…of: this runs once per line of the body, and an iterator per line
    // is garbage the collector then spends more time on than the scan itself.
    const first = buf[start];
    for (let n = 0; n < this.names.length; n++) {
      const { text, bytes } = this.names[n]!;
      const after = start + bytes.length;
      if (first !== bytes[0] || after >= end) continue;
      const next = buf[after];
      if (next !== BRACE && next !== SPACE && next !== TAB) continue;
      if (buf.compare(bytes, 0, bytes.length, start, after) === 0) return text;
    }
    return undefined;
  }

  /**
   * A line that starts like a metric name: one byte looked at, so another metric's 500,000 series
   * cost next to nothing, and still enough to tell an exposition from text that is none at all
   * (HTML starts with `<`; of random bytes, four in five lines do not start with a name character).
   */
  private looksLikeSample(buf: Buffer, start: number): boolean {
    return isNameStart(buf[start]!);
  }

  private comment(text: string): void {
    const type = /^#\s+TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)\s*$/.exec(text.trim());
    if (type?.[1] !== undefined && type[2] !== undefined && this.typed.has(type[1])) this.types[type[1]] = type[2];
  }

  private unreadable(buf: Buffer, start: number, end: number): void {
    this.skipped++;
    if (this.skippedExamples.length >= MAX_EXAMPLES) return;
    // Decoding a few bytes more than shown is enough: the example is cut to EXAMPLE_CHARS anyway.
    const text = buf.toString('utf8', start, Math.min(end, start + EXAMPLE_CHARS * 4)).trim();
    this.skippedExamples.push(text.length > EXAMPLE_CHARS ? `${text.slice(0, EXAMPLE_CHARS - 3)}...` : text);
  }
}
