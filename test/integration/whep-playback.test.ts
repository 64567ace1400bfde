import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { RTCPeerConnection, useAV1, useOPUS, useVP9 } from 'werift';
import { publishWithWerift } from '../helpers/whip-werift-publisher.ts';
import { playUntilDecodable, playWithWerift, viewerCodecs, type WeriftViewer } from '../helpers/whep-werift-viewer.ts';

interface ErrorView {
  errors: Array<{ code: string; message: string }>;
}

/** A real viewer offer (ICE and DTLS attributes included) from a werift peer that never connects. */
async function makeOffer(kind: 'no-video' | 'vp9-av1' | 'normal'): Promise<string> {
  const codecs = kind === 'vp9-av1' ? { video: [useVP9(), useAV1()], audio: [useOPUS()] } : viewerCodecs();
  const pc = new RTCPeerConnection({ codecs });
  if (kind !== 'no-video') pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  await pc.setLocalDescription(await pc.createOffer());
  const sdp = pc.localDescription!.sdp;
  await pc.close();
  return sdp;
}

/** Server CPU seconds (user + system) from /proc: the server is a child process. */
function cpuSeconds(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// Short, so that a vanished viewer is dropped within the test; above werift's consent interval (5 s ± 20 %).
const CONSENT_TIMEOUT_MS = 10_000;

describe('WHEP playback of an RTMP-published stream', () => {
  let server: TestServer;
  let publisher: TestPublisher | undefined;
  let uid = '';
  let discovered: Record<string, unknown> = {};
  const viewers: WeriftViewer[] = [];

  beforeAll(async () => {
    server = await startServer({
      env: {
        TRIBUTARY_WHEP_CONSENT_TIMEOUT_MS: String(CONSENT_TIMEOUT_MS),
        // WHIP sources get no periodic keyframe requests: a PLI seen comes from a WHEP viewer.
        TRIBUTARY_WHIP_KEYFRAME_INTERVAL_MS: '60000',
      },
    });
    const input = await createLiveInput(server);
    uid = input.uid;
    discovered = input.raw;
    // A light stream (400 kbit/s): the 50 werift viewers decrypt it in this one process.
    publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, gop: 30, extraOutputArgs: ['-b:v', '400k', '-maxrate', '400k', '-bufsize', '400k'] });
    await waitForHttp200(`${server.httpUrl}/${uid}/manifest/video.m3u8`, 40_000);
  });

  afterAll(async () => {
    for (const v of viewers) await v.stop(false).catch(() => undefined);
    await publisher?.stop();
    await server?.stop();
    await server?.cleanup();
  });

  const playUrl = () => `${server.httpUrl}/${uid}/webRTC/play`;

  it('one viewer gets H.264 from a keyframe and Opus; DELETE ends it', async () => {
    onTestFailed(() => console.log(server.output().split('\n').filter((l) => /whep|opus/i.test(l)).slice(-30).join('\n')));
    // The live input's API view lists every ingest URL and the WHEP URL.
    expect(discovered).toMatchObject({ webRTCPlayback: { url: playUrl() }, webRTC: { url: `${server.httpUrl}/whip/${uid}` }, rtmp: { url: expect.stringMatching(/^rtmp:/) } });
    const viewer = await playWithWerift((discovered.webRTCPlayback as { url: string }).url);
    viewers.push(viewer);
    expect(viewer.status).toBe(201);
    expect(viewer.location).toMatch(new RegExp(`/${uid}/webRTC/play/[0-9a-f]{32}$`));
    await viewer.decodable;
    expect(viewer.sawIdr).toBe(true);
    const del = await fetch(viewer.location, { method: 'DELETE' });
    expect(del.status).toBe(200);
    await server.waitForLog((l) => l.msg === 'whep viewer closed' && l.reason === 'deleted');
    const again = await fetch(viewer.location, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(((await again.json()) as ErrorView).errors[0]?.code).toBe('WHEP_SESSION_NOT_FOUND');
  });

  it('50 viewers on one stream each get a keyframe and Opus; one that vanishes is dropped, the others keep receiving', { timeout: 240_000 }, async () => {
    onTestFailed(() => console.log(server.output().split('\n').filter((l) => /whep|opus/i.test(l)).slice(-30).join('\n')));
    const pid = server.process.pid!;
    const cpuBefore = cpuSeconds(pid);
    const t0 = Date.now();
    // Viewers arrive in waves of ten (all 50 peers live in this process, on a loaded machine);
    // like a player, one whose ICE/DTLS has not completed in 15 s tries again.
    const many: WeriftViewer[] = [];
    let retries = 0;
    for (let wave = 0; wave < 5; wave++) {
      const joined = await Promise.all(Array.from({ length: 10 }, () => playUntilDecodable(playUrl())));
      for (const j of joined) {
        viewers.push(j.viewer);
        many.push(j.viewer);
        retries += j.attempts - 1;
      }
    }
    const cpuBusy0 = cpuSeconds(pid);
    const busyFrom = Date.now();
    // Five seconds of steady playback to 50 viewers: the server's CPU share for the log.
    await new Promise((r) => setTimeout(r, 5000));
    const share = (cpuSeconds(pid) - cpuBusy0) / ((Date.now() - busyFrom) / 1000);
    console.log(`50 WHEP viewers: all decodable after ${Date.now() - t0} ms (${retries} retried) (setup CPU ${(cpuBusy0 - cpuBefore).toFixed(2)} s); steady server CPU ${(share * 100).toFixed(1)} % of one core (${((share * 100) / 50).toFixed(2)} % per viewer)`);
    for (const v of many) expect(v.sawIdr && v.audioPackets > 0).toBe(true);
    const reasons = server.logs.filter((l) => l.msg === 'whep viewer closed').map((l) => String(l.reason));
    console.log(`viewers closed so far, by reason: ${JSON.stringify(reasons.reduce<Record<string, number>>((a, r) => ({ ...a, [r]: (a[r] ?? 0) + 1 }), {}))}`);
    const closedBefore = reasons.length;

    // One viewer goes away without DELETE (its peer closes: no more consent checks).
    const gone = many[0]!;
    await gone.pc.close();
    const goneId = new URL(gone.location).pathname.split('/').pop();
    const dropped = await server.waitForLog((l) => l.msg === 'whep viewer closed' && l.whepViewer === goneId, CONSENT_TIMEOUT_MS + 10_000);
    expect(['timeout', 'peer_gone']).toContain(dropped.reason);
    // Nobody else was dropped meanwhile.
    expect(server.logs.filter((l) => l.msg === 'whep viewer closed').length).toBe(closedBefore + 1);
    // Every other viewer still receives video.
    const stillReceiving = await Promise.all(
      many.slice(1).map((v) => Promise.race([v.nextVideo().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))])),
    );
    const silent = many.slice(1).filter((_, i) => !stillReceiving[i]);
    expect(silent.map((v) => `${v.location} client ${v.pc.connectionState}`)).toEqual([]);
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tributary_whep_viewers \d+/);
    for (const v of many.slice(1)) await v.stop();
  });

  it('refuses bad offers and requests with a reason, and keeps serving HLS and WHEP', async () => {
    const post = (url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/sdp' }) =>
      fetch(url, { method: 'POST', headers, body });
    const refusal = async (res: Response) => ({ status: res.status, code: ((await res.json()) as ErrorView).errors[0]?.code });
    const normal = await makeOffer('normal');
    expect(await refusal(await post(playUrl(), ''))).toEqual({ status: 400, code: 'WHEP_SDP_INVALID' });
    expect(await refusal(await post(playUrl(), 'hello, I am not SDP'))).toEqual({ status: 400, code: 'WHEP_SDP_INVALID' });
    expect(await refusal(await post(playUrl(), normal, { 'content-type': 'text/plain' }))).toEqual({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
    const noVideo = await post(playUrl(), await makeOffer('no-video'));
    expect(noVideo.status).toBe(400);
    expect(((await noVideo.json()) as ErrorView).errors[0]?.message).toMatch(/no video/);
    const vp9 = await post(playUrl(), await makeOffer('vp9-av1'));
    expect(vp9.status).toBe(406);
    const vp9Body = (await vp9.json()) as ErrorView;
    expect(vp9Body.errors[0]).toMatchObject({ code: 'WHEP_CODECS_UNSUPPORTED' });
    expect(vp9Body.errors[0]?.message).toMatch(/VP9, AV1/);
    expect(await refusal(await post(playUrl(), `${normal}${'a=x-filler:0123456789abcdef\r\n'.repeat(40_000)}`))).toEqual({ status: 413, code: 'BODY_TOO_LARGE' });
    // Media sections without end, hostile lines: a string scan, no peer.
    expect((await post(playUrl(), `v=0\r\n${'m=video 9 UDP/TLS/RTP/SAVPF 96\r\n'.repeat(50)}`)).status).toBe(400);
    expect((await post(`${server.httpUrl}/${'0'.repeat(32)}/webRTC/play`, normal)).status).toBe(404);
    expect((await post(`${server.httpUrl}/not-an-id/webRTC/play`, normal)).status).toBe(404);
    const idle = await createLiveInput(server, { meta: { name: 'idle' } });
    const notLive = await post(`${server.httpUrl}/${idle.uid}/webRTC/play`, normal);
    expect(notLive.status).toBe(409);
    const notLiveBody = (await notLive.json()) as ErrorView;
    expect(notLiveBody.errors[0]?.code).toBe('LIVE_INPUT_NOT_LIVE');
    expect(notLiveBody.errors[0]?.message).toMatch(/not live/);
    expect((await fetch(`${playUrl()}/${'a'.repeat(32)}`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${playUrl()}/../../etc`, { method: 'DELETE' })).status).toBe(404);
    expect((await fetch(`${playUrl()}/${'a'.repeat(32)}`, { method: 'PATCH', headers: { 'content-type': 'application/trickle-ice-sdpfrag' }, body: 'a=candidate:1' })).status).toBe(405);
    const preflight = await fetch(playUrl(), { method: 'OPTIONS', headers: { origin: 'https://site.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('accept-post')).toBe('application/sdp');

    // Afterwards: HLS plays and a new WHEP viewer decodes.
    expect((await fetch(`${server.httpUrl}/${uid}/manifest/video.m3u8`)).status).toBe(200);
    const viewer = await playWithWerift(playUrl());
    viewers.push(viewer);
    await viewer.decodable;
    await viewer.stop();
  });

  it('applies the HLS access rules: signed inputs need a token (path or Bearer), allowedOrigins refuse other sites', async () => {
    const privateInput = await createLiveInput(server, { meta: { name: 'private' }, recording: { mode: 'off', requireSignedURLs: true, allowedOrigins: ['good.example'] } });
    const privatePublisher = publishTestStream({ url: `${server.rtmpBase}/${privateInput.streamKey}`, width: 320, height: 180, gop: 30, audio: false });
    try {
      const minted = await server.api<{ result: { token: string } }>('POST', `/v1/live_inputs/${privateInput.uid}/token`, {});
      const token = minted.body.result.token;
      await waitForHttp200(`${server.httpUrl}/${token}/manifest/video.m3u8`, 40_000);
      const offer = await makeOffer('normal');
      const post = (path: string, headers: Record<string, string> = {}) =>
        fetch(`${server.httpUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/sdp', ...headers }, body: offer });
      const noToken = await post(`/${privateInput.uid}/webRTC/play`);
      expect(noToken.status).toBe(401);
      const badOrigin = await post(`/${token}/webRTC/play`, { origin: 'https://evil.test' });
      expect(badOrigin.status).toBe(403);
      const bad = await post(`/${privateInput.uid}/webRTC/play`, { authorization: `Bearer ${token.slice(0, -4)}AAAA` });
      expect([401, 403]).toContain(bad.status);
      // A token never comes back in a redirect of a POST: the uid path with a Bearer token answers at once.
      const viaBearer = await playWithWerift(`${server.httpUrl}/${privateInput.uid}/webRTC/play`, { headers: { authorization: `Bearer ${token}`, origin: 'https://good.example' }, audio: false });
      viewers.push(viaBearer);
      const viaPath = await playWithWerift(`${server.httpUrl}/${token}/webRTC/play`, { audio: false });
      viewers.push(viaPath);
      // The Location names the uid, not the token: DELETE works after the token expires.
      expect(viaPath.location).toContain(`/${privateInput.uid}/webRTC/play/`);
      expect(viaPath.location).not.toContain(token);
      await Promise.all([viaBearer.decodable, viaPath.decodable]);
      expect(server.output()).not.toContain(token);
      await viaBearer.stop();
      await viaPath.stop();
    } finally {
      await privatePublisher.stop();
    }
  });

  it('a source with B-frames plays from the low-latency rendition: decodable, presentation order', async () => {
    const input = await createLiveInput(server, { meta: { name: 'bframes' }, recording: { mode: 'off' } });
    // x264 with B-frames (zerolatency would turn them off): what many RTMP encoders send.
    const bPublisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 320, height: 180, gop: 30, extraOutputArgs: ['-bf', '2'] });
    try {
      await waitForHttp200(`${server.httpUrl}/${input.uid}/manifest/video.m3u8`, 40_000);
      const viewer = await playWithWerift(`${server.httpUrl}/${input.uid}/webRTC/play`);
      viewers.push(viewer);
      await viewer.decodable;
      const seen = viewer.videoPackets;
      while (viewer.videoPackets < seen + 100) await viewer.nextVideo();
      expect(viewer.backwardTimestamps).toBe(0);
      expect(server.logs.some((l) => /low-latency H.264 rendition/.test(String(l.msg)) && l.liveInputUid === input.uid)).toBe(true);
      await viewer.stop();
    } finally {
      await bPublisher.stop();
    }
  });

  it('a WHIP-published stream plays over WHEP, and a joining viewer makes the server ask the publisher for a keyframe (PLI)', async () => {
    const input = await createLiveInput(server, { meta: { name: 'whip-source' }, recording: { mode: 'off' } });
    // A 3 s GOP. This publisher (FFmpeg behind werift) cannot answer a PLI; it counts them.
    const whip = await publishWithWerift({ url: `${server.httpUrl}/whip/${input.uid}`, streamKey: input.streamKey, width: 320, height: 180, gop: 90 });
    try {
      await waitForHttp200(`${server.httpUrl}/${input.uid}/manifest/video.m3u8`, 40_000);
      const plisBefore = whip.plis;
      const viewer = await playWithWerift(`${server.httpUrl}/${input.uid}/webRTC/play`);
      viewers.push(viewer);
      await viewer.decodable;
      expect(whip.plis).toBeGreaterThan(plisBefore);
      await viewer.stop();
    } finally {
      await whip.stop();
    }
  });

  it('the end of the live session closes its viewers', async () => {
    const viewer = await playWithWerift(playUrl());
    viewers.push(viewer);
    await viewer.decodable;
    await publisher?.stop();
    publisher = undefined;
    await server.waitForLog((l) => l.msg === 'whep viewer closed' && l.reason === 'session_ended', 20_000);
  });
});
