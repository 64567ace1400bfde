import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import net from 'node:net';
import { startServer, createLiveInput, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { parseMaster, parseMedia } from '../helpers/probe.ts';

/** Opens a TCP connection, sends bytes, resolves when the server closes it. */
function sendAndWaitClose(port: number, chunks: Buffer[], timeoutMs: number): Promise<'closed' | 'timeout'> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      for (const c of chunks) socket.write(c);
    });
    socket.on('data', () => {});
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('timeout');
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

// Every kind of bad input while a good stream is live: each gets a clear refusal, nothing
// leaks a key, and the good stream keeps advancing throughout.
describe('bad input never disturbs a running stream', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_RTMP_HANDSHAKE_TIMEOUT_MS: '1500' } });
  });
  afterAll(async () => {
    await server?.stop();
    await server?.cleanup();
  });

  it('refuses bad publishers, bad API calls and bad paths while serving the good stream', async () => {
    const good = await createLiveInput(server, { meta: { name: 'good' } });
    const publisher = publishTestStream({
      url: `${server.rtmpBase}/${good.streamKey}`,
      seconds: 30,
      width: 640,
      height: 360,
      fps: 30,
      gop: 30,
      audio: true,
      realtime: true,
    });
    const masterUrl = `${server.httpUrl}/${good.uid}/manifest/video.m3u8`;
    const variants = parseMaster(await waitForHttp200(masterUrl, 30_000));
    const mediaUrl = new URL(variants[0]!.uri, masterUrl).toString();
    const startSeq = parseMedia(await waitForHttp200(mediaUrl));

    // --- RTMP publishers that must be refused ---
    const rotated = await createLiveInput(server, { meta: { name: 'rotated' } });
    const rot = await server.api<{ result: { rtmp: { streamKey: string } } }>('POST', `/v1/live_inputs/${rotated.uid}/rotate_keys`);
    expect(rot.status).toBe(200);
    expect(rot.body.result.rtmp.streamKey).not.toBe(rotated.streamKey);
    const disabled = await createLiveInput(server, { meta: { name: 'off' }, enabled: false });

    const refusedKeys = {
      wrong: 'this-key-does-not-exist-0123456789',
      rotated: rotated.streamKey,
      disabled: disabled.streamKey,
      second: good.streamKey,
    };
    const attempts = await Promise.all(
      Object.values(refusedKeys).map(
        (key) =>
          publishTestStream({
            url: `${server.rtmpBase}/${key}`,
            seconds: 3,
            width: 320,
            height: 240,
            fps: 15,
            gop: 15,
            audio: false,
            realtime: true,
          }).exited,
      ),
    );
    for (const a of attempts) expect(a.code).not.toBe(0);

    // --- a publisher with an 8 s GOP and B-frames: reported on the input, still played ---
    // Its own ladder (a Tributary extension) replaces the server default: source + 180p.
    const sloppy = await createLiveInput(server, {
      meta: { name: 'sloppy encoder' },
      ladder: [{ name: '180p', height: 180, videoBitrateKbps: 200, audioBitrateKbps: 64 }],
    });
    const dupLadder = await server.api<{ errors: Array<{ message: string }> }>('POST', '/v1/live_inputs', {
      ladder: [
        { name: 'a', height: 180, videoBitrateKbps: 200, audioBitrateKbps: 64 },
        { name: 'a', height: 144, videoBitrateKbps: 150, audioBitrateKbps: 64 },
      ],
    });
    expect(dupLadder.status).toBe(400);
    expect(JSON.stringify(dupLadder.body.errors)).toContain('ladder');
    const sloppyPub = publishTestStream({
      url: `${server.rtmpBase}/${sloppy.streamKey}`,
      seconds: 20,
      width: 320,
      height: 240,
      fps: 15,
      gop: 120,
      audio: true,
      realtime: true,
      extraOutputArgs: ['-bf', '2'],
    });

    // --- hostile bytes on the RTMP port ---
    expect(await sendAndWaitClose(server.rtmpPort, [Buffer.from('GET / HTTP/1.1\r\n\r\n'.repeat(200))], 10_000)).toBe('closed');
    const c0c1Half = Buffer.alloc(1 + 768, 0x03);
    expect(await sendAndWaitClose(server.rtmpPort, [c0c1Half], 10_000)).toBe('closed');

    // --- API ---
    const noKey = await fetch(`${server.httpUrl}/v1/live_inputs`);
    expect(noKey.status).toBe(401);
    const wrongKey = await server.api('GET', '/v1/live_inputs', undefined, { authorization: 'Bearer nope' });
    expect(wrongKey.status).toBe(401);
    const badJson = await server.api<{ errors: Array<{ code: string }> }>('POST', '/v1/live_inputs', '{"meta": ');
    expect(badJson.status).toBe(400);
    expect(badJson.body.errors[0]!.code).toBeTruthy();
    const unknownField = await server.api<{ errors: Array<{ message: string }> }>('POST', '/v1/live_inputs', { colour: 'red' });
    expect(unknownField.status).toBe(400);
    expect(JSON.stringify(unknownField.body.errors)).toContain('colour');
    const huge = await server.api('POST', '/v1/live_inputs', { meta: { name: 'x'.repeat(200_000) } });
    expect(huge.status).toBe(413);
    const unknownUid = await server.api('GET', `/v1/live_inputs/${'0'.repeat(32)}`);
    expect(unknownUid.status).toBe(404);
    const badUid = await server.api('GET', '/v1/live_inputs/..%2f..%2fetc');
    expect([400, 404]).toContain(badUid.status);

    // --- origin path traversal ---
    const traversal = [
      '/../package.json',
      '/%2e%2e/%2e%2e/package.json',
      `/${good.uid}/manifest/..%2f..%2fpackage.json`,
      `/${good.uid}/manifest/${variants[0]!.uri.split('/')[0]}/..%2F..%2Fsrc%2Fmain.ts`,
      `/${good.uid}/manifest/%2e%2e/%2e%2e`,
      `/${good.uid}/manifest/source/....%2f....%2fetc%2fpasswd`,
      `/${'f'.repeat(32)}/manifest/video.m3u8`,
    ];
    for (const p of traversal) {
      const res = await fetch(`${server.httpUrl}${p}`);
      expect({ p, status: res.status }).toEqual({ p, status: res.status === 400 ? 400 : 404 });
      const text = await res.text();
      expect(text).not.toContain('"name": "tributary"');
      expect(text).not.toContain('loadConfig');
    }

    // The sloppy stream plays and its input says what is wrong with it.
    await waitForHttp200(`${server.httpUrl}/${sloppy.uid}/manifest/video.m3u8`, 30_000);
    type Health = { issues: Array<{ code: string }>; bframes: boolean; keyframeIntervalSeconds: number; renditions: string[] };
    let health: Health | undefined;
    const healthDeadline = Date.now() + 20_000;
    while (Date.now() < healthDeadline) {
      const s = await server.api<{ result: { status: { current: { health?: Health } } } }>('GET', `/v1/live_inputs/${sloppy.uid}`);
      health = s.body.result.status?.current.health;
      if (health?.issues.some((i) => i.code === 'ERR_GOP_OUT_OF_RANGE')) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(health?.bframes).toBe(true);
    expect(health?.issues.map((i) => i.code).sort()).toEqual(['ERR_GOP_OUT_OF_RANGE', 'WARN_BFRAMES']);
    expect(health?.keyframeIntervalSeconds).toBeGreaterThan(7);
    expect(health?.renditions).toEqual(['source', '180p']);
    sloppyPub.stop();

    // --- the good stream kept going the whole time ---
    const later = parseMedia(await waitForHttp200(mediaUrl));
    expect(later.mediaSequence + later.segments.length).toBeGreaterThan(startSeq.mediaSequence + startSeq.segments.length);
    const still = await server.api<{ result: { status: unknown } }>('GET', `/v1/live_inputs/${good.uid}`);
    expect(still.body.result.status).toMatchObject({ current: { state: 'connected' } });

    // No log line ever carries a stream key or the API key.
    const output = server.output();
    for (const key of [...Object.values(refusedKeys), rot.body.result.rtmp.streamKey, server.apiKey]) {
      expect(output).not.toContain(key);
    }

    publisher.stop();
    await publisher.exited;
  });
});
