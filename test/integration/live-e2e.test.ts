import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { ffprobe, decodedDuration, parseMaster, parseMedia } from '../helpers/probe.ts';
import { childProcesses, isAlive } from '../helpers/processes.ts';

// The README's story end to end: start the server, create an input over REST, publish with
// real FFmpeg over RTMP, play the HLS with ffprobe/ffmpeg, survive an FFmpeg crash, restart.
describe('live end to end: RTMP → FFmpeg → HLS', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer();
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('publishes, plays both renditions, survives an FFmpeg crash, ends promptly', async () => {
    const input = await createLiveInput(server, { meta: { name: 'e2e' } });
    const publisher = publishTestStream({
      url: `${server.rtmpBase}/${input.streamKey}`,
      seconds: 12,
      width: 854,
      height: 480,
      fps: 30,
      gop: 30,
      audio: true,
      realtime: true,
    });
    const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const master = await waitForHttp200(masterUrl, 30_000);
    const variants = parseMaster(master);
    expect(variants.map((v) => v.attrs.RESOLUTION)).toEqual(['854x480', '640x360']);
    for (const v of variants) {
      expect(v.attrs.CODECS).toMatch(/avc1\.[0-9a-f]{6},mp4a\.40\.2/i);
      expect(Number(v.attrs.BANDWIDTH)).toBeGreaterThan(0);
    }

    // The live input reports the live session.
    const got = await server.api<{ result: { status: unknown } }>('GET', `/v1/live_inputs/${input.uid}`);
    expect(got.status).toBe(200);
    expect(got.body.result.status).toMatchObject({
      current: {
        state: 'connected',
        ingestProtocol: 'rtmp',
        health: { videoCodec: 'h264', audioCodec: 'aac', width: 854, height: 480, bframes: false, renditions: ['source', '360p'], issues: [] },
      },
    });

    // ffprobe reads the live master playlist: two H.264 renditions and AAC audio.
    const probe = await ffprobe(masterUrl);
    const video = probe.streams.filter((s) => s.codec_type === 'video');
    expect(video.map((s) => `${s.codec_name} ${s.width}x${s.height}`).sort()).toEqual(['h264 640x360', 'h264 854x480']);
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);

    // BANDWIDTH / AVERAGE-BANDWIDTH are measured: the bytes actually served over the listed
    // segments agree with the advertised average within 10 %, and the peak is at least that.
    for (const v of variants) {
      const media = new URL(v.uri, masterUrl).toString();
      const text = await waitForHttp200(media);
      const master2 = parseMaster(await waitForHttp200(masterUrl)).find((x) => x.uri === v.uri)!;
      const durations = [...text.matchAll(/#EXTINF:([\d.]+),\n([^\n]+)/g)].map((m) => ({ d: Number(m[1]), uri: m[2]! }));
      let bits = 0;
      let seconds = 0;
      for (const seg of durations) {
        const res = await fetch(new URL(seg.uri, media));
        bits += (await res.arrayBuffer()).byteLength * 8;
        seconds += seg.d;
      }
      const served = bits / seconds;
      const average = Number(master2.attrs['AVERAGE-BANDWIDTH']);
      expect(Math.abs(average - served) / served).toBeLessThan(0.1);
      expect(Number(master2.attrs.BANDWIDTH)).toBeGreaterThanOrEqual(average);
    }

    // LL-HLS parts (rfc8216bis 4.4.4.9): none longer than PART-TARGET; none under 85 % of it unless
    // it is INDEPENDENT or the last part of its segment.
    {
      const text = await waitForHttp200(new URL(variants[0]!.uri, masterUrl).toString());
      const partTarget = Number(/#EXT-X-PART-INF:PART-TARGET=([\d.]+)/.exec(text)?.[1]);
      expect(partTarget).toBeGreaterThan(0);
      let group: Array<{ d: number; independent: boolean }> = [];
      let checked = 0;
      for (const line of text.split('\n')) {
        const part = /^#EXT-X-PART:DURATION=([\d.]+),.*?(INDEPENDENT=YES)?$/.exec(line);
        if (part) group.push({ d: Number(part[1]), independent: part[2] !== undefined });
        if (line.startsWith('#EXTINF')) {
          for (const [i, p] of group.entries()) {
            expect(p.d).toBeLessThanOrEqual(partTarget + 1e-6);
            if (!p.independent && i < group.length - 1) expect(p.d).toBeGreaterThanOrEqual(0.85 * partTarget - 1e-6);
            checked++;
          }
          group = [];
        }
      }
      expect(checked).toBeGreaterThan(4);
    }

    // Kill the FFmpeg child mid-stream: the session restarts it and the playlist keeps advancing.
    const ffmpeg = childProcesses(server.process.pid!).filter((p) => p.comm === 'ffmpeg');
    expect(ffmpeg).toHaveLength(1);
    const mediaUrl = new URL(variants[1]!.uri, masterUrl).toString();
    const before = parseMedia(await waitForHttp200(mediaUrl));
    process.kill(ffmpeg[0]!.pid, 'SIGKILL');
    await server.waitForLog((l) => l.msg === 'transcoder restarted', 20_000);
    const deadline = Date.now() + 20_000;
    let after = before;
    while (Date.now() < deadline) {
      after = parseMedia(await waitForHttp200(mediaUrl));
      const lastBefore = before.mediaSequence + before.segments.length;
      if (after.mediaSequence + after.segments.length > lastBefore + 1 && after.discontinuities > 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(after.discontinuities).toBeGreaterThan(0);
    expect(after.mediaSequence + after.segments.length).toBeGreaterThan(before.mediaSequence + before.segments.length + 1);

    // The publisher finishes: the session ends promptly and the playlists are final.
    const result = await publisher.exited;
    expect(result.code).toBe(0);
    const endedAt = Date.now();
    await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 10_000);
    expect(Date.now() - endedAt).toBeLessThan(5000);
    // FFmpeg gets a moment to flush its last fragments; then the playlists are final.
    let final = parseMedia(await waitForHttp200(mediaUrl));
    while (!final.ended && Date.now() - endedAt < 15_000) {
      await new Promise((r) => setTimeout(r, 200));
      final = parseMedia(await waitForHttp200(mediaUrl));
    }
    expect(final.ended).toBe(true);

    // FFmpeg reads the whole recorded window: ~12 s of video.
    const duration = await decodedDuration(variants[0] ? new URL(variants[0].uri, masterUrl).toString() : '');
    expect(duration).toBeGreaterThan(8);
    expect(duration).toBeLessThan(14);

    // No FFmpeg left behind.
    const restarted = childProcesses(server.process.pid!).filter((p) => p.comm === 'ffmpeg');
    expect(restarted).toHaveLength(0);
    expect(isAlive(ffmpeg[0]!.pid)).toBe(false);
  });

  it('keeps live inputs and keys across a restart; SIGTERM exits cleanly', async () => {
    const input = await createLiveInput(server, { meta: { name: 'survivor' } });
    const dataDir = server.dataDir;
    const apiKey = server.apiKey;
    const children = childProcesses(server.process.pid!);
    expect(children.map((c) => c.comm)).toContain('redis-server');

    const exit = await server.stop();
    expect(exit.code).toBe(0);
    for (const c of children) expect(isAlive(c.pid)).toBe(false);

    server = await startServer({ dataDir, apiKey });
    const got = await server.api<{ result: { uid: string; rtmp: { streamKey: string }; meta: { name: string } } }>(
      'GET',
      `/v1/live_inputs/${input.uid}`,
    );
    expect(got.status).toBe(200);
    expect(got.body.result.meta.name).toBe('survivor');
    expect(got.body.result.rtmp.streamKey).toBe(input.streamKey);
  });
});
