import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RtmpServer } from '../../src/ingest/rtmp/rtmp-server.ts';
import {
  IngestRefusal,
  type FlvTag,
  type IngestHandler,
  type PublishEndReason,
  type PublishRequest,
  type PublishSession,
  type TerminateReason,
} from '../../src/live/ingest-contract.ts';
import { FlvSourceInfo } from '../../src/media/flv-source-info.ts';
import { encodeFlvHeader, encodeFlvTag } from '../../src/media/flv-tags.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { FFMPEG, publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { selfSignedCert } from '../helpers/tls.ts';

const run = promisify(execFile);
const nmsAmf = createRequire(import.meta.url)('node-media-server/src/protocol/amf.js') as {
  encodeAmf0Cmd(opt: Record<string, unknown>): Buffer;
};

const HANDSHAKE_TIMEOUT_MS = 1_500;
const IDLE_TIMEOUT_MS = 2_000;
const KEYS = ['good-key', 'bad-key', 'busy-key'];

class TestSession implements PublishSession {
  readonly liveInputUid: string;
  readonly tags: FlvTag[] = [];
  readonly endReasons: PublishEndReason[] = [];
  endedAt = 0;
  #terminate: ((reason: TerminateReason) => void) | undefined;
  constructor(uid: string) {
    this.liveInputUid = uid;
  }
  pushFlvTag(tag: FlvTag): void {
    this.tags.push(tag);
  }
  end(reason: PublishEndReason): void {
    if (this.endReasons.length === 0) this.endedAt = Date.now();
    this.endReasons.push(reason);
  }
  onTerminate(listener: (reason: TerminateReason) => void): void {
    this.#terminate = listener;
  }
  terminate(reason: TerminateReason): void {
    this.#terminate?.(reason);
  }
}

class TestHandler implements IngestHandler {
  readonly sessions: TestSession[] = [];
  readonly requests: PublishRequest[] = [];
  async openPublish(request: PublishRequest): Promise<PublishSession> {
    this.requests.push(request);
    if (request.streamKey === 'good-key') {
      const session = new TestSession('input-1');
      this.sessions.push(session);
      return session;
    }
    if (request.streamKey === 'busy-key') throw new IngestRefusal('LIVE_INPUT_BUSY', 'live input busy', 'input-2');
    throw new IngestRefusal('STREAM_KEY_UNKNOWN', 'unknown stream key');
  }
}

// --- a raw RTMP client, for what no well-behaved client sends ---

function handshake(): Buffer {
  // C0 (version 3) + C1 + C2 of zeros: the server falls back to the simple handshake.
  return Buffer.concat([Buffer.from([3]), Buffer.alloc(1536), Buffer.alloc(1536)]);
}

/** One message as a type-0 chunk plus type-3 continuations at the default chunk size. */
function chunked(cid: number, type: number, streamId: number, payload: Buffer, timestamp = 0, chunkSize = 128): Buffer {
  const header = Buffer.alloc(12);
  header[0] = cid;
  header.writeUIntBE(timestamp, 1, 3);
  header.writeUIntBE(payload.length, 4, 3);
  header[7] = type;
  header.writeUInt32LE(streamId, 8);
  const parts: Buffer[] = [header];
  for (let p = 0; p < payload.length; p += chunkSize) {
    if (p > 0) parts.push(Buffer.from([0xc0 | cid]));
    parts.push(payload.subarray(p, p + chunkSize));
  }
  return Buffer.concat(parts);
}

function command(opt: Record<string, unknown>, streamId = 0): Buffer {
  return chunked(3, 20, streamId, nmsAmf.encodeAmf0Cmd(opt));
}

function publishSequence(key: string, app = 'live'): Buffer {
  return Buffer.concat([
    handshake(),
    command({ cmd: 'connect', transId: 1, cmdObj: { app, type: 'nonprivate', tcUrl: `rtmp://127.0.0.1/${app}` } }),
    command({ cmd: 'createStream', transId: 2, cmdObj: null }),
    command({ cmd: 'publish', transId: 3, cmdObj: null, streamName: key, type: 'live' }, 1),
  ]);
}

interface RawClient {
  socket: net.Socket;
  received: () => Buffer;
  /** Resolves with ms from connect to close. */
  closed: Promise<number>;
}

async function rawClient(port: number, bytes?: Buffer): Promise<RawClient> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const chunks: Buffer[] = [];
  socket.on('data', (b: Buffer) => chunks.push(b));
  socket.on('error', () => {});
  const started = Date.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  if (bytes) socket.write(bytes);
  return { socket, received: () => Buffer.concat(chunks), closed };
}

function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}


describe('RTMP ingest', () => {
  const logLines: string[] = [];
  const handler = new TestHandler();
  let server: RtmpServer;
  let url: string;

  beforeAll(async () => {
    const logger = createLogger({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    server = new RtmpServer({
      host: '127.0.0.1',
      port: 0,
      handler,
      logger,
      authFailureDelayMs: 200,
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
    });
    await server.start();
    url = `rtmp://127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server?.close();
  });

  it('ingests a real ffmpeg publish while refusing bad clients', async () => {
    const publisher = publishTestStream({ url: `${url}/live/good-key`, seconds: 3, width: 640, height: 360, fps: 30, gop: 30 });
    await vi.waitFor(() => expect(handler.sessions[0]?.tags.some((t) => t.keyframe)).toBe(true), { timeout: 15_000 });
    const session = handler.sessions[0]!;
    const requestsBefore = handler.requests.length;
    const tagsBefore = session.tags.length;

    const refusedPublish = async (key: string) => {
      const exit = await publishTestStream({ url: `${url}/live/${key}`, seconds: 3, width: 160, height: 120, fps: 10, audio: false }).exited;
      expect(exit.code).not.toBe(0);
      return exit.stderr;
    };
    const [badKeyErr, busyKeyErr, wrongAppExit, playExit, garbage, texty, half, chunkZero, hugeLength] = await Promise.all([
      refusedPublish('bad-key'),
      refusedPublish('busy-key'),
      publishTestStream({ url: `${url}/other/good-key`, seconds: 3, width: 160, height: 120, fps: 10, audio: false }).exited,
      run(FFMPEG, ['-hide_banner', '-nostdin', '-rw_timeout', '10000000', '-i', `${url}/live/good-key`, '-t', '1', '-f', 'null', '-']).then(
        () => ({ code: 0 }),
        (err: { code?: number }) => ({ code: err.code ?? -1 }),
      ),
      // Random bytes after a valid C0: the handshake completes, chunk parsing meets garbage.
      rawClient(server.port, Buffer.concat([Buffer.from([3]), Buffer.from(Array.from({ length: 8_000 }, (_, i) => (i * 7919) % 251))])).then((c) => c.closed),
      // Not RTMP at all: refused on the first byte.
      rawClient(server.port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).then((c) => c.closed),
      rawClient(server.port, Buffer.concat([Buffer.from([3]), Buffer.alloc(768)])).then((c) => c.closed),
      rawClient(server.port, Buffer.concat([handshake(), chunked(2, 1, 0, Buffer.from([0, 0, 0, 0]))])).then((c) => c.closed),
      // A video message header announcing 16 MiB before any publish.
      rawClient(server.port, Buffer.concat([handshake(), Buffer.from([0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0, 0x17, 0x01])])).then((c) => c.closed),
    ]);

    expect(badKeyErr).toContain('STREAM_KEY_UNKNOWN');
    expect(busyKeyErr).toContain('LIVE_INPUT_BUSY');
    expect(wrongAppExit.code).not.toBe(0);
    expect(playExit.code).not.toBe(0);
    expect(garbage).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2_000);
    expect(texty).toBeLessThan(1_000);
    expect(half).toBeGreaterThanOrEqual(HANDSHAKE_TIMEOUT_MS - 100);
    expect(half).toBeLessThan(HANDSHAKE_TIMEOUT_MS + 2_000);
    expect(chunkZero).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
    expect(hugeLength).toBeLessThan(HANDSHAKE_TIMEOUT_MS);
    // Only the two refused keys reached the handler: no session for the wrong app or the player.
    expect(handler.requests.slice(requestsBefore).map((r) => r.streamKey).sort()).toEqual(['bad-key', 'busy-key']);
    expect(handler.sessions).toHaveLength(1);
    // The good publish kept flowing throughout.
    expect(session.tags.length).toBeGreaterThan(tagsBefore);

    const exit = await publisher.exited;
    expect(exit.code, exit.stderr).toBe(0);
    const exitedAt = Date.now();
    await vi.waitFor(() => expect(session.endReasons).toEqual(['client_disconnect']), { timeout: 2_000 });
    expect(session.endedAt - exitedAt).toBeLessThan(1_000);

    const video = session.tags.filter((t) => t.type === 9);
    const audio = session.tags.filter((t) => t.type === 8);
    expect(video.filter((t) => t.sequenceHeader)).toHaveLength(1);
    expect(audio.filter((t) => t.sequenceHeader)).toHaveLength(1);
    expect(video.filter((t) => t.keyframe).length).toBeGreaterThanOrEqual(3);
    expect(video.length).toBeGreaterThan(80);
    expect(audio.length).toBeGreaterThan(100);
    // Per track: FFmpeg's muxer may flush one track slightly ahead of the other at the end.
    for (const track of [video, audio]) {
      for (let i = 1; i < track.length; i++) expect(track[i]!.timestamp).toBeGreaterThanOrEqual(track[i - 1]!.timestamp);
    }
    // Each tag owns its bytes: no two overlap in memory (the codec reuses its reassembly buffer).
    const ranges = session.tags.map((t) => ({ buffer: t.data.buffer, start: t.data.byteOffset, end: t.data.byteOffset + t.data.length }));
    ranges.sort((a, b) => a.start - b.start);
    for (let i = 0; i < ranges.length; i++) {
      for (let j = i + 1; j < ranges.length && ranges[j]!.start < ranges[i]!.end; j++) {
        expect(ranges[j]!.buffer).not.toBe(ranges[i]!.buffer);
      }
    }

    const info = new FlvSourceInfo();
    for (const tag of session.tags) info.push(tag);
    expect(info.info).toEqual({
      video: { codec: 'h264', width: 640, height: 360, codecString: expect.stringMatching(/^avc1\.64/) },
      audio: { codec: 'aac', sampleRate: 48000, channels: 2, codecString: 'mp4a.40.2' },
    });

    // What the live session will write to FFmpeg's stdin is a valid FLV stream.
    const dir = await mkdtemp(join(tmpdir(), 'rtmp-ingest-'));
    try {
      const file = join(dir, 'out.flv');
      await writeFile(file, Buffer.concat([encodeFlvHeader({ audio: true, video: true }), ...session.tags.map(encodeFlvTag)]));
      const { stdout } = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', file]);
      const streams = (JSON.parse(stdout) as { streams: Array<Record<string, unknown>> }).streams;
      const v = streams.find((s) => s.codec_type === 'video');
      expect(v).toMatchObject({ codec_name: 'h264', width: 640, height: 360 });
      // Frames are AVC NALU tags (packet type 1): not the sequence header or end-of-sequence.
      expect(Number(v?.nb_read_frames)).toBe(video.filter((t) => t.data[1] === 1).length);
      expect(streams.find((s) => s.codec_type === 'audio')).toMatchObject({ codec_name: 'aac', sample_rate: '48000' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('closes the publisher when the session terminates it', async () => {
    const before = handler.sessions.length;
    const publisher = publishTestStream({ url: `${url}/live/good-key`, width: 320, height: 240, fps: 15 });
    try {
      await vi.waitFor(() => expect(handler.sessions[before]?.tags.length).toBeGreaterThan(0), { timeout: 15_000 });
      const session = handler.sessions[before]!;
      session.terminate('input_disabled');
      const exit = await withTimeout(publisher.exited, 10_000, 'ffmpeg exit after terminate');
      expect(exit.signal).toBeNull();
      // A terminated session is already over: the adapter does not end it again.
      expect(session.endReasons).toEqual([]);
    } finally {
      await publisher.stop();
    }
  });

  it('ends a silent publisher with timeout', async () => {
    const before = handler.sessions.length;
    const client = await rawClient(server.port, publishSequence('good-key'));
    await vi.waitFor(() => expect(handler.sessions[before]).toBeDefined(), { timeout: 5_000 });
    const elapsed = await withTimeout(client.closed, IDLE_TIMEOUT_MS + 5_000, 'idle close');
    expect(elapsed).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 100);
    expect(handler.sessions[before]!.endReasons).toEqual(['timeout']);
    expect(client.received().includes('NetStream.Publish.Start')).toBe(true);
  });

  it('closes a publisher sending an oversize message with protocol_error', async () => {
    const before = handler.sessions.length;
    const client = await rawClient(server.port, publishSequence('good-key'));
    await vi.waitFor(() => expect(client.received().includes('NetStream.Publish.Start')).toBe(true), { timeout: 5_000 });
    const session = handler.sessions[before]!;
    client.socket.write(chunked(4, 9, 1, Buffer.from([0x17, 0x01, 0, 0, 0, 1, 2, 3]), 40));
    await vi.waitFor(() => expect(session.tags).toHaveLength(1));
    client.socket.write(Buffer.from([0x04, 0, 0, 0, 0xff, 0xff, 0xff, 9, 1, 0, 0, 0, 0x17, 0x01]));
    await withTimeout(client.closed, 2_000, 'close on oversize');
    expect(session.endReasons).toEqual(['protocol_error']);
    expect(session.tags[0]).toMatchObject({ type: 9, timestamp: 40, keyframe: true, sequenceHeader: false });
  });

  it('answers a refused publish only after the delay, then closes', async () => {
    const started = Date.now();
    const client = await rawClient(server.port, publishSequence('bad-key'));
    await withTimeout(client.closed, 5_000, 'close after refusal');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    const answer = client.received().toString('latin1');
    expect(answer).toContain('NetStream.Publish.BadName');
    expect(answer).not.toContain('NetStream.Publish.Start');
    expect(answer).not.toContain('bad-key');
  });

  it('serves RTMPS with the same code path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rtmps-'));
    const tlsHandler = new TestHandler();
    const tlsServer = new RtmpServer({ host: '127.0.0.1', port: 0, handler: tlsHandler, logger: createLogger({ level: 'silent' }), tls: await selfSignedCert() });
    try {
      await tlsServer.start();
      const exit = await publishTestStream({ url: `rtmps://127.0.0.1:${tlsServer.port}/live/good-key`, seconds: 1, width: 160, height: 120, fps: 10 }).exited;
      expect(exit.code, exit.stderr).toBe(0);
      expect(tlsHandler.requests.map((r) => r.protocol)).toEqual(['rtmps']);
      const session = tlsHandler.sessions[0]!;
      expect(session.tags.some((t) => t.keyframe)).toBe(true);
      await vi.waitFor(() => expect(session.endReasons).toEqual(['client_disconnect']));
    } finally {
      await tlsServer.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never logs a stream key and ends with no connection left', async () => {
    await vi.waitFor(() => expect(server.connectionCount).toBe(0), { timeout: 5_000 });
    const text = logLines.join('');
    expect(text).toContain('rtmp publish accepted');
    expect(text).toContain('rtmp publish refused');
    for (const key of KEYS) expect(text).not.toContain(key);
  });
});
