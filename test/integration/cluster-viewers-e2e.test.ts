import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createLiveInput, startServer, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { ffprobe, parseMaster } from '../helpers/probe.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';
import { watchLlHls, type LlHlsViewer } from '../helpers/llhls-viewer.ts';
import { playWithWerift } from '../helpers/whep-werift-viewer.ts';
import { until } from '../helpers/until.ts';

interface StatusView {
  current: { state: string; statusEnteredAt: string; ingestProtocol?: string; health?: { renditions: string[]; width?: number; height?: number; videoCodec?: string } };
}

const refusedCount = (metrics: string) => Number(/^tributary_viewers_refused_total\{reason="max_viewers_per_stream"\} (\d+)$/m.exec(metrics)?.[1] ?? NaN);

const asViewer = (ua: string) => ({ headers: { 'user-agent': ua } });

// Two nodes on one Redis: A ingests and serves, B relays from A. A limit of two viewers per
// stream holds across both (one sorted set in Redis), a viewer relayed through B counts once,
// admitted viewers keep every part while newcomers are refused, and B's API shows A's live status.
describe('viewers per stream across nodes, and live status on a non-owner node', () => {
  let redis: TestRedis;
  let a: TestServer;
  let b: TestServer;
  const publishers: TestPublisher[] = [];
  const viewers: LlHlsViewer[] = [];

  beforeAll(async () => {
    redis = await startTestRedis();
    const apiKey = `test_${randomBytes(16).toString('hex')}`;
    const env = {
      TRIBUTARY_REDIS_URL: redis.url,
      TRIBUTARY_LIMITS_MAX_VIEWERS_PER_STREAM: '2',
      TRIBUTARY_VIEWS_WINDOW_SECONDS: '5',
      TRIBUTARY_VIEWS_REFRESH_SECONDS: '1',
      TRIBUTARY_CLUSTER_LEASE_TTL_MS: '2000',
      TRIBUTARY_CLUSTER_RELAY_HOLD_MS: '8000',
      TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1',
    };
    [a, b] = await Promise.all([
      startServer({ apiKey, env }),
      startServer({ apiKey, env: { ...env, TRIBUTARY_CLUSTER_ROLES: '["origin","worker"]' } }),
    ]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(viewers.map((v) => v.stop()));
    await Promise.all(publishers.map((p) => p.stop(500)));
    await Promise.all([a, b].map(async (s) => {
      await s?.stop();
      await s?.cleanup();
    }));
    await redis?.stop();
  }, 60_000);

  it('refuses a third viewer on either node with TOO_MANY_VIEWERS while the first two keep playing, and admits one once a slot frees', async () => {
    const input = await createLiveInput(b, { meta: { name: 'limited' } });
    publishers.push(publishTestStream({ url: `${a.rtmpBase}/${input.streamKey}`, seconds: 180, width: 320, height: 240, fps: 15, gop: 15, audio: true }));

    // Viewer 1 on the owner; viewer 2 on B (relayed).
    const masterA = `${a.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const masterB = `${b.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const master = await until('the stream', async () => {
      const r = await fetch(masterA, asViewer('viewer-1'));
      return r.status === 200 ? r.text() : undefined;
    }, 45_000);
    const rendition = parseMaster(master)[0]!.uri;
    const mediaA = new URL(rendition, masterA).toString();
    const mediaB = new URL(rendition, masterB).toString();
    const v1 = watchLlHls(mediaA, 'viewer-1');
    const v2 = watchLlHls(mediaB, 'viewer-2');
    viewers.push(v1, v2);
    expect(await v1.firstStatus).toBe(200);
    expect(await v2.firstStatus).toBe(200);
    await Promise.all([v1.moreParts(8), v2.moreParts(8)]);

    // Counted once each, cluster-wide: the relay from B to A is not a viewer of its own.
    for (const s of [a, b]) expect(await (await fetch(`${s.httpUrl}/${input.uid}/views`)).json()).toEqual({ liveViewers: 2 });

    // A third viewer, on either node, on the master or a media playlist: refused with the code.
    for (const url of [masterA, masterB, mediaA, mediaB]) {
      const r = await fetch(url, asViewer('viewer-3'));
      expect(r.status).toBe(429);
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await r.json()).toMatchObject({ errors: [{ code: 'TOO_MANY_VIEWERS' }] });
    }
    // A WHEP viewer takes a slot of the same limit: refused too, on the owner.
    const whepRefused = await playWithWerift(`${a.httpUrl}/${input.uid}/webRTC/play`).then(
      () => ({ status: 201, body: '' }),
      (error: { status: number; body: string }) => error,
    );
    expect(whepRefused.status).toBe(429);
    expect(JSON.parse(whepRefused.body)).toMatchObject({ errors: [{ code: 'TOO_MANY_VIEWERS' }] });
    // A forged node-to-node credential does not get around the limit.
    const forged = await fetch(masterA, { headers: { 'user-agent': 'viewer-3', 'x-tributary-internal': 'guess' } });
    expect(forged.status).toBe(429);
    // A flood of made-up clients takes no slot and no viewer's place.
    const flood = await Promise.all(
      Array.from({ length: 40 }, (_, i) => fetch(i % 2 ? masterA : mediaB, asViewer(`bot-${i}-${randomBytes(4).toString('hex')}`)).then(async (r) => (await r.arrayBuffer(), r.status))),
    );
    expect(new Set(flood)).toEqual(new Set([429]));
    // Each refusal is counted once, on the node that refused it (4 playlists + 1 WHEP + 1 forged +
    // 40 bots), and logged in a
    // summary line (at most one a minute per node) that names neither the viewer nor its client.
    const refused = await Promise.all([a, b].map(async (s) => refusedCount(await (await fetch(`${s.httpUrl}/metrics`)).text())));
    expect(refused[0]! + refused[1]!).toBe(46);
    const lines = [a, b].map((s) => s.logs.filter((l) => l.msg === 'viewers refused: live stream at its viewer limit'));
    expect(lines.every((l) => l.length <= 1)).toBe(true);
    expect(lines.flat().length).toBeGreaterThanOrEqual(1);
    for (const l of lines.flat()) {
      expect(l).toMatchObject({ code: 'TOO_MANY_VIEWERS', liveInput: input.uid, maxViewersPerStream: 2 });
      expect(JSON.stringify(l)).not.toMatch(/viewer-3|bot-/);
    }

    // Admitted viewers keep everything: blocking reloads, parts, a fresh plain playlist, a whole probe.
    await Promise.all([v1.moreParts(8), v2.moreParts(8)]);
    expect((await fetch(masterB, asViewer('viewer-2'))).status).toBe(200);
    const probe = await ffprobe(masterA, ['-user_agent', 'viewer-1']);
    expect(probe.streams.some((s) => s.codec_type === 'video' && s.codec_name === 'h264')).toBe(true);
    expect([...v1.errors, ...v2.errors]).toEqual([]);

    // Viewer 2 leaves; once its slot expires (views.windowSeconds) a newcomer gets in, through B.
    await v2.stop();
    await until('viewer 2 to drop out of the count', async () => {
      const { liveViewers } = (await (await fetch(`${a.httpUrl}/${input.uid}/views`)).json()) as { liveViewers: number };
      return liveViewers === 1 ? true : undefined;
    });
    const v3 = watchLlHls(mediaB, 'viewer-3');
    viewers.push(v3);
    expect(await v3.firstStatus).toBe(200);
    await Promise.all([v3.moreParts(4), v1.moreParts(4)]);
    expect((await fetch(masterA, asViewer('viewer-4'))).status).toBe(429);
  }, 180_000);

  it('shows the live status with input health on the node that does not ingest the stream', async () => {
    const input = await createLiveInput(a, { meta: { name: 'health' } });
    const pub = publishTestStream({ url: `${a.rtmpBase}/${input.streamKey}`, seconds: 120, width: 320, height: 240, fps: 15, gop: 15, audio: true });
    publishers.push(pub);
    const statusOn = async (s: TestServer) => (await s.api<{ result: { status: StatusView | null } }>('GET', `/v1/live_inputs/${input.uid}`)).body.result.status;
    const onA = await until('health on the owner', async () => {
      const st = await statusOn(a);
      return st?.current.health?.renditions.length ? st : undefined;
    }, 45_000);
    // B learns it from what A publishes with its lease (renewed every third of the lease TTL).
    const onB = await until('health on B', async () => {
      const st = await statusOn(b);
      return st?.current.health?.renditions.length ? st : undefined;
    }, 15_000);
    expect(onB.current).toMatchObject({
      state: onA.current.state,
      statusEnteredAt: onA.current.statusEnteredAt,
      ingestProtocol: 'rtmp',
      health: { renditions: onA.current.health!.renditions, width: 320, height: 240, videoCodec: onA.current.health!.videoCodec },
    });
    // The list on B shows it too.
    const list = await b.api<{ result: { liveInputs: Array<{ uid: string; status: StatusView | null }> } }>('GET', '/v1/live_inputs');
    expect(list.body.result.liveInputs.find((i) => i.uid === input.uid)?.status?.current.health?.width).toBe(320);

    // Once the broadcast ends, B shows the stored status like A (no stale live view).
    await pub.stop(500);
    const ended = await until('the end on A', async () => {
      const st = await statusOn(a);
      return st && st.current.state !== 'connected' ? st : undefined;
    });
    const onBAfter = await until('the end on B', async () => {
      const st = await statusOn(b);
      return st && st.current.state === ended.current.state ? st : undefined;
    });
    expect(onBAfter.current.health).toBeUndefined();
  }, 120_000);
});
