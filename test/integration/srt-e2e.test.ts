import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeHandshake, HS_TYPE_CONCLUSION, HS_TYPE_INDUCTION } from '../../src/ingest/srt/srt-handshake.ts';
import { publishTestStream, type PublishExit } from '../helpers/ffmpeg-publish.ts';
import { mulberry32 } from '../helpers/prng.ts';
import { ffprobe } from '../helpers/probe.ts';
import { createLiveInput, liveProgress, startServer, waitForHttp200, waitForProgress, type TestServer } from '../helpers/server.ts';

const random = mulberry32(0x5e7);
const randomBytes = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)));

interface SrtView {
  url: string;
  streamId: string;
  passphrase: string;
}

/** FFmpeg 5.1 takes SRT query values verbatim (no percent-decoding), as OBS does. */
function srtUrl(srt: SrtView, params: Record<string, string>): string {
  const query = Object.entries(params).map(([k, v]) => `${k}=${v}`).join('&');
  return `${srt.url}?${query}`;
}

/** A short publish that the server must refuse: resolves with FFmpeg's exit. */
async function refusedPublish(url: string, extraOutputArgs: string[] = []): Promise<PublishExit> {
  const publisher = publishTestStream({ url, format: 'mpegts', seconds: 20, width: 160, height: 120, fps: 10, audio: false, extraOutputArgs });
  const timer = setTimeout(() => void publisher.stop(), 20_000);
  const exit = await publisher.exited;
  clearTimeout(timer);
  return exit;
}

/** Sends datagrams to the SRT port from a fresh socket; resolves with what came back within `waitMs`. */
async function sendUdp(port: number, packets: Buffer[], waitMs = 300): Promise<Buffer[]> {
  const socket = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  socket.on('message', (m) => got.push(m));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  for (const p of packets) socket.send(p, port, '127.0.0.1');
  await new Promise((r) => setTimeout(r, waitMs));
  socket.close();
  return got;
}

function handshake(type: number, version: number, cookie = 0): Buffer {
  return encodeHandshake({
    timestamp: 0, destinationSocketId: 0, version, encryptionField: 0, extensionField: version === 4 ? 2 : 0,
    initialSequence: 1, mtu: 1500, flowWindow: 8192, type, socketId: 1234, cookie, peerIp: Buffer.alloc(16),
  });
}

// SRT: FFmpeg publishes MPEG-TS over SRT with the live input's stream id and passphrase; the
// stream plays over HLS and is recorded; wrong secrets, a second publisher, a disabled input and
// hostile datagrams are refused while the live stream carries on.
describe('SRT ingest', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_TRANSCODE_LADDER: '[]' } });
  });

  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('plays and records an SRT publish, refuses the wrong and the hostile', async () => {
    const port = server.srtPort!;
    expect(port).toBeGreaterThan(0);
    const input = await createLiveInput(server, { meta: { name: 'srt' }, recording: { mode: 'automatic', timeoutSeconds: 0 } });
    const srt = input.raw.srt as SrtView;
    expect(srt).toEqual({ url: `srt://127.0.0.1:${port}`, streamId: input.streamKey, passphrase: expect.stringMatching(/^[0-9a-f]{32}$/) });

    // The access-control form of the stream id (SRT spec): #!::r=<stream key>,m=publish.
    const publisher = publishTestStream({
      url: srtUrl(srt, { streamid: `#!::r=${srt.streamId},m=publish`, passphrase: srt.passphrase }),
      format: 'mpegts',
      width: 320,
      height: 240,
      fps: 25,
    });
    try {
      const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
      await waitForHttp200(masterUrl, 30_000);
      const probe = await ffprobe(masterUrl);
      expect(probe.streams.filter((s) => s.codec_type === 'video').map((s) => `${s.codec_name} ${s.width}x${s.height}`)).toEqual(['h264 320x240']);
      expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);
      const status = await server.api<{ result: { status: unknown } }>('GET', `/v1/live_inputs/${input.uid}`);
      expect(status.body.result.status).toMatchObject({ current: { state: 'connected', ingestProtocol: 'srt' } });
      const before = await liveProgress(masterUrl);

      // Wrong passphrase, unknown stream id, no passphrase, a second publisher: all refused in the handshake.
      const refusals = () => server.logs.filter((l) => l.msg === 'srt publish refused').map((l) => l.why);
      const wrongPass = await refusedPublish(srtUrl(srt, { streamid: srt.streamId, passphrase: 'wrongpassphrase123' }));
      expect(wrongPass.code).not.toBe(0);
      const unknownId = await refusedPublish(srtUrl(srt, { streamid: `sk_${'0'.repeat(64)}`, passphrase: srt.passphrase }));
      expect(unknownId.code).not.toBe(0);
      const noPass = await refusedPublish(srtUrl(srt, { streamid: srt.streamId }));
      expect(noPass.code).not.toBe(0);
      const second = await refusedPublish(srtUrl(srt, { streamid: srt.streamId, passphrase: srt.passphrase }));
      expect(second.code).not.toBe(0);
      const disabled = await createLiveInput(server, { meta: { name: 'off' }, enabled: false });
      const disabledSrt = disabled.raw.srt as SrtView;
      const off = await refusedPublish(srtUrl(disabledSrt, { streamid: disabledSrt.streamId, passphrase: disabledSrt.passphrase }));
      expect(off.code).not.toBe(0);
      expect(refusals()).toEqual([
        'wrong passphrase',
        'unknown stream id',
        'no passphrase: this server only accepts encrypted SRT',
        'LIVE_INPUT_BUSY',
        'LIVE_INPUT_DISABLED',
      ]);
      // HEVC: FFmpeg 5.1 cannot put HEVC in FLV, so it is refused by name rather than half-played.
      const hevcInput = await createLiveInput(server, { meta: { name: 'hevc' } });
      const hevcSrt = hevcInput.raw.srt as SrtView;
      const hevc = await refusedPublish(srtUrl(hevcSrt, { streamid: hevcSrt.streamId, passphrase: hevcSrt.passphrase }), [
        '-c:v', 'libx265', '-preset', 'ultrafast', '-x265-params', 'log-level=error',
      ]);
      expect(hevc.code).not.toBe(0);
      await server.waitForLog((l) => l.msg === 'srt publish failed' && l.liveInputUid === hevcInput.uid && /HEVC over SRT is not supported/.test(String(l.error)));

      // Only callers with the right secrets got past the handshake, and no secret reached the log.
      expect(server.logs.filter((l) => l.msg === 'srt publish accepted').map((l) => l.liveInputUid)).toEqual([input.uid, hevcInput.uid]);
      expect(server.output()).not.toContain(srt.passphrase);
      expect(server.output()).not.toContain(srt.streamId);

      // Hostile datagrams: garbage, a truncated handshake, a conclusion with a forged cookie,
      // an induction flood (answered statelessly), a data packet from an unknown peer.
      const garbageBefore = server.logs.length;
      expect(await sendUdp(port, Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 29)))).toEqual([]);
      expect(await sendUdp(port, [handshake(HS_TYPE_INDUCTION, 4).subarray(0, 40)])).toEqual([]);
      expect(await sendUdp(port, [handshake(HS_TYPE_CONCLUSION, 5, 0xdeadbeef)])).toEqual([]);
      const inductions = await sendUdp(port, Array.from({ length: 200 }, () => handshake(HS_TYPE_INDUCTION, 4)));
      expect(inductions.length).toBeGreaterThan(0);
      expect(await sendUdp(port, [Buffer.concat([Buffer.from([0, 0, 0, 1]), randomBytes(1300)])])).toEqual([]);
      expect(server.logs.slice(garbageBefore).filter((l) => l.level as number >= 50)).toEqual([]);

      // The live stream never noticed.
      await waitForProgress(masterUrl, before);
      expect(publisher.process.exitCode).toBeNull();
    } finally {
      await publisher.stop();
    }

    // Recorded: the session ends with the publisher and becomes a ready video.
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 30_000);
    const videoUid = String(ended.video);
    await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === videoUid, 30_000);
    const video = await server.api<{ result: { status: { state: string }; readyToStream: boolean; duration: number } }>('GET', `/v1/videos/${videoUid}`);
    expect(video.body.result).toMatchObject({ status: { state: 'ready' }, readyToStream: true });
    expect(video.body.result.duration).toBeGreaterThan(2);

    // Disabling the input while an SRT publisher is live ends its session and disconnects it.
    const again = publishTestStream({
      url: srtUrl(srt, { streamid: srt.streamId, passphrase: srt.passphrase }),
      format: 'mpegts', width: 160, height: 120, fps: 10, audio: false,
    });
    try {
      const accepted = server.logs.filter((l) => l.msg === 'srt media flowing').length;
      await server.waitForLog((l) => l.msg === 'srt media flowing' && server.logs.filter((m) => m.msg === 'srt media flowing').length > accepted, 30_000);
      expect((await server.api('PUT', `/v1/live_inputs/${input.uid}`, { enabled: false })).status).toBe(200);
      await server.waitForLog((l) => l.msg === 'srt publish terminated by session' && l.liveInputUid === input.uid, 10_000);
      const exit = await Promise.race([again.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      expect(exit).toBeDefined();
    } finally {
      await again.stop();
    }
  }, 180_000);
});
