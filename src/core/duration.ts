/** Durations in config: `250ms`, `5s`, `2m`, `1h`, or a plain number of milliseconds. */
const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;

/** Returns milliseconds, or null when the text is not a duration. */
export function parseDuration(input: string | number): number | null {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : null;
  const match = PATTERN.exec(input.trim());
  const unit = match?.[2];
  if (!match || unit === undefined || !Object.hasOwn(UNITS, unit)) return null;
  return Math.round(Number(match[1]) * UNITS[unit as keyof typeof UNITS]);
}

/** `1500` → `1.5s`, `120000` → `2m`: for messages and reports. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${+(ms / 1000).toFixed(2)}s`;
  if (ms < 3_600_000) return `${+(ms / 60_000).toFixed(2)}m`;
  return `${+(ms / 3_600_000).toFixed(2)}h`;
}
