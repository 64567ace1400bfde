import http from 'node:http';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';

// hls.js in Debian's headless Chromium, driven by playwright-core: the real player our viewers use.

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export async function launchChromium(extraArgs: string[] = []): Promise<Browser> {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...CHROMIUM_ARGS, ...extraArgs] });
}

const require = createRequire(import.meta.url);
const HLS_JS = readFileSync(require.resolve('hls.js/dist/hls.min.js'));

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>player</title></head>
<body>
<video id="v" muted autoplay playsinline style="width:640px"></video>
<script src="/hls.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const src = params.get('src');
  const lowLatency = params.get('ll') !== '0';
  const video = document.getElementById('v');
  const stats = window.stats = { state: 'loading', errors: [], fatal: null, stalls: 0, levelSwitches: [],
    firstFrameAt: null, startedAt: performance.now(), levels: [], latency: [], currentLevel: -1 };
  const hls = window.hls = new Hls({ lowLatencyMode: lowLatency, backBufferLength: 10, debug: false });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    stats.levels = data.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate }));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => { stats.levelSwitches.push(data.level); stats.currentLevel = data.level; });
  hls.on(Hls.Events.ERROR, (_e, data) => {
    stats.errors.push(data.details + (data.fatal ? ' (fatal)' : ''));
    if (data.details === 'bufferStalledError') stats.stalls++;
    if (data.fatal) stats.fatal = data.details;
  });
  video.addEventListener('playing', () => { stats.state = 'playing'; });
  video.requestVideoFrameCallback?.(function onFrame() {
    if (stats.firstFrameAt === null) stats.firstFrameAt = performance.now() - stats.startedAt;
  });
  setInterval(() => { if (hls.latency > 0) stats.latency.push(hls.latency); stats.currentTime = video.currentTime; }, 250);
  hls.loadSource(src);
  hls.attachMedia(video);
  video.play().catch(() => {});
</script></body></html>`;

export interface PlayerStats {
  state: string;
  errors: string[];
  fatal: string | null;
  stalls: number;
  levelSwitches: number[];
  firstFrameAt: number | null;
  levels: Array<{ width: number; height: number; bitrate: number }>;
  latency: number[];
  currentLevel: number;
  currentTime?: number;
}

/** A tiny page server (port 0) that serves the player page and hls.js from node_modules. */
export async function startPlayerPageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith('/hls.min.js')) {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(HLS_JS);
    } else if (req.url?.startsWith('/player')) {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/player`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export async function openPlayer(browser: Browser, pageUrl: string, src: string, lowLatency = true): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(`${pageUrl}?src=${encodeURIComponent(src)}&ll=${lowLatency ? 1 : 0}`);
  return page;
}

export async function playerStats(page: Page): Promise<PlayerStats> {
  return page.evaluate(() => (globalThis as unknown as { stats: PlayerStats }).stats);
}

/** Waits (polling the page, which is event-free by nature) until the predicate holds. */
export async function waitForPlayer(page: Page, predicate: (s: PlayerStats) => boolean, timeoutMs = 30_000): Promise<PlayerStats> {
  const deadline = Date.now() + timeoutMs;
  let last: PlayerStats | undefined;
  while (Date.now() < deadline) {
    last = await playerStats(page);
    if (predicate(last)) return last;
    if (last.fatal) throw new Error(`player failed: ${last.fatal}; errors: ${last.errors.join(', ')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`player did not reach the expected state: ${JSON.stringify(last)}`);
}
