import { readFileSync } from 'node:fs';

/**
 * Where a process's resident memory is, from /proc/<pid>/smaps (Linux): the main malloc arena
 * (`[heap]`), glibc's thread arenas (anonymous regions inside 64 MiB-aligned reservations), other
 * anonymous memory (the V8 heap, big mmapped buffers, thread stacks) and mapped files (the node
 * binary, libraries). A heuristic, good enough to tell malloc's retained memory from V8's.
 */
export interface RssBreakdown {
  mainArenaMb: number;
  threadArenasMb: number;
  otherAnonMb: number;
  filesMb: number;
  totalMb: number;
}

const ARENA_BYTES = 64 * 2 ** 20;

export function rssBreakdown(pid: number): RssBreakdown | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const maps: Array<{ start: number; end: number; name: string; rssKb: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) maps.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), name: m[3]!.trim(), rssKb: 0 });
    else if (line.startsWith('Rss:') && maps.length > 0) maps[maps.length - 1]!.rssKb = Number(line.split(/\s+/)[1]);
  }
  // A thread arena is one 64 MiB-aligned reservation: its used part starts on the boundary.
  const arenaStarts = new Set(maps.filter((m) => m.name === '' && m.start % ARENA_BYTES === 0 && m.end - m.start <= ARENA_BYTES).map((m) => m.start));
  const kb = { main: 0, arenas: 0, anon: 0, files: 0, total: 0 };
  for (const m of maps) {
    kb.total += m.rssKb;
    if (m.name === '[heap]') kb.main += m.rssKb;
    else if (m.name.startsWith('/')) kb.files += m.rssKb;
    else if (m.name === '' && arenaStarts.has(m.start - (m.start % ARENA_BYTES))) kb.arenas += m.rssKb;
    else kb.anon += m.rssKb;
  }
  const mb = (k: number) => Math.round((k / 1024) * 10) / 10;
  return { mainArenaMb: mb(kb.main), threadArenasMb: mb(kb.arenas), otherAnonMb: mb(kb.anon), filesMb: mb(kb.files), totalMb: mb(kb.total) };
}
