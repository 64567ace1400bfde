import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { decodedDuration, ffprobe, parseMaster } from '../helpers/probe.ts';
import { launchChromium, openPlayer, startPlayerPageServer, waitForPlayer } from '../helpers/hlsjs-player.ts';
import { publishFromBrowser, waitForPublishing, type BrowserPublisher } from '../helpers/whip-browser.ts';
import type { Browser } from 'playwright-core';

interface InputView {
  webRTC: { url: string };
  status: { current: { state: string; ingestProtocol?: string; health?: { videoCodec?: string; audioCodec?: string } } } | null;
}
interface VideoView {
  uid: string;
  duration: number;
  status: { state: string };
}

const CONSENT_TIMEOUT_MS = 3000;

// The README's browser story: a page captures camera and microphone and publishes with a few
// lines of RTCPeerConnection + fetch (WHIP); viewers play it through the LL-HLS origin.
describe('WHIP from a real browser (Chromium, fake camera and microphone)', () => {
  let server: TestServer;
  let viewer: Browser;
  let playerPages: Awaited<ReturnType<typeof startPlayerPageServer>>;
  const publishers: BrowserPublisher[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: {
        TRIBUTARY_WHIP_CONSENT_TIMEOUT_MS: String(CONSENT_TIMEOUT_MS),
        // The publishing page is served from its own origin: CORS must let it in.
        TRIBUTARY_WHIP_ALLOWED_ORIGINS: '["127.0.0.1"]',
      },
    });
    viewer = await launchChromium();
    playerPages = await startPlayerPageServer();
  });

  afterAll(async () => {
    for (const p of publishers) await p.close();
    await viewer?.close();
    await playerPages?.close();
    await server?.stop();
    await server?.cleanup();
  });

  async function publish(codec: 'H264' | 'VP8', name: string) {
    const input = await createLiveInput(server, { meta: { name }, recording: { mode: 'automatic', timeoutSeconds: 2 } });
    const view = (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result;
    expect(view.webRTC.url).toBe(`${server.httpUrl}/whip/${input.uid}`);
    const publisher = await publishFromBrowser(view.webRTC.url, input.streamKey, codec);
    publishers.push(publisher);
    const page = await waitForPublishing(publisher);
    const connectedAt = Date.now();
    expect(page.http).toBe(201);
    expect(page.location).toMatch(new RegExp(`/whip/${input.uid}/sessions/[0-9a-f]{32}$`));
    expect(page.etag).toMatch(/^"[0-9a-f]{16}"$/);
    const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const master = await waitForHttp200(masterUrl, 40_000);
    const firstPlayableMs = Date.now() - connectedAt;
    console.log(`${codec}: POST → 201 ${Math.round(page.postMs ?? 0)} ms (in the browser); connected → master playlist ${firstPlayableMs} ms`);
    return { input, publisher, masterUrl, master };
  }

  async function checkPlayback(masterUrl: string, master: string) {
    // ffprobe: H.264 at the camera's size and AAC audio.
    const variants = parseMaster(master);
    expect(variants[0]?.attrs.RESOLUTION).toBe('640x480');
    expect(variants[0]?.attrs.CODECS).toMatch(/^avc1\.[0-9a-f]{6},mp4a\.40\.2$/i);
    const probe = await ffprobe(masterUrl);
    expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264' && s.width === 640 && s.height === 480)).toBe(true);
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
    // hls.js plays it and keeps playing.
    const page = await openPlayer(viewer, playerPages.url, masterUrl);
    try {
      const first = await waitForPlayer(page, (s) => s.state === 'playing' && (s.currentTime ?? 0) > 0, 40_000);
      await waitForPlayer(page, (s) => (s.currentTime ?? 0) > (first.currentTime ?? 0) + 2, 30_000);
    } finally {
      await page.close();
    }
  }

  it('H.264 (Constrained Baseline, copied): played by ffprobe and hls.js, shown on the input, ended by DELETE', async () => {
    const { input, publisher, masterUrl, master } = await publish('H264', 'browser h264');
    expect(await publisher.page.evaluate(() => (globalThis as unknown as { sentCodec(): Promise<string> }).sentCodec())).toBe('video/H264');
    const status = (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result.status;
    expect(status?.current).toMatchObject({ state: 'connected', ingestProtocol: 'whip', health: { videoCodec: 'h264', audioCodec: 'aac' } });
    await checkPlayback(masterUrl, master);

    await publisher.page.evaluate(() => (globalThis as unknown as { stopPublishing(): Promise<void> }).stopPublishing());
    const ending = await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 15_000);
    expect(ending.reason).toBe('client_disconnect');
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 20_000);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === ended.video, 20_000);
    const videos = await server.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    expect(videos.body.result[0]).toMatchObject({ uid: ended.video, status: { state: 'ready' } });
    // The session resource is gone.
    expect((await fetch((await publisher.state()).location!, { method: 'DELETE' })).status).toBe(404);
  });

  it('VP8 (transcoded to H.264): played; the browser killed mid-stream ends the session within the consent timeout, recording intact', async () => {
    const { input, publisher, masterUrl, master } = await publish('VP8', 'browser vp8');
    expect(await publisher.page.evaluate(() => (globalThis as unknown as { sentCodec(): Promise<string> }).sentCodec())).toBe('video/VP8');
    await checkPlayback(masterUrl, master);

    // No DELETE, no DTLS close: the browser process just dies.
    const killedAt = Date.now();
    process.kill(publisher.pid!, 'SIGKILL');
    const ending = await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 30_000);
    expect(ending.reason).toBe('timeout');
    console.log(`VP8: killed browser → session ended after ${Date.now() - killedAt} ms (consent timeout ${CONSENT_TIMEOUT_MS} ms)`);

    // Same lifecycle as RTMP: the reconnect window, then the recording becomes a playable video.
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 20_000);
    const videoUid = String(ended.video);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 20_000);
    const video = (await server.api<{ result: VideoView }>('GET', `/v1/videos/${videoUid}`)).body.result;
    expect(video.status.state).toBe('ready');
    expect(video.duration).toBeGreaterThan(3);
    const played = await decodedDuration(`${server.httpUrl}/${videoUid}/manifest/video.m3u8`);
    expect(Math.abs(played - video.duration)).toBeLessThan(1.5);
    const after = (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result.status;
    // A publisher that vanished and did not come back within the reconnect window.
    expect(after?.current.state).toBe('ttl_exceeded');
  });
});
