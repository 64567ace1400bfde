import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../src/webhooks/webhook-signer.ts';
import { publishTestStream } from '../helpers/ffmpeg-publish.ts';
import { createLiveInput, startServer, waitForHttp200, type TestServer } from '../helpers/server.ts';

/**
 * Webhooks and live status end to end: a real receiver over HTTP collects the events of real RTMP
 * publishes (connect, long-GOP error, disconnect, reconnect, recording live and ready), part of them
 * while it is down for (at least) 20 s; lifecycle and viewer count during the broadcast.
 */

interface Delivery {
  id: string;
  event: string;
  signature: string;
  body: string;
  at: number;
}

/** A webhook receiver on 127.0.0.1 that can go down and come back on the same port. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  #server: http.Server | undefined;
  port = 0;

  async up(): Promise<void> {
    this.#server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (c: string) => (body += c));
      req.on('end', () => {
        this.deliveries.push({
          id: String(req.headers['webhook-id']),
          event: String(req.headers['webhook-event']),
          signature: String(req.headers['webhook-signature']),
          body,
          at: Date.now(),
        });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.#server.address() as AddressInfo).port;
  }

  async down(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** The order of first deliveries by event id, with each event's type. */
function distinctInOrder(deliveries: Delivery[]): Delivery[] {
  const seen = new Set<string>();
  return deliveries.filter((d) => (seen.has(d.id) ? false : (seen.add(d.id), true)));
}

type StatusEntry = { state: string; statusEnteredAt: string; reason?: string };
type StatusBody = { result: { status: { current: StatusEntry; history?: StatusEntry[] } } };

describe('webhooks and live status, end to end', () => {
  let server: TestServer;
  const receiver = new Receiver();

  beforeAll(async () => {
    await receiver.up();
    server = await startServer({
      env: {
        // The receiver is on loopback: allowed for this address only.
        TRIBUTARY_WEBHOOKS_PRIVATE_TARGET_ALLOWLIST: '["127.0.0.1/32"]',
        TRIBUTARY_WEBHOOKS_INITIAL_BACKOFF_MS: '500',
        TRIBUTARY_WEBHOOKS_MAX_BACKOFF_MS: '3000',
        TRIBUTARY_WEBHOOKS_TIMEOUT_MS: '2000',
      },
    });
  });

  afterAll(async () => {
    await receiver.down();
    await server?.stop();
    await server?.cleanup();
  });

  it('delivers every event, signed, in order, once per id in effect, through a 20 s receiver outage', async () => {
    const input = await createLiveInput(server, { meta: { name: 'hooked' }, recording: { mode: 'automatic', timeoutSeconds: 8 } });
    const uid = input.uid;
    const rtmp = `${server.rtmpBase}/${input.streamKey}`;
    const hook = await server.api<{ result: { secret: string; notificationUrl: string } }>('PUT', '/v1/webhook', {
      notificationUrl: `http://127.0.0.1:${receiver.port}/hooks`,
    });
    expect(hook.status).toBe(200);
    const secret = hook.body.result.secret;
    const state = async () => (await server.api<StatusBody>('GET', `/v1/live_inputs/${uid}`)).body.result.status?.current.state;
    const lifecycle = async (id: string) => (await fetch(`${server.httpUrl}/${id}/lifecycle`)).json() as Promise<Record<string, unknown>>;

    // Broadcast 1, receiver up: connected; the recording goes live-inprogress.
    const first = publishTestStream({ url: rtmp, width: 320, height: 180, fps: 15, gop: 15, realtime: true });
    try {
      const master = `${server.httpUrl}/${uid}/manifest/video.m3u8`;
      await waitForHttp200(master);
      await expect.poll(state, { timeout: 10_000 }).toBe('connected');
      await expect.poll(() => receiver.deliveries.some((d) => d.event === 'video.live-inprogress'), { timeout: 20_000 }).toBe(true);

      // Lifecycle answers for the input and for its recording.
      const videoUid = (JSON.parse(receiver.deliveries.find((d) => d.event === 'video.live-inprogress')!.body) as { uid: string }).uid;
      expect(await lifecycle(uid)).toEqual({ isInput: true, videoUID: videoUid, live: true });
      expect(await lifecycle(videoUid)).toEqual({ isInput: false, videoUID: videoUid, live: true });
      expect((await fetch(`${server.httpUrl}/${'0'.repeat(32)}/lifecycle`)).status).toBe(404);
      expect((await fetch(`${server.httpUrl}/not-an-id/lifecycle`)).status).toBe(404);

      // Two viewers (two playback sessions) besides the test's own poll above (user agent "node");
      // a viewer's repeated requests count once.
      for (const agent of ['viewer-one', 'viewer-two', 'viewer-one']) {
        expect((await fetch(master, { headers: { 'user-agent': agent } })).status).toBe(200);
      }
      const views = async () => ((await (await fetch(`${server.httpUrl}/${uid}/views`)).json()) as { liveViewers: number }).liveViewers;
      await expect.poll(views, { timeout: 5000 }).toBe(3);
      expect(await views()).toBe(3);
      // The recording's id counts the input's viewers too.
      expect(await (await fetch(`${server.httpUrl}/${videoUid}/views`)).json()).toEqual({ liveViewers: 3 });
      expect((await server.api('PUT', `/v1/live_inputs/${uid}`, { recording: { hideLiveViewerCount: true } })).status).toBe(200);
      const hidden = await fetch(`${server.httpUrl}/${uid}/views`);
      expect(hidden.status).toBe(403);
      expect(((await hidden.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('VIEWER_COUNT_HIDDEN');
      expect((await server.api('PUT', `/v1/live_inputs/${uid}`, { recording: { hideLiveViewerCount: false } })).status).toBe(200);
    } finally {
      // The receiver goes down before the publisher leaves: the rest happens during the outage.
      await receiver.down();
      await first.stop();
    }
    const downAt = Date.now();
    const deliveredBeforeOutage = receiver.deliveries.length;
    await expect.poll(state, { timeout: 10_000 }).toBe('reconnecting');

    // Broadcast 2 within the window, with a 5 s keyframe interval: reconnected, then errored.
    const second = publishTestStream({ url: rtmp, width: 320, height: 180, fps: 15, gop: 75, realtime: true, seconds: 10 });
    await expect.poll(state, { timeout: 10_000 }).toBe('reconnected');
    await server.waitForLog((l) => l.code === 'ERR_GOP_OUT_OF_RANGE' && l.liveInput === uid, 20_000);
    expect((await second.exited).code).toBe(0);
    // The window closes: the recording is finalized and the input's state says why it ended.
    await expect.poll(state, { timeout: 20_000 }).toBe('ttl_exceeded');
    await server.waitForLog((l) => l.msg === 'recording finalized', 20_000);
    expect(await lifecycle(uid)).toEqual({ isInput: true, videoUID: null, live: false });

    const during = await server.api<{ result: Array<{ outcome: string; responseCode: number | null }> }>('GET', '/v1/webhook/deliveries?limit=50');
    expect(during.body.result.some((a) => a.outcome === 'retrying' && a.responseCode === null)).toBe(true);
    expect(receiver.deliveries.length).toBe(deliveredBeforeOutage);

    const outage = 20_000 - (Date.now() - downAt);
    await new Promise((r) => setTimeout(r, Math.max(0, outage)));
    await receiver.up();
    const upAt = Date.now();

    const expected = [
      'live_input.connected',
      'video.live-inprogress',
      'live_input.disconnected',
      'live_input.connected',
      'live_input.errored',
      'live_input.disconnected',
      'video.ready',
    ];
    await expect.poll(() => distinctInOrder(receiver.deliveries).length, { timeout: 30_000 }).toBe(expected.length);
    const events = distinctInOrder(receiver.deliveries);
    console.log(
      `receiver down ${upAt - downAt} ms; after it: all ${events.length} events in ${events.at(-1)!.at - upAt} ms; ${receiver.deliveries.length - events.length} repeated deliveries`,
    );
    expect(events.map((d) => d.event)).toEqual(expected);
    expect(new Set(events.map((d) => d.id)).size).toBe(expected.length);
    for (const d of receiver.deliveries) {
      // Every delivery verifies against the raw body; the body's id is the header's.
      expect(verifySignature(secret, d.signature, d.body)).toEqual({ ok: true, time: expect.any(Number) });
      const body = JSON.parse(d.body) as { id: string };
      expect(body.id).toBe(d.id);
      // A repeated delivery of an event is the same bytes.
      expect(d.body).toBe(events.find((e) => e.id === d.id)!.body);
    }
    type Body = { uid?: string; data: { updated_at: string; live_input_errored?: unknown } };
    const bodies = events.map((d) => JSON.parse(d.body) as Body);
    expect(bodies[0]).toMatchObject({ name: 'Stream Live Input', data: { notification_name: 'Stream Live Input', input_id: uid, event_type: 'live_input.connected' } });
    expect(bodies[2]!.data).toMatchObject({ event_type: 'live_input.disconnected', reason: 'client_disconnect' });
    expect(bodies[4]!.data.live_input_errored).toMatchObject({ error: { code: 'ERR_GOP_OUT_OF_RANGE' }, video_codec: 'h264', audio_codec: 'aac' });
    expect(bodies[6]).toMatchObject({ uid: bodies[1]!.uid, liveInput: uid, status: { state: 'ready' }, readyToStream: true });
    // updated_at follows the order too.
    const times = bodies.filter((b) => b.data).map((b) => Date.parse(b.data.updated_at));
    expect(times).toEqual([...times].sort((a, b) => a - b));

    // The status kept its way here, newest first.
    const status = (await server.api<StatusBody>('GET', `/v1/live_inputs/${uid}`)).body.result.status;
    expect([status.current.state, ...(status.history ?? []).map((h) => h.state)].slice(0, 5)).toEqual([
      'ttl_exceeded',
      'reconnecting',
      'reconnected',
      'reconnecting',
      'connected',
    ]);
    // Why the publisher left is kept with the state it led to.
    expect(status.history![0]).toMatchObject({ state: 'reconnecting', reason: 'client_disconnect' });
    const entered = [status.current, ...status.history!.slice(0, 4)].map((h) => Date.parse(h.statusEnteredAt));
    expect(entered).toEqual([...entered].sort((a, b) => b - a));

    const log = await server.api<{ result: Array<{ eventId: string; outcome: string; responseCode: number | null }> }>('GET', '/v1/webhook/deliveries?limit=200');
    for (const e of events) expect(log.body.result.some((a) => a.eventId === e.id && a.outcome === 'delivered' && a.responseCode === 200)).toBe(true);
    // A publish to a disabled input is refused: failed_to_connect, with the reason.
    expect((await server.api('PUT', `/v1/live_inputs/${uid}`, { enabled: false })).status).toBe(200);
    const refused = await publishTestStream({ url: rtmp, width: 320, height: 180, fps: 15, seconds: 2 }).exited;
    expect(refused.code).not.toBe(0);
    await expect.poll(state, { timeout: 10_000 }).toBe('failed_to_connect');
    const refusedStatus = (await server.api<{ result: { status: { current: { reason?: string } } } }>('GET', `/v1/live_inputs/${uid}`)).body.result.status;
    expect(refusedStatus.current.reason).toBe('live_input_disabled');
    expect((await fetch(`${server.httpUrl}/healthz`)).status).toBe(200);

    // No secret in the server's log.
    expect(server.output()).not.toContain(secret);
  });
});
