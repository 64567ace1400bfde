/**
 * Foundation benchmark: publish → first playable playlist, CPU per stream, and how many
 * copy-only publishers one machine holds with every playlist advancing on time — each side by
 * side with FFmpeg alone doing the same job (RTMP listener → HLS on disk) in the same run.
 *
 *   node scripts/bench/foundation.ts [--counts 10,20,40] [--runs 3] [--window 20]
 *
 * Prints tables and, last, one JSON line with every figure.
 */
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLiveInput } from '../../test/helpers/server.ts';
import { cpuPercent, descendants, fetchText, freePort, makeClip, median, pollUntil, printTable, publishClip, publishClips, run, sleep, withServer } from './bench-lib.ts';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '10,20,40' },
    runs: { type: 'string', default: '3' },
    window: { type: 'string', default: '20' },
  },
});
const counts = values.counts.split(',').map(Number);
const runs = Number(values.runs);
const windowS = Number(values.window);

const work = mkdtempSync(path.join(os.tmpdir(), 'trib-bench-'));
const clip = path.join(work, 'clip.flv');
const results: Record<string, unknown> = { machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model } };

const COPY_ONLY = { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1' };
const COPY_360 = {
  TRIBUTARY_TRANSCODE_LADDER: JSON.stringify([{ name: '360p', height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 }]),
};

/** Segment URI → duration, for every segment listed in a media playlist. */
function segmentsOf(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^#EXTINF:([\d.]+)/.exec(lines[i]!);
    if (m) out.set(lines[i + 1]!.trim(), Number(m[1]));
  }
  return out;
}

/** FFmpeg alone: an RTMP listener writing HLS to disk — the reference for every figure. */
function ffmpegAlone(port: number, dir: string, transcode360: boolean) {
  const common = ['-hide_banner', '-loglevel', 'error', '-listen', '1', '-i', `rtmp://127.0.0.1:${port}/live/x`];
  const hls = ['-f', 'hls', '-hls_time', '2', '-hls_list_size', '12', '-hls_segment_type', 'fmp4'];
  const args = transcode360
    ? [...common, '-map', '0:v', '-map', '0:a', '-map', '0:v', '-map', '0:a', '-c:v:0', 'copy', '-c:a', 'copy',
        '-filter:v:1', 'scale=-2:360', '-c:v:1', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0',
        '-force_key_frames:v:1', 'source', '-b:v:1', '700k', ...hls, '-var_stream_map', 'v:0,a:0 v:1,a:1',
        '-master_pl_name', 'master.m3u8', path.join(dir, 'v%v.m3u8')]
    : [...common, '-c', 'copy', ...hls, path.join(dir, 'v0.m3u8')];
  return run('ffmpeg', args);
}

// ---------------------------------------------------------------------------------------------
async function timeToFirstPlaylist(): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const measureTributary = async (label: string, env: Record<string, string>) => {
    const times: number[] = [];
    await withServer(env, async (server) => {
      for (let i = 0; i < runs; i++) {
        const input = await createLiveInput(server);
        const t0 = Date.now();
        const pub = publishClip(clip, `${server.rtmpBase}/${input.streamKey}`);
        const url = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
        const ok = await pollUntil(async () => ((await fetchText(url)).status === 200 ? true : undefined), 30_000, 20);
        if (ok) times.push((Date.now() - t0) / 1000);
        pub.child.kill('SIGKILL');
        await pub.exited;
        await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 20_000).catch(() => {});
      }
    });
    rows.push([label, median(times), Math.min(...times), Math.max(...times), times.length]);
    return median(times);
  };
  const measureAlone = async (label: string, transcode: boolean) => {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const dir = mkdtempSync(path.join(work, 'ref-'));
      const port = await freePort();
      const ref = ffmpegAlone(port, dir, transcode);
      await sleep(300); // the listener must be up before the publisher connects
      const t0 = Date.now();
      const pub = publishClip(clip, `rtmp://127.0.0.1:${port}/live/x`);
      const playlist = path.join(dir, 'v0.m3u8');
      const ok = await pollUntil(
        async () => (existsSync(playlist) && readFileSync(playlist, 'utf8').includes('#EXTINF') ? true : undefined),
        30_000,
        20,
      );
      if (ok) times.push((Date.now() - t0) / 1000);
      pub.child.kill('SIGKILL');
      ref.child.kill('SIGKILL');
      await Promise.all([pub.exited, ref.exited]);
    }
    rows.push([label, median(times), Math.min(...times), Math.max(...times), times.length]);
    return median(times);
  };
  results.timeToFirstPlaylistS = {
    tributaryCopy360: await measureTributary('Tributary, source + 360p', COPY_360),
    tributaryCopyOnly: await measureTributary('Tributary, source copy only', COPY_ONLY),
    ffmpegAloneCopy: await measureAlone('FFmpeg alone, copy → HLS (reference)', false),
    ffmpegAloneCopy360: await measureAlone('FFmpeg alone, copy + 360p → HLS (reference)', true),
  };
  printTable('Publish start → first playable playlist (s), 854x480 30 fps, 1 s GOP, 2 s segments',
    ['setup', 'median', 'min', 'max', 'runs'], rows);
}

// ---------------------------------------------------------------------------------------------
async function cpuPerStream(): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const out: Record<string, unknown> = {};
  for (const [label, env] of [['source copy only', COPY_ONLY], ['source + 360p', COPY_360]] as const) {
    await withServer(env, async (server) => {
      const input = await createLiveInput(server);
      const pub = publishClip(clip, `${server.rtmpBase}/${input.streamKey}`);
      await pollUntil(async () => ((await fetchText(`${server.httpUrl}/${input.uid}/manifest/video.m3u8`)).status === 200 ? true : undefined), 30_000, 20);
      await sleep(2000);
      const pid = server.process.pid!;
      const [serverCpu, ffmpegCpu] = await Promise.all([
        cpuPercent(() => [pid], windowS * 1000),
        cpuPercent(() => descendants(pid, 'ffmpeg'), windowS * 1000),
      ]);
      rows.push([`Tributary, ${label}`, serverCpu, ffmpegCpu, serverCpu + ffmpegCpu]);
      out[`tributary ${label}`] = { serverCpu, ffmpegCpu };
      pub.child.kill('SIGKILL');
      await pub.exited;
    });
    const dir = mkdtempSync(path.join(work, 'ref-'));
    const port = await freePort();
    const ref = ffmpegAlone(port, dir, env === COPY_360);
    await sleep(300);
    const pub = publishClip(clip, `rtmp://127.0.0.1:${port}/live/x`);
    await sleep(4000);
    const refCpu = await cpuPercent(() => [ref.child.pid!], windowS * 1000);
    rows.push([`FFmpeg alone, ${label} (reference)`, '-', refCpu, refCpu]);
    out[`ffmpeg alone ${label}`] = { ffmpegCpu: refCpu };
    pub.child.kill('SIGKILL');
    ref.child.kill('SIGKILL');
    await Promise.all([pub.exited, ref.exited]);
  }
  results.cpuPercentOfOneCore = out;
  printTable(`CPU per stream (% of one core, over ${windowS} s), 854x480 30 fps source`,
    ['setup', 'server (node)', 'ffmpeg', 'total'], rows);
}

// ---------------------------------------------------------------------------------------------
interface Advance { ok: number; total: number; minRatio: number; medianRatio: number; serverCpu: number; ffmpegCpu: number }

/** Watches playlists for the window; a stream is on time when its media advanced ≥ 90 % of wall time. */
async function watchPlaylists(read: Array<() => Promise<string>>, cpu: Promise<[number, number]>): Promise<Advance> {
  const seen = read.map(() => new Map<string, number>());
  const t0 = Date.now();
  for (let i = 0; i < read.length; i++) for (const [k] of segmentsOf(await read[i]!())) seen[i]!.set(k, 0);
  const advanced = read.map(() => 0);
  while (Date.now() - t0 < windowS * 1000) {
    await Promise.all(
      read.map(async (r, i) => {
        for (const [k, d] of segmentsOf(await r())) {
          if (!seen[i]!.has(k)) {
            seen[i]!.set(k, d);
            advanced[i]! += d;
          }
        }
      }),
    );
    await sleep(500);
  }
  const wall = (Date.now() - t0) / 1000;
  // The newest segment may still be open at either end of the window: allow one segment of slack.
  const ratios = advanced.map((a) => (a + 2) / wall);
  const [serverCpu, ffmpegCpu] = await cpu;
  return {
    ok: ratios.filter((r) => r >= 0.9).length,
    total: read.length,
    minRatio: Math.min(...ratios),
    medianRatio: median(ratios),
    serverCpu,
    ffmpegCpu,
  };
}

async function concurrentPublishers(): Promise<void> {
  const rows: Array<Array<string | number>> = [];
  const out: Record<string, unknown> = {};
  for (const n of counts) {
    await withServer(COPY_ONLY, async (server) => {
      const { pubs, live } = await publishClips(server, clip, n, 200);
      const pid = server.process.pid!;
      const cpu = Promise.all([cpuPercent(() => [pid], windowS * 1000), cpuPercent(() => descendants(pid, 'ffmpeg'), windowS * 1000)]);
      const a = await watchPlaylists(live.map((u) => async () => (await fetchText(u)).text), cpu);
      a.total = n;
      rows.push([`Tributary, ${n} publishers`, `${a.ok}/${n}`, a.minRatio, a.medianRatio, a.serverCpu, a.ffmpegCpu]);
      out[`tributary ${n}`] = a;
      for (const p of pubs) p.child.kill('SIGKILL');
      await Promise.all(pubs.map((p) => p.exited));
    });

    const refs = await Promise.all(
      Array.from({ length: n }, async () => {
        const dir = mkdtempSync(path.join(work, 'ref-'));
        const port = await freePort();
        return { dir, port, ref: ffmpegAlone(port, dir, false) };
      }),
    );
    await sleep(500);
    const pubs = refs.map((r) => publishClip(clip, `rtmp://127.0.0.1:${r.port}/live/x`));
    await pollUntil(async () => (refs.every((r) => existsSync(path.join(r.dir, 'v0.m3u8'))) ? true : undefined), 60_000, 200);
    const cpu = Promise.all([Promise.resolve(0), cpuPercent(() => refs.map((r) => r.ref.child.pid!), windowS * 1000)]);
    const a = await watchPlaylists(
      refs.map((r) => async () => {
        try {
          return readFileSync(path.join(r.dir, 'v0.m3u8'), 'utf8');
        } catch {
          return '';
        }
      }),
      cpu as Promise<[number, number]>,
    );
    rows.push([`FFmpeg alone, ${n} listeners (reference)`, `${a.ok}/${n}`, a.minRatio, a.medianRatio, '-', a.ffmpegCpu]);
    out[`ffmpeg alone ${n}`] = a;
    for (const p of pubs) p.child.kill('SIGKILL');
    for (const r of refs) r.ref.child.kill('SIGKILL');
    await Promise.all([...pubs.map((p) => p.exited), ...refs.map((r) => r.ref.exited)]);
  }
  results.concurrentCopyPublishers = out;
  printTable(
    `Concurrent copy-only publishers (on time = media advanced ≥ 90 % of wall time over ${windowS} s; publishers' own CPU excluded)`,
    ['setup', 'on time', 'min ratio', 'median ratio', 'server CPU %', 'ffmpeg CPU %'],
    rows,
  );
}

try {
  process.stdout.write(`encoding the benchmark clip (854x480, 30 fps, 1 s GOP) into ${work}\n`);
  await makeClip(clip, { width: 854, height: 480, seconds: 30, gop: 30 });
  await timeToFirstPlaylist();
  await cpuPerStream();
  await concurrentPublishers();
  process.stdout.write(`\n${JSON.stringify({ bench: 'foundation', ...results })}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
