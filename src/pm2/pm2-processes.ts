/** pm2's process descriptions read as Pm2ProcessInfo, and the log files they name. */
import type { Pm2ProcessInfo } from './client.js';
import type { RawProcess } from './pm2-rpc.js';

export function toProcessInfo(proc: RawProcess): Pm2ProcessInfo {
  const env = proc.pm2_env ?? {};
  return {
    name: proc.name ?? '',
    pmId: proc.pm_id ?? -1,
    pid: proc.pid ?? 0,
    status: env.status ?? 'unknown',
    cpuPercent: proc.monit?.cpu ?? 0,
    memoryBytes: proc.monit?.memory ?? 0,
    restarts: env.restart_time ?? 0,
    ...(env.pm_exec_path !== undefined ? { execPath: env.pm_exec_path } : {}),
    ...(env.pm_cwd !== undefined ? { cwd: env.pm_cwd } : {}),
    ...(env.exec_mode !== undefined ? { execMode: env.exec_mode } : {}),
  };
}

/** The out and err log files of `app`'s processes: out files first; cluster instances may each have their own. */
export function logFilesOf(procs: RawProcess[], app: string): string[] {
  const files = new Set<string>();
  for (const key of ['pm_out_log_path', 'pm_err_log_path'] as const) {
    for (const proc of procs) {
      const file = proc.name === app ? proc.pm2_env?.[key] : undefined;
      if (file) files.add(file);
    }
  }
  return [...files];
}
