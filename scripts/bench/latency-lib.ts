/**
 * Pieces of the latency benchmarks: a test clip whose frames carry their own number, a paced
 * publisher whose start instant (t0) is calibrated, the nginx-rtmp reference, and a blocking-reload
 * client that records when each LL-HLS part is first listed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { freePort, run, sleep } from './bench-lib.ts';

/** Frame rate of the painted clip: 30, or `LATENCY_FPS` (e.g. 24, where 0.21 s part targets give 0.208 s parts). */
export const FPS = Number(process.env.LATENCY_FPS ?? 30);
if (!(Number.isInteger(FPS) && FPS >= 10 && FPS <= 60)) throw new Error(`LATENCY_FPS must be a whole number of frames per second, 10–60 (got ${process.env.LATENCY_FPS})`);
/** Bits of the frame number painted as blocks; block i (i = 0 … BITS-1) is bit i, LSB first. */
export const BITS = 16;
/** Block edge in pixels on the 1280x720 source. */
export const BLOCK = 40;
export const SOURCE_W = 1280;
export const SOURCE_H = 720;

/** The filter chain that paints frame number `n` as a row of black/white blocks at the top left. */
export function paintFilter(): string {
  const boxes = [`drawbox=x=0:y=0:w=${BITS * BLOCK}:h=${BLOCK}:color=black:t=fill`];
  for (let i = 0; i < BITS; i++) {
    boxes.push(`drawbox=x=${i * BLOCK}:y=0:w=${BLOCK}:h=${BLOCK}:color=white:t=fill:enable='mod(floor(n/${2 ** i}),2)'`);
  }
  return boxes.join(',');
}

/**
 * Encodes (once, cached under the OS temp dir) a 1280x720 H.264/AAC FLV clip (FPS frames per second) with painted
 * frame numbers. Pre-encoding keeps the publisher's x264 off the 2-core machine during the
 * measurement; the publisher then only paces and copies (`-re -c copy`).
 */
export async function paintedClip(opts: { seconds: number; gopSeconds: number; videoKbps?: number }): Promise<string> {
  const dir = path.join(os.tmpdir(), 'trib-latency-clips');
  mkdirSync(dir, { recursive: true });
  const kbps = opts.videoKbps ?? 2500;
  const file = path.join(dir, `painted-720p${FPS}-${opts.seconds}s-gop${opts.gopSeconds}-${kbps}k-v1.flv`);
  if (existsSync(file)) return file;
  const tmp = `${file}.${process.pid}.tmp`;
  const gop = String(Math.round(opts.gopSeconds * FPS));
  const { exited } = run('ffmpeg', [
    '-hide_banner', '-nostdin', '-y',
    '-f', 'lavfi', '-i', `testsrc2=size=${SOURCE_W}x${SOURCE_H}:rate=${FPS}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(opts.seconds), '-vf', paintFilter(),
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-pix_fmt', 'yuv420p',
    '-g', gop, '-keyint_min', gop, '-sc_threshold', '0',
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`,
    '-c:a', 'aac', '-b:a', '128k', '-f', 'flv', tmp,
  ]);
  if ((await exited) !== 0) throw new Error('could not encode the painted clip');
  renameSync(tmp, file);
  return file;
}

export interface CalibratedPublisher {
  child: ChildProcess;
  exited: Promise<number | null>;
  /**
   * Best estimate of t0 (ms since epoch), the instant frame 0 was sent: frame n leaves the
   * publisher at ≈ t0 + n/FPS. Upper bound that tightens as reports arrive (see `publishPainted`).
   */
  t0(): number;
  /** Number of progress reports used so far. */
  reports(): number;
  clipFrames: number;
}

/**
 * Publishes the painted clip in real time (`-re`, copy, looping) to `url` and calibrates t0.
 *
 * Method: FFmpeg's `-progress pipe:1 -stats_period 0.005` prints `frame=N` (frames written so
 * far) right after the transcode loop writes a packet. When a report arrives at wall time T,
 * frame N-1 has been sent, and with `-re` it was not sent before t0 + (N-1)/FPS, so
 * t0 ≤ T − (N-1)/FPS for every report. The minimum over hundreds of reports converges on t0 plus
 * the shortest report delay. Error bound: the estimate is late by 0 … ~10 ms (FFmpeg 5.1's
 * `-re` polls every 10 ms and this process may read a report late; the minimum discards late
 * reads); it can never be early. Every frame is also up to ~10 ms late against its ideal
 * instant for the same reason, which the latency figures include (a real encoder has the same).
 */
export function publishPainted(clip: string, clipSeconds: number, url: string): CalibratedPublisher {
  const child = spawn('ffmpeg', [
    '-hide_banner', '-nostdin', '-loglevel', 'error', ...PAINTED_INPUT(clip),
    '-c', 'copy', ...PROGRESS_ARGS, '-f', 'flv', url,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  return calibrated(child, clipSeconds);
}

/** The painted clip read in real time, looping (the input of every publisher). */
export const PAINTED_INPUT = (clip: string): string[] => ['-re', '-stream_loop', '-1', '-i', clip];
/** FFmpeg's frame count on stdout every 5 ms: what `calibrated` reads. */
export const PROGRESS_ARGS = ['-progress', 'pipe:1', '-stats_period', '0.005'];

/** t0 calibration (see `publishPainted`) of any FFmpeg publishing the clip with PROGRESS_ARGS. */
export function calibrated(child: ChildProcess, clipSeconds: number): CalibratedPublisher {
  let best = Infinity;
  let count = 0;
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const now = Date.now();
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('frame=')) continue;
      const n = Number(line.slice(6));
      if (!(n > 0)) continue;
      count++;
      best = Math.min(best, now - ((n - 1) * 1000) / FPS);
    }
  });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Never leave a publisher behind if the benchmark exits early.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then((code) => {
    process.off('exit', killOnExit);
    if (code !== 0 && code !== null && code !== 255 && process.env.BENCH_DEBUG) process.stderr.write(err);
  });
  return { child, exited, t0: () => best, reports: () => count, clipFrames: Math.round(clipSeconds * FPS) };
}

/**
 * The publisher's send instant of a painted frame number read at wall time `atMs`. The clip
 * loops, so the painted number wraps every `clipFrames`; the loop index is the one that puts
 * the latency in [-1 s, clip length - 1 s).
 */
export function frameSentAt(t0: number, painted: number, clipFrames: number, atMs: number): number {
  const loopMs = (clipFrames * 1000) / FPS;
  const base = t0 + (painted * 1000) / FPS;
  const k = Math.floor((atMs - base + 1000) / loopMs);
  return base + k * loopMs;
}

export function percentile(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

// ---------------------------------------------------------------------------------------------
// nginx with the rtmp module: the plain-HLS reference.

export interface NginxRef {
  rtmpUrl: string;
  playlistUrl: string;
  hlsDir: string;
  stop(): Promise<void>;
}

export async function startNginxRef(work: string, opts: { fragmentSeconds: number; playlistSeconds: number }): Promise<NginxRef> {
  const dir = path.join(work, `nginx-${Date.now()}`);
  const hlsDir = path.join(dir, 'hls');
  mkdirSync(hlsDir, { recursive: true });
  const rtmpPort = await freePort();
  const httpPort = await freePort();
  const modulePath = '/usr/lib/nginx/modules/ngx_rtmp_module.so';
  const conf = `
${existsSync(modulePath) ? `load_module ${modulePath};` : ''}
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:${rtmpPort};
    chunk_size 4096;
    application live {
      live on;
      record off;
      hls on;
      hls_path ${hlsDir};
      hls_fragment ${opts.fragmentSeconds}s;
      hls_playlist_length ${opts.playlistSeconds}s;
      hls_fragment_naming timestamp;
    }
  }
}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
  server {
    listen 127.0.0.1:${httpPort};
    location /hls/ {
      alias ${hlsDir}/;
      add_header Cache-Control no-cache;
      add_header Access-Control-Allow-Origin *;
    }
  }
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const proc = run('nginx', ['-p', dir, '-c', confPath, '-g', 'daemon off;']);
  // Wait until both listeners answer.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      http.get(`http://127.0.0.1:${httpPort}/hls/none`, (res) => {
        res.resume();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`nginx did not start (see ${dir}/error.log)`);
    await sleep(50);
  }
  return {
    rtmpUrl: `rtmp://127.0.0.1:${rtmpPort}/live/ref`,
    playlistUrl: `http://127.0.0.1:${httpPort}/hls/ref.m3u8`,
    hlsDir,
    async stop() {
      proc.child.kill('SIGTERM');
      const t = setTimeout(() => proc.child.kill('SIGKILL'), 3000);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Playlist reading.

export interface ListedPart {
  msn: number;
  index: number;
  uri: string;
  duration: number;
  /** Seconds from the segment start (sum of the earlier parts' durations). */
  offset: number;
  /** EXT-X-PROGRAM-DATE-TIME of the segment (ms), if listed. */
  pdt: number | undefined;
}

export interface ParsedMediaPlaylist {
  mediaSequence: number;
  segments: Array<{ msn: number; uri: string; duration: number; pdt: number | undefined }>;
  parts: ListedPart[];
  partTarget: number | undefined;
}

export function parseMediaPlaylist(text: string): ParsedMediaPlaylist {
  const lines = text.split('\n').map((l) => l.trim());
  let msn = 0;
  let pdt: number | undefined;
  let offset = 0;
  let index = 0;
  let pendingDuration: number | undefined;
  let partTarget: number | undefined;
  const out: ParsedMediaPlaylist = { mediaSequence: 0, segments: [], parts: [], partTarget: undefined };
  for (const line of lines) {
    if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) {
      msn = Number(line.slice(22));
      out.mediaSequence = msn;
    } else if (line.startsWith('#EXT-X-PART-INF:')) {
      partTarget = Number(/PART-TARGET=([\d.]+)/.exec(line)?.[1]);
    } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      pdt = Date.parse(line.slice(25));
    } else if (line.startsWith('#EXT-X-PART:')) {
      const duration = Number(/DURATION=([\d.]+)/.exec(line)?.[1]);
      const uri = /URI="([^"]+)"/.exec(line)?.[1] ?? '';
      out.parts.push({ msn, index, uri, duration, offset, pdt });
      offset += duration;
      index++;
    } else if (line.startsWith('#EXTINF:')) {
      pendingDuration = Number(/^#EXTINF:([\d.]+)/.exec(line)?.[1]);
    } else if (line !== '' && !line.startsWith('#') && pendingDuration !== undefined) {
      out.segments.push({ msn, uri: line, duration: pendingDuration, pdt });
      pendingDuration = undefined;
      msn++;
      pdt = undefined;
      offset = 0;
      index = 0;
    }
  }
  out.partTarget = partTarget;
  return out;
}

/** One keep-alive GET; resolves with status, body text and the wall time the body completed. */
export function getText(url: string, agent: http.Agent, signal?: AbortSignal): Promise<{ status: number; text: string; at: number }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent, signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), at: Date.now() }));
      res.on('error', () => resolve({ status: 0, text: '', at: Date.now() }));
    });
    req.on('error', () => resolve({ status: 0, text: '', at: Date.now() }));
  });
}

export interface PartSighting extends ListedPart {
  /** Wall time (ms) the part was first seen listed. */
  listedAt: number;
}

/**
 * A blocking-reload client (`_HLS_msn`/`_HLS_part`) that follows a media playlist until `signal`
 * aborts, asking each time for the part after the last one listed, and reports every part the
 * first time it is listed. Parts already listed in the first (non-blocking) answer are not reported.
 */
export async function followParts(url: string, signal: AbortSignal, onPart: (p: PartSighting) => void,
  onPlaylist?: (p: ParsedMediaPlaylist) => void): Promise<{ requests: number; errors: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const seen = new Set<string>();
  let requests = 0;
  let errors = 0;
  let next: { msn: number; part: number } | undefined;
  try {
    while (!signal.aborted) {
      const u = next ? `${url}${url.includes('?') ? '&' : '?'}_HLS_msn=${next.msn}&_HLS_part=${next.part}` : url;
      const res = await getText(u, agent, signal);
      requests++;
      if (signal.aborted) break;
      if (res.status !== 200) {
        errors++;
        next = undefined;
        await sleep(100);
        continue;
      }
      const pl = parseMediaPlaylist(res.text);
      onPlaylist?.(pl);
      const first = requests === 1;
      for (const p of pl.parts) {
        if (seen.has(p.uri)) continue;
        seen.add(p.uri);
        if (!first) onPart({ ...p, listedAt: res.at });
      }
      const last = pl.parts.at(-1);
      const lastComplete = last !== undefined && pl.segments.some((s) => s.msn === last.msn);
      if (last) next = lastComplete ? { msn: last.msn + 1, part: 0 } : { msn: last.msn, part: last.index + 1 };
      else {
        await sleep(50);
      }
    }
  } finally {
    agent.destroy();
  }
  return { requests, errors };
}
