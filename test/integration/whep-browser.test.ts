import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { launchChromium } from '../helpers/hlsjs-player.ts';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';

interface PageMedia {
  state: string | null;
  protocol: string | null;
  frames: number;
  width: number;
  audioTracks: number;
  videoTracks: number;
}

// The test code is compiled without the DOM library: the little of it used in the page, typed here.
interface PageVideo {
  videoWidth: number;
  srcObject: { getAudioTracks(): unknown[]; getVideoTracks(): unknown[] } | null;
  requestVideoFrameCallback(cb: () => void): void;
}
interface PageDocument {
  querySelector(s: string): PageVideo | null;
  body: { getAttribute(name: string): string | null };
}

/** Runs in the page: counts presented frames (requestVideoFrameCallback) of the player's video. */
const countFrames = () => {
  const g = globalThis as unknown as { presented?: number; document: PageDocument };
  const video = g.document.querySelector('video');
  if (!video || g.presented !== undefined) return;
  g.presented = 0;
  const onFrame = () => {
    g.presented = (g.presented ?? 0) + 1;
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
};

const readMedia = (): PageMedia => {
  const g = globalThis as unknown as { presented?: number; document: PageDocument };
  const video = g.document.querySelector('video');
  const stream = video?.srcObject ?? null;
  return {
    state: g.document.body.getAttribute('data-state'),
    protocol: g.document.body.getAttribute('data-protocol'),
    frames: g.presented ?? 0,
    width: video?.videoWidth ?? 0,
    audioTracks: stream?.getAudioTracks().length ?? 0,
    videoTracks: stream?.getVideoTracks().length ?? 0,
  };
};

describe('WHEP in Chromium (the embed player with protocol=webrtc)', () => {
  let server: TestServer;
  let browser: Browser;
  let publisher: TestPublisher | undefined;
  let uid = '';

  beforeAll(async () => {
    [server, browser] = await Promise.all([startServer({ env: { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1' } }), launchChromium()]);
    const input = await createLiveInput(server, { meta: { name: 'whep-browser' } });
    uid = input.uid;
    publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, gop: 30 });
    await waitForHttp200(`${server.httpUrl}/${uid}/manifest/video.m3u8`, 40_000);
  });

  afterAll(async () => {
    await browser?.close();
    await publisher?.stop();
    await server?.stop();
    await server?.cleanup();
  });

  async function playing(page: Page, protocol: string): Promise<PageMedia> {
    await page.waitForFunction(() => (globalThis as unknown as { document: PageDocument }).document.body.getAttribute('data-state') === 'playing', undefined, { timeout: 30_000 });
    await page.evaluate(countFrames);
    // Thirty presented frames: video really decodes, not one frozen picture.
    await page.waitForFunction(() => ((globalThis as unknown as { presented?: number }).presented ?? 0) >= 30, undefined, { timeout: 20_000 });
    const media = await page.evaluate(readMedia);
    expect(media.protocol).toBe(protocol);
    return media;
  }

  it('plays an RTMP-published stream over WHEP: frames presented, audio track present; closing the page ends the viewer', async () => {
    onTestFailed(() => console.log(server.output().split('\n').filter((l) => /whep|opus/i.test(l)).slice(-30).join('\n')));
    const page = await browser.newPage();
    await page.goto(`${server.httpUrl}/${uid}/iframe?protocol=webrtc`);
    const media = await playing(page, 'webrtc');
    expect(media.width).toBe(640);
    expect(media.videoTracks).toBe(1);
    expect(media.audioTracks).toBe(1);
    const connected = server.logs.find((l) => l.msg === 'whep viewer connected');
    console.log(`Chromium WHEP: connected ${String(connected?.ms)} ms after the offer; ${media.frames} frames presented`);
    await page.close({ runBeforeUnload: true });
    await server.waitForLog((l) => l.msg === 'whep viewer closed' && (l.reason === 'deleted' || l.reason === 'peer_gone' || l.reason === 'timeout'), 20_000);
  });

  it('protocol=auto falls back to HLS when the server refuses the WHEP offer', async () => {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      // A browser without H.264 for WebRTC: the offer it POSTs names no H264 (the server says 406).
      const original = globalThis.fetch;
      globalThis.fetch = (input: Parameters<typeof fetch>[0], init?: RequestInit) => {
        if (String(input).endsWith('/webRTC/play') && typeof init?.body === 'string') {
          const body = init.body;
          const pts = [...body.matchAll(/^a=rtpmap:(\d+) H264\/90000/gm)].map((m) => m[1]);
          const keep = (l: string) => !pts.some((pt) => l.startsWith(`a=rtpmap:${pt} `) || l.startsWith(`a=fmtp:${pt} `) || l.startsWith(`a=rtcp-fb:${pt} `));
          return original(input, { ...init, body: body.split('\r\n').filter(keep).join('\r\n') });
        }
        return original(input, init);
      };
    });
    await page.goto(`${server.httpUrl}/${uid}/iframe?protocol=auto`);
    await playing(page, 'hls');
    expect(await page.evaluate(() => (globalThis as unknown as { document: PageDocument }).document.body.getAttribute('data-whep-error'))).toBe('WHEP 406');
    await page.close();
  });
});
