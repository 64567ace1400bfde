import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { decodedDuration, ffprobe, parseMedia } from '../helpers/probe.ts';
import { freePort, startNginxRtmp, type NginxRtmp } from '../helpers/nginx-rtmp.ts';
import { childProcesses } from '../helpers/processes.ts';
import net from 'node:net';

interface OutputView {
  uid: string;
  url: string;
  streamKey: string;
  enabled: boolean;
  status: {
    current: { state: string; statusEnteredAt: string | null };
    lastError: { message: string; at: string } | null;
    reconnects: number;
    bytesSent: number;
    droppedTags: number;
  };
}
interface ErrorView {
  success: false;
  errors: Array<{ code: string; message: string }>;
}

const RESTREAM_KEY = 'restream-secret-7f3a9c';
const DEAD_KEY = 'dead-target-secret-b81e';

// Simulcast as a user sees it: a second RTMP server (nginx-rtmp) receives the restream and plays
// it; killing that server leaves the main stream, its recording and the other outputs alone;
// the output comes back by itself when the server does.
describe('simulcast outputs', () => {
  let server: TestServer;
  let nginx: NginxRtmp | undefined;
  let publisher: TestPublisher | undefined;
  const work = mkdtempSync(path.join(os.tmpdir(), 'trib-simulcast-'));

  beforeAll(async () => {
    server = await startServer({
      env: {
        // Quick retries keep the test short; the rules are the same at any scale.
        TRIBUTARY_SIMULCAST_BACKOFF_BASE_MS: '200',
        TRIBUTARY_SIMULCAST_BACKOFF_MAX_MS: '1000',
        TRIBUTARY_SIMULCAST_CONNECT_TIMEOUT_MS: '12000',
        TRIBUTARY_SIMULCAST_QUEUE_BYTES: '524288',
      },
    });
  });

  afterAll(async () => {
    await publisher?.stop();
    await nginx?.stop();
    await server?.stop();
    await server?.cleanup();
    await rm(work, { recursive: true, force: true });
  });

  const outputsOf = async (uid: string) => {
    const res = await server.api<{ result: OutputView[] }>('GET', `/v1/live_inputs/${uid}/outputs`);
    expect(res.status).toBe(200);
    return res.body.result;
  };
  const outputState = async (uid: string, outputUid: string) => {
    const res = await server.api<{ result: OutputView }>('GET', `/v1/live_inputs/${uid}/outputs/${outputUid}`);
    expect(res.status).toBe(200);
    return res.body.result.status;
  };
  const lastMsn = async (mediaUrl: string) => {
    const media = parseMedia(await waitForHttp200(mediaUrl));
    return media.mediaSequence + media.segments.length - 1;
  };

  it('restreams to a second RTMP server, survives its death, and reconnects when it returns', async () => {
    const port = await freePort();
    const deadPort = await freePort(); // nothing listens there
    nginx = await startNginxRtmp(path.join(work, 'nginx'), port);

    const input = await createLiveInput(server, { meta: { name: 'simulcast' }, recording: { mode: 'automatic', timeoutSeconds: 0 } });
    const good = await server.api<{ result: OutputView }>('POST', `/v1/live_inputs/${input.uid}/outputs`, {
      url: `${nginx.rtmpBase}/`,
      streamKey: RESTREAM_KEY,
    });
    expect(good.status).toBe(201);
    expect(good.body.result).toMatchObject({ url: `${nginx.rtmpBase}/`, streamKey: RESTREAM_KEY, enabled: true, status: { current: { state: 'idle' } } });
    const goodUid = good.body.result.uid;
    const dead = await server.api<{ result: OutputView }>('POST', `/v1/live_inputs/${input.uid}/outputs`, {
      url: `rtmp://127.0.0.1:${deadPort}/live`,
      streamKey: DEAD_KEY,
    });
    expect(dead.status).toBe(201);
    const deadUid = dead.body.result.uid;
    // Disabled from the start: stored, never sent to.
    const off = await server.api<{ result: OutputView }>('POST', `/v1/live_inputs/${input.uid}/outputs`, {
      url: 'srt://127.0.0.1:9?latency=200',
      streamKey: 'srt-secret',
      enabled: false,
    });
    expect(off.status).toBe(201);
    // A target that accepts the TCP connection and then never answers nor reads: FFmpeg hangs in
    // the RTMP handshake, stops reading its input, and its queue must be dropped, not grown.
    const holeSockets = new Set<net.Socket>();
    const blackhole = net.createServer((socket) => {
      holeSockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => holeSockets.delete(socket));
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const holePort = (blackhole.address() as net.AddressInfo).port;
    const hole = await server.api<{ result: OutputView }>('POST', `/v1/live_inputs/${input.uid}/outputs`, {
      url: `rtmp://127.0.0.1:${holePort}/live`,
      streamKey: 'hole',
    });
    expect(hole.status).toBe(201);
    // SRT: an SRT listener (ffprobe) receives MPEG-TS with the stream key as streamid.
    const srtPort = await freePort();
    const srtProbe = ffprobe(`srt://127.0.0.1:${srtPort}?mode=listener`);
    const srt = await server.api<{ result: OutputView }>('POST', `/v1/live_inputs/${input.uid}/outputs`, {
      url: `srt://127.0.0.1:${srtPort}?latency=120000`,
      streamKey: 'srt-stream-id',
    });
    expect(srt.status).toBe(201);
    expect((await outputsOf(input.uid)).map((o) => o.uid)).toEqual([goodUid, deadUid, off.body.result.uid, hole.body.result.uid, srt.body.result.uid]);

    // The publisher reports how much media it sent (progress on stderr): the recording must hold all of it.
    publisher = publishTestStream({
      url: `${server.rtmpBase}/${input.streamKey}`,
      width: 640,
      height: 360,
      fps: 30,
      gop: 30,
      extraOutputArgs: ['-progress', 'pipe:2', '-stats_period', '1'],
    });
    const mediaUrl = `${server.httpUrl}/${input.uid}/manifest/source/index.m3u8`;
    await waitForHttp200(mediaUrl, 30_000);

    // The restream arrives and plays from the target, as it was sent: H.264 + AAC, copied.
    await expect.poll(async () => (await outputState(input.uid, goodUid)).current.state, { timeout: 20_000, interval: 200 }).toBe('connected');
    const probe = await ffprobe(`${nginx.rtmpBase}/${RESTREAM_KEY}`);
    expect(probe.streams.find((s) => s.codec_type === 'video')).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);

    // The dead target fails and keeps retrying with its reason shown, secrets masked; it disturbs nothing.
    await expect.poll(async () => (await outputState(input.uid, deadUid)).lastError?.message ?? '', { timeout: 30_000, interval: 200 }).toMatch(/Connection refused/);
    const deadStatus = await outputState(input.uid, deadUid);
    expect(deadStatus.current.state).toBe('reconnecting');
    expect(deadStatus.reconnects).toBeGreaterThanOrEqual(1);
    expect(deadStatus.lastError?.message).not.toContain(DEAD_KEY);
    expect((await outputState(input.uid, off.body.result.uid)).current.state).toBe('disabled');
    const srtSeen = await srtProbe;
    expect(srtSeen.format.format_name).toBe('mpegts');
    expect(srtSeen.streams.some((st) => st.codec_type === 'video' && st.codec_name === 'h264')).toBe(true);
    expect(srtSeen.streams.some((st) => st.codec_type === 'audio' && st.codec_name === 'aac')).toBe(true);
    await expect.poll(async () => (await outputState(input.uid, hole.body.result.uid)).lastError?.message ?? '', { timeout: 30_000, interval: 200 }).toMatch(/nothing reached the target within 12000 ms/);
    await expect.poll(async () => (await outputState(input.uid, hole.body.result.uid)).droppedTags, { timeout: 30_000, interval: 200 }).toBeGreaterThan(0);
    blackhole.close();
    for (const socket of holeSockets) socket.destroy();
    // The others never noticed.
    expect((await outputState(input.uid, goodUid))).toMatchObject({ current: { state: 'connected' }, reconnects: 0 });

    // Disabling while live stops the restream at once; enabling starts it again.
    const ffmpegCount = () => childProcesses(server.process.pid!).filter((p) => p.comm === 'ffmpeg').length;
    const before = ffmpegCount();
    const disabled = await server.api<{ result: OutputView }>('PUT', `/v1/live_inputs/${input.uid}/outputs/${goodUid}`, { enabled: false });
    expect(disabled.status).toBe(200);
    expect(disabled.body.result.status.current.state).toBe('disabled');
    await expect.poll(ffmpegCount, { timeout: 10_000, interval: 100 }).toBe(before - 1);
    const enabled = await server.api<{ result: OutputView }>('PUT', `/v1/live_inputs/${input.uid}/outputs/${goodUid}`, { enabled: true });
    expect(enabled.status).toBe(200);
    expect(enabled.body.result.status.current.state).toBe('connecting');
    await expect.poll(async () => (await outputState(input.uid, goodUid)).current.state, { timeout: 20_000, interval: 200 }).toBe('connected');

    // The target dies mid-stream.
    const msnAtKill = await lastMsn(mediaUrl);
    await nginx.kill();
    await expect.poll(async () => (await outputState(input.uid, goodUid)).current.state, { timeout: 20_000, interval: 200 }).toBe('reconnecting');
    const down = await outputState(input.uid, goodUid);
    expect(down.lastError).not.toBeNull();
    expect(down.lastError?.message).not.toContain(RESTREAM_KEY);
    // …while the main stream keeps producing new segments.
    await expect.poll(() => lastMsn(mediaUrl), { timeout: 20_000, interval: 250 }).toBeGreaterThanOrEqual(msnAtKill + 2);

    // The target returns on the same address: the output reconnects by itself and plays again.
    nginx = await startNginxRtmp(path.join(work, 'nginx'), port);
    await expect.poll(async () => (await outputState(input.uid, goodUid)).current.state, { timeout: 20_000, interval: 200 }).toBe('connected');
    const back = await outputState(input.uid, goodUid);
    expect(back.reconnects).toBeGreaterThanOrEqual(1);
    expect(back.bytesSent).toBeGreaterThan(100_000);
    const again = await ffprobe(`${nginx.rtmpBase}/${RESTREAM_KEY}`);
    expect(again.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264')).toBe(true);

    // The publisher stops: the outputs stop with the session, and the recording is whole.
    const published = await publisher.stop();
    publisher = undefined;
    const sentUs = [...published.stderr.matchAll(/out_time_us=(\d+)/g)].at(-1)?.[1];
    expect(sentUs).toBeDefined();
    const sentSeconds = Number(sentUs) / 1e6;
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 20_000);
    const videoUid = String(ended.video);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 20_000);
    await expect.poll(async () => (await outputState(input.uid, goodUid)).current.state, { timeout: 10_000, interval: 200 }).toBe('idle');
    await expect.poll(ffmpegCount, { timeout: 10_000, interval: 100 }).toBe(0);

    const video = await server.api<{ result: { duration: number; recording: { sessions: number } } }>('GET', `/v1/videos/${videoUid}`);
    expect(video.body.result.recording.sessions).toBe(1);
    const vodMedia = await waitForHttp200(`${server.httpUrl}/${videoUid}/manifest/source/index.m3u8`);
    expect(parseMedia(vodMedia)).toMatchObject({ ended: true, discontinuities: 0 });
    const played = await decodedDuration(`${server.httpUrl}/${videoUid}/manifest/video.m3u8`);
    console.log(`published ${sentSeconds.toFixed(2)} s; recording ${video.body.result.duration} s, decoded ${played} s`);
    expect(Math.abs(played - sentSeconds)).toBeLessThan(1.5);
    expect(server.logs.some((l) => l.msg === 'transcoder restarted')).toBe(false);

    // Stream keys of targets are secrets: never in a log line.
    expect(server.output()).not.toContain(RESTREAM_KEY);
    expect(server.output()).not.toContain(DEAD_KEY);
  });

  it('refuses bad outputs with clear errors, caps outputs at 50 atomically, and keeps serving', async () => {
    const input = await createLiveInput(server);
    const base = `/v1/live_inputs/${input.uid}/outputs`;
    const refuse = async (body: unknown, status: number, code: string, message?: RegExp) => {
      const res = await server.api<ErrorView>('POST', base, body);
      expect({ body, status: res.status, code: res.body.errors?.[0]?.code }).toEqual({ body, status, code });
      if (message) expect(res.body.errors[0]!.message).toMatch(message);
    };
    const scheme = /rtmp:\/\/, rtmps:\/\/ or srt:\/\//;
    await refuse({ url: 'http://example.com/live', streamKey: 'k' }, 400, 'VALIDATION_FAILED', scheme);
    await refuse({ url: 'file:///etc/passwd' }, 400, 'VALIDATION_FAILED', scheme);
    await refuse({ url: 'rtmpx://example.com/live' }, 400, 'VALIDATION_FAILED', scheme);
    await refuse({ url: 'javascript:alert(1)' }, 400, 'VALIDATION_FAILED', scheme);
    await refuse({ url: 'udp://127.0.0.1:1234' }, 400, 'VALIDATION_FAILED', scheme);
    await refuse({ url: 'not a url' }, 400, 'VALIDATION_FAILED', /spaces/);
    await refuse({ url: 'rtmp://' }, 400, 'VALIDATION_FAILED');
    await refuse({ url: 'rtmp://user:pass@example.com/live' }, 400, 'VALIDATION_FAILED', /credentials/);
    await refuse({ url: 'srt://example.com' }, 400, 'VALIDATION_FAILED', /port/);
    await refuse({ url: 'rtmp://example.com/live\n-f null' }, 400, 'VALIDATION_FAILED', /control/);
    await refuse({ url: 'rtmp://example.com/live', streamKey: 'a b' }, 400, 'VALIDATION_FAILED', /streamKey/);
    await refuse({ url: 'rtmp://example.com/live', streamKey: 'k\u0000' }, 400, 'VALIDATION_FAILED', /streamKey/);
    await refuse({ url: `rtmp://example.com/${'a'.repeat(1100)}` }, 400, 'VALIDATION_FAILED', /url/);
    await refuse({ url: 'rtmp://example.com/live', streamKey: 'k'.repeat(600) }, 400, 'VALIDATION_FAILED', /streamKey/);
    await refuse({ streamKey: 'k' }, 400, 'VALIDATION_FAILED', /url/);
    await refuse({ url: 'rtmp://example.com/live', extra: 1 }, 400, 'VALIDATION_FAILED', /unknown field "extra"/);
    await refuse({ url: 42 }, 400, 'VALIDATION_FAILED');
    await refuse({ url: 'rtmp://example.com/live', enabled: 'yes' }, 400, 'VALIDATION_FAILED');
    await refuse([], 400, 'VALIDATION_FAILED');

    const raw = async (method: string, url: string, body: string, type = 'application/json') =>
      fetch(`${server.httpUrl}${url}`, { method, body, headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': type } });
    const malformed = await raw('POST', base, '{"url": "rtmp://x/y",');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as ErrorView).errors[0]!.code).toBe('INVALID_JSON');
    const huge = await raw('POST', base, JSON.stringify({ url: 'rtmp://example.com/live', streamKey: 'k'.repeat(100_000) }));
    expect(huge.status).toBe(413);
    const proto = await raw('POST', base, '{"url":"rtmp://127.0.0.1/a","__proto__":{"enabled":false}}');
    expect(proto.status).toBe(400);
    const nested = await raw('POST', base, `{"url":${'['.repeat(5000)}${']'.repeat(5000)}}`);
    expect(nested.status).toBe(400);
    const text = await raw('POST', base, 'url=rtmp://x/y', 'text/plain');
    expect(text.status).toBe(415);
    const noAuth = await fetch(`${server.httpUrl}${base}`);
    expect(noAuth.status).toBe(401);

    // Unknown ids and ids in the wrong format.
    const unknownInput = 'f'.repeat(32);
    expect((await server.api<ErrorView>('POST', `/v1/live_inputs/${unknownInput}/outputs`, { url: 'rtmp://example.com/live' })).body.errors[0]!.code).toBe('LIVE_INPUT_NOT_FOUND');
    expect((await server.api<ErrorView>('GET', `/v1/live_inputs/${unknownInput}/outputs`)).status).toBe(404);
    expect((await server.api<ErrorView>('GET', `/v1/live_inputs/NOT-A-UID/outputs`)).status).toBe(400);
    const unknownOutput = await server.api<ErrorView>('GET', `${base}/${'e'.repeat(32)}`);
    expect({ status: unknownOutput.status, code: unknownOutput.body.errors[0]!.code }).toEqual({ status: 404, code: 'OUTPUT_NOT_FOUND' });
    expect((await server.api<ErrorView>('PUT', `${base}/${'e'.repeat(32)}`, { enabled: false })).status).toBe(404);
    expect((await server.api<ErrorView>('DELETE', `${base}/${'e'.repeat(32)}`)).status).toBe(404);
    expect((await server.api<ErrorView>('DELETE', `${base}/../../x`)).status).toBeGreaterThanOrEqual(400);

    // An update is validated like a create.
    const one = await server.api<{ result: OutputView }>('POST', base, { url: 'rtmps://live.example.com:443/app', streamKey: 'key-1' });
    expect(one.status).toBe(201);
    const bad = await server.api<ErrorView>('PUT', `${base}/${one.body.result.uid}`, { url: 'http://example.com/' });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]!.message).toMatch(scheme);
    const retarget = await server.api<{ result: OutputView }>('PUT', `${base}/${one.body.result.uid}`, { url: 'srt://127.0.0.1:7001?latency=120', streamKey: '' });
    expect(retarget.status).toBe(200);
    expect(retarget.body.result).toMatchObject({ url: 'srt://127.0.0.1:7001?latency=120', streamKey: '', enabled: true });

    // More than 50: concurrent creates never pass the cap.
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => server.api<ErrorView>('POST', base, { url: `rtmp://127.0.0.1/app${i}`, streamKey: `k${i}` })),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(49);
    expect(statuses.filter((s) => s === 409)).toHaveLength(11);
    const over = results.find((r) => r.status === 409)!;
    expect(over.body.errors[0]).toMatchObject({ code: 'OUTPUT_LIMIT_REACHED', message: expect.stringMatching(/at most 50/) });
    expect(await outputsOf(input.uid)).toHaveLength(50);
    // Deleting one makes room for one.
    expect((await server.api('DELETE', `${base}/${one.body.result.uid}`)).status).toBe(200);
    expect((await server.api('POST', base, { url: 'rtmp://127.0.0.1/again' })).status).toBe(201);
    expect((await server.api('POST', base, { url: 'rtmp://127.0.0.1/again2' })).status).toBe(409);

    // Outputs go with their input.
    expect((await server.api('DELETE', `/v1/live_inputs/${input.uid}`)).status).toBe(200);
    expect((await server.api<ErrorView>('GET', base)).body.errors[0]!.code).toBe('LIVE_INPUT_NOT_FOUND');
    expect((await server.api<ErrorView>('POST', base, { url: 'rtmp://127.0.0.1/late' })).status).toBe(404);

    // Everyone else is still served.
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    const other = await createLiveInput(server);
    expect((await server.api('POST', `/v1/live_inputs/${other.uid}/outputs`, { url: 'rtmp://127.0.0.1/ok' })).status).toBe(201);
  });
});
