/**
 * WHEP benchmark (issue #9): glass-to-player latency over WebRTC in Chromium, side by side with
 * LL-HLS in hls.js (the reference) in the same run on the same stream, and the server's CPU per
 * WHEP viewer.
 *
 *   node scripts/bench/whep.ts [--warmup 6] [--sample 15] [--viewers 0,10,50] [--cpu-seconds 10] [--gop 1]
 *
 * The publisher sends the painted 720p30 clip (`latency-lib.ts`: each frame carries its number as
 * 16 blocks) over RTMP with `-re`, its start instant t0 calibrated from FFmpeg's progress reports.
 * (a) glass-to-player: Chromium reads the number of every presented frame
 *     (requestVideoFrameCallback); latency = expected display time − (t0 + n/30). WHEP first, then
 *     hls.js (lowLatencyMode, defaults) on the same stream. Time to first frame for both.
 * (b) CPU: N werift WHEP viewers in this process (waves of ten); the server's CPU (node process,
 *     and node + its FFmpeg children) over --cpu-seconds; per viewer = (cpu(N) − cpu(0)) / N.
 * Prints tables and one JSON line. The machine is shared: figures are upper bounds (load shown).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { createLiveInput, startServer } from '../../test/helpers/server.ts';
import { launchChromium } from '../../test/helpers/hlsjs-player.ts';
import { playUntilDecodable, type WeriftViewer } from '../../test/helpers/whep-werift-viewer.ts';
import { cpuPercent, descendants, printTable, sleep } from './bench-lib.ts';
import { frameSentAt, paintedClip, percentile, publishPainted, type CalibratedPublisher } from './latency-lib.ts';
import { LatencyPlayer, startLatencyPageServer, type PlayerResult } from './latency-player.ts';

const { values } = parseArgs({
  options: {
    warmup: { type: 'string', default: '6' },
    sample: { type: 'string', default: '15' },
    viewers: { type: 'string', default: '0,10,50' },
    'cpu-seconds': { type: 'string', default: '10' },
    gop: { type: 'string', default: '1' },
  },
});
const warmupS = Number(values.warmup);
const sampleS = Number(values.sample);
const viewerCounts = values.viewers.split(',').map(Number);
const cpuSeconds = Number(values['cpu-seconds']);
const gop = Number(values.gop);
const clipSeconds = 60;

interface Dist {
  p50: number;
  p95: number;
  n: number;
}
const dist = (xs: number[]): Dist => ({ p50: percentile(xs, 50), p95: percentile(xs, 95), n: xs.length });
const fmt = (d: Dist) => `${d.p50.toFixed(3)} / ${d.p95.toFixed(3)} (n=${d.n})`;

async function waitFor200(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if ((await fetch(url).catch(() => undefined))?.status === 200) return;
    await sleep(100);
  }
  throw new Error(`${url} did not become available`);
}

async function glassToPlayer(player: LatencyPlayer, pub: CalibratedPublisher, start: () => Promise<void>) {
  await player.setReading(true);
  await start();
  const first = await player.waitFirstFrame(30_000);
  if (first === undefined) throw new Error('no frame within 30 s');
  await sleep(warmupS * 1000);
  const from = Date.now();
  await sleep(sampleS * 1000);
  await player.setReading(false);
  const to = Date.now();
  const r: PlayerResult = await player.result();
  const t0 = pub.t0();
  const sampled = r.samples.filter(([wall]) => wall >= from && wall <= to);
  const lat = sampled.map(([wall, n]) => (wall - frameSentAt(t0, n, pub.clipFrames, wall)) / 1000);
  let jumps = 0;
  for (let i = 1; i < sampled.length; i++) if (sampled[i]![1] !== sampled[i - 1]![1] + 1) jumps++;
  return { lat: dist(lat), firstFrameMs: Math.round(first), framesRead: sampled.length, ambiguous: r.ambiguous, nonConsecutive: jumps, errors: [...new Set(r.errors)], fatal: r.fatal };
}

async function main(): Promise<void> {
  const clip = await paintedClip({ seconds: clipSeconds, gopSeconds: gop });
  const server = await startServer({ env: { TRIBUTARY_WHEP_CONSENT_TIMEOUT_MS: '15000' }, startTimeoutMs: 60_000 });
  const pages = await startLatencyPageServer();
  const browser = await launchChromium();
  let pub: CalibratedPublisher | undefined;
  const viewers: WeriftViewer[] = [];
  try {
    const input = await createLiveInput(server);
    pub = publishPainted(clip, clipSeconds, `${server.rtmpBase}/${input.streamKey}`);
    const master = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const whepUrl = `${server.httpUrl}/${input.uid}/webRTC/play`;
    await waitFor200(master, 40_000);
    await sleep(2000);

    // (a) WHEP, then LL-HLS (reference), each in a fresh page.
    const whepPlayer = await LatencyPlayer.open(browser, pages.url);
    const whep = await glassToPlayer(whepPlayer, pub, () => whepPlayer.startWhep(whepUrl));
    await whepPlayer.close();
    const hlsPlayer = await LatencyPlayer.open(browser, pages.url);
    const hls = await glassToPlayer(hlsPlayer, pub, () => hlsPlayer.start(master));
    await hlsPlayer.close();
    const loadAfterLatency = os.loadavg();

    // (b) CPU with N werift viewers.
    const pid = server.process.pid!;
    const cpuRows: Array<{ viewers: number; node: number; withFfmpeg: number; retries: number; joinMs: number }> = [];
    for (const n of viewerCounts) {
      let retries = 0;
      const t = Date.now();
      while (viewers.length < n) {
        const wave = Math.min(10, n - viewers.length);
        const joined = await Promise.all(Array.from({ length: wave }, () => playUntilDecodable(whepUrl)));
        for (const j of joined) {
          viewers.push(j.viewer);
          retries += j.attempts - 1;
        }
      }
      const joinMs = Date.now() - t;
      await sleep(2000);
      const [node, withFfmpeg] = await Promise.all([
        cpuPercent(() => [pid], cpuSeconds * 1000),
        cpuPercent(() => [pid, ...descendants(pid)], cpuSeconds * 1000),
      ]);
      cpuRows.push({ viewers: n, node, withFfmpeg, retries, joinMs });
    }
    const base = cpuRows.find((r) => r.viewers === 0);
    const perViewer = cpuRows
      .filter((r) => r.viewers > 0 && base)
      .map((r) => ({ viewers: r.viewers, nodePerViewer: (r.node - base!.node) / r.viewers, totalPerViewer: (r.withFfmpeg - base!.withFfmpeg) / r.viewers }));
    const load = os.loadavg();

    printTable(`Glass-to-player, seconds, p50 / p95 (720p30, ${gop} s GOP, ${warmupS} s warm-up, ${sampleS} s sampled; load avg ${loadAfterLatency.map((x) => x.toFixed(2)).join(' ')})`,
      ['player', 'glass-to-player', '1st frame ms', 'frames read', 'ambiguous', 'non-consecutive', 'errors'],
      [
        ['WHEP (Chromium WebRTC)', fmt(whep.lat), whep.firstFrameMs, whep.framesRead, whep.ambiguous, whep.nonConsecutive, [whep.fatal, ...whep.errors].filter(Boolean).join(' ') || '-'],
        ['LL-HLS (hls.js, reference)', fmt(hls.lat), hls.firstFrameMs, hls.framesRead, hls.ambiguous, hls.nonConsecutive, [hls.fatal, ...hls.errors].filter(Boolean).join(' ') || '-'],
      ]);
    printTable(`Server CPU, % of one core, over ${cpuSeconds} s (load avg at end ${load.map((x) => x.toFixed(2)).join(' ')})`,
      ['WHEP viewers', 'node', 'node + FFmpeg', 'join ms', 'retried joins'],
      cpuRows.map((r) => [r.viewers, r.node.toFixed(1), r.withFfmpeg.toFixed(1), r.joinMs, r.retries]));
    printTable('Server CPU per WHEP viewer, % of one core', ['viewers', 'node per viewer', 'node + FFmpeg per viewer'],
      perViewer.map((r) => [r.viewers, r.nodePerViewer.toFixed(2), r.totalPerViewer.toFixed(2)]));
    process.stdout.write(`\n${JSON.stringify({
      bench: 'whep',
      gopSeconds: gop,
      glassToPlayerSeconds: { whep: whep.lat, llhls: hls.lat },
      firstFrameMs: { whep: whep.firstFrameMs, llhls: hls.firstFrameMs },
      cpu: cpuRows,
      cpuPerViewer: perViewer,
      machine: { cpus: os.cpus().length, loadAvgAfterLatency: loadAfterLatency, loadAvgEnd: load },
    })}\n`);
  } finally {
    for (const v of viewers) await v.stop().catch(() => undefined);
    await browser.close();
    await pages.close();
    pub?.child.kill('SIGKILL');
    await server.stop();
    await server.cleanup();
  }
}

await main();
// Closed werift peers can keep handles open (UDP sockets, timers): the figures are printed, leave.
process.exit(0);
