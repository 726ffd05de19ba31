/**
 * Access-log probe: follows a web server's access log (nginx, Apache, or JSON lines such as
 * pino-http's) and turns the requests appended since the previous sample into the same traffic
 * values as the scrape probe, so every traffic rule works on it. It sees every worker of every app
 * behind the server, in any language, with no instrumentation.
 *
 * Values, from the lines appended since the previous sample:
 * - `requests`: request lines (those the `where` filter keeps);
 * - `rps`: requests / seconds since the previous sample;
 * - `error_ratio`: requests whose status matches `error_status`, over all requests; absent when
 *   there were none (no data, never 0);
 * - `p95_ms`: the 95th percentile of the requests' latencies, interpolated inside fixed buckets
 *   about 10 % wide as Prometheus' histogram_quantile does (the same method as the scrape probe);
 *   absent when no request had a latency;
 * - `lines_unparsed`, `lines_skipped` (longer than max_line_bytes, or binary), and `bytes_behind`
 *   when max_read_bytes left some of the log for the next sample.
 * `traffic` carries the interval's counts (requests, errors, cumulative latency buckets in ms at
 * the bounds of LATENCY_BOUNDS_MS) for the sequential rules.
 *
 * Choices:
 * - First sample: takes the end of the log (history is never read); no values, `ok: true`.
 * - Missing or unreadable file: `ok: false, unavailable: true` (no data), never a failure of the
 *   release. A file that appears later is read from its start.
 * - Unparseable lines are counted and the first one quoted (cut short) in `error`; the sample
 *   stays ok. When no line at all matched the format, the probe observes nothing it can judge:
 *   `unavailable`, with the example, so a wrong log_format shows at once.
 * - Samples are serialized; lines read by a sample that was aborted are kept for the next one, so
 *   an abort never loses requests.
 */
import type { AccessLogProbeConfig } from '../config/schema.js';
import type { Sample, TrafficCounts } from '../core/types.js';
import { errorMessage, ProbeError } from '../errors.js';
import { lineReader, resolveLineSettings, TrafficTally, type LineOutcome, type LineSettings } from './access-log-parse.js';
import { LogTailer } from './log-tailer.js';
import { histogramQuantile } from './histogram-quantile.js';
import type { ProbeFactory } from './types.js';

/** A renamed log is still read this long after it last grew: nginx writes to it until it reopens. */
export const ROTATE_WAIT_MS = 10_000;
const EXAMPLE_CHARS = 120;

/** What was read since the last sample that was handed out. */
class Interval {
  readonly tally: TrafficTally;
  lines = 0;
  unparsed = 0;
  binary = 0;
  long = 0;
  other = 0;
  excluded = 0;
  example: string | undefined;
  events: string[] = [];

  constructor(errorStatus: RegExp) {
    this.tally = new TrafficTally(errorStatus);
  }

  /** One line of the log: a request counted, or why it is not. */
  count(line: Buffer, readLine: (text: string) => LineOutcome): void {
    this.lines++;
    const text = decodeText(line);
    if (text === null) {
      this.binary++;
      return;
    }
    const outcome = readLine(text.endsWith('\r') ? text.slice(0, -1) : text);
    if (outcome === 'unparsed') {
      this.unparsed++;
      this.example ??= text.length > EXAMPLE_CHARS ? `${text.slice(0, EXAMPLE_CHARS)}…` : text;
    } else if (outcome === 'other') this.other++;
    else if (outcome === 'excluded') this.excluded++;
    else this.tally.add(outcome);
  }
}

export const accessLogProbe: ProbeFactory<AccessLogProbeConfig> = (config, deps) => {
  const settings = lineSettingsOf(config);
  const readLine = lineReader(settings);
  const tailer = new LogTailer(config.path, {
    maxLineBytes: config.max_line_bytes,
    maxReadBytes: config.max_read_bytes,
    rotateWaitMs: ROTATE_WAIT_MS,
    now: () => deps.now(),
  });
  let interval = new Interval(settings.errorStatus);
  /** When the interval being counted began; undefined before the first sample. */
  let since: number | undefined;
  let queue: Promise<unknown> = Promise.resolve();

  const onLine = (line: Buffer) => interval.count(line, readLine);

  async function take(startedAt: number, signal: AbortSignal): Promise<Sample> {
    const sample: Sample = { probe: config.name, startedAt, at: deps.now(), ok: true, values: {} };
    if (signal.aborted) return { ...sample, ok: false, error: 'aborted' };
    let read;
    try {
      read = await tailer.read(onLine);
    } catch (error) {
      return { ...sample, at: deps.now(), ok: false, unavailable: true, error: `cannot read ${config.path}: ${readError(error)}` };
    }
    const at = deps.now();
    sample.at = at;
    interval.long += read.longLines;
    interval.lines += read.longLines;
    interval.events.push(...read.events);
    if (read.missing) {
      // A log that appears later is read from its start: its lines were all written after now.
      since ??= at;
      return { ...sample, ok: false, unavailable: true, error: `access log ${config.path} not found (no data); check the path and that the server writes it` };
    }
    if (since === undefined) {
      since = at;
      return { ...sample, error: `following ${config.path} from its end; values from the next sample` };
    }
    if (signal.aborted) return { ...sample, ok: false, error: 'aborted' };

    const counted = interval;
    interval = new Interval(settings.errorStatus);
    const seconds = (at - since) / 1000;
    since = at;
    addIntervalValues(sample, counted, read.behindBytes, seconds, config, settings);
    return sample;
  }

  return {
    name: config.name,
    type: 'access_log',
    sample(startedAt, signal) {
      // One read at a time: the tailer's position and the interval are shared.
      const next = queue.then(() => take(startedAt, signal));
      queue = next.catch(() => undefined);
      return next;
    },
    async close() {
      await queue;
      await tailer.close();
    },
  };
};

/**
 * The interval's values, traffic counts and notes into `sample`. Lines but not one request the
 * format could read: the probe sees nothing it can judge (unavailable, no traffic).
 */
function addIntervalValues(
  sample: Sample,
  counted: Interval,
  behindBytes: number,
  seconds: number,
  config: AccessLogProbeConfig,
  settings: LineSettings,
): void {
  const values = sample.values;
  const { tally } = counted;
  values.requests = tally.requests;
  if (seconds > 0) values.rps = tally.requests / seconds;
  if (tally.requests > 0) values.error_ratio = tally.errors / tally.requests;
  const latency = tally.latency();
  if (latency !== undefined) {
    const p95 = histogramQuantile(0.95, latency);
    if (p95 !== null) values.p95_ms = p95;
  }
  values.lines_unparsed = counted.unparsed;
  values.lines_skipped = counted.long + counted.binary;
  if (behindBytes > 0) values.bytes_behind = behindBytes;
  const traffic: TrafficCounts = { requests: tally.requests, errors: tally.errors };
  if (latency !== undefined) traffic.latency = latency;
  sample.traffic = traffic;

  const notes: string[] = [...counted.events];
  if (counted.unparsed > 0) {
    notes.push(`${counted.unparsed} of ${counted.lines} lines unparseable as ${formatName(settings)}, e.g. ${JSON.stringify(counted.example)}`);
  }
  if (counted.long > 0) notes.push(`${counted.long} lines longer than max_line_bytes (${config.max_line_bytes}) skipped`);
  if (counted.binary > 0) notes.push(`${counted.binary} binary lines skipped`);
  if (tally.requests === 0 && counted.other > 0) notes.push(`${counted.other} JSON lines without ${settings.statusField} (not requests)`);
  if (tally.requests === 0 && counted.excluded > 0) notes.push(`${counted.excluded} requests did not match where`);
  if (behindBytes > 0) notes.push(`behind: ${behindBytes} bytes left for the next sample (max_read_bytes ${config.max_read_bytes})`);
  if (notes.length > 0) sample.error = notes.join('; ');
  // Lines but not one request the format could read: the probe sees nothing it can judge.
  if (counted.unparsed > 0 && counted.unparsed + counted.long + counted.binary === counted.lines) {
    sample.ok = false;
    sample.unavailable = true;
    delete sample.traffic;
  }
}

/** The config's line settings; a config that passed the schema always has them. */
function lineSettingsOf(config: AccessLogProbeConfig): LineSettings {
  const settings = resolveLineSettings(config);
  if (Array.isArray(settings)) {
    const problem = settings[0]!;
    throw new ProbeError(`probe "${config.name}": ${problem.key}: ${problem.message}`, 'probe_config', 'check it with release-guard config validate');
  }
  return settings;
}

function formatName(settings: LineSettings): string {
  return settings.format === 'json' ? 'JSON objects' : `log_format ${JSON.stringify(settings.logFormat)}`;
}

/**
 * A line as text, or null when it is binary: control bytes other than tab (nginx and Apache
 * escape them, so a real access-log line never has one) or bytes that are not UTF-8.
 */
function decodeText(line: Buffer): string | null {
  for (const byte of line) if ((byte < 0x20 && byte !== 0x09 && byte !== 0x0d) || byte === 0x7f) return null;
  try {
    return UTF8.decode(line);
  } catch {
    return null;
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function readError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied (the guard needs read access to the log, e.g. the adm group on Debian)';
  if (code === 'EISDIR') return 'it is a directory; path must name the log file';
  return errorMessage(error);
}
