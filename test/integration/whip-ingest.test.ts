import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { RTCPeerConnection, MediaStreamTrack, useOPUS, useVP8 } from 'werift';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { decodedDuration, ffprobe, parseMaster } from '../helpers/probe.ts';
import { childProcesses } from '../helpers/processes.ts';
import { publishWithWerift, type WeriftPublisher } from '../helpers/whip-werift-publisher.ts';

interface InputView {
  webRTC: { url: string };
  status: { current: { state: string; ingestProtocol?: string } } | null;
}
interface ErrorView {
  errors: Array<{ code: string; message: string }>;
}

/** A real offer (ICE and DTLS attributes included) from a werift peer that never connects. */
async function makeOffer(): Promise<string> {
  const pc = new RTCPeerConnection({ codecs: { video: [useVP8()], audio: [useOPUS()] } });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'video' }), { direction: 'sendonly' });
  pc.addTransceiver(new MediaStreamTrack({ kind: 'audio' }), { direction: 'sendonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const sdp = pc.localDescription!.sdp;
  await pc.close();
  return sdp;
}

// Long enough for ICE + DTLS under 5 % loss on a busy machine; short enough to wait for in the flood test.
const CONNECT_TIMEOUT_MS = 10_000;

describe('WHIP ingest: an OBS-like publisher, faults and bad input', () => {
  let server: TestServer;
  const publishers: WeriftPublisher[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: {
        TRIBUTARY_WHIP_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
        TRIBUTARY_WHIP_MAX_PENDING_PER_ADDRESS: '2',
        TRIBUTARY_WHIP_AUTH_FAILURE_DELAY_MS: '100',
        TRIBUTARY_WHIP_ALLOWED_ORIGINS: '["studio.example"]',
        // Loopback is skipped by default; listed, it gives an [::1] host candidate.
        TRIBUTARY_WHIP_ADDITIONAL_HOST_ADDRESSES: '["::1"]',
      },
    });
  });

  afterAll(async () => {
    for (const p of publishers) await p.stop(false);
    await server?.stop();
    await server?.cleanup();
  });

  const post = (url: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body });

  it('H.264 High profile (werift peer fed by FFmpeg RTP) over a path losing 5 % of RTP: NACKs repair it, copied, keyframes on request, playback continues', async () => {
    onTestFailed(() => {
      const lines = server.output().split('\n').filter((l) => /"component":"whip"|"session ending"|transcoder|ffmpeg (crashed|started)/.test(l));
      console.log(lines.slice(-40).join('\n'));
    });
    const input = await createLiveInput(server, { meta: { name: 'obs' }, recording: { mode: 'automatic', timeoutSeconds: 1 } });
    const url = `${server.httpUrl}/whip/${input.uid}`;
    // A keyframe every second (FFmpeg, unlike a browser, cannot answer a PLI): often enough that
    // the server never asks for one on its own interval, so any PLI after the start has a cause.
    const publisher = await publishWithWerift({ url, streamKey: input.streamKey, width: 854, height: 480, gop: 30, pathLossPercent: 5 });
    publishers.push(publisher);

    const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const source = parseMaster(await waitForHttp200(masterUrl, 40_000))[0]!;
    // Copied, not re-encoded: the source rendition keeps the High profile (avc1.64…).
    expect(source.attrs.CODECS).toMatch(/^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/i);
    expect(source.attrs.RESOLUTION).toBe('854x480');
    const answered = server.logs.find((l) => l.msg === 'whip session answered' && l.liveInputUid === input.uid);
    console.log(`werift H.264 High: POST → answer ${String(answered?.ms)} ms on the server`);
    const status = (await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`)).body.result.status;
    expect(status?.current).toMatchObject({ state: 'connected', ingestProtocol: 'whip' });

    // Playback continues under loss: segments keep coming.
    const mediaUrl = new URL(source.uri, masterUrl).toString();
    const listedSeconds = (text: string) => [...text.matchAll(/#EXTINF:([\d.]+),/g)].reduce((a, m) => a + Number(m[1]), 0);
    await expect.poll(async () => listedSeconds(await waitForHttp200(mediaUrl)), { timeout: 40_000, interval: 500 }).toBeGreaterThanOrEqual(8);
    // The server asked for a keyframe at the start; the loss really happened, in the network,
    // and was repaired: the server's werift sent NACKs, the publisher's sender retransmitted.
    expect(publisher.plis).toBeGreaterThanOrEqual(1);
    const relay = publisher.relay!;
    const videoSender = publisher.pc.getTransceivers().find((t) => t.kind === 'video')!.sender;
    const outbound = [...(await videoSender.getStats()).values()].find((x) => x.type === 'outbound-rtp') as { retransmittedPacketsSent?: number } | undefined;
    const retransmitted = outbound?.retransmittedPacketsSent ?? 0;
    console.log(`path loss: ${relay.dropped} RTP dropped of ${relay.dropped + relay.up} datagrams; NACKs received ${publisher.nacks}, packets retransmitted ${retransmitted}`);
    expect(relay.dropped).toBeGreaterThan(50);
    expect(publisher.nacks).toBeGreaterThan(10);
    expect(retransmitted).toBeGreaterThan(10);
    // Lost packets that are never repaired may cost a bridge restart, never the session.
    expect(server.logs.filter((l) => l.msg === 'whip session closed')).toEqual([]);
    const probe = await ffprobe(masterUrl);
    expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264' && s.width === 854)).toBe(true);
    expect(probe.streams.some((s) => s.codec_type === 'audio' && s.codec_name === 'aac')).toBe(true);

    // The session's FFmpeg crashes: its replacement starts at the next keyframe, and the WHIP
    // publisher is asked for one at once (a browser would send it within ~0.1 s).
    const sessionFfmpeg = childProcesses(server.process.pid!).find((p) => p.comm === 'ffmpeg' && !readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes('.sdp'))!;
    expect(sessionFfmpeg).toBeDefined();
    const plisBefore = publisher.plis;
    process.kill(sessionFfmpeg.pid, 'SIGKILL');
    const asked = await server.waitForLog((l) => l.msg === 'requesting a keyframe (PLI)' && l.why === 'session ffmpeg restarting' && l.liveInputUid === input.uid, 20_000);
    expect(asked).toBeDefined();
    await expect.poll(() => publisher.plis, { timeout: 10_000 }).toBeGreaterThan(plisBefore);
    await server.waitForLog((l) => l.msg === 'ffmpeg restarted' && l.liveInput === input.uid, 20_000);

    // While it is live: a second publisher is refused before any WebRTC is set up, and the
    // session resource is not reachable under another input.
    const busy = await post(url, await makeOffer(), { authorization: `Bearer ${input.streamKey}` });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as ErrorView).errors[0]?.code).toBe('LIVE_INPUT_BUSY');
    const other = await createLiveInput(server, { meta: { name: 'other' } });
    const sessionId = publisher.location.split('/').at(-1)!;
    expect((await fetch(`${server.httpUrl}/whip/${other.uid}/sessions/${sessionId}`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${server.httpUrl}/whip/${input.uid}/sessions/${'0'.repeat(32)}`, { method: 'DELETE' })).status).toBe(404);

    // Trickle ICE (RFC 9725 §4.3.1): accepted, ETag checked, ICE restarts refused.
    const patch = (body: string, headers: Record<string, string> = {}) =>
      fetch(publisher.location, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag', ...headers }, body });
    const offerUfrag = /a=ice-ufrag:(\S+)/.exec(publisher.pc.localDescription!.sdp)![1]!;
    const etag = (await fetch(publisher.location, { method: 'OPTIONS' })).headers.get('etag');
    expect(etag).toBeNull(); // the ETag comes with the 201, not with OPTIONS
    expect((await patch(`a=ice-ufrag:${offerUfrag}\r\na=mid:0\r\na=candidate:1 1 udp 1 192.0.2.9 9 typ host\r\n`)).status).toBe(204);
    expect((await patch('a=end-of-candidates\r\n', { 'if-match': '"0000000000000000"' })).status).toBe(412);
    expect((await patch('a=ice-ufrag:restart\r\na=ice-pwd:restartrestartrestartrestart\r\n')).status).toBe(422);
    expect((await fetch(publisher.location, { method: 'PATCH', headers: { 'content-type': 'text/plain' }, body: 'x' })).status).toBe(415);

    // DELETE ends it like an RTMP unpublish; a second DELETE finds nothing.
    expect((await fetch(publisher.location, { method: 'DELETE' })).status).toBe(200);
    const ending = await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 15_000);
    expect(ending.reason).toBe('client_disconnect');
    expect((await fetch(publisher.location, { method: 'DELETE' })).status).toBe(404);
    const ended = await server.waitForLog((l) => l.msg === 'recording ended; finalizing' && l.liveInput === input.uid, 15_000);
    const finalized = await server.waitForLog((l) => l.msg === 'recording finalized' && l.video === ended.video, 20_000);
    expect(Number(finalized.duration)).toBeGreaterThan(6);
    // The recording decodes from end to end, across the repaired loss and the FFmpeg restart.
    expect(await decodedDuration(`${server.httpUrl}/${String(ended.video)}/manifest/video.m3u8`)).toBeGreaterThan(6);
  });

  it('VP9 from a werift peer over IPv6 (the [::1] candidate): transcoded to H.264, played by ffprobe', async () => {
    const input = await createLiveInput(server, { meta: { name: 'vp9 over ipv6' } });
    const publisher = await publishWithWerift({
      url: `${server.httpUrl}/whip/${input.uid}`, streamKey: input.streamKey, width: 640, height: 360, gop: 30, video: 'vp9', ipv6: { onlyCandidate: '::1' },
    });
    publishers.push(publisher);
    const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const source = parseMaster(await waitForHttp200(masterUrl, 40_000))[0]!;
    expect(server.logs.find((l) => l.msg === 'whip session answered' && l.liveInputUid === input.uid)?.video).toBe('vp9');
    // The media went over IPv6 loopback: the only candidate the publisher was given, and the pair ICE chose.
    expect(publisher.pc.iceTransports[0]?.connection.nominated?.remoteCandidate.host).toBe('::1');
    expect(source.attrs.CODECS).toMatch(/^avc1\.64[0-9a-f]{4},mp4a\.40\.2$/i);
    const probe = await ffprobe(masterUrl);
    expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264' && s.width === 640 && s.height === 360)).toBe(true);
    await publisher.stop();
    await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === input.uid, 15_000);
  });

  it('refuses bad offers, bad keys and floods with the right 4xx, and keeps serving', async () => {
    const input = await createLiveInput(server, { meta: { name: 'bad input' } });
    const url = `${server.httpUrl}/whip/${input.uid}`;
    const auth = { authorization: `Bearer ${input.streamKey}` };
    const offer = await makeOffer();
    const refused = async (res: Response, status: number, code: string, message?: RegExp) => {
      const body = (await res.json()) as ErrorView;
      expect({ status: res.status, code: body.errors[0]?.code }).toEqual({ status, code });
      if (message) expect(body.errors[0]?.message).toMatch(message);
    };

    // CORS preflight: only the configured origins.
    const preflight = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://studio.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://studio.example');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/authorization/i);
    expect(preflight.headers.get('accept-post')).toBe('application/sdp');
    const foreign = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://evil.example' } });
    expect(foreign.headers.get('access-control-allow-origin')).toBeNull();

    // The offer itself.
    await refused(await post(url, '', auth), 400, 'WHIP_SDP_INVALID', /empty/);
    await refused(await post(url, 'hello, I am not SDP', auth), 400, 'WHIP_SDP_INVALID', /v=0/);
    await refused(await post(url, offer, { ...auth, 'content-type': 'application/json' }), 415, 'UNSUPPORTED_MEDIA_TYPE', /application\/sdp/);
    const noMedia = offer.split(/\r\nm=/)[0] + '\r\n';
    await refused(await post(url, noMedia, auth), 400, 'WHIP_SDP_INVALID', /no media/);
    const unsupported = offer.replace(/VP8\/90000/g, 'AV1/90000').replace(/opus\/48000\/2/gi, 'G722/8000');
    await refused(await post(url, unsupported, auth), 406, 'WHIP_CODECS_UNSUPPORTED', /AV1/);
    await refused(await post(url, offer + `a=x-padding:${'x'.repeat(1024 * 1024)}\r\n`, auth), 413, 'BODY_TOO_LARGE');
    const binary = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) % 256));
    await refused(await post(url, binary, auth), 400, 'WHIP_SDP_INVALID');

    // The key: missing, wrong, another input's, in the path; a disabled input.
    await refused(await post(url, offer), 401, 'STREAM_KEY_INVALID', /Bearer/);
    await refused(await post(url, offer, { authorization: `Bearer sk_${'0'.repeat(64)}` }), 401, 'STREAM_KEY_INVALID');
    const other = await createLiveInput(server, { meta: { name: 'other' } });
    await refused(await post(url, offer, { authorization: `Bearer ${other.streamKey}` }), 401, 'STREAM_KEY_INVALID');
    await refused(await post(`${server.httpUrl}/whip/not-an-input`, offer, auth), 404, 'WHIP_SESSION_NOT_FOUND');
    const disabled = await createLiveInput(server, { meta: { name: 'off' }, enabled: false });
    await refused(await post(`${server.httpUrl}/whip/${disabled.uid}`, offer, { authorization: `Bearer ${disabled.streamKey}` }), 403, 'LIVE_INPUT_DISABLED');
    const wrongKeys = server.logs.filter((l) => l.msg === 'whip publish refused' && l.code === 'STREAM_KEY_UNKNOWN');
    expect(wrongKeys.length).toBeGreaterThanOrEqual(2);
    expect(server.output()).not.toContain(other.streamKey.slice(3));

    // Floods: sessions that never connect are bounded per address, then time out and free.
    const inputs = await Promise.all([1, 2, 3].map((n) => createLiveInput(server, { meta: { name: `pending ${n}` } })));
    // The secret in the path is accepted as well as the bearer.
    const pendingA = await post(`${server.httpUrl}/whip/${inputs[0]!.streamKey}`, offer);
    expect(pendingA.status).toBe(201);
    expect(pendingA.headers.get('content-type')).toMatch(/^application\/sdp/);
    expect(pendingA.headers.get('location')).toMatch(new RegExp(`^/whip/${inputs[0]!.uid}/sessions/[0-9a-f]{32}$`));
    const answer = await pendingA.text();
    expect(answer).toContain('a=ice-lite');
    expect(answer).toContain('a=setup:passive');
    expect(answer).toMatch(/a=candidate:\S+ 1 udp \d+ \S+ \d+ typ host/);
    const postTo = (i: { uid: string; streamKey: string }, key = i.streamKey) =>
      post(`${server.httpUrl}/whip/${i.uid}`, offer, { authorization: `Bearer ${key}` });
    const abandoned = await postTo(inputs[1]!);
    expect(abandoned.status).toBe(201);
    await refused(await postTo(inputs[2]!), 429, 'WHIP_TOO_MANY_PENDING');
    // A publisher that retries (a reloaded page) is not locked out by its own abandoned offer:
    // with the right key the new offer replaces the pending one at once, even at the address cap.
    // A wrong key replaces nothing; the flood stays capped.
    await refused(await postTo(inputs[1]!, inputs[0]!.streamKey), 401, 'STREAM_KEY_INVALID');
    const retry = await postTo(inputs[1]!);
    expect(retry.status).toBe(201);
    const retryLocation = new URL(retry.headers.get('location')!, server.httpUrl).toString();
    const abandonedLocation = new URL(abandoned.headers.get('location')!, server.httpUrl).toString();
    expect(retryLocation).not.toBe(abandonedLocation);
    expect(server.logs.some((l) => l.msg === 'whip pending session replaced by a new offer' && l.liveInputUid === inputs[1]!.uid)).toBe(true);
    expect((await fetch(abandonedLocation, { method: 'DELETE' })).status).toBe(404);
    const trickle = (location: string) => fetch(location, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=end-of-candidates\r\n' });
    expect((await trickle(retryLocation)).status).toBe(204);
    await refused(await postTo(inputs[2]!), 429, 'WHIP_TOO_MANY_PENDING');
    for (const i of inputs.slice(0, 2)) {
      const ending = await server.waitForLog((l) => l.msg === 'session ending' && l.liveInput === i.uid && l.reason === 'timeout', CONNECT_TIMEOUT_MS + 10_000);
      expect(ending.reason).toBe('timeout');
    }
    await expect.poll(async () => (await postTo(inputs[2]!)).status, { timeout: 10_000 }).toBe(201);

    // Everyone else is still served.
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);
    expect((await server.api('GET', `/v1/live_inputs/${input.uid}`)).status).toBe(200);
  });
});
