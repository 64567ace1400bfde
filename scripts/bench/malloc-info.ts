import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * glibc's own account of a process's malloc heap, read by attaching gdb for a moment and calling
 * `malloc_info()` in it (benchmarks only; needs gdb and ptrace rights over the process). "In use"
 * is what the program still holds; "free" is what malloc keeps for reuse. In-use memory that
 * grows round after round is a native leak; free memory that stays is allocator retention.
 * With `trim`, `malloc_trim(0)` is called afterwards, so the RSS drop shows what malloc kept.
 */
export interface MallocFigures {
  /** Address space malloc has from the system (all arenas, not counting mmapped chunks). */
  systemMb: number;
  inUseMb: number;
  freeMb: number;
  mmappedMb: number;
  arenas: number;
}

function gdb(pid: number, commands: string[]): Promise<void> {
  const args = ['-p', String(pid), '-batch', '-nx', ...commands.flatMap((c) => ['-ex', c])];
  return new Promise((resolve, reject) => {
    execFile('gdb', args, { timeout: 120_000 }, (error) => (error ? reject(error) : resolve()));
  });
}

const mb = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

export function parseMallocInfo(xml: string): MallocFigures {
  const afterHeaps = xml.slice(xml.lastIndexOf('</heap>'));
  const free = [...afterHeaps.matchAll(/<total type="(fast|rest)" count="\d+" size="(\d+)"\/>/g)].reduce((a, m) => a + Number(m[2]), 0);
  const system = Number(/<system type="current" size="(\d+)"\/>/.exec(afterHeaps)?.[1] ?? 0);
  const mmapped = Number(/<total type="mmap" count="\d+" size="(\d+)"\/>/.exec(afterHeaps)?.[1] ?? 0);
  return { systemMb: mb(system), inUseMb: mb(system - free + mmapped), freeMb: mb(free), mmappedMb: mb(mmapped), arenas: (xml.match(/<heap nr=/g) ?? []).length };
}

/** malloc_info() of a running process, and optionally malloc_trim(0) after it. */
export async function mallocInfo(pid: number, opts: { trim?: boolean } = {}): Promise<MallocFigures> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trib-mallinfo-'));
  const file = path.join(dir, 'malloc-info.xml');
  try {
    await gdb(pid, [
      `set $f = (void*)fopen("${file}", "w")`,
      'call (int)malloc_info(0, $f)',
      'call (int)fclose($f)',
      ...(opts.trim ? ['call (int)malloc_trim(0)'] : []),
    ]);
    return parseMallocInfo(readFileSync(file, 'utf8'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
