import { readFileSync } from 'node:fs';

/** Direct children of a process with their command names (Linux /proc). */
export function childProcesses(pid: number): Array<{ pid: number; comm: string }> {
  let list: string;
  try {
    list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return [];
  }
  return list
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .map((child) => {
      let comm = '';
      try {
        comm = readFileSync(`/proc/${child}/comm`, 'utf8').trim();
      } catch {
        // exited meanwhile
      }
      return { pid: child, comm };
    })
    .filter((p) => p.comm !== '');
}

/** True while the pid exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}

/** Total CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[11] = utime, fields[12] = stime (0-based after the state field), in clock ticks.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
