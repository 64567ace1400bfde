import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServer, createLiveInput, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, ffprobe } from '../helpers/probe.ts';
import { mulberry32 } from '../helpers/prng.ts';

interface VideoView {
  uid: string;
  status: { state: string };
  duration: number;
  thumbnail: string;
  thumbnailTimestampPct: number;
  scheduledDeletion: string | null;
  requireSignedURLs: boolean;
  renditions: Array<{ name: string; height: number }>;
}
interface DownloadView {
  default: { status: string; url: string; percentComplete: number };
}
interface ErrorView {
  errors: Array<{ code: string; message: string }>;
}

const DAY_MS = 86_400_000;

// Derived files of a recorded broadcast as a user meets them: thumbnails (JPEG and GIF, cached),
// the MP4 download (built by a job, served with byte ranges, gated by signed tokens), and
// scheduled deletion. One short recording serves every check.
describe('VOD derived files: thumbnails, MP4 download, scheduled deletion', () => {
  let server: TestServer;
  let work: string;
  let uid: string;
  let video: VideoView;
  const get = (p: string, headers: Record<string, string> = {}) => fetch(`${server.httpUrl}${p}`, { headers });
  const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());
  let fileCount = 0;
  /** ffprobe of a body, written to a file first (images are not streamable input). */
  const probeBody = async (body: Buffer, ext: string, extra: string[] = []) => {
    const file = path.join(work, `probe-${fileCount++}.${ext}`);
    await writeFile(file, body);
    return ffprobe(file, extra);
  };
  const mint = async (body: Record<string, unknown>) => {
    const res = await server.api<{ result: { token: string } }>('POST', `/v1/videos/${uid}/token`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.result.token;
  };

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'trib-derived-'));
    server = await startServer({
      env: {
        TRIBUTARY_VOD_DELETION_SWEEP_SECONDS: '1',
        // One render at a time and one waiting: a burst of distinct thumbnails meets the limit.
        TRIBUTARY_VOD_THUMBNAIL_CONCURRENCY: '1',
        TRIBUTARY_VOD_THUMBNAIL_QUEUE: '1',
      },
    });
    const input = await createLiveInput(server, {
      meta: { name: 'derived' },
      recording: { mode: 'automatic', timeoutSeconds: 0 },
      deleteRecordingAfterDays: 30,
      // Two renditions: the download takes the best, a small thumbnail the smallest that fits.
      ladder: [{ name: '180p', height: 180, videoBitrateKbps: 200, audioBitrateKbps: 64 }],
    });
    const published = await publishTestStream({
      url: `${server.rtmpBase}/${input.streamKey}`,
      seconds: 8,
      width: 640,
      height: 360,
      fps: 30,
      gop: 30,
    }).exited;
    expect(published.code, published.stderr).toBe(0);
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 30_000);
    uid = String(ended.video);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === uid, 30_000);
    video = (await server.api<{ result: VideoView }>('GET', `/v1/videos/${uid}`)).body.result;
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('the recorded video names its default thumbnail, rendered at finalize and served from the cache', async () => {
    expect(video.status.state).toBe('ready');
    expect(video.renditions.map((r) => r.name).sort()).toEqual(['180p', 'source']);
    expect(video.thumbnail).toBe(`${server.httpUrl}/${uid}/thumbnails/thumbnail.jpg`);
    expect(video.thumbnailTimestampPct).toBe(0);
    // deleteRecordingAfterDays: 30 on the input → scheduled 30 days after the recording began.
    const scheduled = Date.parse(video.scheduledDeletion ?? '');
    expect(Math.abs(scheduled - (Date.now() + 30 * DAY_MS))).toBeLessThan(120_000);

    // Warmed at finalize: the default thumbnail is (or very soon becomes) a cache hit.
    await expect
      .poll(async () => (await get(`/${uid}/thumbnails/thumbnail.jpg`)).headers.get('x-tributary-cache'), { timeout: 15_000 })
      .toBe('hit');
    const res = await get(`/${uid}/thumbnails/thumbnail.jpg`);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    const probe = await probeBody(await bytes(res), 'jpg');
    expect(probe.streams[0]).toMatchObject({ codec_name: 'mjpeg', width: 640, height: 360 });
  });

  it('renders JPEG thumbnails at a time and size, each fit, and serves the second request from the store', async () => {
    const first = await get(`/${uid}/thumbnails/thumbnail.jpg?time=3s&width=320&height=180`);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-tributary-cache')).toBe('miss');
    const firstBody = await bytes(first);
    expect((await probeBody(firstBody, 'jpg')).streams[0]).toMatchObject({ codec_name: 'mjpeg', width: 320, height: 180 });
    const second = await get(`/${uid}/thumbnails/thumbnail.jpg?time=3s&width=320&height=180`);
    expect(second.headers.get('x-tributary-cache')).toBe('hit');
    expect((await bytes(second)).equals(firstBody)).toBe(true);
    // The cached picture is an object under the video's prefix in the store (the disk store here).
    const cacheFile = path.join(server.dataDir, 'media', 'videos', uid, 'thumbnails', 't300-w320-h180-crop.jpg');
    expect((await stat(cacheFile)).size).toBe(firstBody.length);

    // Different times are different pictures (testsrc2 moves).
    const later = await bytes(await get(`/${uid}/thumbnails/thumbnail.jpg?time=6.5s&width=320&height=180`));
    expect(later.equals(firstBody)).toBe(false);

    const sizes: Record<string, [number, number]> = {
      'width=200&height=200&fit=crop': [200, 200],
      'width=200&height=200&fit=scale': [200, 200],
      'width=200&height=200&fit=fill': [200, 200],
      'width=200&height=200&fit=clip': [200, 112],
      'width=160': [160, 90],
      'height=90&time=50%': [160, 90],
      'time=0m1.5s&width=64&height=64': [64, 64],
    };
    for (const [query, [w, h]] of Object.entries(sizes)) {
      const res = await get(`/${uid}/thumbnails/thumbnail.jpg?${query}`);
      expect(res.status, `${query}: ${res.status}`).toBe(200);
      const s = (await probeBody(await bytes(res), 'jpg')).streams[0];
      expect(s?.width, query).toBe(w);
      expect(Math.abs((s?.height ?? 0) - h), `${query}: height ${s?.height}`).toBeLessThanOrEqual(1);
    }
  });

  it('renders animated GIFs of a duration and frame rate', async () => {
    const res = await get(`/${uid}/thumbnails/thumbnail.gif?time=1s&duration=2s&fps=5&width=160`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/gif');
    const body = await bytes(res);
    const probe = await probeBody(body, 'gif', ['-count_frames']);
    const stream = probe.streams[0] as { codec_name: string; width: number; height: number; nb_read_frames?: string };
    expect(stream).toMatchObject({ codec_name: 'gif', width: 160, height: 90 });
    const frames = Number(stream.nb_read_frames);
    console.log(`gif: ${body.length} bytes, ${frames} frames`);
    expect(frames).toBeGreaterThanOrEqual(9);
    expect(frames).toBeLessThanOrEqual(11);
    // Default size: 240 lines high.
    const small = await get(`/${uid}/thumbnails/thumbnail.gif`);
    expect((await probeBody(await bytes(small), 'gif')).streams[0]).toMatchObject({ codec_name: 'gif', height: 240 });
    expect((await get(`/${uid}/thumbnails/thumbnail.gif?time=1s&duration=2s&fps=5&width=160`)).headers.get('x-tributary-cache')).toBe('hit');
  });

  it('refuses wrong, malformed, oversized and hostile thumbnail parameters with a reason, and keeps serving', async () => {
    const bad: Record<string, RegExp> = {
      'time=999s': /past the end/,
      'time=2h': /past the end/,
      'time=abc': /time must look like/,
      'time=-1': /time must look like/,
      'time=101%': /0% to 100%/,
      'time=1s1m': /time must look like/,
      'time=99999999999999999999': /time must look like/,
      'width=0': /width must be/,
      'width=5000': /width must be/,
      'width=1.5': /width must be/,
      'width=0x10': /width must be/,
      'height=-20': /height must be/,
      'height=15': /height must be/,
      'fit=zoom': /fit must be one of crop, clip, scale, fill/,
      'width=100&width=200': /more than once/,
      'foo=1': /unknown parameter "foo"/,
      'duration=2s': /unknown parameter "duration"/,
      [`time=${'9'.repeat(5000)}`]: /time must look like/,
    };
    for (const [query, reason] of Object.entries(bad)) {
      const res = await get(`/${uid}/thumbnails/thumbnail.jpg?${query}`);
      expect(res.status, query.slice(0, 40)).toBe(400);
      const body = (await res.json()) as ErrorView;
      expect(body.errors[0]?.message, query.slice(0, 40)).toMatch(reason);
    }
    const badGif: Record<string, RegExp> = {
      'fps=60': /fps must be/,
      'fps=0': /fps must be/,
      'duration=20s': /duration must be/,
      'duration=0s': /duration must be/,
      'duration=50%': /duration must be/,
      'width=1920': /width must be/,
    };
    for (const [query, reason] of Object.entries(badGif)) {
      const res = await get(`/${uid}/thumbnails/thumbnail.gif?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as ErrorView).errors[0]?.message, query).toMatch(reason);
    }
    expect((await get(`/${uid}/thumbnails/thumbnail.png`)).status).toBe(404);
    expect((await get(`/${'0'.repeat(32)}/thumbnails/thumbnail.jpg`)).status).toBe(404);
    expect((await get(`/not-a-uid/thumbnails/thumbnail.jpg`)).status).toBe(404);
    expect((await get(`/${uid}/thumbnails/..%2F..%2Fmaster.m3u8`)).status).toBe(404);
    // Everyone else is still served.
    const ok = await get(`/${uid}/thumbnails/thumbnail.jpg?time=4s&width=96`);
    expect(ok.status).toBe(200);
    expect((await probeBody(await bytes(ok), 'jpg')).streams[0]?.width).toBe(96);
  });

  it('sheds a burst of distinct thumbnails past its render limit with 503, and serves the rest', async () => {
    let busy = 0;
    // A burst is concurrent by nature; should the first render finish before the last request
    // arrives, a new burst (new sizes, so nothing is cached) tries again.
    for (let burst = 0; burst < 3 && busy === 0; burst++) {
      const widths = Array.from({ length: 10 }, (_, i) => 100 + burst * 20 + i * 2);
      const results = await Promise.all(widths.map((w) => get(`/${uid}/thumbnails/thumbnail.jpg?time=5s&width=${w}`)));
      for (const res of results) {
        expect([200, 503]).toContain(res.status);
        if (res.status === 503) {
          busy++;
          expect(res.headers.get('retry-after')).toBe('2');
          expect(((await res.json()) as ErrorView).errors[0]?.code).toBe('THUMBNAIL_BUSY');
        } else {
          expect(res.headers.get('content-type')).toBe('image/jpeg');
          await res.arrayBuffer();
        }
      }
      expect(results.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    }
    expect(busy).toBeGreaterThan(0);
    // Cached pictures and new ones alike are served once the burst is over.
    expect((await get(`/${uid}/thumbnails/thumbnail.jpg?time=3s&width=320&height=180`)).headers.get('x-tributary-cache')).toBe('hit');
    expect((await get(`/${uid}/thumbnails/thumbnail.jpg?time=5s&width=99`)).status).toBe(200);
  });

  it('builds the MP4 download with progress, and serves it whole, by byte ranges, and conditionally', async () => {
    const none = await server.api<ErrorView>('GET', `/v1/videos/${uid}/downloads`);
    expect(none.status).toBe(404);
    expect(none.body.errors[0]?.code).toBe('DOWNLOAD_NOT_FOUND');
    expect((await get(`/${uid}/downloads/default.mp4`)).status).toBe(404);

    const created = await server.api<{ result: DownloadView }>('POST', `/v1/videos/${uid}/downloads`);
    expect(created.status).toBe(200);
    expect(created.body.result.default).toMatchObject({ url: `${server.httpUrl}/${uid}/downloads/default.mp4` });
    expect(['inprogress', 'ready']).toContain(created.body.result.default.status);
    const seen: number[] = [created.body.result.default.percentComplete];
    const deadline = Date.now() + 60_000;
    let state = created.body.result.default;
    while (state.status !== 'ready') {
      expect(state.status).toBe('inprogress');
      if (Date.now() > deadline) throw new Error(`download not ready: ${JSON.stringify(state)}`);
      await new Promise((r) => setTimeout(r, 100));
      state = (await server.api<{ result: DownloadView }>('GET', `/v1/videos/${uid}/downloads`)).body.result.default;
      seen.push(state.percentComplete);
    }
    console.log(`download percentComplete observed: ${[...new Set(seen)].join(', ')}`);
    expect(state.percentComplete).toBe(100);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    await server.waitForLog((l) => l.msg === 'download ready' && l.video === uid, 10_000);
    // Asking again changes nothing: the same ready download.
    const again = await server.api<{ result: DownloadView }>('POST', `/v1/videos/${uid}/downloads`);
    expect(again.body.result.default).toMatchObject({ status: 'ready', percentComplete: 100 });
    expect(server.logs.filter((l) => l.msg === 'download build queued' && l.video === uid)).toHaveLength(1);

    const fullRes = await get(`/${uid}/downloads/default.mp4`);
    expect(fullRes.status).toBe(200);
    expect(fullRes.headers.get('content-type')).toBe('video/mp4');
    expect(fullRes.headers.get('accept-ranges')).toBe('bytes');
    // A player in a page may read the range headers (CORS).
    expect(fullRes.headers.get('access-control-expose-headers')).toContain('Content-Range');
    const etag = fullRes.headers.get('etag') ?? '';
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    const full = await bytes(fullRes);
    expect(Number(fullRes.headers.get('content-length'))).toBe(full.length);
    const size = full.length;

    // A real MP4: both tracks, the whole duration, the index (moov) before the media (faststart).
    const mp4 = path.join(work, 'default.mp4');
    await writeFile(mp4, full);
    const probe = await ffprobe(mp4);
    expect(probe.format.format_name).toContain('mp4');
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
    expect(Math.abs(Number(probe.format.duration) - video.duration)).toBeLessThan(1);
    expect(Math.abs((await decodedDuration(mp4)) - video.duration)).toBeLessThan(1);
    expect(full.indexOf('moov')).toBeLessThan(full.indexOf('mdat'));

    // Byte ranges, byte-exact against the whole file.
    const ranged = async (range: string, start: number, end: number) => {
      const res = await get(`/${uid}/downloads/default.mp4`, { range });
      expect(res.status, range).toBe(206);
      expect(res.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/${size}`);
      const body = await bytes(res);
      expect(Number(res.headers.get('content-length'))).toBe(body.length);
      expect(body.equals(full.subarray(start, end + 1)), range).toBe(true);
    };
    await ranged('bytes=0-99', 0, 99);
    await ranged('bytes=1000-', 1000, size - 1);
    await ranged('bytes=-500', size - 500, size - 1);
    await ranged(`bytes=${size - 1}-${size + 1000}`, size - 1, size - 1);
    await ranged(`bytes=0-${size * 2}`, 0, size - 1);
    const rand = mulberry32(6);
    for (let i = 0; i < 8; i++) {
      const a = Math.floor(rand() * size);
      const b = Math.min(size - 1, a + Math.floor(rand() * 200_000));
      await ranged(`bytes=${a}-${b}`, a, b);
    }
    const unsatisfiable = await get(`/${uid}/downloads/default.mp4`, { range: `bytes=${size}-` });
    expect(unsatisfiable.status).toBe(416);
    expect(unsatisfiable.headers.get('content-range')).toBe(`bytes */${size}`);
    // Malformed and multi-range headers are ignored: the whole file (RFC 9110).
    for (const range of ['bytes=abc', 'bytes=5-1', 'items=0-1', 'bytes=0-1,5-9', `bytes=${'9'.repeat(300)}-`]) {
      const res = await get(`/${uid}/downloads/default.mp4`, { range });
      expect(res.status, range.slice(0, 30)).toBe(200);
      expect((await bytes(res)).length).toBe(size);
    }
    // A stale If-Range: the whole (new) file rather than a range of it.
    const stale = await get(`/${uid}/downloads/default.mp4`, { range: 'bytes=0-9', 'if-range': '"old"' });
    expect(stale.status).toBe(200);
    await stale.arrayBuffer();
    expect((await get(`/${uid}/downloads/default.mp4`, { range: 'bytes=0-9', 'if-range': etag })).status).toBe(206);
    expect((await get(`/${uid}/downloads/default.mp4`, { 'if-none-match': etag })).status).toBe(304);
    const head = await fetch(`${server.httpUrl}/${uid}/downloads/default.mp4`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get('content-length'))).toBe(size);
    expect((await head.arrayBuffer()).byteLength).toBe(0);
    expect((await get(`/${uid}/downloads/other.mp4`)).status).toBe(404);
  });

  it('serves the download of a signed video only with a token that has downloadable: true', async () => {
    const changed = await server.api<{ result: VideoView }>('POST', `/v1/videos/${uid}`, { requireSignedURLs: true });
    expect(changed.status).toBe(200);
    expect(changed.body.result.requireSignedURLs).toBe(true);
    const plain = await get(`/${uid}/downloads/default.mp4`);
    expect(plain.status).toBe(401);
    const viewOnly = await mint({});
    const refused = await get(`/${viewOnly}/downloads/default.mp4`);
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as ErrorView).errors[0]?.code).toBe('DOWNLOAD_NOT_ALLOWED');
    expect((await get(`/${viewOnly}/thumbnails/thumbnail.jpg?width=64`)).status).toBe(200); // playback rights cover thumbnails
    const notDownloadable = await mint({ downloadable: false });
    expect((await get(`/${notDownloadable}/downloads/default.mp4`)).status).toBe(403);
    const downloadable = await mint({ downloadable: true });
    const allowed = await get(`/${downloadable}/downloads/default.mp4`, { range: 'bytes=0-15' });
    expect(allowed.status).toBe(206);
    expect((await bytes(allowed)).length).toBe(16);
    // ?token= on the uid path is moved into the path, keeping the rest of the query.
    const redirected = await fetch(`${server.httpUrl}/${uid}/downloads/default.mp4?token=${downloadable}`, { redirect: 'manual' });
    expect(redirected.status).toBe(302);
    expect(redirected.headers.get('location')).toBe(`/${downloadable}/downloads/default.mp4`);

    const deleted = await server.api('DELETE', `/v1/videos/${uid}/downloads`);
    expect(deleted.status).toBe(200);
    expect((await get(`/${downloadable}/downloads/default.mp4`)).status).toBe(404);
    expect((await server.api('GET', `/v1/videos/${uid}/downloads`)).status).toBe(404);
    expect((await server.api('DELETE', `/v1/videos/${uid}/downloads`)).status).toBe(404);
    await server.api('POST', `/v1/videos/${uid}`, { requireSignedURLs: false });
  });

  it('refuses bad video changes and download requests', async () => {
    const cases: Array<[string, unknown, number]> = [
      [`/v1/videos/${uid}`, { scheduledDeletion: 'tomorrow' }, 400],
      [`/v1/videos/${uid}`, { scheduledDeletion: '3000-01-01T00:00:00Z' }, 400],
      [`/v1/videos/${uid}`, { thumbnailTimestampPct: 1.5 }, 400],
      [`/v1/videos/${uid}`, { thumbnailTimestampPct: 'half' }, 400],
      [`/v1/videos/${uid}`, { uid: 'x' }, 400],
      [`/v1/videos/${uid}`, { meta: { name: 'x'.repeat(20_000) } }, 400],
      [`/v1/videos/${'0'.repeat(32)}`, { thumbnailTimestampPct: 0.5 }, 404],
      [`/v1/videos/${'0'.repeat(32)}/downloads`, {}, 404],
      [`/v1/videos/${uid}/downloads`, { foo: 1 }, 400],
      ['/v1/videos/xyz/downloads', {}, 400],
    ];
    for (const [url, body, status] of cases) {
      const res = await server.api('POST', url, body);
      expect(res.status, `${url} ${JSON.stringify(body).slice(0, 60)}: ${JSON.stringify(res.body).slice(0, 200)}`).toBe(status);
    }
    // The default thumbnail follows thumbnailTimestampPct.
    const moved = await server.api<{ result: VideoView }>('POST', `/v1/videos/${uid}`, { thumbnailTimestampPct: 0.5 });
    expect(moved.body.result.thumbnailTimestampPct).toBe(0.5);
    const atHalf = await bytes(await get(`/${uid}/thumbnails/thumbnail.jpg?width=160`));
    const explicit = await bytes(await get(`/${uid}/thumbnails/thumbnail.jpg?width=160&time=50%`));
    expect(atHalf.equals(explicit)).toBe(true);
  });

  it('deletes the video, its media and derived files when its scheduledDeletion comes', async () => {
    const dir = path.join(server.dataDir, 'media', 'videos', uid);
    expect((await stat(path.join(dir, 'thumbnails'))).isDirectory()).toBe(true);
    // A time well ahead keeps it through several sweeps.
    const ahead = new Date(Date.now() + DAY_MS).toISOString();
    expect((await server.api('POST', `/v1/videos/${uid}`, { scheduledDeletion: ahead })).status).toBe(200);
    const past = new Date(Date.now() - 60_000).toISOString();
    const sweepsBefore = server.logs.length;
    await new Promise((r) => setTimeout(r, 2500));
    expect(server.logs.slice(sweepsBefore).some((l) => l.msg === 'scheduled deletion: video deleted')).toBe(false);
    expect((await server.api('GET', `/v1/videos/${uid}`)).status).toBe(200);

    const set = await server.api<{ result: VideoView }>('POST', `/v1/videos/${uid}`, { scheduledDeletion: past });
    expect(set.status).toBe(200);
    expect(set.body.result.scheduledDeletion).toBe(past);
    await server.waitForLog((l) => l.msg === 'scheduled deletion: video deleted' && l.video === uid, 15_000);
    expect((await server.api('GET', `/v1/videos/${uid}`)).status).toBe(404);
    expect((await get(`/${uid}/manifest/video.m3u8`)).status).toBe(404);
    expect((await get(`/${uid}/thumbnails/thumbnail.jpg`)).status).toBe(404);
    await expect(stat(dir)).rejects.toThrow(/ENOENT/);
    const ready = (await (await get('/readyz')).json()) as { status: string; spool: { pendingFiles: number; degraded: boolean } };
    expect(ready).toMatchObject({ status: 'ready', spool: { pendingFiles: 0, degraded: false } });
  });
});
