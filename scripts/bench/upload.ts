/**
 * Upload → ready time: a 60 s 720p30 MP4 (H.264 + AAC) uploaded by multipart to a real server
 * with the default ladder, timed until the video is ready to stream; side by side with FFmpeg
 * alone running the very same transcode (same arguments, files instead of pipes) as the
 * reference for what the machine allows.
 *
 *   node scripts/bench/upload.ts [--seconds 60] [--size 1280x720]
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { buildLiveArgs } from '../../src/transcode/ffmpeg-args.ts';
import { DEFAULT_LADDER } from '../../src/transcode/ladder.ts';
import { probeUpload } from '../../src/vod/upload-probe.ts';
import { uploadRenditions } from '../../src/vod/upload-transcode.ts';
import { startServer } from '../../test/helpers/server.ts';
import { printTable, sleep } from './bench-lib.ts';

const run = promisify(execFile);
const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, size: { type: 'string', default: '1280x720' } } });
const seconds = Number(values.seconds);
const work = await mkdtemp(path.join(os.tmpdir(), 'trib-upload-bench-'));
const clipPath = path.join(work, 'clip.mp4');

// A camera-like file: 2 s GOPs, B-frames, moov at the end.
await run('ffmpeg', [
  '-hide_banner', '-loglevel', 'error', '-y',
  '-f', 'lavfi', '-i', `testsrc2=size=${values.size}:rate=30`,
  '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
  '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60', '-b:v', '3000k',
  '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', clipPath,
]);
const clip = await readFile(clipPath);

const server = await startServer({ env: { TRIBUTARY_LOG_LEVEL: 'info' }, startTimeoutMs: 120_000 }).catch(async (error: unknown) => {
  await rm(work, { recursive: true, force: true });
  throw error;
});
const rows: Array<Array<string | number>> = [];
try {
  // Through Tributary: upload, probe, queue, transcode, spool, store, playlists.
  const t0 = performance.now();
  const body = new FormData();
  body.append('file', new Blob([new Uint8Array(clip)]), 'clip.mp4');
  const res = await fetch(`${server.httpUrl}/v1/videos`, { method: 'POST', headers: { authorization: `Bearer ${server.apiKey}` }, body });
  const created = (await res.json()) as { result: { uid: string } };
  if (res.status !== 200) throw new Error(`upload failed: ${res.status} ${JSON.stringify(created)}`);
  const uid = created.result.uid;
  const accepted = performance.now();
  let inprogressAt = 0;
  let state = '';
  while (state !== 'ready') {
    const r = (await (await fetch(`${server.httpUrl}/v1/videos/${uid}`, { headers: { authorization: `Bearer ${server.apiKey}` } })).json()) as {
      result: { status: { state: string } };
    };
    state = r.result.status.state;
    if (state === 'inprogress' && !inprogressAt) inprogressAt = performance.now();
    if (state === 'error') throw new Error(`processing failed: ${JSON.stringify(r.result.status)}`);
    if (state !== 'ready') await sleep(100);
  }
  const ready = performance.now();
  const total = (ready - t0) / 1000;

  // Reference: FFmpeg alone, the same arguments, outputs to files.
  const probe = await probeUpload(clipPath, { ffprobePath: 'ffprobe', maxDurationSeconds: 86_400 });
  const renditions = uploadRenditions(probe, {
    ffmpegPath: 'ffmpeg',
    ladder: DEFAULT_LADDER,
    includeSource: true,
    maxRenditions: 4,
    gopSeconds: 1,
    x264Preset: 'veryfast',
    segmentTargetSeconds: 2,
    partTargetSeconds: 0.25,
    startTimeoutMs: 15_000,
  });
  const args = buildLiveArgs({
    renditions,
    gopSeconds: 1,
    ...(probe.video.fps !== undefined ? { fps: probe.video.fps } : {}),
    partDurationSeconds: 0.25,
    sourceAudio: 'aac',
    input: { file: clipPath },
    x264Preset: 'veryfast',
  }).map((a) => (/^pipe:[3-9]$/.test(a) ? path.join(work, `out-${a.slice(5)}.mp4`) : a));
  const f0 = performance.now();
  await run('ffmpeg', ['-y', ...args], { maxBuffer: 64 * 1024 * 1024 });
  const ffmpegAlone = (performance.now() - f0) / 1000;

  const upload = (accepted - t0) / 1000;
  const queued = ((inprogressAt || accepted) - accepted) / 1000;
  const transcode = (ready - (inprogressAt || accepted)) / 1000;
  rows.push(['Tributary: upload → ready', total, seconds / total]);
  rows.push(['  upload + probe (HTTP 200, queued)', upload, '']);
  rows.push(['  queued → inprogress', queued, '']);
  rows.push(['  inprogress → ready (transcode, spool, store)', transcode, seconds / transcode]);
  rows.push(['FFmpeg alone, same transcode', ffmpegAlone, seconds / ffmpegAlone]);
  printTable(
    `${seconds} s ${values.size} 30 fps MP4 (${(clip.length / 1e6).toFixed(1)} MB), default ladder: ${renditions.map((r) => r.name).join(', ')}; ` +
      `${os.cpus().length} cores, load ${os.loadavg()[0]?.toFixed(2)}`,
    ['step', 'seconds', 'real-time factor'],
    rows,
  );
  process.stdout.write(
    `${JSON.stringify({
      bench: 'upload',
      seconds,
      size: values.size,
      bytes: clip.length,
      renditions: renditions.map((r) => r.name),
      uploadToReadyS: Number(total.toFixed(2)),
      realtimeFactor: Number((seconds / total).toFixed(2)),
      uploadS: Number(upload.toFixed(2)),
      transcodeS: Number(transcode.toFixed(2)),
      ffmpegAloneS: Number(ffmpegAlone.toFixed(2)),
      ffmpegAloneRealtimeFactor: Number((seconds / ffmpegAlone).toFixed(2)),
      cores: os.cpus().length,
      load1: os.loadavg()[0],
    })}\n`,
  );
} finally {
  await server.stop();
  await server.cleanup();
  await rm(work, { recursive: true, force: true });
}
