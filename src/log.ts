/**
 * winston logging: JSON lines when not on a terminal (systemd, pm2), readable lines on a TTY.
 * Fixed message texts, facts as fields; secrets (secret-named fields, URL credentials, every
 * secret value the guard loaded) are redacted before any transport sees them.
 */
import winston from 'winston';
import type { Writable } from 'node:stream';
import { redact, REDACTED, SECRET_KEY } from './redact.js';
import { underJournal, withPriority, type JournalLevel } from './journal.js';

export type Logger = winston.Logger;

/** The one redaction of every path out of the guard (src/redact.ts), re-exported for old callers. */
export { redact };

const redactFormat = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (key === 'level' || key === 'message') continue;
    info[key] = SECRET_KEY.test(key) ? REDACTED : redact(info[key]);
  }
  info.message = redact(info.message as string);
  return info;
});

const COLORS: Record<string, string> = { error: '\x1b[31m', warn: '\x1b[33m', info: '\x1b[36m', debug: '\x1b[90m' };

const pretty = (color: boolean) =>
  winston.format.printf((info) => {
    const { level, message, timestamp, component, ...fields } = info as Record<string, unknown>;
    const time = String(timestamp ?? '').slice(11, 23);
    const lvl = color ? `${COLORS[String(level)] ?? ''}${String(level).padEnd(5)}\x1b[0m` : String(level).padEnd(5);
    const extras = Object.entries(fields)
      .filter(([k]) => typeof k === 'string')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    return `${time} ${lvl} ${component ? `[${String(component)}] ` : ''}${String(message)}${extras ? `  ${extras}` : ''}`;
  });

export interface LogOptions {
  level: 'error' | 'warn' | 'info' | 'debug';
  format: 'auto' | 'json' | 'pretty';
  /** Defaults to stderr; tests pass a stream to capture lines. */
  stream?: Writable & { isTTY?: boolean };
  /** Prefix lines with their syslog priority for journald (journal.ts); default: JOURNAL_STREAM is set. */
  journal?: boolean;
}

/** The finished line (json or pretty) with its priority first, for journald. */
const journalFormat = winston.format((info) => {
  const MESSAGE = Symbol.for('message');
  const line = (info as unknown as Record<symbol, unknown>)[MESSAGE];
  if (typeof line === 'string') (info as unknown as Record<symbol, unknown>)[MESSAGE] = withPriority(line, info.level as JournalLevel);
  return info;
});

export function createLogger(options: LogOptions): Logger {
  const stream = options.stream ?? process.stderr;
  const tty = Boolean((stream as { isTTY?: boolean }).isTTY);
  const json = options.format === 'json' || (options.format === 'auto' && !tty);
  const logger = winston.createLogger({
    level: options.level,
    format: winston.format.combine(
      redactFormat(),
      winston.format.timestamp(),
      json ? winston.format.json() : pretty(tty),
      ...(options.journal ?? underJournal() ? [journalFormat()] : []),
    ),
    transports: [new winston.transports.Stream({ stream })],
  });
  // A line logged after end() (a late callback during shutdown) is dropped: winston would emit
  // 'error' (write after end), and with no listener that ends the process with exit 1.
  logger.on('error', () => undefined);
  return logger;
}
