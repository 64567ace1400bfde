import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, parseMaster, parseMedia } from '../helpers/probe.ts';
import { startTestS3Server, type TestS3Server } from '../helpers/s3-server.ts';
import { S3Store } from '../../src/storage/s3-store.ts';

interface SpoolHealth {
  degraded: boolean;
  pendingFiles: number;
  oldestPendingAgeMs: number;
  failedAttempts: number;
  lastError?: { message: string; at: string };
}

const BROADCAST_SECONDS = 50;
const OUTAGE_MS = 30_000;

// "Nothing a broadcaster sent may be lost to an object-store outage": the S3-compatible server is
// killed for 30 s in the middle of a broadcast and started again on the same port and directory.
// The live stream goes on meanwhile, the spool holds what it records, /readyz says it is behind,
// and once the store is back every segment of every rendition lands and the VOD plays to the end.
describe('an object-store outage mid-broadcast loses nothing', () => {
  let s3: TestS3Server;
  let server: TestServer;
  let publisher: TestPublisher | undefined;
  let bucket: S3Store;

  beforeAll(async () => {
    s3 = await startTestS3Server();
    const o = s3.storeOptions();
    bucket = new S3Store({ ...o, maxAttempts: 1 });
    server = await startServer({
      env: s3.serverEnv(),
    });
  });

  afterAll(async () => {
    await publisher?.stop();
    await server?.stop();
    await server?.cleanup();
    await bucket?.close();
    await s3?.dispose();
  });

  it('every segment of every rendition reaches the store after a 30 s outage, and the VOD plays start to end', async () => {
    const input = await createLiveInput(server, {
      meta: { name: 'outage' },
      recording: { mode: 'automatic', timeoutSeconds: 0 },
      ladder: [{ name: '180p', height: 180, videoBitrateKbps: 200, audioBitrateKbps: 64 }],
    });
    publisher = publishTestStream({
      url: `${server.rtmpBase}/${input.streamKey}`,
      seconds: BROADCAST_SECONDS,
      width: 640,
      height: 360,
      fps: 30,
      gop: 30,
    });
    const liveMedia = `${server.httpUrl}/${input.uid}/manifest/180p/index.m3u8`;
    const listedSeconds = (text: string) => [...text.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);
    const live = await server.api<{ result: Array<{ uid: string }> }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    const deadline = Date.now() + 30_000;
    while (listedSeconds(await waitForHttp200(liveMedia, 30_000)) < 6) {
      if (Date.now() > deadline) throw new Error('the live stream did not reach 6 s of segments');
      await new Promise((r) => setTimeout(r, 200));
    }
    const videoUid = (await server.api<{ result: Array<{ uid: string }> }>('GET', `/v1/live_inputs/${input.uid}/videos`)).body.result[0]?.uid;
    expect(videoUid, JSON.stringify(live.body)).toMatch(/^[0-9a-f]{32}$/);
    // Before the outage, the store receives segments as they are recorded.
    await expect.poll(async () => (await countObjects(bucket, `videos/${videoUid}/`)) > 0, { timeout: 15_000 }).toBe(true);

    await s3.stop();
    const outageStart = Date.now();
    const before = parseMedia(await waitForHttp200(liveMedia)).segments.at(-1);
    await new Promise((r) => setTimeout(r, OUTAGE_MS));
    // The live stream went on through the outage…
    const during = parseMedia(await waitForHttp200(liveMedia)).segments;
    expect(during.at(-1)).not.toBe(before);
    // …the spool holds what was recorded, and /readyz says the node is behind (but still ready).
    const readyz = await fetch(`${server.httpUrl}/readyz`);
    expect(readyz.status).toBe(200);
    const health = (await readyz.json()) as { status: string; spool: SpoolHealth };
    console.log(`after ${Date.now() - outageStart} ms of outage: ${JSON.stringify(health.spool)}`);
    expect(health.status).toBe('ready');
    expect(health.spool.degraded).toBe(true);
    expect(health.spool.pendingFiles).toBeGreaterThan(10);
    expect(health.spool.failedAttempts).toBeGreaterThan(0);
    expect(health.spool.lastError?.message).toBeTruthy();
    await s3.start();

    const exit = await publisher.exited;
    expect(exit.code, exit.stderr).toBe(0);
    const finalized = await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 120_000);
    console.log(`finalized ${Date.now() - outageStart - OUTAGE_MS} ms after the store came back`);

    const video = (await server.api<{ result: { status: { state: string }; duration: number } }>('GET', `/v1/videos/${videoUid}`)).body.result;
    expect(video.status.state).toBe('ready');
    expect(Math.abs(video.duration - BROADCAST_SECONDS)).toBeLessThan(2.5);
    // Nothing was dropped between the packager and the spool.
    expect(server.logs.filter((l) => l.msg === 'segment not recorded')).toEqual([]);
    expect(finalized.renditions).toEqual(expect.arrayContaining(['source', '180p']));

    const master = await waitForHttp200(`${server.httpUrl}/${videoUid}/manifest/video.m3u8`);
    const renditions = parseMaster(master).map((v) => v.uri.split('/')[0]!);
    expect(renditions.sort()).toEqual(['180p', 'source']);
    const stored = await listObjects(bucket, `videos/${videoUid}/`);
    for (const rendition of renditions) {
      const mediaUrl = `${server.httpUrl}/${videoUid}/manifest/${rendition}/index.m3u8`;
      const text = await waitForHttp200(mediaUrl);
      const media = parseMedia(text);
      // One continuous recording: a segment lost anywhere would show as a discontinuity or a gap.
      expect(media.discontinuities, rendition).toBe(0);
      expect(Math.abs(listedSeconds(text) - BROADCAST_SECONDS), rendition).toBeLessThan(2.5);
      const inits = [...text.matchAll(/#EXT-X-MAP:URI="([^"]+)"/g)].map((m) => m[1]!);
      for (const file of [...new Set(inits), ...media.segments]) {
        expect(stored.get(`videos/${videoUid}/${rendition}/${file}`), `${rendition}/${file}`).toBeGreaterThan(0);
      }
      const played = await decodedDuration(mediaUrl);
      console.log(`${rendition}: ${media.segments.length} segments, ${listedSeconds(text).toFixed(2)} s listed, ${played} s decoded`);
      expect(Math.abs(played - listedSeconds(text)), rendition).toBeLessThan(1.5);
    }
    // The spool is empty again and says so.
    const after = (await (await fetch(`${server.httpUrl}/readyz`)).json()) as { spool: SpoolHealth };
    expect(after.spool).toMatchObject({ pendingFiles: 0, oldestPendingAgeMs: 0, degraded: false });
    const leftovers = (await readdir(path.join(server.dataDir, 'spool'))).filter((f) => !f.startsWith('.'));
    expect(leftovers).toEqual([]);
  });
});

async function listObjects(store: S3Store, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const { key, size } of store.list(prefix)) out.set(key, size);
  return out;
}

async function countObjects(store: S3Store, prefix: string): Promise<number> {
  try {
    return (await listObjects(store, prefix)).size;
  } catch {
    return 0;
  }
}
