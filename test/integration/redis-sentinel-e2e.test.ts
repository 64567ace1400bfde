import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { createLiveInput, startServer, type TestServer } from '../helpers/server.ts';
import { publishTestStream, type TestPublisher } from '../helpers/ffmpeg-publish.ts';
import { parseMaster } from '../helpers/probe.ts';
import { startTestSentinelGroup, type TestSentinelGroup } from '../helpers/redis-sentinel.ts';
import { watchLlHls, type LlHlsViewer } from '../helpers/llhls-viewer.ts';
import { until } from '../helpers/until.ts';

interface InputView {
  uid: string;
  streamKey?: string;
  rtmp: { streamKey: string };
  status: { current: { state: string } } | null;
}

// Tributary on Redis Sentinel (a master, a replica, three sentinels), as an operator with a
// highly available Redis runs it: the master is found through the sentinels, and a failover
// mid-broadcast neither stops the viewers nor the API, which then writes to the new master.
describe('Redis Sentinel', () => {
  let group: TestSentinelGroup;
  let server: TestServer;
  // Webhook deliveries are durable jobs (BullMQ on the same Redis): they must follow the failover too.
  const events: Array<{ event: string; uid: string | undefined }> = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const data = JSON.parse(body || '{}') as { data?: { input_id?: string; uid?: string } };
      events.push({ event: String(req.headers['webhook-event']), uid: data.data?.input_id ?? data.data?.uid });
      res.end('ok');
    });
  });
  const publishers: TestPublisher[] = [];
  const viewers: LlHlsViewer[] = [];

  beforeAll(async () => {
    group = await startTestSentinelGroup({ sentinelCount: 3 });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    server = await startServer({
      env: {
        TRIBUTARY_WEBHOOKS_PRIVATE_TARGET_ALLOWLIST: '["127.0.0.1/32"]',
        TRIBUTARY_REDIS_SENTINELS: JSON.stringify(group.sentinels),
        TRIBUTARY_REDIS_SENTINEL_NAME: group.name,
        TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1',
      },
    });
  }, 90_000);

  afterAll(async () => {
    await Promise.all(viewers.map((v) => v.stop()));
    await Promise.all(publishers.map((p) => p.stop(500)));
    await server?.stop();
    await server?.cleanup();
    await group?.stop();
    receiver.close();
  }, 60_000);

  it('keeps the API and a live stream working through a forced failover', async () => {
    // The records live on the master the sentinels name (nothing embedded was started).
    const hook = await server.api('PUT', '/v1/webhook', { notificationUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks` });
    expect(hook.status).toBe(200);
    const input = await createLiveInput(server, { meta: { name: 'before failover' } });
    const onMaster = new Redis({ host: '127.0.0.1', port: group.masterPort, lazyConnect: true });
    onMaster.on('error', () => {});
    expect(await onMaster.keys(`*${input.uid}*`)).not.toHaveLength(0);
    onMaster.disconnect();

    publishers.push(publishTestStream({ url: `${server.rtmpBase}/${input.streamKey}`, seconds: 120, width: 320, height: 240, fps: 15, gop: 15 }));
    const masterUrl = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
    const master = await until('the stream', async () => {
      const r = await fetch(masterUrl);
      return r.status === 200 ? r.text() : undefined;
    }, 45_000);
    const viewer = watchLlHls(new URL(parseMaster(master)[0]!.uri, masterUrl).toString(), 'sentinel-viewer');
    viewers.push(viewer);
    expect(await viewer.firstStatus).toBe(200);
    await viewer.moreParts(4);

    const newMaster = await group.failover();
    expect(newMaster).toBe(group.replicaPort);

    // The viewer never notices: live playlists and parts do not touch Redis.
    await viewer.moreParts(8);
    expect(viewer.errors).toEqual([]);

    // The API reads what was written before and writes to the new master.
    const read = await until('the API after the failover', async () => {
      const r = await server.api<{ result: InputView }>('GET', `/v1/live_inputs/${input.uid}`);
      return r.status === 200 ? r.body.result : undefined;
    });
    expect(read.status?.current.state).toBe('connected');
    const created = await server.api<{ result: InputView }>('POST', '/v1/live_inputs', { meta: { name: 'after failover' } });
    expect(created.status).toBe(201);
    const onNewMaster = new Redis({ host: '127.0.0.1', port: newMaster, lazyConnect: true });
    onNewMaster.on('error', () => {});
    expect(await onNewMaster.keys(`*${created.body.result.uid}*`)).not.toHaveLength(0);
    onNewMaster.disconnect();
    const list = await server.api<{ result: { liveInputs: Array<{ uid: string }> } }>('GET', '/v1/live_inputs');
    expect(list.body.result.liveInputs.map((i) => i.uid)).toEqual(expect.arrayContaining([input.uid, created.body.result.uid]));

    // A new broadcast after the failover authenticates against the new master and plays.
    publishers.push(publishTestStream({ url: `${server.rtmpBase}/${created.body.result.rtmp.streamKey}`, seconds: 60, width: 320, height: 240, fps: 15, gop: 15 }));
    const second = await until('the second stream', async () => {
      const r = await fetch(`${server.httpUrl}/${created.body.result.uid}/manifest/video.m3u8`);
      return r.status === 200 ? r.text() : undefined;
    }, 45_000);
    expect(second).toContain('#EXT-X-STREAM-INF');
    // Its webhook was queued and delivered through the new master.
    await until('the webhook of the broadcast after the failover', async () =>
      events.some((e) => e.event === 'live_input.connected' && e.uid === created.body.result.uid) ? true : undefined);
    await viewer.moreParts(4);
    expect(viewer.errors).toEqual([]);
    // Nothing failed on the way (what the failover cost is at most a warning, e.g. a reconnect).
    const warnings = server.logs.filter((l) => Number(l.level) >= 40).map((l) => `${String(l.component ?? '')} ${String(l.msg)}`);
    console.log(`warnings during the failover: ${JSON.stringify([...new Set(warnings)])}`);
    expect(server.logs.filter((l) => Number(l.level) >= 50)).toEqual([]);
  }, 120_000);
});
