/** Durations in config; the parsing and formatting live in the pure core, which formats them in messages. */
export { formatDuration, parseDuration } from '../core/duration.js';
