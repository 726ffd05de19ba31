/**
 * What the pm2 bus and daemon log say, read as this project's events: process events told apart
 * into crashes and commanded stops, and the "replaced worker stopping" line of a cluster reload.
 */
import type { Pm2ProcessEvent } from './client.js';

/**
 * The instance whose replaced process pm2 starts stopping, from a daemon log line
 * (`Stopping app:<name> id:_old_<id>`, printed only for processes a reload replaced), or null.
 */
export function replacedInstance(line: string, app: string): number | null {
  const match = /^Stopping app:(.*) id:_old_(\d+)$/.exec(line);
  return match && match[1] === app ? Number(match[2]) : null;
}

/** How long after a command's first `exit` its follow-up `exit` is expected (pm2 polls the kill). */
const STOP_FOLLOW_UP_MS = 5000;

/**
 * Maps pm2's `process:event` packets, `{ event, manually, at, process: <pm2_env without env> }`,
 * to Pm2ProcessEvents. pm2 flags only the command's own event (`stop`, `restart`, `reload`,
 * `delete`) as manual: the `exit` packets a command causes arrive first with manually=false, two
 * per process, the first with status `stopping` (pm2 set it before killing) and the second with
 * status `stopped` (emitted once the kill completed). A crash is one `exit` of a process that was
 * `online`, with status `stopped` (or `errored` past max_restarts). So an `exit` in status
 * `stopping`, and the `stopped` one that follows it, are reported as manual: otherwise every
 * deploy's `pm2 reload` would look like crashes of the new version. During a cluster reload the
 * replaced worker reports pm_id `_old_<id>`; it maps to <id>.
 */
export function createEventMapper(): (packet: unknown) => Pm2ProcessEvent | null {
  const stopping = new Map<string, number>(); // process key -> time of its `stopping` exit
  return (packet) => {
    if (typeof packet !== 'object' || packet === null) return null;
    const { event, manually, at: rawAt, process: proc } = packet as Record<string, unknown>;
    if (typeof event !== 'string' || typeof proc !== 'object' || proc === null) return null;
    const { name, pm_id: rawId, status } = proc as Record<string, unknown>;
    if (typeof name !== 'string') return null;
    const at = typeof rawAt === 'number' ? rawAt : Date.now();
    const key = `${name}\u0000${String(rawId)}`;
    let manual = manually === true;
    if (event === 'exit' && status === 'stopping') {
      manual = true;
      stopping.set(key, at);
    } else if (event === 'exit') {
      const since = stopping.get(key);
      stopping.delete(key);
      if (since !== undefined && at - since <= STOP_FOLLOW_UP_MS) manual = true;
    } else if (event === 'online') {
      stopping.delete(key);
    }
    const pmId = typeof rawId === 'number' ? rawId : Number(/^(?:_old_)?(\d+)$/.exec(String(rawId))?.[1] ?? -1);
    return { app: name, pmId, event, manually: manual, at };
  };
}

