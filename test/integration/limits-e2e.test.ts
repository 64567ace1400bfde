import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { parseMaster, parseMedia } from '../helpers/probe.ts';

// Limits and protection, on one real server: the ingest bitrate cap, the per-node session cap,
// and blocking of addresses that keep failing authentication on the API, playback and RTMP —
// each refusal clear, and the well-behaved stream, viewer and API client served throughout.
describe('limits and failed-authentication blocking', () => {
  let server: TestServer;
  const publishers: TestPublisher[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: {
        TRIBUTARY_LIMITS_MAX_LIVE_SESSIONS: '1',
        TRIBUTARY_LIMITS_MAX_INPUT_BITRATE_KBPS: '1500',
        TRIBUTARY_LIMITS_AUTH_FAILURES_MAX: '3',
        TRIBUTARY_LIMITS_AUTH_FAILURES_EXEMPT_CIDRS: '[]',
        // The test client is the proxy: X-Forwarded-For tells attacker and good client apart.
        TRIBUTARY_ACCESS_TRUSTED_PROXIES: '["127.0.0.1/32"]',
      },
    });
  });
  afterAll(async () => {
    await Promise.all(publishers.map((p) => p.stop(500)));
    await server?.stop();
    await server?.cleanup();
  });

  it('disconnects a publisher above the bitrate cap, refuses a session over the node cap, blocks repeat offenders only', async () => {
    // 1. A 4 Mbit/s CBR publisher against a 1.5 Mbit/s cap: cut after a full 10 s window.
    const greedy = await createLiveInput(server, { meta: { name: 'greedy' } });
    const hog = publishTestStream({
      url: `${server.rtmpBase}/${greedy.streamKey}`,
      seconds: 60,
      width: 640,
      height: 360,
      fps: 30,
      audio: false,
      extraOutputArgs: ['-b:v', '4M', '-minrate', '4M', '-maxrate', '4M', '-bufsize', '2M', '-x264-params', 'nal-hrd=cbr'],
    });
    publishers.push(hog);
    await server.waitForLog((l) => l.msg === 'publisher over the ingest bitrate limit: disconnecting', 40_000);
    const hogExit = await hog.exited;
    expect(hogExit.code).not.toBe(0); // the server closed the connection under it
    const ended = await server.waitForLog((l) => l.msg === 'session ending' && l.reason === 'over_limit');
    expect(ended.liveInput).toBe(greedy.uid);

    // 2. The well-behaved stream (well under the cap), then a second one over the node's session cap.
    const good = await createLiveInput(server, { meta: { name: 'good' } });
    const goodPub = publishTestStream({ url: `${server.rtmpBase}/${good.streamKey}`, seconds: 120, width: 320, height: 240, fps: 15, gop: 15 });
    publishers.push(goodPub);
    const masterUrl = `${server.httpUrl}/${good.uid}/manifest/video.m3u8`;
    const mediaUrl = new URL(parseMaster(await waitForHttp200(masterUrl, 30_000))[0]!.uri, masterUrl).toString();
    const before = parseMedia(await waitForHttp200(mediaUrl));

    const other = await createLiveInput(server, { meta: { name: 'other' } });
    const refused = await publishTestStream({ url: `${server.rtmpBase}/${other.streamKey}`, seconds: 3, width: 160, height: 120, fps: 10, audio: false }).exited;
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/NODE_AT_CAPACITY|Denied|error/i);
    await server.waitForLog((l) => l.msg === 'rtmp publish refused' && l.code === 'NODE_AT_CAPACITY');

    // 3. API: an address presenting wrong keys is blocked (429 + Retry-After, even with the right
    // key afterwards); another address with the right key is served.
    const attacker = { 'x-forwarded-for': '203.0.113.66' };
    for (let i = 0; i < 4; i++) {
      const res = await server.api('GET', '/v1/live_inputs', undefined, { ...attacker, authorization: `Bearer wrong-${i}` });
      expect(res.status).toBe(401);
    }
    const blocked = await server.api<{ errors: Array<{ code: string }> }>('GET', '/v1/live_inputs', undefined, attacker);
    expect(blocked.status).toBe(429);
    expect(blocked.body.errors[0]!.code).toBe('TOO_MANY_AUTH_FAILURES');
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    const fine = await server.api('GET', '/v1/live_inputs', undefined, { 'x-forwarded-for': '198.51.100.7' });
    expect(fine.status).toBe(200);

    // 4. Playback: forged tokens from one address → 429 for it; another viewer plays on.
    const forger = { 'x-forwarded-for': '203.0.113.77' };
    const forged = 'eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    const forgedStatuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      forgedStatuses.push((await fetch(`${server.httpUrl}/${forged}/manifest/video.m3u8`, { headers: forger })).status);
    }
    expect(forgedStatuses.slice(0, 4)).toEqual([403, 403, 403, 403]);
    expect(forgedStatuses[4]).toBe(429);
    const viewer = await fetch(masterUrl, { headers: { 'x-forwarded-for': '198.51.100.8' } });
    expect(viewer.status).toBe(200);
    // Uid playback without a token is not an authentication attempt: the forger's own address may still play public streams.
    expect((await fetch(masterUrl, { headers: forger })).status).toBe(200);

    // 5. RTMP key guessing from this address: after 3 unknown keys the address is refused outright
    // (the running publisher from the same address keeps publishing).
    for (let i = 0; i < 4; i++) {
      const exit = await publishTestStream({ url: `${server.rtmpBase}/guess-${i}-0123456789abcdef`, seconds: 2, width: 160, height: 120, fps: 10, audio: false }).exited;
      expect(exit.code).not.toBe(0);
    }
    await server.waitForLog((l) => l.msg === 'publisher address blocked after repeated unknown stream keys');
    const afterBlock = await publishTestStream({ url: `${server.rtmpBase}/${other.streamKey}`, seconds: 2, width: 160, height: 120, fps: 10, audio: false }).exited;
    expect(afterBlock.code).not.toBe(0);
    await server.waitForLog((l) => l.msg === 'rtmp publish refused' && l.code === 'TOO_MANY_AUTH_FAILURES');

    // The good stream advanced through all of it.
    const later = parseMedia(await waitForHttp200(mediaUrl));
    expect(later.mediaSequence + later.segments.length).toBeGreaterThan(before.mediaSequence + before.segments.length);
    expect(server.process.exitCode).toBeNull();
  }, 150_000);
});
