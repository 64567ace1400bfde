import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, ffprobe, parseMedia } from '../helpers/probe.ts';
import { startTestS3Server, type TestS3Server } from '../helpers/s3-server.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';
import { launchChromium, openPlayer, startPlayerPageServer, waitForPlayer } from '../helpers/hlsjs-player.ts';

interface VideoView {
  uid: string;
  status: { state: string };
  readyToStream: boolean;
  duration: number;
}
interface InputView {
  status: { current: { state: string; reason?: string } } | null;
}

const listedSeconds = (text: string) => [...text.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);

/** The last part (msn, part index) a media playlist lists, to ask for the one after it. */
function lastPart(text: string): { msn: number; part: number } {
  const media = parseMedia(text);
  const tail = text.slice(text.lastIndexOf('#EXTINF'));
  const partsAfter = (tail.match(/#EXT-X-PART:/g) ?? []).length;
  // Parts after the last full segment belong to the segment being built (msn = sequence + count).
  return partsAfter > 0
    ? { msn: media.mediaSequence + media.segments.length, part: partsAfter - 1 }
    : { msn: media.mediaSequence + media.segments.length - 1, part: (text.match(/#EXT-X-PART:/g) ?? []).length - 1 };
}

// Scale-out as an operator runs it: three nodes on one machine sharing one redis-server and one
// S3-compatible store. A only ingests; B only serves and works; C does everything. Viewers play
// through B and C (which relay from A, the owner); A is SIGKILLed mid-broadcast and a surviving
// worker finalizes the recording from what A's spool had uploaded; the broadcaster reconnects
// to C and a new session starts cleanly.
describe('three nodes sharing Redis and S3', () => {
  let redis: TestRedis;
  let s3: TestS3Server;
  let a: TestServer;
  let b: TestServer;
  let c: TestServer;
  let browser: Browser;
  let pages: Awaited<ReturnType<typeof startPlayerPageServer>>;
  const publishers: TestPublisher[] = [];

  beforeAll(async () => {
    [redis, s3, browser, pages] = await Promise.all([startTestRedis(), startTestS3Server(), launchChromium(), startPlayerPageServer()]);
    const o = s3.storeOptions();
    const apiKey = `test_${randomBytes(16).toString('hex')}`;
    const env = {
      TRIBUTARY_REDIS_URL: redis.url,
      TRIBUTARY_STORAGE_KIND: 's3',
      TRIBUTARY_STORAGE_S3_ENDPOINT: o.endpoint ?? '',
      TRIBUTARY_STORAGE_S3_REGION: o.region,
      TRIBUTARY_STORAGE_S3_BUCKET: o.bucket,
      TRIBUTARY_STORAGE_S3_ACCESS_KEY_ID: o.accessKeyId,
      TRIBUTARY_STORAGE_S3_SECRET_ACCESS_KEY: o.secretAccessKey,
      TRIBUTARY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
      TRIBUTARY_CLUSTER_LEASE_TTL_MS: '2000',
      TRIBUTARY_CLUSTER_FAILOVER_SWEEP_MS: '500',
      TRIBUTARY_TRANSCODE_LADDER: JSON.stringify([{ name: '240p', height: 240, videoBitrateKbps: 300, audioBitrateKbps: 64 }]),
    };
    [a, b, c] = await Promise.all([
      startServer({ apiKey, startTimeoutMs: 150_000, env: { ...env, TRIBUTARY_CLUSTER_ROLES: '["ingest"]' } }),
      startServer({ apiKey, startTimeoutMs: 150_000, env: { ...env, TRIBUTARY_CLUSTER_ROLES: '["origin","worker"]' } }),
      startServer({ apiKey, startTimeoutMs: 150_000, env }),
    ]);
  }, 240_000);

  afterAll(async () => {
    for (const p of publishers) p.stop();
    await Promise.all(publishers.map((p) => p.exited));
    await browser?.close();
    await pages?.close();
    await Promise.all([a, b, c].map(async (s) => {
      await s?.stop();
      await s?.cleanup();
    }));
    await s3?.dispose();
    await redis?.stop();
  }, 120_000);

  it('plays through the other nodes, survives the owner’s death with a finalized recording, and takes the reconnect', async () => {
    // Any node's API sees the same state (one Redis).
    const input = await createLiveInput(b, { meta: { name: 'cluster' }, recording: { mode: 'automatic', timeoutSeconds: 5 } });
    expect((await c.api('GET', `/v1/live_inputs/${input.uid}`)).status).toBe(200);

    const publisher = publishTestStream({
      url: `${a.rtmpBase}/${input.streamKey}`,
      seconds: 120,
      width: 640,
      height: 360,
      fps: 30,
      gop: 30,
      audio: true,
      realtime: true,
    });
    publishers.push(publisher);

    // Playable through B and C, although neither ingests it.
    const masterB = `${b.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const masterC = `${c.httpUrl}/${input.uid}/manifest/video.m3u8`;
    await waitForHttp200(masterB, 45_000);
    await waitForHttp200(masterC, 45_000);
    const [probeB, probeC] = await Promise.all([ffprobe(masterB), ffprobe(masterC)]);
    for (const probe of [probeB, probeC]) {
      expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264')).toBe(true);
      expect(probe.streams.some((s) => s.codec_type === 'audio')).toBe(true);
    }

    // A blocking reload through C for the part after the newest one is held at the owner and
    // answered with a playlist that lists it.
    const mediaC = `${c.httpUrl}/${input.uid}/manifest/240p/index.m3u8`;
    const { msn, part } = lastPart(await waitForHttp200(mediaC));
    const next = await fetch(`${mediaC}?_HLS_msn=${msn}&_HLS_part=${part + 1}`);
    expect(next.status).toBe(200);
    expect(next.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const blocked = await next.text();
    const after = lastPart(blocked);
    expect(after.msn > msn || (after.msn === msn && after.part > part)).toBe(true);
    // A directive too far ahead gets the owner's 400, relayed.
    expect((await fetch(`${mediaC}?_HLS_msn=${msn + 1000}`)).status).toBe(400);

    // hls.js in Chromium plays the stream through B.
    const page = await openPlayer(browser, pages.url, masterB);
    const playing = await waitForPlayer(page, (s) => s.state === 'playing' && (s.currentTime ?? 0) > 0, 45_000);
    await waitForPlayer(page, (s) => (s.currentTime ?? 0) >= (playing.currentTime ?? 0) + 4, 30_000);
    const stats = await waitForPlayer(page, () => true);
    expect(stats.fatal).toBeNull();
    await page.close();

    // A only ingests: it answers the other nodes (who carry the cluster credential), not viewers,
    // and a forged credential is no credential.
    expect((await fetch(`${a.httpUrl}/${input.uid}/manifest/video.m3u8`)).status).toBe(404);
    expect((await fetch(`${a.httpUrl}/${input.uid}/manifest/video.m3u8`, { headers: { 'x-tributary-internal': 'guess' } })).status).toBe(404);
    // B and C still serve everyone else: an unknown id is a plain 404.
    expect((await fetch(`${b.httpUrl}/${'0'.repeat(32)}/manifest/video.m3u8`)).status).toBe(404);

    // One publisher per input across the cluster: the same key on another ingest node is refused,
    // and the broadcast on A goes on.
    const duplicate = await publishTestStream({ url: `${c.rtmpBase}/${input.streamKey}`, seconds: 5, width: 320, height: 240, realtime: true }).exited;
    expect(duplicate.code).not.toBe(0);
    await c.waitForLog((l) => l.msg === 'rtmp publish refused' && l.code === 'LIVE_INPUT_BUSY' && l.liveInputUid === input.uid, 10_000);
    expect((await fetch(masterC)).status).toBe(200);

    // A few seconds recorded, then the owner dies without a word.
    const deadline = Date.now() + 60_000;
    while (listedSeconds(await waitForHttp200(mediaC)) < 6) {
      if (Date.now() > deadline) throw new Error('the live stream did not reach 6 s of segments');
      await new Promise((r) => setTimeout(r, 250));
    }
    const recording = await c.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    expect(recording.body.result).toHaveLength(1);
    const videoUid = recording.body.result[0]!.uid;
    expect(recording.body.result[0]!.status.state).toBe('live-inprogress');

    const finalizedBy = (s: TestServer) =>
      s.waitForLog((l) => l.msg === 'recording of a lost node finalized' && l.video === videoUid, 60_000).then(() => s);
    const killedAt = Date.now();
    await a.kill();
    const winner = await Promise.any([finalizedBy(b), finalizedBy(c)]);
    console.log(`owner death → recording finalized by ${winner === b ? 'B' : 'C'} after ${Date.now() - killedAt} ms (lease TTL 2000 ms, sweep 500 ms)`);
    await publisher.stop();

    const video = await b.api<{ result: VideoView }>('GET', `/v1/videos/${videoUid}`);
    expect(video.body.result).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    // What A had uploaded before it died: at least the seconds listed before the kill, but for
    // the newest segments still in its spool.
    expect(video.body.result.duration).toBeGreaterThanOrEqual(3);
    const played = await decodedDuration(`${c.httpUrl}/${videoUid}/manifest/video.m3u8`);
    console.log(`failover video ${video.body.result.duration} s; ffmpeg decoded ${played} s through C`);
    expect(Math.abs(played - video.body.result.duration)).toBeLessThan(1.5);

    // The input says what happened.
    const status = await b.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`);
    expect(status.body.result.status?.current).toMatchObject({ state: 'disconnected', reason: 'node_lost' });

    // The broadcaster reconnects to another ingest node: a new session, playable through B.
    const again = publishTestStream({ url: `${c.rtmpBase}/${input.streamKey}`, seconds: 60, width: 640, height: 360, fps: 30, gop: 30, audio: true, realtime: true });
    publishers.push(again);
    const text = await waitForHttp200(masterB, 45_000);
    expect(text).toContain('#EXT-X-STREAM-INF');
    const reconnected = await b.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`);
    expect(reconnected.body.result.status?.current.state).toBe('connected');
    const probe = await ffprobe(masterB);
    expect(probe.streams.some((s) => s.codec_type === 'video')).toBe(true);
    again.stop();
    await again.exited;
  }, 400_000);
});
