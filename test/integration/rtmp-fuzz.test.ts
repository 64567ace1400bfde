import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RtmpServer } from '../../src/ingest/rtmp/rtmp-server.ts';
import {
  IngestRefusal,
  type FlvTag,
  type IngestHandler,
  type PublishEndReason,
  type PublishRequest,
  type PublishSession,
} from '../../src/live/ingest-contract.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { mulberry32 } from '../helpers/prng.ts';

const CASES = Number(process.env.FUZZ_CASES ?? 400);
const CONCURRENCY = 16;
const CAPTURE_BYTES = 48 * 1024;

class FuzzSession implements PublishSession {
  readonly liveInputUid = 'input-1';
  readonly tags: FlvTag[] = [];
  readonly endReasons: PublishEndReason[] = [];
  pushFlvTag(tag: FlvTag): void {
    this.tags.push(tag);
  }
  end(reason: PublishEndReason): void {
    this.endReasons.push(reason);
  }
  onTerminate(): void {}
}

class FuzzHandler implements IngestHandler {
  readonly sessions: FuzzSession[] = [];
  async openPublish(request: PublishRequest): Promise<PublishSession> {
    if (request.streamKey !== 'good-key') throw new IngestRefusal('STREAM_KEY_UNKNOWN', 'unknown stream key');
    const session = new FuzzSession();
    this.sessions.push(session);
    return session;
  }
}

/** Records what a real FFmpeg publisher sends, through a proxy in front of the server. */
async function captureFfmpegPublish(serverPort: number): Promise<Buffer> {
  const recorded: Buffer[] = [];
  let size = 0;
  const proxy = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: serverPort });
    client.on('data', (b: Buffer) => {
      if (size < CAPTURE_BYTES) {
        recorded.push(Buffer.from(b));
        size += b.length;
      }
      upstream.write(b);
    });
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as net.AddressInfo;
  const exit = await publishTestStream({ url: `rtmp://127.0.0.1:${port}/live/good-key`, seconds: 1, width: 320, height: 240, fps: 15, realtime: false })
    .exited;
  await new Promise<void>((resolve) => proxy.close(() => resolve()));
  expect(exit.code, exit.stderr).toBe(0);
  return Buffer.concat(recorded).subarray(0, CAPTURE_BYTES);
}

function mutate(capture: Buffer, rand: () => number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  const kind = int(5);
  if (kind === 0) {
    // Pure noise, sometimes behind a valid C0 so that it reaches the handshake.
    const noise = Buffer.from(Array.from({ length: 1 + int(6000) }, () => int(256)));
    if (rand() < 0.5) noise[0] = 3;
    return noise;
  }
  const input = Buffer.from(capture.subarray(0, 1 + int(capture.length)));
  // Most flips land after the handshake (3073 bytes), where the chunk parser and AMF live.
  const pos = () => (rand() < 0.85 && input.length > 3073 ? 3073 + int(input.length - 3073) : int(input.length));
  if (kind === 1) {
    for (let i = 0, n = 1 + int(8); i < n; i++) {
      const p = pos();
      input[p] = (input[p] ?? 0) ^ (1 << int(8));
    }
    return input;
  }
  if (kind === 2) {
    for (let i = 0, n = 1 + int(4); i < n; i++) input[pos()] = [0x00, 0xff, 0x7f, 0x80][int(4)] ?? 0;
    return input;
  }
  if (kind === 3) {
    // Splice: repeat or drop a slice, desynchronising chunk boundaries.
    const a = pos();
    const b = Math.min(input.length, a + int(512));
    return rand() < 0.5
      ? Buffer.concat([input.subarray(0, b), input.subarray(a, b), input.subarray(b)])
      : Buffer.concat([input.subarray(0, a), input.subarray(b)]);
  }
  // Random bytes written over a region.
  const a = pos();
  for (let i = a; i < Math.min(input.length, a + 1 + int(32)); i++) input[i] = int(256);
  return input;
}

/**
 * Sends one input and half-closes; resolves true when the server has closed the connection.
 * Bytes after `split` (the end of the publish command) are held back until the server has
 * answered the publish, since media sent before acceptance is dropped unparsed.
 */
function throwAt(port: number, input: Buffer, split: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 5_000);
    let answered = '';
    let rest: Buffer | undefined = split < input.length ? input.subarray(split) : undefined;
    socket.on('error', () => {});
    socket.on('data', (b: Buffer) => {
      answered = (answered + b.toString('latin1')).slice(-4096);
      if (rest && answered.includes('NetStream.Publish.')) {
        socket.end(rest);
        rest = undefined;
      }
    });
    socket.once('connect', () => (rest ? socket.write(input.subarray(0, split)) : socket.end(input)));
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

describe('RTMP ingest under fuzzed input', () => {
  const handler = new FuzzHandler();
  let server: RtmpServer;

  beforeAll(async () => {
    server = new RtmpServer({
      host: '127.0.0.1',
      port: 0,
      handler,
      logger: silentLogger(),
      authFailureDelayMs: 50,
      handshakeTimeoutMs: 800,
      idleTimeoutMs: 2_000,
    });
    await server.start();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('survives hundreds of mutated inputs and still serves a good publisher', async () => {
    const capture = await captureFfmpegPublish(server.port);
    // The capture holds the handshake, the commands and some media.
    expect(capture.length).toBeGreaterThan(10_000);
    expect(capture.includes('good-key')).toBe(true);
    const sessionsAfterCapture = handler.sessions.length;

    // The publish command (FFmpeg names the key earlier too, in releaseStream and FCPublish) ends
    // with the stream name and the AMF string 'live' (7 bytes).
    const publishAt = capture.indexOf(Buffer.from('\x02\x00\x07publish', 'latin1'));
    expect(publishAt).toBeGreaterThan(3073);
    const split = capture.indexOf('good-key', publishAt) + 'good-key'.length + 7;
    const rand = mulberry32(Number(process.env.FUZZ_SEED ?? 0x7269_6274));
    const inputs = Array.from({ length: CASES }, () => mutate(capture, rand));
    const results: boolean[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < inputs.length) {
          const input = inputs[next++]!;
          results.push(await throwAt(server.port, input, split));
        }
      }),
    );
    // Every connection was closed by the server (or after our FIN), none left hanging.
    expect(results.filter((closed) => !closed)).toHaveLength(0);
    await vi.waitFor(() => expect(server.connectionCount).toBe(0), { timeout: 5_000 });
    // Some mutants kept a valid publish; each of their sessions was ended.
    for (const session of handler.sessions) expect(session.endReasons.length).toBeGreaterThan(0);
    expect(server.protocolErrorCount).toBeGreaterThan(CASES / 10);
    // …and some of those got far enough to push media, so the post-acceptance path was fuzzed too.
    expect(handler.sessions.slice(sessionsAfterCapture).filter((s) => s.tags.length > 0).length).toBeGreaterThan(10);

    const before = handler.sessions.length;
    expect(before).toBeGreaterThanOrEqual(sessionsAfterCapture);
    const exit = await publishTestStream({ url: `rtmp://127.0.0.1:${server.port}/live/good-key`, seconds: 1, width: 320, height: 240, fps: 15 }).exited;
    expect(exit.code, exit.stderr).toBe(0);
    const session = handler.sessions[before]!;
    expect(session.tags.some((t) => t.keyframe)).toBe(true);
    await vi.waitFor(() => expect(session.endReasons).toEqual(['client_disconnect']));
  });
});
