/**
 * Under systemd the guard's stderr is a journal stream, and systemd sets JOURNAL_STREAM. There a
 * line may start with a syslog priority in angle brackets (sd-daemon(3): `<3>` error, `<4>`
 * warning, `<6>` info, `<7>` debug), which journald strips and stores as the entry's priority, so
 * `journalctl -p warning -u release-guard` finds the warnings and errors. Elsewhere nothing changes.
 *
 * No dependencies: the CLI's client commands use this without loading the daemon's logger.
 */

export type JournalLevel = 'error' | 'warn' | 'info' | 'debug';

/** sd-daemon.h: SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
const PRIORITY: Record<JournalLevel, number> = { error: 3, warn: 4, info: 6, debug: 7 };

/** Whether stderr goes to the journal (systemd sets JOURNAL_STREAM to its device:inode). */
export function underJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.JOURNAL_STREAM ?? '') !== '';
}

/** `text` with every line prefixed by the priority of `level` (journald splits entries at newlines). */
export function withPriority(text: string, level: JournalLevel): string {
  const prefix = `<${PRIORITY[level]}>`;
  return text.replace(/^(?=.)/gm, prefix);
}

/** An error report for stderr: prefixed `<3>` line by line under the journal, unchanged elsewhere. */
export function journalError(text: string, env: NodeJS.ProcessEnv = process.env): string {
  return underJournal(env) ? withPriority(text, 'error') : text;
}
