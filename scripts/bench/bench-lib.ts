import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { createLiveInput, startServer, type TestServer } from '../../test/helpers/server.ts';
import { parseMaster } from '../../test/helpers/probe.ts';

/** Shared pieces of the benchmarks: processes, CPU sampling, tables. */

export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Children (recursively) of a pid whose command name matches. */
export function descendants(pid: number, comm?: string): number[] {
  const out: number[] = [];
  const walk = (p: number) => {
    let list = '';
    try {
      list = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8');
    } catch {
      return;
    }
    for (const c of list.trim().split(/\s+/).filter(Boolean).map(Number)) {
      let name = '';
      try {
        name = readFileSync(`/proc/${c}/comm`, 'utf8').trim();
      } catch {
        continue;
      }
      if (!comm || name === comm) out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** CPU used by the given pids over `ms`, as a percentage of one core. */
export async function cpuPercent(pids: () => number[], ms: number): Promise<number> {
  const start = new Map(pids().map((p) => [p, cpuTicks(p)]));
  await sleep(ms);
  let ticks = 0;
  for (const p of pids()) ticks += cpuTicks(p) - (start.get(p) ?? cpuTicks(p));
  return (ticks / 100 / (ms / 1000)) * 100;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function run(cmd: string, args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  void exited.then((code) => {
    if (code !== 0 && code !== null && code !== 255 && process.env.BENCH_DEBUG) process.stderr.write(err);
  });
  return { child, exited };
}

/** Pre-encodes a test clip once, so that publishers only copy (cheap) and do not skew CPU figures. */
export async function makeClip(path: string, opts: { width: number; height: number; seconds: number; gop: number; videoKbps?: number }): Promise<void> {
  const { exited } = run('ffmpeg', [
    '-hide_banner', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${opts.width}x${opts.height}:rate=30`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', String(opts.seconds),
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-g', String(opts.gop),
    '-b:v', `${opts.videoKbps ?? 1500}k`, '-c:a', 'aac', '-b:a', '128k', '-f', 'flv', path,
  ]);
  if ((await exited) !== 0) throw new Error('could not encode the benchmark clip');
}

/** Publishes a pre-encoded clip in real time, looping, copy only. */
export function publishClip(clip: string, url: string): { child: ChildProcess; exited: Promise<number | null> } {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-stream_loop', '-1', '-i', clip, '-c', 'copy', '-f', 'flv', url]);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function printTable(title: string, header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(2)) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: Array<string | number>) => `| ${r.map((c, i) => String(c).padEnd(widths[i]!)).join(' | ')} |`;
  process.stdout.write(`\n${title}\n${line(cells[0]!)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n`);
  for (const r of cells.slice(1)) process.stdout.write(`${line(r)}\n`);
}

/** Runs `fn` against a fresh Tributary server with `env`, stopped and removed afterwards. */
export async function withServer<T>(env: Record<string, string>, fn: (s: TestServer) => Promise<T>): Promise<T> {
  const server = await startServer({ env, startTimeoutMs: 60_000 });
  try {
    return await fn(server);
  } finally {
    await server.stop();
    await server.cleanup();
  }
}

/** GET as text; a failed connection is status 0 (the benches poll servers that may not be up yet). */
export async function fetchText(url: string): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url);
    return { status: res.status, text: await res.text() };
  } catch {
    return { status: 0, text: '' };
  }
}

/** Polls `fn` every `stepMs` until it returns something; undefined when `timeoutMs` passes first. */
export async function pollUntil<T>(fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, stepMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(stepMs);
  }
  return undefined;
}

/**
 * Creates `n` live inputs, publishes `clip` to each, and resolves with the publishers and the first
 * rendition's media playlist URL of every stream that came up within 60 s.
 */
export async function publishClips(server: TestServer, clip: string, n: number, stepMs: number): Promise<{ pubs: Array<ReturnType<typeof publishClip>>; live: string[] }> {
  const inputs = await Promise.all(Array.from({ length: n }, () => createLiveInput(server)));
  const pubs = inputs.map((i) => publishClip(clip, `${server.rtmpBase}/${i.streamKey}`));
  const urls = await Promise.all(
    inputs.map(async (i) => {
      const master = `${server.httpUrl}/${i.uid}/manifest/video.m3u8`;
      const text = await pollUntil(async () => {
        const r = await fetchText(master);
        return r.status === 200 ? r.text : undefined;
      }, 60_000, stepMs);
      return text ? new URL(parseMaster(text)[0]!.uri, master).toString() : undefined;
    }),
  );
  return { pubs, live: urls.filter((u): u is string => u !== undefined) };
}
