import { describe, it, expect, afterEach } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, statfs, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, parseMedia } from '../helpers/probe.ts';
import { startTestS3Server } from '../helpers/s3-server.ts';
import { childProcesses, isAlive } from '../helpers/processes.ts';

const run = promisify(execFile);

// Faults during a live stream, on the real server with real FFmpeg, redis-server and s3rver:
// the live stream keeps playing through each, and the recording ends up as a playable VOD that
// says what it lost (a discontinuity), or loses nothing where nothing has to be lost.

interface VideoView {
  uid: string;
  status: { state: string };
  readyToStream: boolean;
  duration: number;
}
interface InputView {
  status: { current: { state: string; health?: { issues: Array<{ code: string; message: string }> } } } | null;
}

/** Polls a live media playlist: every segment it ever listed, and its latest media sequence. */
function watchPlaylist(url: string): { segments: Set<string>; msn: () => number; until: (msn: number, timeoutMs?: number) => Promise<void>; stop: () => void } {
  const segments = new Set<string>();
  let last = -1;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const res = await fetch(url).catch(() => undefined);
      if (res?.status === 200) {
        const media = parseMedia(await res.text());
        for (const s of media.segments) segments.add(s);
        last = Math.max(last, media.mediaSequence + media.segments.length - 1);
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    segments,
    msn: () => last,
    async until(msn, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      while (last < msn) {
        if (Date.now() > deadline) throw new Error(`${url} stayed at media sequence ${last}, waiting for ${msn}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    stop() {
      stopped = true;
      void loop;
    },
  };
}

describe('faults during a live stream', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch((e: unknown) => console.error('cleanup failed', e));
  });

  async function serve(env: Record<string, string> = {}): Promise<TestServer> {
    const server = await startServer({ env });
    cleanups.push(async () => {
      await server.stop();
      await server.cleanup();
    });
    return server;
  }

  function publish(url: string, seconds?: number): TestPublisher {
    // Small and cheap to encode: the machine runs many tests at once.
    const p = publishTestStream({ url, width: 320, height: 180, fps: 25, gop: 25, audio: true, realtime: true, ...(seconds ? { seconds } : {}) });
    cleanups.push(() => p.stop());
    return p;
  }

  async function finalized(server: TestServer, liveInput: string): Promise<VideoView> {
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === liveInput, 30_000);
    const videoUid = String(ended.video);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 120_000);
    const got = await server.api<{ result: VideoView }>('GET', `/v1/videos/${videoUid}`);
    expect(got.status).toBe(200);
    return got.body.result;
  }

  /** The VOD's rendition playlist, every segment it names fetched through the origin. */
  async function vodRendition(server: TestServer, videoUid: string, rendition: string): Promise<ReturnType<typeof parseMedia>> {
    const url = `${server.httpUrl}/${videoUid}/manifest/${rendition}/index.m3u8`;
    const media = parseMedia(await waitForHttp200(url));
    expect(media.ended).toBe(true);
    for (const seg of media.segments) {
      const res = await fetch(new URL(seg, url));
      expect(res.status, `${rendition}/${seg}`).toBe(200);
      expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(0);
    }
    return media;
  }

  it('redis-server hung, then killed mid-stream: playback goes on, the restarted Redis gets the state, the recording becomes a ready VOD', async () => {
    const server = await serve();
    const input = await createLiveInput(server, { meta: { name: 'redis-fault' }, recording: { mode: 'automatic', timeoutSeconds: 2 } });
    const publisher = publish(`${server.rtmpBase}/${input.streamKey}`);
    const watch = watchPlaylist(`${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`);
    cleanups.push(async () => watch.stop());
    await watch.until(2);

    const redis = childProcesses(server.process.pid!).find((p) => p.comm === 'redis-server');
    expect(redis, 'the embedded redis-server child').toBeDefined();
    // First it hangs (commands wait unanswered, the recording's writes pile up), then it dies and
    // its supervisor starts a new one on the same data.
    const hungAt = watch.msn();
    process.kill(redis!.pid, 'SIGSTOP');
    // Should the test fail while it hangs, the server could not shut down: end it for good.
    cleanups.push(async () => {
      if (isAlive(redis!.pid)) process.kill(redis!.pid, 'SIGKILL');
    });
    await watch.until(hungAt + 4);
    const killedAt = watch.msn();
    process.kill(redis!.pid, 'SIGKILL');
    await server.waitForLog((l) => l.msg === 'embedded redis-server restarted', 30_000);
    expect(isAlive(redis!.pid)).toBe(false);
    // Live playback never depended on Redis: the playlist advanced across the restart.
    await watch.until(killedAt + 3);

    // State converges: the API answers from the restarted Redis, the input is live and recording.
    await expect
      .poll(async () => (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result?.status?.current.state, { timeout: 20_000 })
      .toBe('connected');
    const videos = await server.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    expect(videos.body.result.map((v) => v.status.state)).toEqual(['live-inprogress']);

    await publisher.stop();
    const video = await finalized(server, input.uid);
    expect(video).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    const media = await vodRendition(server, video.uid, 'source');
    // Every segment the viewers saw while the recording ran is in the VOD.
    const live = [...watch.segments];
    expect(live.filter((s) => !media.segments.includes(s))).toEqual([]);
    const played = await decodedDuration(`${server.httpUrl}/${video.uid}/manifest/video.m3u8`);
    console.log(`[redis] VOD ${video.duration} s, ${media.segments.length} segments, ${media.discontinuities} discontinuities; decoded ${played} s`);
    expect(Math.abs(played - video.duration)).toBeLessThan(1.5);
    await expect
      .poll(async () => (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result?.status?.current.state, { timeout: 10_000 })
      // The publisher left and its reconnect window closed (Cloudflare's state for that).
      .toBe('ttl_exceeded');
  });

  it('the object store down for 60 s mid-broadcast: every segment of every rendition lands once it is back, the VOD plays start to end', async () => {
    const s3 = await startTestS3Server();
    cleanups.push(() => s3.dispose());
    const server = await serve({
      ...s3.serverEnv(),
      // Two renditions: the source (copied) and a small encoded one.
      TRIBUTARY_TRANSCODE_LADDER: JSON.stringify([{ name: '144p', height: 144, videoBitrateKbps: 150, audioBitrateKbps: 48 }]),
    });
    const input = await createLiveInput(server, { meta: { name: 's3-outage' }, recording: { mode: 'automatic', timeoutSeconds: 2 } });
    const publishedAt = Date.now();
    const publisher = publish(`${server.rtmpBase}/${input.streamKey}`);
    const renditions = ['source', '144p'];
    const watches = renditions.map((r) => watchPlaylist(`${server.httpUrl}/${input.uid}/manifest/${r}/index.m3u8`));
    cleanups.push(async () => watches.forEach((w) => w.stop()));
    await Promise.all(watches.map((w) => w.until(2)));

    await s3.stop();
    const downAt = watches.map((w) => w.msn());
    await server.waitForLog((l) => l.msg === 'upload from spool failed; retrying with backoff', 30_000);
    await new Promise((r) => setTimeout(r, 60_000));
    // The outage never reached the viewers.
    watches.forEach((w, i) => expect(w.msn()).toBeGreaterThan(downAt[i]! + 10));
    await s3.start();
    await Promise.all(watches.map((w) => w.until(w.msn() + 2)));
    await publisher.stop();
    const publishedSeconds = (Date.now() - publishedAt) / 1000;

    const video = await finalized(server, input.uid);
    expect(video).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    for (const [i, rendition] of renditions.entries()) {
      const media = await vodRendition(server, video.uid, rendition);
      const missing = [...watches[i]!.segments].filter((s) => !media.segments.includes(s));
      console.log(`[s3] ${rendition}: ${media.segments.length} segments in the VOD, ${watches[i]!.segments.size} seen live, missing ${missing.length}`);
      expect(missing).toEqual([]);
      expect(media.discontinuities).toBe(0);
    }
    const played = await decodedDuration(`${server.httpUrl}/${video.uid}/manifest/video.m3u8`);
    console.log(`[s3] published ~${publishedSeconds.toFixed(1)} s; VOD ${video.duration} s; decoded ${played} s`);
    expect(Math.abs(played - video.duration)).toBeLessThan(1.5);
    // Connection set-up and the first keyframe come before the first segment.
    expect(video.duration).toBeGreaterThan(publishedSeconds - 6);
  });

  it('FFmpeg killed mid-stream: the stream resumes, the recording continues with one discontinuity and the published duration', async () => {
    const server = await serve();
    const input = await createLiveInput(server, { meta: { name: 'ffmpeg-fault' }, recording: { mode: 'automatic', timeoutSeconds: 2 } });
    const seconds = 30;
    const publisher = publish(`${server.rtmpBase}/${input.streamKey}`, seconds);
    const watch = watchPlaylist(`${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`);
    cleanups.push(async () => watch.stop());
    await watch.until(3);

    const ffmpeg = childProcesses(server.process.pid!).filter((p) => p.comm === 'ffmpeg');
    expect(ffmpeg).toHaveLength(1);
    const killedAt = watch.msn();
    process.kill(ffmpeg[0]!.pid, 'SIGKILL');
    const restarted = await server.waitForLog((l) => l.msg === 'ffmpeg restarted' && l.liveInput === input.uid, 30_000);
    expect(restarted.pid).not.toBe(ffmpeg[0]!.pid);
    await watch.until(killedAt + 3);
    expect((await publisher.exited).code).toBe(0);

    const video = await finalized(server, input.uid);
    expect(video).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    const media = await vodRendition(server, video.uid, 'source');
    expect(media.discontinuities).toBe(1);
    const played = await decodedDuration(`${server.httpUrl}/${video.uid}/manifest/video.m3u8`);
    console.log(`[ffmpeg] published ${seconds} s; VOD ${video.duration} s, ${media.segments.length} segments; decoded ${played} s`);
    expect(Math.abs(played - video.duration)).toBeLessThan(1.5);
    // What is lost: the restart's backoff and the wait for the next keyframe (1 s GOP).
    expect(video.duration).toBeGreaterThan(seconds - 4);
    expect(video.duration).toBeLessThan(seconds + 1);
  });

  it('the spool on a nearly full filesystem: ERR_STORAGE_QUOTA_EXHAUSTED, live playback goes on, recording resumes when space returns', async () => {
    const spool = await mkdtemp(join(tmpdir(), 'trib-fullfs-'));
    cleanups.push(() => rm(spool, { recursive: true, force: true }));
    // A real small filesystem (needs CAP_SYS_ADMIN, as root in the test container has).
    await run('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', spool]).catch((error: unknown) => {
      throw new Error(`this test mounts a small tmpfs for the spool and needs CAP_SYS_ADMIN: ${String(error)}`);
    });
    cleanups.push(() => run('umount', [spool]));
    const server = await serve({ TRIBUTARY_STORAGE_SPOOL_DIR: spool });
    const input = await createLiveInput(server, { meta: { name: 'disk-full' }, recording: { mode: 'automatic', timeoutSeconds: 2 } });
    const publisher = publish(`${server.rtmpBase}/${input.streamKey}`);
    const watch = watchPlaylist(`${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`);
    cleanups.push(async () => watch.stop());
    await watch.until(2);
    await server.waitForLog((l) => l.msg === 'recording started', 10_000);

    // Fill it: whatever the spool writes next finds no room.
    const filler = join(spool, 'filler');
    const { bavail, bsize } = await statfs(spool);
    await writeFile(filler, Buffer.alloc(Number(bavail) * Number(bsize))).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    });
    const full = await server.waitForLog((l) => l.code === 'ERR_STORAGE_QUOTA_EXHAUSTED' && l.liveInput === input.uid, 30_000);
    expect(String(full.msg)).toMatch(/^ERR_STORAGE_QUOTA_EXHAUSTED: no space left on disk/);
    const fullAt = watch.msn();
    const issues = async () =>
      (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result?.status?.current.health?.issues.map((i) => i.code) ?? [];
    await expect.poll(issues, { timeout: 10_000 }).toContain('ERR_STORAGE_QUOTA_EXHAUSTED');
    await server.waitForLog((l) => l.msg === 'live input errored' && l.code === 'ERR_STORAGE_QUOTA_EXHAUSTED' && l.liveInput === input.uid, 10_000);
    // No crash, and the viewers still get the stream.
    await watch.until(fullAt + 3);
    expect(server.process.exitCode).toBeNull();
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);

    await unlink(filler);
    await server.waitForLog((l) => l.msg === 'recording resumed: storage has room again' && l.liveInput === input.uid, 60_000);
    await expect.poll(issues, { timeout: 10_000 }).not.toContain('ERR_STORAGE_QUOTA_EXHAUSTED');
    await watch.until(watch.msn() + 2);
    await publisher.stop();

    const video = await finalized(server, input.uid);
    expect(video).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    const media = await vodRendition(server, video.uid, 'source');
    // Recorded before the disk filled and after it had room again, with the gap marked.
    expect(media.discontinuities).toBeGreaterThanOrEqual(1);
    const lost = [...watch.segments].filter((s) => !media.segments.includes(s));
    console.log(`[disk full] VOD ${video.duration} s, ${media.segments.length} segments; ${lost.length} segments lost while the spool had no room`);
    expect(lost.length).toBeGreaterThan(0);
    // Decoded to the end; the timestamps jump over the gap (at most a target duration per segment).
    const played = await decodedDuration(`${server.httpUrl}/${video.uid}/manifest/video.m3u8`);
    expect(played).toBeGreaterThan(video.duration - 1.5);
    expect(played).toBeLessThan(video.duration + lost.length * 2 + 1.5);
  });
});
