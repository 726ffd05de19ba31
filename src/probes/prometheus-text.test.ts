import { describe, expect, it } from 'vitest';
import { parsePrometheusText, parseSampleLine, parseValue } from './prometheus-text.js';

describe('parseSampleLine', () => {
  it.each([
    ['up 1', { name: 'up', labels: {}, value: 1 }],
    ['http_requests_total{status="200"} 1027', { name: 'http_requests_total', labels: { status: '200' }, value: 1027 }],
    [
      'http_requests_total{method="post",code="400"}    3   1395066363000',
      { name: 'http_requests_total', labels: { method: 'post', code: '400' }, value: 3, timestamp: 1395066363000 },
    ],
    ['x{a="1",} 2', { name: 'x', labels: { a: '1' }, value: 2 }],
    ['x{ a = "1" , b="2" } 2', { name: 'x', labels: { a: '1', b: '2' }, value: 2 }],
    ['x{} 2', { name: 'x', labels: {}, value: 2 }],
    ['ns:rule_name:rate5m 0.5', { name: 'ns:rule_name:rate5m', labels: {}, value: 0.5 }],
    ['msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9', {
      name: 'msdos_file_access_time_seconds',
      labels: { path: 'C:\\DIR\\FILE.TXT', error: 'Cannot find file:\n"FILE.TXT"' },
      value: 1.458255915e9,
    }],
    ['x{a="b,c}d"} 1', { name: 'x', labels: { a: 'b,c}d' }, value: 1 }],
    ['x{a="\\q"} 1', { name: 'x', labels: { a: '\\q' }, value: 1 }],
    ['h_bucket{le="+Inf"} 7', { name: 'h_bucket', labels: { le: '+Inf' }, value: 7 }],
    ['x +Inf', { name: 'x', labels: {}, value: Number.POSITIVE_INFINITY }],
    ['x -Inf', { name: 'x', labels: {}, value: Number.NEGATIVE_INFINITY }],
    ['x -1.5e-3', { name: 'x', labels: {}, value: -0.0015 }],
    ['x .5', { name: 'x', labels: {}, value: 0.5 }],
    ['x\t3', { name: 'x', labels: {}, value: 3 }],
    ['x 1 # {trace_id="abc"} 1.0', { name: 'x', labels: {}, value: 1 }],
  ])('%s', (line, expected) => {
    expect(parseSampleLine(line)).toEqual(expected);
  });

  it('reads NaN', () => {
    expect(parseSampleLine('x NaN')?.value).toBeNaN();
  });

  it('keeps a label named __proto__ as a plain label', () => {
    const sample = parseSampleLine('x{__proto__="v"} 1');
    expect(sample && Object.hasOwn(sample.labels, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(sample?.labels)).toBe(Object.prototype);
  });

  it.each([
    'x',
    'x ',
    '9x 1',
    'x{a="1"}1',
    'x{a="1" 1',
    'x{a="1} 1',
    'x{a=1} 1',
    'x{1a="1"} 1',
    'x{a="1",a="2"} 1',
    'x{a="1" b="2"} 1',
    'x one',
    'x 1 2 3',
    'x 1 1.5',
    'x 0x1F',
    'x Infinity',
    '{a="1"} 1',
    'x{a="1\\',
  ])('rejects %j', (line) => {
    expect(parseSampleLine(line)).toBeNull();
  });
});

describe('parseValue', () => {
  it.each([
    ['0', 0],
    ['+3', 3],
    ['1e3', 1000],
    ['Inf', Number.POSITIVE_INFINITY],
    ['+inf', Number.POSITIVE_INFINITY],
    ['-Inf', Number.NEGATIVE_INFINITY],
    ['', null],
    [' 1', null],
    ['1.2.3', null],
  ])('%j -> %s', (text, value) => {
    expect(parseValue(text)).toBe(value);
  });
});

describe('parsePrometheusText', () => {
  it('reads a whole exposition with HELP, TYPE, a histogram, CRLF line ends and garbage', () => {
    const text = [
      '# HELP http_requests_total Requests served, by status.',
      '# TYPE http_requests_total counter',
      'http_requests_total{status="200"} 90',
      'http_requests_total{status="500"} 10\r',
      '',
      '   ',
      '# a free comment',
      '# TYPE http_request_duration_seconds histogram',
      'http_request_duration_seconds_bucket{le="0.1"} 80',
      'http_request_duration_seconds_bucket{le="+Inf"} 100',
      'http_request_duration_seconds_sum 7.5',
      'this is not a metric line',
      '<html>',
      'app_version_info{version="1.2.3"} 1',
    ].join('\n');
    const parsed = parsePrometheusText(text);
    expect(parsed.types).toEqual({ http_requests_total: 'counter', http_request_duration_seconds: 'histogram' });
    expect(parsed.samples.map((s) => [s.name, s.labels, s.value])).toEqual([
      ['http_requests_total', { status: '200' }, 90],
      ['http_requests_total', { status: '500' }, 10],
      ['http_request_duration_seconds_bucket', { le: '0.1' }, 80],
      ['http_request_duration_seconds_bucket', { le: '+Inf' }, 100],
      ['http_request_duration_seconds_sum', {}, 7.5],
      ['app_version_info', { version: '1.2.3' }, 1],
    ]);
    expect(parsed.skipped).toBe(2);
    expect(parsed.skippedExamples).toEqual(['this is not a metric line', '<html>']);
  });

  it('keeps at most three examples of skipped lines, cut short', () => {
    const parsed = parsePrometheusText(['a b c d', `${'z'.repeat(200)} zz`, '?', '!', '@'].join('\n'));
    expect(parsed.samples).toEqual([]);
    expect(parsed.skipped).toBe(5);
    expect(parsed.skippedExamples).toHaveLength(3);
    expect(parsed.skippedExamples[1]).toHaveLength(80);
  });

  it('returns nothing, without throwing, for an empty body', () => {
    expect(parsePrometheusText('')).toEqual({ samples: [], types: {}, skipped: 0, skippedExamples: [] });
  });
});
