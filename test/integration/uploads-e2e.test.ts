import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { startServer, type TestServer } from '../helpers/server.ts';
import { decodedDuration, ffprobe, parseMaster } from '../helpers/probe.ts';

const run = promisify(execFile);

interface VideoView {
  uid: string;
  meta: Record<string, unknown>;
  status: { state: string; pctComplete?: string; errorReasonCode?: string };
  readyToStream: boolean;
  duration: number;
  renditions: Array<{ name: string; width: number; height: number; codecs: string }>;
  requireSignedURLs: boolean;
  playback: { hls: string };
}

type Envelope<T> = { result: T; success: boolean; errors: Array<{ code: string; message: string }> };

/** A real MP4 (H.264 + AAC, moov at the end as FFmpeg writes it by default). */
async function makeClip(file: string, seconds: number, opts: { faststart?: boolean; size?: string } = {}): Promise<Buffer> {
  await run('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-y',
    '-f', 'lavfi', '-i', `testsrc=size=${opts.size ?? '640x360'}:rate=30`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-g', '30', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '96k', '-shortest', ...(opts.faststart ? ['-movflags', '+faststart'] : []), file,
  ]);
  return readFile(file);
}

function form(data: Buffer, field = 'file'): FormData {
  const body = new FormData();
  body.append(field, new Blob([new Uint8Array(data)]), 'clip.mp4');
  return body;
}

async function postForm(server: TestServer, url: string, data: Buffer, withKey = true): Promise<{ status: number; body: Envelope<VideoView> }> {
  const res = await fetch(url.startsWith('http') ? url : `${server.httpUrl}${url}`, {
    method: 'POST',
    headers: withKey ? { authorization: `Bearer ${server.apiKey}` } : {},
    body: form(data),
  });
  return { status: res.status, body: (await res.json()) as Envelope<VideoView> };
}

async function getVideo(server: TestServer, uid: string): Promise<{ status: number; video: VideoView }> {
  const res = await server.api<Envelope<VideoView>>('GET', `/v1/videos/${uid}`);
  return { status: res.status, video: res.body.result };
}

/** Polls until the video is ready or failed; returns every pctComplete seen while in progress. */
async function waitUntilDone(server: TestServer, uid: string, timeoutMs = 120_000): Promise<{ video: VideoView; progress: number[]; states: string[] }> {
  const progress: number[] = [];
  const states: string[] = [];
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { video } = await getVideo(server, uid);
    if (states.at(-1) !== video.status.state) states.push(video.status.state);
    if (video.status.state === 'inprogress' && video.status.pctComplete !== undefined) progress.push(Number(video.status.pctComplete));
    if (video.status.state === 'ready' || video.status.state === 'error') return { video, progress, states };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`video ${uid} not processed within ${timeoutMs} ms; states seen: ${states.join(' → ')}`);
}

/** A minimal tus 1.0 client over fetch: create, then PATCH in chunks, checking the offset with HEAD. */
async function tusCreate(server: TestServer, size: number, metadata: Record<string, string>): Promise<Response> {
  return fetch(`${server.httpUrl}/v1/videos/tus`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      'tus-resumable': '1.0.0',
      'upload-length': String(size),
      ...(Object.keys(metadata).length > 0
        ? { 'upload-metadata': Object.entries(metadata).map(([k, v]) => `${k} ${Buffer.from(v).toString('base64')}`).join(',') }
        : {}),
    },
  });
}

async function tusPatch(server: TestServer, location: string, offset: number, chunk: Buffer): Promise<Response> {
  return fetch(location, {
    method: 'PATCH',
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      'tus-resumable': '1.0.0',
      'upload-offset': String(offset),
      'content-type': 'application/offset+octet-stream',
    },
    body: new Uint8Array(chunk),
  });
}

async function tusOffset(server: TestServer, location: string): Promise<{ status: number; offset: number }> {
  const res = await fetch(location, { method: 'HEAD', headers: { authorization: `Bearer ${server.apiKey}`, 'tus-resumable': '1.0.0' } });
  return { status: res.status, offset: Number(res.headers.get('upload-offset')) };
}

/** Sends only the request head with a huge Content-Length and reads the answer; the body is never sent. */
function declareHugeBody(server: TestServer, urlPath: string): Promise<string> {
  const url = new URL(server.httpUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\r\n\r\n') && text.includes('}')) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.write(
      `POST ${urlPath} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${server.apiKey}\r\n` +
        'Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 50000000000\r\n\r\n',
    );
  });
}

/**
 * Streams a multipart upload chunked (no Content-Length) until the server answers, and returns the
 * answer: the server can only find the size out by reading.
 */
function streamUntilAnswered(server: TestServer, urlPath: string, file: Buffer): Promise<string> {
  const url = new URL(server.httpUrl);
  const head = Buffer.from('--x\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n');
  const body = Buffer.concat([head, file, Buffer.from('\r\n--x--\r\n')]);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let text = '';
    let sent = 0;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('\r\n\r\n') && text.includes('}')) {
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('error', (error) => (text ? resolve(text) : reject(error)));
    socket.on('close', () => resolve(text));
    socket.write(
      `POST ${urlPath} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${server.apiKey}\r\n` +
        'Content-Type: multipart/form-data; boundary=x\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    const pump = () => {
      while (!text && sent < body.length && !socket.destroyed) {
        const chunk = body.subarray(sent, sent + 65_536);
        sent += chunk.length;
        if (!socket.write(`${chunk.length.toString(16)}\r\n`) || !socket.write(Buffer.concat([chunk, Buffer.from('\r\n')]))) {
          socket.once('drain', pump);
          return;
        }
      }
      if (sent >= body.length && !socket.destroyed) socket.write('0\r\n\r\n');
    };
    pump();
  });
}

async function expectPlayable(video: VideoView, seconds: number): Promise<void> {
  const master = await (await fetch(video.playback.hls)).text();
  const variants = parseMaster(master);
  expect(variants.map((v) => v.attrs['RESOLUTION'])).toEqual(['640x360', '426x240']);
  const probe = await ffprobe(video.playback.hls);
  expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264')).toBe(true);
  expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac' && s.sample_rate === '48000')).toBe(true);
  expect(Number(probe.format.duration)).toBeCloseTo(seconds, 0);
  expect(await decodedDuration(video.playback.hls)).toBeGreaterThan(seconds - 0.5);
}

const TINY_LADDER = JSON.stringify([{ name: '240p', height: 240, videoBitrateKbps: 300, audioBitrateKbps: 64 }]);
const MAX_SIZE = 3_000_000;

// Uploading as a user does, by each of the three paths, and every kind of bad upload.
describe('uploads', () => {
  let server: TestServer;
  let dir: string;
  let clip: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'trib-upl-'));
    clip = await makeClip(path.join(dir, 'clip.mp4'), 10);
    server = await startServer({
      env: { TRIBUTARY_TRANSCODE_LADDER: TINY_LADDER, TRIBUTARY_UPLOADS_MAX_SIZE_BYTES: String(MAX_SIZE) },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('multipart: queued at once, then ready and playable; the source file is removed', async () => {
    const res = await postForm(server, '/v1/videos', clip);
    expect(res.status).toBe(200);
    const uid = res.body.result.uid;
    expect(res.body.result.status.state).toBe('queued');
    expect(res.body.result.duration).toBeCloseTo(10, 0);

    // A small file may be done between two polls; the order of what is seen still holds.
    const { video, progress, states } = await waitUntilDone(server, uid);
    const order = ['queued', 'inprogress', 'ready'];
    expect(states.map((s) => order.indexOf(s))).toEqual([...states.map((s) => order.indexOf(s))].sort());
    expect(states.at(-1)).toBe('ready');
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(video.status).toEqual({ state: 'ready', pctComplete: '100.000000' });
    expect(video.readyToStream).toBe(true);
    expect(video.renditions.map((r) => [r.name, r.height])).toEqual([['source', 360], ['240p', 240]]);
    await expectPlayable(video, 10);
    expect(await readdir(path.join(server.dataDir, 'uploads', 'sources'))).toEqual([]);
  });

  it('direct upload: a one-time URL, used without an API key, with the meta and limits of its request', async () => {
    const created = await server.api<Envelope<{ uploadURL: string; uid: string }>>('POST', '/v1/videos/direct_upload', {
      maxDurationSeconds: 60,
      meta: { name: 'from a browser' },
      requireSignedURLs: false,
    });
    expect(created.status).toBe(200);
    const { uploadURL, uid } = created.body.result;
    expect(uploadURL).toMatch(new RegExp(`^${server.httpUrl}/upload/[A-Za-z0-9_-]{43}$`));
    expect((await getVideo(server, uid)).video.status.state).toBe('pendingupload');
    // A page on another origin may post to it.
    const preflight = await fetch(uploadURL, {
      method: 'OPTIONS',
      headers: { origin: 'https://creator.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');

    const res = await postForm(server, uploadURL, clip, false);
    expect(res.status).toBe(200);
    expect(res.body.result.uid).toBe(uid);
    const { video } = await waitUntilDone(server, uid);
    expect(video.status.state).toBe('ready');
    expect(video.meta).toEqual({ name: 'from a browser' });
    await expectPlayable(video, 10);

    // One URL, one upload.
    const again = await postForm(server, uploadURL, clip, false);
    expect(again.status).toBe(409);
    expect(again.body.errors[0]?.code).toBe('UPLOAD_URL_USED');
    const unknown = await postForm(server, `/upload/${randomBytes(32).toString('base64url')}`, clip, false);
    expect(unknown.status).toBe(404);
  });

  it('tus: created, sent in chunks with the offset checked between, then ready and playable', async () => {
    const created = await tusCreate(server, clip.length, { name: 'resumable', maxdurationseconds: '120' });
    expect(created.status).toBe(201);
    const location = created.headers.get('location') ?? '';
    const uid = location.split('/').at(-1) ?? '';
    expect(uid).toMatch(/^[0-9a-f]{32}$/);
    expect((await getVideo(server, uid)).video.status.state).toBe('pendingupload');

    const third = Math.ceil(clip.length / 3);
    for (let offset = 0; offset < clip.length; offset += third) {
      expect(await tusOffset(server, location)).toEqual({ status: 200, offset });
      const patched = await tusPatch(server, location, offset, clip.subarray(offset, offset + third));
      expect(patched.status).toBe(204);
      if (offset + third >= clip.length) expect(patched.headers.get('stream-media-id')).toBe(uid);
    }
    // A client that lost the last answer learns from HEAD that the upload is complete.
    expect(await tusOffset(server, location)).toEqual({ status: 200, offset: clip.length });
    const { video } = await waitUntilDone(server, uid);
    expect(video.status.state).toBe('ready');
    expect(video.meta).toEqual({ name: 'resumable' });
    await expectPlayable(video, 10);
  });

  it('refuses bad uploads with clear errors, and keeps serving everyone else', async () => {
    const before = (await server.api<{ result_info?: unknown; result: { total: number } }>('GET', '/v1/videos')).body.result.total;

    const text = await postForm(server, '/v1/videos', Buffer.from('this is not a video\n'.repeat(100)));
    expect(text.status).toBe(415);
    expect(text.body.errors[0]?.message).toContain('ERR_NON_VIDEO');

    const truncated = await postForm(server, '/v1/videos', clip.subarray(0, Math.floor(clip.length * 0.6)));
    expect(truncated.status).toBe(422);
    expect(truncated.body.errors[0]?.message).toContain('ERR_MALFORMED_VIDEO');

    const empty = await postForm(server, '/v1/videos', Buffer.alloc(0));
    expect(empty.status).toBe(415);
    expect(empty.body.errors[0]?.message).toContain('empty');

    const noFile = await fetch(`${server.httpUrl}/v1/videos`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.apiKey}` },
      body: form(clip, 'video'),
    });
    expect(noFile.status).toBe(400);
    const noKey = await postForm(server, '/v1/videos', clip, false);
    expect(noKey.status).toBe(401);

    // Over the size limit, declared: 413 comes back although no byte of the body was sent.
    const answer = await declareHugeBody(server, '/v1/videos');
    expect(answer).toMatch(/^HTTP\/1.1 413/);
    expect(answer).toContain('BODY_TOO_LARGE');
    // Over the size limit, not declared (chunked): cut off at the limit.
    const big = await streamUntilAnswered(server, '/v1/videos', Buffer.concat([clip, randomBytes(MAX_SIZE)]));
    expect(big).toMatch(/^HTTP\/1.1 413/);
    expect(big).toContain('BODY_TOO_LARGE');
    // tus: the declared length is checked at creation.
    expect((await tusCreate(server, MAX_SIZE + 1, {})).status).toBe(413);

    // Multipart rejections leave no video behind.
    expect((await server.api<{ result: { total: number } }>('GET', '/v1/videos')).body.result.total).toBe(before);

    // Through a direct upload the video exists already: it records why it failed.
    const created = await server.api<Envelope<{ uploadURL: string; uid: string }>>('POST', '/v1/videos/direct_upload', { maxDurationSeconds: 5 });
    const tooLong = await postForm(server, created.body.result.uploadURL, clip, false);
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.errors[0]?.code).toBe('UPLOAD_TOO_LONG');
    expect((await getVideo(server, created.body.result.uid)).video.status).toEqual({ state: 'error', errorReasonCode: 'ERR_DURATION_EXCEED_CONSTRAINT' });
    // moov first, half the media missing: it probes fine; processing finds out, and says so.
    const faststart = await makeClip(path.join(dir, 'faststart.mp4'), 10, { faststart: true });
    const cut = await server.api<Envelope<{ uploadURL: string; uid: string }>>('POST', '/v1/videos/direct_upload', {});
    expect((await postForm(server, cut.body.result.uploadURL, faststart.subarray(0, faststart.length / 2), false)).status).toBe(200);
    const failed = await waitUntilDone(server, cut.body.result.uid);
    expect(failed.video.status).toEqual({ state: 'error', errorReasonCode: 'ERR_MALFORMED_VIDEO' });
    expect(failed.video.readyToStream).toBe(false);
    expect((await fetch(failed.video.playback.hls)).status).toBe(404);

    const badExpiry = await server.api('POST', '/v1/videos/direct_upload', { expiry: new Date(Date.now() + 10_000).toISOString() });
    expect(badExpiry.status).toBe(400);

    // Nothing was left in the incoming directory, and the server still serves.
    expect(await readdir(path.join(server.dataDir, 'uploads', 'incoming'))).toEqual([]);
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    const good = await postForm(server, '/v1/videos', clip);
    expect(good.status).toBe(200);
    expect((await waitUntilDone(server, good.body.result.uid)).video.status.state).toBe('ready');
  });
});

// Expiry and durability: short timeouts, and a restart in the middle of processing — with the
// default ladder and a 720p file, so that processing lasts long enough to watch and interrupt.
describe('uploads: expiry and restart', () => {
  let server: TestServer;
  let dir: string;
  let clip: Buffer;
  const env = {
    TRIBUTARY_UPLOADS_TUS_EXPIRY_SECONDS: '3',
    TRIBUTARY_UPLOADS_CLEANUP_INTERVAL_SECONDS: '1',
    TRIBUTARY_UPLOADS_DIRECT_UPLOAD_MIN_EXPIRY_SECONDS: '1',
  };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'trib-upl-'));
    clip = await makeClip(path.join(dir, 'long.mp4'), 20, { size: '1280x720' });
    server = await startServer({ env });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('an expired direct upload URL is refused, and its pending video removed', async () => {
    const created = await server.api<Envelope<{ uploadURL: string; uid: string }>>('POST', '/v1/videos/direct_upload', {
      expiry: new Date(Date.now() + 1500).toISOString(),
    });
    expect(created.status).toBe(200);
    const { uploadURL, uid } = created.body.result;
    // Waiting for the clock itself: the URL's expiry.
    await new Promise((r) => setTimeout(r, 2000));
    const late = await postForm(server, uploadURL, clip, false);
    expect(late.status).toBe(410);
    expect(late.body.errors[0]?.code).toBe('UPLOAD_URL_EXPIRED');
    await expect.poll(async () => (await getVideo(server, uid)).status, { timeout: 10_000 }).toBe(404);
  });

  it('a tus upload abandoned halfway is removed after the timeout, its partial file too', async () => {
    const created = await tusCreate(server, clip.length, { name: 'abandoned' });
    const location = created.headers.get('location') ?? '';
    const uid = location.split('/').at(-1) ?? '';
    expect((await tusPatch(server, location, 0, clip.subarray(0, clip.length / 2))).status).toBe(204);
    const tusDir = path.join(server.dataDir, 'uploads', 'tus');
    expect(await readdir(tusDir)).toContain(uid);
    // A finished one (refused: not a video) leaves a stand-in for HEAD, removed at the same expiry.
    const text = Buffer.from('not a video at all\n'.repeat(50));
    const done = (await tusCreate(server, text.length, {})).headers.get('location') ?? '';
    const finished = await tusPatch(server, done, 0, text);
    expect(finished.status).toBe(415);
    expect(await tusOffset(server, done)).toEqual({ status: 200, offset: text.length });
    const doneUid = done.split('/').at(-1) ?? '';
    expect((await getVideo(server, doneUid)).video.status).toEqual({ state: 'error', errorReasonCode: 'ERR_NON_VIDEO' });

    await expect.poll(async () => (await getVideo(server, uid)).status, { timeout: 15_000 }).toBe(404);
    expect((await readdir(tusDir)).filter((f) => f.startsWith(uid))).toEqual([]);
    await expect.poll(async () => (await readdir(tusDir)).filter((f) => f.startsWith(doneUid)), { timeout: 10_000 }).toEqual([]);
    // The refused video itself stays, with its reason.
    expect((await getVideo(server, doneUid)).status).toBe(200);
    expect((await tusOffset(server, location)).status).toBeGreaterThanOrEqual(400);
    await server.waitForLog((l) => l.msg === 'upload expired before it arrived; video removed' && l.video === uid);
  });

  it('pctComplete advances; processing interrupted by a restart resumes and completes', async () => {
    const res = await postForm(server, '/v1/videos', clip);
    expect(res.status).toBe(200);
    const uid = res.body.result.uid;
    const seen: number[] = [];
    await expect
      .poll(
        async () => {
          const { status } = (await getVideo(server, uid)).video;
          if (status.state === 'inprogress') seen.push(Number(status.pctComplete));
          return seen.filter((p) => p > 0).length;
        },
        { timeout: 60_000, interval: 50 },
      )
      .toBeGreaterThanOrEqual(2);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBeGreaterThan(0);
    expect(seen.at(-1)).toBeLessThan(100);
    const stopped = await server.stop();
    expect(stopped.code).toBe(0);
    await server.waitForLog((l) => l.msg === 'processing interrupted by shutdown; it resumes at the next start' && l.video === uid);
    // Kept for the next start: the uploaded file, in the durable sources directory.
    const source = await readFile(path.join(server.dataDir, 'uploads', 'sources', uid));
    expect(createHash('sha256').update(source).digest('hex')).toBe(createHash('sha256').update(clip).digest('hex'));

    server = await startServer({ env, dataDir: server.dataDir, apiKey: server.apiKey });
    const { video } = await waitUntilDone(server, uid);
    expect(video.status.state).toBe('ready');
    await server.waitForLog((l) => l.msg === 'upload processed' && l.video === uid);
    // The default ladder over a 720p H.264 source: the source as is, then the rungs below it.
    expect(video.renditions.map((r) => r.name)).toEqual(['source', '480p', '360p']);
    expect(Number((await ffprobe(video.playback.hls)).format.duration)).toBeCloseTo(20, 0);
    expect(await decodedDuration(video.playback.hls)).toBeGreaterThan(19.5);
    expect(await readdir(path.join(server.dataDir, 'uploads', 'sources'))).toEqual([]);
  });
});
