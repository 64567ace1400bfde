import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import type { Browser } from 'playwright-core';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { launchChromium, openPlayer, playerStats, startPlayerPageServer, waitForPlayer } from '../helpers/hlsjs-player.ts';

// A real viewer: hls.js (lowLatencyMode) in Debian's headless Chromium plays a live RTMP stream,
// keeps playing without stalls, and switches renditions when told to.
describe('hls.js in Chromium plays a live stream', () => {
  let server: TestServer;
  let browser: Browser;
  let pages: Awaited<ReturnType<typeof startPlayerPageServer>>;

  beforeAll(async () => {
    [server, browser, pages] = await Promise.all([startServer(), launchChromium(), startPlayerPageServer()]);
  });
  afterAll(async () => {
    await browser?.close();
    await pages?.close();
    await server?.stop();
    await server?.cleanup();
  });

  it('plays 20 s with no stall and switches renditions on request', async () => {
    const input = await createLiveInput(server, { meta: { name: 'browser' } });
    const publisher = publishTestStream({
      url: `${server.rtmpBase}/${input.streamKey}`,
      seconds: 40,
      width: 854,
      height: 480,
      fps: 30,
      gop: 30,
      audio: true,
      realtime: true,
    });
    try {
      const src = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
      await waitForHttp200(src, 30_000);
      const page = await openPlayer(browser, pages.url, src);
      const started = await waitForPlayer(page, (s) => s.state === 'playing' && (s.currentTime ?? 0) > 0, 30_000);
      expect(started.levels.map((l) => l.height).sort()).toEqual([360, 480]);

      // Watch 20 s of playback: time advances, no fatal error, no stall.
      const t0 = (await playerStats(page)).currentTime ?? 0;
      const stalls0 = started.stalls;
      await waitForPlayer(page, (s) => (s.currentTime ?? 0) >= t0 + 10, 20_000);
      // Ask for the 360p level (index of height 360) and check the switch happens.
      const target = started.levels.findIndex((l) => l.height === 360);
      await page.evaluate((level) => {
        (globalThis as unknown as { hls: { currentLevel: number } }).hls.currentLevel = level;
      }, target);
      const switched = await waitForPlayer(page, (s) => s.currentLevel === target, 15_000);
      expect(switched.levelSwitches).toContain(target);
      const end = await waitForPlayer(page, (s) => (s.currentTime ?? 0) >= t0 + 20, 20_000);
      expect(end.fatal).toBeNull();
      expect(end.stalls - stalls0).toBe(0);
      const latency = end.latency.at(-1);
      expect(latency).toBeGreaterThan(0);
      // Reported for the note, not asserted: tests never fail on wall-clock time.
      console.log(`hls.js: first frame after ${Math.round(end.firstFrameAt ?? -1)} ms, latency ${latency?.toFixed(2)} s`);
    } finally {
      publisher.stop();
      await publisher.exited;
    }
  });
});
