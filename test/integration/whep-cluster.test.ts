import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { playWithWerift, type WeriftViewer } from '../helpers/whep-werift-viewer.ts';

// Two nodes (every role) sharing one redis-server: a WHEP POST at the node that does not hold the
// live session is redirected (307) to the one that does, and plays there.
describe('WHEP in a cluster', () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer;
  let publisher: TestPublisher | undefined;
  const viewers: WeriftViewer[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    const env = { TRIBUTARY_REDIS_URL: redis.url, TRIBUTARY_CLUSTER_LEASE_TTL_MS: '2000' };
    const apiKey = `test_${randomBytes(16).toString('hex')}`;
    [a, b] = await Promise.all([startServer({ apiKey, env, startTimeoutMs: 90_000 }), startServer({ apiKey, env, startTimeoutMs: 90_000 })]);
  }, 120_000);

  afterAll(async () => {
    for (const v of viewers) await v.stop().catch(() => undefined);
    await publisher?.stop();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([a?.cleanup(), b?.cleanup()]);
    await redis?.stop();
  });

  it('answers 307 to the owner, whose answer then plays', async () => {
    const input = await createLiveInput(a, { meta: { name: 'cluster-whep' }, recording: { mode: 'off' } });
    publisher = publishTestStream({ url: `${a.rtmpBase}/${input.streamKey}`, width: 320, height: 180, gop: 30 });
    await waitForHttp200(`${a.httpUrl}/${input.uid}/manifest/video.m3u8`, 40_000);
    // B knows the owner through its lease (the relayed playlist proves it).
    await waitForHttp200(`${b.httpUrl}/${input.uid}/manifest/video.m3u8`, 20_000);
    const offer = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=recvonly\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n';
    const redirect = await fetch(`${b.httpUrl}/${input.uid}/webRTC/play`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: offer, redirect: 'manual' });
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('location')).toBe(`${a.httpUrl}/${input.uid}/webRTC/play`);
    const viewer = await playWithWerift(`${b.httpUrl}/${input.uid}/webRTC/play`);
    viewers.push(viewer);
    expect(viewer.location.startsWith(`${a.httpUrl}/`)).toBe(true);
    await viewer.decodable;
  });
});
