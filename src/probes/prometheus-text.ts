/**
 * A parser of the Prometheus text exposition format (version 0.0.4), enough to read an app's own
 * /metrics: `name{label="value",...} value [timestamp]` lines, `# HELP` and `# TYPE` comments,
 * escaped label values (`\\`, `\"`, `\n`) and the special values `+Inf`, `-Inf` and `NaN`.
 * Pure: no I/O. Robust: a line it cannot read is skipped and counted, never fatal, so one odd
 * line from a third-party exporter cannot blind the probe.
 */

/** One sample line. Histogram and summary series keep their suffixed names (`x_bucket`, `x_sum`). */
export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carried one. */
  timestamp?: number;
}

export interface ParsedMetrics {
  samples: MetricSample[];
  /** `# TYPE` declarations: metric family name -> counter | gauge | histogram | summary | untyped. */
  types: Record<string, string>;
  /** Non-empty, non-comment lines that could not be read. */
  skipped: number;
  /** The first few unreadable lines (cut short), for error messages. */
  skippedExamples: string[];
}

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^-?\d+$/;
const MAX_EXAMPLES = 3;

/** Parses a whole exposition. Never throws. */
export function parsePrometheusText(text: string): ParsedMetrics {
  const result: ParsedMetrics = { samples: [], types: Object.create(null) as Record<string, string>, skipped: 0, skippedExamples: [] };
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const trimmed = line.trim();
    if (trimmed === '') continue;
    if (trimmed.startsWith('#')) {
      const type = /^#\s+TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\S+)\s*$/.exec(trimmed);
      if (type?.[1] !== undefined && type[2] !== undefined) result.types[type[1]] = type[2];
      continue; // HELP and any other comment carry no samples
    }
    const sample = parseSampleLine(trimmed);
    if (sample) result.samples.push(sample);
    else {
      result.skipped++;
      if (result.skippedExamples.length < MAX_EXAMPLES) {
        result.skippedExamples.push(trimmed.length > 80 ? `${trimmed.slice(0, 77)}...` : trimmed);
      }
    }
  }
  return result;
}

/** Parses one sample line (already trimmed); null when it is not a valid sample. */
export function parseSampleLine(line: string): MetricSample | null {
  let i = 0;
  if (!NAME_START.test(line[0] ?? '')) return null;
  while (i < line.length && NAME_CHAR.test(line[i] as string)) i++;
  const name = line.slice(0, i);
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;

  if (line[i] === '{') {
    i++;
    for (;;) {
      i = skipSpaces(line, i);
      if (line[i] === '}') {
        i++;
        break;
      }
      const nameStart = i;
      while (i < line.length && NAME_CHAR.test(line[i] as string)) i++;
      const labelName = line.slice(nameStart, i);
      if (!LABEL_NAME.test(labelName) || Object.hasOwn(labels, labelName)) return null;
      i = skipSpaces(line, i);
      if (line[i] !== '=') return null;
      i = skipSpaces(line, i + 1);
      if (line[i] !== '"') return null;
      i++;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return null; // unterminated label value
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const next = line[i + 1];
          if (next === undefined) return null;
          // Only three escapes are defined; anything else is kept as written.
          value += next === 'n' ? '\n' : next === '\\' || next === '"' ? next : `\\${next}`;
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      labels[labelName] = value;
      i = skipSpaces(line, i);
      if (line[i] === ',') i++;
      else if (line[i] !== '}') return null;
    }
  }

  // After the name (and labels): at least one space, the value, then maybe a timestamp.
  if (line[i] !== ' ' && line[i] !== '\t') return null;
  const rest = line.slice(i).trim().split(/[ \t]+/);
  const value = parseValue(rest[0] ?? '');
  if (value === null) return null;
  const sample: MetricSample = { name, labels: { ...labels }, value };
  if (rest.length >= 2) {
    // OpenMetrics exemplars (`# {...} 1.0`) may follow; they are ignored, not an error.
    if (rest[1] === '#') return sample;
    if (rest.length > 2 && rest[2] !== '#') return null;
    if (!INTEGER.test(rest[1] as string)) return null;
    sample.timestamp = Number(rest[1]);
  }
  return sample;
}

/** A Go-style float: decimal, `+Inf`/`-Inf`/`Inf`, `NaN` (case-insensitive for the words). */
export function parseValue(text: string): number | null {
  if (DECIMAL.test(text)) return Number(text);
  const lower = text.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  return null;
}

function skipSpaces(line: string, i: number): number {
  while (line[i] === ' ' || line[i] === '\t') i++;
  return i;
}
