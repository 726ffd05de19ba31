import { describe, expect, it } from 'vitest';
import { FamilyReader, type FamilyReadResult } from './prometheus-stream.js';
import { parsePrometheusText, type MetricSample } from './prometheus-text.js';

const NAMES = ['http_requests_total', 'http_request_duration_seconds_bucket', 'process_start_time_seconds'];

/** Reads `body` split into chunks at the given offsets; returns the samples handed over and the result. */
function readChunked(body: Buffer, cuts: number[], options: Partial<ConstructorParameters<typeof FamilyReader>[0]> = {}) {
  const samples: MetricSample[] = [];
  const reader = new FamilyReader(
    { names: NAMES, typed: ['http_requests_total'], maxSeries: 1000, maxLineBytes: 1024, ...options },
    (s) => samples.push(s),
  );
  let from = 0;
  for (const cut of [...cuts, body.length]) {
    reader.write(body.subarray(from, cut));
    from = cut;
  }
  const result: FamilyReadResult = reader.end();
  return { samples, result };
}

const EXPOSITION = [
  '# HELP http_requests_total Requests served, by status.',
  '# TYPE http_requests_total counter',
  'http_requests_total{status="200",path="/caf\u00e9"} 90',
  'http_requests_total{status="500"} 10\r',
  '',
  '   ',
  '# a free comment',
  '# TYPE other_metric gauge',
  'http_requests_total_created{status="200"} 1700000000',
  'other_metric{a="1"} 5',
  '# TYPE http_request_duration_seconds histogram',
  '  http_request_duration_seconds_bucket{le="0.1"} 80',
  'http_request_duration_seconds_bucket{le="+Inf"} 100',
  'http_request_duration_seconds_sum 7.5',
  'this is not a metric line',
  '<html>',
  'process_start_time_seconds 1700000000',
].join('\n');

describe('FamilyReader: wanted samples and types', () => {
  it('hands over exactly the wanted samples the whole-body parser finds, however the body is cut into chunks', () => {
    const body = Buffer.from(EXPOSITION, 'utf8');
    const expected = parsePrometheusText(EXPOSITION).samples.filter((s) => NAMES.includes(s.name));
    expect(expected).toHaveLength(5);
    // Every single cut, including inside the multi-byte é, and one byte at a time.
    const cutsList = [[], ...Array.from({ length: body.length - 1 }, (_, i) => [i + 1]), Array.from({ length: body.length - 1 }, (_, i) => i + 1)];
    for (const cuts of cutsList) {
      const { samples, result } = readChunked(body, cuts);
      expect(samples, `cuts ${cuts.slice(0, 3).join(',')}`).toEqual(expected);
      expect(result).toEqual({
        types: { http_requests_total: 'counter' },
        read: 5,
        // http_requests_total_created, other_metric, http_request_duration_seconds_sum, and
        // "this is not…": other metrics' lines are judged by their name only, never parsed.
        other: 4,
        skipped: 1,
        skippedExamples: ['<html>'],
        series: { http_requests_total: 2, http_request_duration_seconds_bucket: 2, process_start_time_seconds: 1 },
      });
    }
  });

  it('records only the TYPE of the typed families, whatever else is declared', () => {
    const text = Array.from({ length: 1000 }, (_, i) => `# TYPE m${i} counter\nm${i} 1`).join('\n');
    const { result } = readChunked(Buffer.from(`${text}\n# TYPE http_requests_total counter\n`), [777]);
    expect(result.types).toEqual({ http_requests_total: 'counter' });
    expect(result.other).toBe(1000);
  });
});

describe('FamilyReader: caps and garbage', () => {
  it('over max_series of one wanted metric: a cap failure naming the cap and the count, and nothing more parsed', () => {
    const lines = Array.from({ length: 2500 }, (_, i) => `http_requests_total{status="200",user="u${i}"} 1`);
    const { samples, result } = readChunked(Buffer.from(`${lines.join('\n')}\n`), [10_000, 30_000]);
    expect(samples).toHaveLength(1000);
    expect(result.series.http_requests_total).toBe(2500);
    expect(result.overCap).toBe('metric http_requests_total has 2500 series in one scrape, over max_series 1000');
  });

  it('any number of series of other metrics is fine: counted, never parsed', () => {
    const lines = Array.from({ length: 50_000 }, (_, i) => `j{i="${i}"} 1`);
    const { samples, result } = readChunked(Buffer.from(`${lines.join('\n')}\nhttp_requests_total 3\n`), [65_536, 131_072]);
    expect(samples.map((s) => s.value)).toEqual([3]);
    expect(result.other).toBe(50_000);
    expect(result.overCap).toBeUndefined();
  });

  it('a line of another metric longer than maxLineBytes is skipped without being kept; the next lines are read', () => {
    const long = `big{v="${'x'.repeat(10_000)}"} 1`;
    for (const cuts of [[], [5], [100, 2000, 9000], [10_020]]) {
      const { samples, result } = readChunked(Buffer.from(`${long}\nhttp_requests_total 7\n`), cuts);
      expect(samples.map((s) => s.value), `cuts ${cuts.join(',')}`).toEqual([7]);
      expect(result.other).toBe(1);
      expect(result.overCap).toBeUndefined();
    }
  });

  it('a line of a wanted metric longer than maxLineBytes is a cap failure', () => {
    const long = `http_requests_total{v="${'x'.repeat(10_000)}"} 1`;
    for (const cuts of [[], [3], [500, 5000]]) {
      const { result } = readChunked(Buffer.from(`${long}\nhttp_requests_total 7\n`), cuts);
      expect(result.overCap).toBe('a line of metric http_requests_total is longer than 1024 bytes, the longest line the probe reads');
    }
  });

  it('binary garbage: mostly unreadable lines, no sample, no throw', () => {
    let seed = 7;
    const bytes = Buffer.alloc(200_000);
    for (let i = 0; i < bytes.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bytes[i] = seed >>> 24;
    }
    const { samples, result } = readChunked(bytes, [1, 65_536, 100_000]);
    expect(samples).toEqual([]);
    expect(result.skipped).toBeGreaterThan(result.other);
    expect(result.skippedExamples.every((e) => e.length <= 80)).toBe(true);
  });

  it('a last line without a newline is read at the end', () => {
    expect(readChunked(Buffer.from('http_requests_total 4'), [10]).samples.map((s) => s.value)).toEqual([4]);
  });
});
