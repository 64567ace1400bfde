/**
 * WHIP benchmark: POST → 201, peer connected → first playable LL-HLS part, and server CPU per
 * WHIP session (werift + bridge FFmpeg + the session's FFmpeg) for a browser publishing H.264
 * (copied) and VP8 (transcoded to H.264). The ladder is the source only, so that the figure is
 * the cost of ingest, not of the ABR ladder (which is the same as for RTMP).
 *
 *   node scripts/bench/whip.ts [--runs 2] [--window 15] [--verbose (the session's log lines, timed from connected)]
 *
 * Prints a table and, last, one JSON line with every figure.
 */
import os from 'node:os';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { startServer, createLiveInput, waitForHttp200 } from '../../test/helpers/server.ts';
import { publishFromBrowser, waitForPublishing } from '../../test/helpers/whip-browser.ts';
import { cpuPercent, descendants, median, printTable, sleep } from './bench-lib.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '2' }, window: { type: 'string', default: '15' }, verbose: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const windowMs = Number(values.window) * 1000;

/** Where the time from "peer connected" to the first part goes: each milestone in ms after connected. */
const MILESTONES = [
  ['firstRtp', 'whip first video rtp'],
  ['firstKeyframe', 'whip first keyframe'],
  ['bridgeOutput', 'whip bridge output started'],
  ['transcoderStart', 'starting transcoder'],
  ['transcoderOutput', 'live'],
] as const;
type Milestone = (typeof MILESTONES)[number][0];

interface Sample {
  serverAnswerMs: number;
  clientPostMs: number;
  connectedToPartMs: number;
  milestones: Record<Milestone, number>;
  cpuNode: number;
  cpuBridge: number;
  cpuSession: number;
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

const server = await startServer({ env: { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1', TRIBUTARY_LOG_LEVEL: 'info' } });
const results: Record<string, Sample[]> = { H264: [], VP8: [] };
try {
  for (let run = 0; run < runs; run++) {
    for (const codec of ['H264', 'VP8'] as const) {
      const input = await createLiveInput(server, { meta: { name: `bench ${codec}` } });
      const publisher = await publishFromBrowser(`${server.httpUrl}/whip/${input.uid}`, input.streamKey, codec);
      try {
        const page = await waitForPublishing(publisher, 60_000);
        const answered = await server.waitForLog((l) => l.msg === 'whip session answered' && l.liveInputUid === input.uid);
        const connected = await server.waitForLog((l) => l.msg === 'whip peer connected' && l.liveInputUid === input.uid);
        // First playable part: the source playlist lists an EXT-X-PART.
        const media = `${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`;
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          const res = await fetch(media).catch(() => undefined);
          if (res?.status === 200 && (await res.text()).includes('#EXT-X-PART:')) break;
          await sleep(50);
        }
        const connectedToPartMs = Date.now() - Number(connected.time);
        if (values.verbose) {
          for (const l of server.logs.filter((x) => x.liveInputUid === input.uid || x.liveInput === input.uid)) {
            process.stderr.write(`${codec} +${Number(l.time) - Number(connected.time)} ms ${String(l.msg)} ${JSON.stringify({ ...l, time: undefined, msg: undefined, pid: undefined, hostname: undefined, level: undefined })}\n`);
          }
        }
        const milestones = {} as Record<Milestone, number>;
        for (const [name, msg] of MILESTONES) {
          const line = server.logs.find((l) => l.msg === msg && (l.liveInputUid === input.uid || l.liveInput === input.uid));
          milestones[name] = line ? Number(line.time) - Number(connected.time) : Number.NaN;
        }
        await waitForHttp200(media);
        const ffmpegs = () => descendants(server.process.pid!, 'ffmpeg');
        const bridge = () => ffmpegs().filter((p) => cmdline(p).includes('.sdp'));
        const session = () => ffmpegs().filter((p) => !cmdline(p).includes('.sdp'));
        await sleep(2000);
        const [cpuNode, cpuBridge, cpuSession] = await Promise.all([
          cpuPercent(() => [server.process.pid!], windowMs),
          cpuPercent(bridge, windowMs),
          cpuPercent(session, windowMs),
        ]);
        results[codec]!.push({ serverAnswerMs: Number(answered.ms), clientPostMs: Math.round(page.postMs ?? 0), connectedToPartMs, milestones, cpuNode, cpuBridge, cpuSession });
        await publisher.page.evaluate(() => (globalThis as unknown as { stopPublishing(): Promise<void> }).stopPublishing());
        await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid);
      } finally {
        await publisher.close();
      }
    }
  }
} finally {
  await server.stop();
  await server.cleanup();
}

const summary = Object.fromEntries(
  Object.entries(results).map(([codec, xs]) => [
    codec,
    {
      postTo201MsServer: median(xs.map((x) => x.serverAnswerMs)),
      postTo201MsBrowser: median(xs.map((x) => x.clientPostMs)),
      connectedToFirstPartMs: median(xs.map((x) => x.connectedToPartMs)),
      afterConnectedMs: Object.fromEntries(MILESTONES.map(([name]) => [name, median(xs.map((x) => x.milestones[name]))])),
      cpuPctOfCore: {
        server: median(xs.map((x) => x.cpuNode)),
        bridge: median(xs.map((x) => x.cpuBridge)),
        sessionFfmpeg: median(xs.map((x) => x.cpuSession)),
        total: median(xs.map((x) => x.cpuNode + x.cpuBridge + x.cpuSession)),
      },
      samples: xs,
    },
  ]),
);
printTable(
  `WHIP, browser publisher 640x480 30 fps (Chromium fake camera), source-only ladder; medians of ${runs} run(s), ${os.cpus().length} cores`,
  ['video', 'POST→201 server ms', 'POST→201 browser ms', 'connected→first part ms', 'CPU node %', 'CPU bridge %', 'CPU session ffmpeg %', 'CPU total %'],
  Object.entries(summary).map(([codec, s]) => [
    codec === 'H264' ? 'H.264 (copy)' : 'VP8 → H.264',
    s.postTo201MsServer, s.postTo201MsBrowser, s.connectedToFirstPartMs,
    s.cpuPctOfCore.server, s.cpuPctOfCore.bridge, s.cpuPctOfCore.sessionFfmpeg, s.cpuPctOfCore.total,
  ]),
);
printTable(
  'Connected → first part, milestones (median ms after the peer connected)',
  ['video', ...MILESTONES.map(([name]) => name), 'first part'],
  Object.entries(summary).map(([codec, s]) => [codec, ...MILESTONES.map(([name]) => s.afterConnectedMs[name] ?? Number.NaN), s.connectedToFirstPartMs]),
);
process.stdout.write(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
process.stdout.write(`${JSON.stringify({ bench: 'whip', machine: { cpus: os.cpus().length, load: os.loadavg() }, ...summary })}\n`);
