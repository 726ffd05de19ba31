import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, redact } from './log.js';

describe('log', () => {
  it('writes JSON lines off a terminal and redacts secrets', async () => {
    const stream = new PassThrough();
    const lines: string[] = [];
    stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString().trim().split('\n')));
    const log = createLogger({ level: 'info', format: 'auto', stream });
    log.info('probe configured', { component: 'probe', url: 'http://user:hunter2@db:5432/x', token: 's3cret', headers: { Authorization: 'Bearer abc' } });
    log.debug('not shown');
    await new Promise((r) => setImmediate(r));
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!);
    expect(entry).toMatchObject({ level: 'info', message: 'probe configured', component: 'probe', token: '[redacted]' });
    expect(lines[0]).not.toMatch(/hunter2|s3cret|Bearer abc/);
  });

  it('redacts nested values', () => {
    expect(redact({ a: { password: 'x', list: ['https://u:p@h/'] } })).toEqual({ a: { password: '[redacted]', list: ['https://***:***@h/'] } });
  });

  it('redacts what JSON.stringify would send: a class\'s toJSON, with fields that are getters', () => {
    class Verdict {
      readonly rule = 'error_rate';
      get message() {
        return 'from https://u:p@h/';
      }
      toJSON() {
        return { rule: this.rule, message: this.message };
      }
    }
    expect(redact({ rules: [new Verdict()] })).toEqual({ rules: [{ rule: 'error_rate', message: 'from https://***:***@h/' }] });
  });
});

describe('shutdown', () => {
  it('a line logged after end() is dropped, never an error event that ends the process', async () => {
    const stream = new PassThrough();
    const log = createLogger({ level: 'info', format: 'json', stream });
    log.end();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // A late probe callback during shutdown: winston would emit 'error' (write after end).
    log.error('probe sample handling failed');
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
});
