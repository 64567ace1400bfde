/**
 * The viewer side of the latency benchmark: hls.js (lowLatencyMode, otherwise default config) in
 * Debian's headless Chromium. Every presented frame (requestVideoFrameCallback) is drawn onto a
 * canvas and the painted frame number is read back by thresholding the centre of each block.
 */
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { BITS, BLOCK, SOURCE_H, SOURCE_W } from './latency-lib.ts';
import { sleep } from './bench-lib.ts';

const require = createRequire(import.meta.url);
const HLS_JS = readFileSync(require.resolve('hls.js/dist/hls.min.js'));
const KEEPER_JS = readFileSync(new URL('../../src/origin/embed/latency-keeper.js', import.meta.url));

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>latency</title></head>
<body>
<video id="v" muted autoplay playsinline style="width:640px"></video>
<script src="/hls.min.js"></script>
<script src="/latency-keeper.js"></script>
<script>
  const BITS = ${BITS}, BLOCK = ${BLOCK}, SW = ${SOURCE_W}, SH = ${SOURCE_H};
  const video = document.getElementById('v');
  const canvas = document.createElement('canvas');
  canvas.width = BITS * BLOCK; canvas.height = BLOCK;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const r = window.result = { loadAt: null, firstFrameAt: null, samples: [], ambiguous: 0, errors: [], fatal: null,
    stalls: 0, levels: [], level: -1, version: Hls.version, targetLatency: null, reading: false,
    events: [], parts: [], ticks: [], waiting: 0, startSkip: null };
  // The element ran out of data (hls.js reports a stall only after its own detection delay).
  video.addEventListener('waiting', () => { if (r.reading) r.waiting++; });
  // Start-up timeline (ms since loadSource), the first 60 hls.js events that matter.
  function ev(name, d) { if (r.loadAt !== null && r.events.length < 60) r.events.push([Math.round(performance.now() - r.loadAt), name, d || null]); }
  function read() {
    const vw = video.videoWidth, vh = video.videoHeight;
    if (!vw || !vh) return -1;
    ctx.drawImage(video, 0, 0, vw * BITS * BLOCK / SW, vh * BLOCK / SH, 0, 0, BITS * BLOCK, BLOCK);
    const row = ctx.getImageData(0, BLOCK / 2, BITS * BLOCK, 1).data;
    let n = 0;
    for (let i = 0; i < BITS; i++) {
      const x = i * BLOCK + BLOCK / 2;
      const y = (row[x * 4] + row[x * 4 + 1] + row[x * 4 + 2]) / 3;
      if (y > 64 && y < 192) return -2;
      if (y >= 192) n += 2 ** i;
    }
    return n;
  }
  function onFrame(now, meta) {
    // The wall clock at which the frame is expected on screen.
    const wall = performance.timeOrigin + meta.expectedDisplayTime;
    if (r.firstFrameAt === null) { r.firstFrameAt = meta.presentationTime; ev('firstFrame', { t: +video.currentTime.toFixed(3) }); }
    if (r.reading) {
      const n = read();
      if (n === -2) r.ambiguous++;
      else if (n >= 0) r.samples.push([wall, n]);
    }
    video.requestVideoFrameCallback(onFrame);
  }
  // The embed player's config and latency keeper (src/origin/embed/latency-keeper.js, the same file).
  window.start = (src, extra, opts) => {
    const embed = !!(opts && opts.keeper);
    const hls = window.hls = new Hls(embed ? { ...TributaryLatencyKeeper.hlsConfig, ...(extra || {}) } : { lowLatencyMode: true, ...(extra || {}) });
    if (embed) window.keeper = TributaryLatencyKeeper.keep(hls, video);
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => { r.levels = d.levels.map((l) => l.height); });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => { r.level = d.level; });
    hls.on(Hls.Events.MANIFEST_LOADED, () => ev('manifest'));
    hls.on(Hls.Events.LEVEL_LOADED, (_e, d) => ev('level', { level: d.level, edge: +d.details.edge.toFixed(3),
      partHoldBack: d.details.partHoldBack, ttfb: Math.round(d.stats.loading.first - d.stats.loading.start) }));
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => {
      const f = d.frag, p = d.part, st = (p || f).stats.loading;
      if (f.sn === 'initSegment') return;
      const m = p || f;
      ev(p ? 'part' : 'frag', { level: f.level, sn: f.sn, part: p ? p.index : null, start: +m.start.toFixed(3), dur: +m.duration.toFixed(3),
        independent: p ? p.independent : true, test: !!f.bitrateTest, wait: Math.round(st.first - st.start), load: Math.round(st.end - st.start) });
      // Steady state: when a part's bytes were in, against the ingest of its last frame (PDT clock).
      if (r.reading && p && f.programDateTime) {
        r.parts.push([performance.timeOrigin + st.end, f.programDateTime + (p.start + p.duration - f.start) * 1000, st.end - st.start]);
      }
    });
    // hls.js announces no FRAG_LOADED for init segments: their request instead.
    hls.on(Hls.Events.FRAG_LOADING, (_e, d) => { if (d.frag.sn === 'initSegment') ev('init', { level: d.frag.level }); });
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => ev('buffered', { sn: d.frag.sn, part: d.part ? d.part.index : null }));
    setInterval(() => {
      if (!r.reading || !video.buffered.length) return;
      const ahead = video.buffered.end(video.buffered.length - 1) - video.currentTime;
      r.ticks.push([hls.latency, hls.targetLatency, ahead, video.playbackRate, hls.currentLevel]);
    }, 200);
    hls.on(Hls.Events.ERROR, (_e, d) => {
      r.errors.push(d.details + (d.fatal ? ' (fatal)' : ''));
      if (d.details === 'bufferStalledError') r.stalls++;
      if (d.fatal) r.fatal = d.details;
    });
    video.requestVideoFrameCallback(onFrame);
    hls.attachMedia(video);
    r.loadAt = performance.now();
    hls.loadSource(src);
    video.play().catch(() => {});
  };
  // WHEP (webRTC/play): a recvonly offer, the answer, the tracks on the same <video>.
  window.startWhep = async (url) => {
    const pc = window.pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const stream = new MediaStream();
    pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; video.play().catch(() => {}); };
    video.requestVideoFrameCallback(onFrame);
    r.loadAt = performance.now();
    await pc.setLocalDescription(await pc.createOffer());
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
    if (res.status !== 201) { r.fatal = 'WHEP ' + res.status; return; }
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  };
  window.snapshot = () => { r.startSkip = window.keeper ? window.keeper.skips() : null; r.targetLatency = window.hls ? window.hls.targetLatency : null; r.hlsLatency = window.hls ? window.hls.latency : null; return r; };
</script></body></html>`;

export interface PlayerResult {
  loadAt: number | null;
  firstFrameAt: number | null;
  /** [wall clock the frame is expected on screen (ms), painted frame number] */
  samples: Array<[number, number]>;
  ambiguous: number;
  errors: string[];
  fatal: string | null;
  stalls: number;
  levels: number[];
  level: number;
  version: string;
  targetLatency: number | null;
  hlsLatency: number | null;
  reading: boolean;
  /** [ms since loadSource, event, detail] for the first 60 events (start-up timeline). */
  events: Array<[number, string, Record<string, unknown> | null]>;
  /** While reading: [wall ms the part's bytes were in, wall ms of the ingest of its last frame (PDT), load ms]. */
  parts: Array<[number, number, number]>;
  /** While reading, every 200 ms: [hls.latency, hls.targetLatency, forward buffer s, playbackRate, level]. */
  ticks: Array<[number, number, number, number, number]>;
  /** 'waiting' events of the video element while reading. */
  waiting: number;
  /** Seeks the latency keeper made (embed setup; the start-up skip included), null without it. */
  startSkip: number | null;
}

export async function startLatencyPageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/hls.min.js')) res.writeHead(200, { 'content-type': 'text/javascript' }).end(HLS_JS);
    else if (req.url?.startsWith('/latency-keeper.js')) res.writeHead(200, { 'content-type': 'text/javascript' }).end(KEEPER_JS);
    else if (req.url?.startsWith('/latency')) res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/latency`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

export class LatencyPlayer {
  readonly page: Page;
  private constructor(page: Page) {
    this.page = page;
  }

  static async open(browser: Browser, pageUrl: string): Promise<LatencyPlayer> {
    const page = await browser.newPage();
    await page.goto(pageUrl);
    return new LatencyPlayer(page);
  }

  /**
   * hls.loadSource(src) with `{ lowLatencyMode: true, ...extraConfig }`; `keeper`: as the embed
   * player plays, its hls.js config plus its latency keeper (src/origin/embed/latency-keeper.js).
   */
  async start(src: string, extraConfig: Record<string, unknown> = {}, opts: { keeper?: boolean } = {}): Promise<void> {
    await this.page.evaluate(([s, x, o]) => (globalThis as unknown as { start(s: string, x: unknown, o: unknown): void }).start(s, x, o),
      [src, extraConfig, opts] as const);
  }

  /** Plays over WHEP (POST an offer to `url`) instead of hls.js. */
  async startWhep(url: string): Promise<void> {
    await this.page.evaluate((u) => (globalThis as unknown as { startWhep(u: string): Promise<void> }).startWhep(u), url);
  }

  async setReading(on: boolean): Promise<void> {
    await this.page.evaluate((v) => {
      (globalThis as unknown as { result: PlayerResult }).result.reading = v;
    }, on);
  }

  /** Starts the steady-state window: forgets the part timings, ticks and waiting events so far. */
  async resetSteadyState(): Promise<void> {
    await this.page.evaluate(() => {
      const r = (globalThis as unknown as { result: PlayerResult }).result;
      r.parts = [];
      r.ticks = [];
      r.waiting = 0;
    });
  }

  async result(): Promise<PlayerResult> {
    return this.page.evaluate(() => (globalThis as unknown as { snapshot(): PlayerResult }).snapshot());
  }

  /** Time to first frame (ms from loadSource to the first presented frame), or undefined on timeout. */
  async waitFirstFrame(timeoutMs: number): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const r = await this.page.evaluate(() => {
        const x = (globalThis as unknown as { result: PlayerResult }).result;
        return { loadAt: x.loadAt, firstFrameAt: x.firstFrameAt, fatal: x.fatal };
      });
      if (r.fatal) throw new Error(`player failed: ${r.fatal}`);
      if (r.firstFrameAt !== null && r.loadAt !== null) return r.firstFrameAt - r.loadAt;
      await sleep(20);
    }
    return undefined;
  }

  async close(): Promise<void> {
    await this.page.close();
  }
}
