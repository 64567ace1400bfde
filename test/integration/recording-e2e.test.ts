import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, ffprobe, parseMedia } from '../helpers/probe.ts';
import { startTestS3Server, type TestS3Server } from '../helpers/s3-server.ts';

interface VideoView {
  uid: string;
  liveInput: string | null;
  status: { state: string };
  readyToStream: boolean;
  duration: number;
  size: number;
  renditions: Array<{ name: string; width: number; height: number; bandwidth: number; codecs: string }>;
  recording: { sessions: number };
}

const logTime = (line: Record<string, unknown>) => Number(line.time);

// Recording as a user sees it: broadcast, drop, reconnect within the window, and get one VOD
// asset that plays from start to end; then a crash mid-broadcast still leaves a playable video.
// The same suite against both stores: the disk under the data dir, and an S3-compatible server.
describe.each(['disk', 's3'] as const)('recording live inputs into VOD (%s store)', (kind) => {
  let server: TestServer;
  let s3: TestS3Server | undefined;
  let env: Record<string, string> = {};

  beforeAll(async () => {
    if (kind === 's3') {
      s3 = await startTestS3Server();
      env = s3.serverEnv();
    }
    server = await startServer({ env });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    await s3?.dispose();
  });

  it('a reconnect within the window continues one video, finalized promptly and playable end to end', async () => {
    const input = await createLiveInput(server, {
      meta: { name: 'recorded' },
      recording: { mode: 'automatic', timeoutSeconds: 5 },
    });
    const url = `${server.rtmpBase}/${input.streamKey}`;
    const stream = { url, width: 640, height: 360, fps: 30, gop: 30, audio: true, realtime: true } as const;
    const isEnding = (l: Record<string, unknown>) => l.msg === 'session ending' && l.liveInput === input.uid;

    const first = await publishTestStream({ ...stream, seconds: 12 }).exited;
    expect(first.code).toBe(0);
    await server.waitForLog(isEnding, 10_000);
    // Within the window the input waits for its publisher.
    await expect.poll(async () => (await server.api<{ result: { status: { current: { state: string } } } }>('GET', `/v1/live_inputs/${input.uid}`)).body.result.status.current.state, { timeout: 5000 }).toBe('reconnecting');

    const second = publishTestStream({ ...stream, seconds: 6 });
    await server.waitForLog((l) => l.msg === 'publisher reconnected within the window' && l.liveInput === input.uid, 10_000);
    const during = await server.api<{ result: { status: { current: { state: string } } } }>('GET', `/v1/live_inputs/${input.uid}`);
    expect(during.body.result.status.current.state).toBe('reconnected');
    // While live, the input's recording is listed first, in progress.
    const live = await server.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    expect(live.body.result[0]?.status.state).toBe('live-inprogress');
    expect((await second.exited).code).toBe(0);

    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 20_000);
    const videoUid = String(ended.video);
    const finalized = await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 10_000);
    const lastEnding = server.logs.filter(isEnding).at(-1)!;
    const windowMs = logTime(ended) - logTime(lastEnding);
    const readyMs = logTime(finalized) - logTime(ended);
    console.log(`reconnect window closed ${windowMs} ms after the session ended; ready ${readyMs} ms after the window closed`);
    expect(windowMs).toBeGreaterThanOrEqual(5000);
    expect(readyMs).toBeLessThan(2000);

    const list = await server.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
    expect(list.status).toBe(200);
    expect(list.body.result.map((v) => v.uid)).toEqual([videoUid]);
    const video = list.body.result[0]!;
    expect(video).toMatchObject({ liveInput: input.uid, status: { state: 'ready' }, readyToStream: true, recording: { sessions: 2 } });
    expect(video.duration).toBeGreaterThan(18 - 2.5);
    expect(video.duration).toBeLessThan(18 + 2.5);
    expect(video.size).toBeGreaterThan(100_000);
    expect(video.renditions.map((r) => `${r.name} ${r.width}x${r.height}`)).toEqual(['source 640x360']);
    const status = await server.api<{ result: { status: { current: { state: string } } } }>('GET', `/v1/live_inputs/${input.uid}`);
    expect(status.body.result.status.current.state).toBe('ttl_exceeded');
    const all = await server.api<{ result: { videos: VideoView[] } }>('GET', '/v1/videos');
    expect(all.body.result.videos.map((v) => v.uid)).toContain(videoUid);

    // The VOD on disk: an ended VOD playlist with the reconnect as a discontinuity, decodable to the end.
    const dir = path.join(server.dataDir, 'media', 'videos', videoUid);
    const media = await waitForHttp200(`${server.httpUrl}/${videoUid}/manifest/source/index.m3u8`);
    // With S3 the media is in the bucket, not under the data dir.
    if (kind === 's3') await expect(readFile(path.join(dir, 'master.m3u8'))).rejects.toThrow(/ENOENT/);
    expect(media).toContain('#EXT-X-PLAYLIST-TYPE:VOD');
    expect(parseMedia(media)).toMatchObject({ ended: true, discontinuities: 1 });
    // …and the same video played the way viewers get it: through the origin at /{videoUid}/.
    const vodUrl = `${server.httpUrl}/${videoUid}/manifest/video.m3u8`;
    const probe = await ffprobe(vodUrl);
    expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264')).toBe(true);
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
    const played = await decodedDuration(vodUrl);
    console.log(`video ${video.duration} s (${video.size} bytes); ffmpeg decoded ${played} s over HTTP`);
    expect(Math.abs(played - video.duration)).toBeLessThan(1.5);

    const deleted = await server.api('DELETE', `/v1/videos/${videoUid}`);
    expect(deleted.status).toBe(200);
    expect((await server.api('GET', `/v1/videos/${videoUid}`)).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/${videoUid}/manifest/video.m3u8`)).status).toBe(404);
    if (kind === 'disk') await expect(readFile(path.join(dir, 'master.m3u8'))).rejects.toThrow(/ENOENT/);
  });

  it('a server killed mid-broadcast finalizes the recording at restart, playable to the last complete segment', async () => {
    const input = await createLiveInput(server, {
      meta: { name: 'crash' },
      recording: { mode: 'automatic', timeoutSeconds: 5 },
    });
    const publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, audio: true, realtime: true });
    try {
      // A few seconds recorded: the live playlist lists them (each segment is spooled as it completes).
      const mediaUrl = `${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`;
      const deadline = Date.now() + 30_000;
      const listedSeconds = (text: string) => [...text.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);
      let listed = '';
      while (listedSeconds((listed = await waitForHttp200(mediaUrl, 30_000))) < 6) {
        if (Date.now() > deadline) throw new Error('the live stream did not reach 6 s of segments');
        await new Promise((r) => setTimeout(r, 200));
      }
      const durations = [...listed.matchAll(/#EXTINF:([\d.]+),/g)].map((m) => Number(m[1]));
      // The newest listed segment may have completed at this very moment: its spool write can lose the race with the kill.
      const surelyRecorded = durations.slice(0, -1).reduce((a, d) => a + d, 0);
      const live = await server.api<{ result: VideoView[] }>('GET', `/v1/live_inputs/${input.uid}/videos`);
      expect(live.body.result).toHaveLength(1);
      const videoUid = live.body.result[0]!.uid;
      expect(live.body.result[0]!.status.state).toBe('live-inprogress');

      const { dataDir, apiKey } = server;
      await server.kill();
      await publisher.stop();
      server = await startServer({ dataDir, apiKey, env });
      await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 30_000);

      const got = await server.api<{ result: VideoView }>('GET', `/v1/videos/${videoUid}`);
      expect(got.body.result).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
      // Everything listed was recorded, but for the newest segment, whose spool write (with fsync)
      // may still have been under way at the SIGKILL.
      expect(got.body.result.duration).toBeGreaterThanOrEqual(Math.floor(surelyRecorded));
      const played = await decodedDuration(`${server.httpUrl}/${videoUid}/manifest/video.m3u8`);
      console.log(`recovered video ${got.body.result.duration} s; ffmpeg decoded ${played} s`);
      expect(Math.abs(played - got.body.result.duration)).toBeLessThan(1.5);
    } finally {
      await publisher.stop();
    }
  });
});
