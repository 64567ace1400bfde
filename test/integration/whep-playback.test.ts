import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { playWithWerift, type WeriftViewer } from '../helpers/whep-werift-viewer.ts';

interface ErrorView {
  errors: Array<{ code: string; message: string }>;
}

/** Server CPU seconds (user + system) from /proc: the server is a child process. */
function cpuSeconds(pid: number): number {
  const fields = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

// Short, so that a vanished viewer is dropped within the test; above werift's consent interval (5 s ± 20 %).
const CONSENT_TIMEOUT_MS = 8000;

describe('WHEP playback of an RTMP-published stream', () => {
  let server: TestServer;
  let publisher: TestPublisher | undefined;
  let uid = '';
  const viewers: WeriftViewer[] = [];

  beforeAll(async () => {
    server = await startServer({ env: { TRIBUTARY_WHEP_CONSENT_TIMEOUT_MS: String(CONSENT_TIMEOUT_MS) } });
    const input = await createLiveInput(server);
    uid = input.uid;
    publisher = publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, width: 640, height: 360, gop: 30 });
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
    const viewer = await playWithWerift(playUrl());
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

  it('50 viewers on one stream each get a keyframe and Opus; one that vanishes is dropped, the others keep receiving', async () => {
    onTestFailed(() => console.log(server.output().split('\n').filter((l) => /whep|opus/i.test(l)).slice(-30).join('\n')));
    const pid = server.process.pid!;
    const cpuBefore = cpuSeconds(pid);
    const t0 = Date.now();
    const many = await Promise.all(Array.from({ length: 50 }, () => playWithWerift(playUrl())));
    viewers.push(...many);
    await Promise.all(many.map((v) => v.decodable));
    const cpuBusy0 = cpuSeconds(pid);
    const busyFrom = Date.now();
    // Five seconds of steady playback to 50 viewers: the server's CPU share for the log.
    await new Promise((r) => setTimeout(r, 5000));
    const share = (cpuSeconds(pid) - cpuBusy0) / ((Date.now() - busyFrom) / 1000);
    console.log(`50 WHEP viewers: all decodable after ${Date.now() - t0} ms (setup CPU ${(cpuBusy0 - cpuBefore).toFixed(2)} s); steady server CPU ${(share * 100).toFixed(1)} % of one core (${((share * 100) / 50).toFixed(2)} % per viewer)`);
    for (const v of many) expect(v.sawIdr && v.audioPackets > 0).toBe(true);

    // One viewer goes away without DELETE (its peer closes: no more consent checks).
    const gone = many[0]!;
    await gone.pc.close();
    const dropped = await server.waitForLog((l) => l.msg === 'whep viewer closed' && (l.reason === 'timeout' || l.reason === 'peer_gone'), CONSENT_TIMEOUT_MS + 10_000);
    expect(dropped.reason).toBeDefined();
    // Every other viewer still receives video.
    await Promise.all(many.slice(1).map((v) => v.nextVideo()));
    const metrics = await (await fetch(`${server.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/tributary_whep_viewers \d+/);
    for (const v of many.slice(1)) await v.stop();
  });
});
