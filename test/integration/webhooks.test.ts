import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { LookupAddress } from 'node:dns';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiPlugin } from '../../src/api/api-plugin.ts';
import { frameworkErrors, registerErrorHandling } from '../../src/api/errors.ts';
import { registerOpenApi } from '../../src/api/openapi.ts';
import { EventBus } from '../../src/events/event-bus.ts';
import { JobQueues } from '../../src/jobs/job-queues.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { ApiKeyStore } from '../../src/state/api-key-store.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { TargetGuard } from '../../src/webhooks/target-guard.ts';
import { WebhookDispatcher } from '../../src/webhooks/webhook-dispatcher.ts';
import { verifySignature } from '../../src/webhooks/webhook-signer.ts';
import { WebhookStore, type DeliveryAttempt } from '../../src/webhooks/webhook-store.ts';
import { WebhookWorker } from '../../src/webhooks/webhook-worker.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

/** Public names for the API tests, resolved without a network. */
const DNS: Record<string, string[]> = {
  'hooks.example.com': ['93.184.216.34'],
  'rebind.example.com': ['10.0.0.7'],
  'split.example.com': ['93.184.216.34', '192.168.1.20'],
};
function fakeLookup(host: string, cb: (err: Error | null, addrs: LookupAddress[]) => void): void {
  const addrs = DNS[host];
  if (!addrs) return cb(new Error(`getaddrinfo ENOTFOUND ${host}`), []);
  cb(null, addrs.map((address) => ({ address, family: 4 })));
}

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A real HTTP receiver on 127.0.0.1 that answers with whatever `respond` says. */
async function receiver(respond: (req: http.IncomingMessage, body: string) => { status: number; headers?: Record<string, string> }) {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      const answer = respond(req, body);
      res.writeHead(answer.status, answer.headers).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let t: TestRedis;

beforeAll(async () => {
  t = await startTestRedis();
});
afterAll(async () => {
  await t?.stop();
});

describe('webhook API (inject)', () => {
  let app: FastifyInstance;
  let apiKey: string;
  const logLines: string[] = [];
  const auth = () => ({ authorization: `Bearer ${apiKey}` });
  const put = (payload: unknown, headers: Record<string, string> = {}) =>
    app.inject({ method: 'PUT', url: '/v1/webhook', headers: { ...auth(), ...headers }, payload: payload as never });

  beforeAll(async () => {
    const keys = createRedisKeys('whapi:');
    const apiKeys = new ApiKeyStore({ redis: t.redis, keys });
    apiKey = (await apiKeys.ensureInitialKey()).key!;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        logLines.push(chunk.toString('utf8'));
        cb();
      },
    });
    app = Fastify({ loggerInstance: pino({ level: 'trace' }, sink) as FastifyBaseLogger, frameworkErrors });
    registerErrorHandling(app);
    await registerOpenApi(app);
    await app.register(apiPlugin, {
      prefix: '/v1',
      liveInputs: new LiveInputRepository({ redis: t.redis, keys }),
      apiKeys,
      publicUrls: { rtmp: 'rtmp://ingest.test/live', playbackBase: 'https://video.test' },
      webhooks: {
        store: new WebhookStore({ redis: t.redis, keys, deliveriesKept: 10, sequenceTtlSeconds: 3600 }),
        guard: new TargetGuard({ allowPrivateTargets: false, privateTargetAllowlist: [] }, { lookup: fakeLookup }),
      },
    });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
  });

  it('set → get → set again (new secret) → delete; the secret never reaches the log', async () => {
    expect((await app.inject({ method: 'GET', url: '/v1/webhook', headers: auth() })).json().errors[0].code).toBe('WEBHOOK_NOT_FOUND');
    const first = await put({ notificationUrl: 'https://hooks.example.com/tributary?src=live' });
    expect(first.statusCode).toBe(200);
    expect(first.headers['cache-control']).toBe('no-store');
    const set = first.json().result;
    expect(set).toMatchObject({ notificationUrl: 'https://hooks.example.com/tributary?src=live' });
    expect(set.secret).toMatch(/^[0-9a-f]{64}$/);
    const got = await app.inject({ method: 'GET', url: '/v1/webhook', headers: auth() });
    expect(got.json().result).toEqual(set);
    const again = (await put({ notificationUrl: 'https://hooks.example.com/other' })).json().result;
    expect(again.secret).not.toBe(set.secret);
    expect((await app.inject({ method: 'DELETE', url: '/v1/webhook', headers: auth() })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/v1/webhook', headers: auth() })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/v1/webhook', headers: auth() })).statusCode).toBe(404);
    const log = logLines.join('');
    expect(log).not.toContain(set.secret);
    expect(log).not.toContain(again.secret);
  });

  it.each([
    ['ftp://hooks.example.com/x', 400, 'WEBHOOK_URL_INVALID'],
    ['file:///etc/passwd', 400, 'WEBHOOK_URL_INVALID'],
    ['javascript:alert(1)', 400, 'WEBHOOK_URL_INVALID'],
    ['hooks.example.com/no-scheme', 400, 'WEBHOOK_URL_INVALID'],
    ['https://admin:pw@hooks.example.com/', 400, 'WEBHOOK_URL_INVALID'],
    ['http://127.0.0.1:6379/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://[::1]/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://10.0.0.1/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://192.168.1.1/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://169.254.169.254/latest/meta-data/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://2130706433/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://rebind.example.com/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://split.example.com/', 400, 'WEBHOOK_TARGET_REFUSED'],
    ['http://unknown.invalid/', 400, 'WEBHOOK_TARGET_REFUSED'],
  ])('refuses the notification URL %s', async (notificationUrl, status, code) => {
    const res = await put({ notificationUrl });
    expect(res.statusCode).toBe(status);
    expect(res.json().errors[0].code).toBe(code);
    expect(res.json().errors[0].message).toMatch(/^notificationUrl: /);
  });

  it.each([
    ['a missing field', {}, 'VALIDATION_FAILED'],
    ['an unknown field', { notificationUrl: 'https://hooks.example.com/', secret: 'mine' }, 'VALIDATION_FAILED'],
    ['a number', { notificationUrl: 42 }, 'VALIDATION_FAILED'],
    ['an empty URL', { notificationUrl: '' }, 'VALIDATION_FAILED'],
    ['an oversized URL', { notificationUrl: `https://hooks.example.com/${'a'.repeat(3000)}` }, 'VALIDATION_FAILED'],
    ['not JSON', '{"notificationUrl":', 'INVALID_JSON'],
  ])('refuses %s', async (_name, payload, code) => {
    const res = await app.inject({
      method: 'PUT',
      url: '/v1/webhook',
      headers: { ...auth(), 'content-type': 'application/json' },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });
    expect(res.statusCode).toBe(400);
    expect(res.json().errors[0].code).toBe(code);
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(Object.keys(doc.paths['/v1/webhook']).sort()).toEqual(['delete', 'get', 'put']);
    expect(doc.paths['/v1/webhook'].put.security).toEqual([{ bearerAuth: [] }]);
    expect(doc.paths['/v1/webhook'].put.requestBody.content['application/json'].schema.required).toEqual(['notificationUrl']);
    expect(doc.paths['/v1/webhook/deliveries'].get.responses).toHaveProperty('200');
  });

  it('refuses an oversized body, no API key, and a bad deliveries limit; then still serves', async () => {
    const huge = await put({ notificationUrl: `https://hooks.example.com/${'a'.repeat(100_000)}` });
    expect(huge.statusCode).toBe(413);
    expect((await app.inject({ method: 'PUT', url: '/v1/webhook', payload: { notificationUrl: 'https://hooks.example.com/' } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/v1/webhook/deliveries?limit=0', headers: auth() })).statusCode).toBe(400);
    expect((await app.inject({ method: 'GET', url: '/v1/webhook/deliveries?limit=abc', headers: auth() })).statusCode).toBe(400);
    expect((await put({ notificationUrl: 'https://hooks.example.com/ok' })).statusCode).toBe(200);
    const deliveries = await app.inject({ method: 'GET', url: '/v1/webhook/deliveries', headers: auth() });
    expect(deliveries.statusCode).toBe(200);
    expect(deliveries.json().result).toEqual([]);
  });
});

describe('webhook delivery (BullMQ on a real redis-server, real HTTP receivers on 127.0.0.1)', () => {
  const keys = createRedisKeys('whdel:');
  let jobs: JobQueues;
  let store: WebhookStore;
  let events: EventBus;
  let dispatcher: WebhookDispatcher;
  const closers: Array<() => Promise<void>> = [];

  beforeAll(() => {
    jobs = new JobQueues({
      connect: () => createRedis({ path: t.path }, silentLogger(), { maxRetriesPerRequest: null }),
      prefix: 'whdel:bull',
      logger: silentLogger(),
    });
    store = new WebhookStore({ redis: t.redis, keys, deliveriesKept: 100, sequenceTtlSeconds: 3600 });
    events = new EventBus();
    // Loopback only (the receivers); other private ranges stay refused.
    const guard = new TargetGuard({ allowPrivateTargets: false, privateTargetAllowlist: ['127.0.0.1/32'] });
    new WebhookWorker({
      jobs,
      store,
      guard,
      logger: silentLogger(),
      settings: { timeoutMs: 2000, initialBackoffMs: 100, maxBackoffMs: 400, maxRetrySeconds: 4, concurrency: 4 },
    }).start();
    dispatcher = new WebhookDispatcher({ events, jobs, store, logger: silentLogger(), renderVideo: async (uid) => ({ uid, status: { state: 'x' } }) });
    dispatcher.start();
  });
  afterAll(async () => {
    await dispatcher?.close();
    await jobs?.close();
    for (const c of closers) await c();
  });

  const attemptsOf = async (eventId: string): Promise<DeliveryAttempt[]> =>
    (await store.deliveries(100)).filter((d) => d.eventId === eventId).reverse();

  it('delivers signed events in order per live input while the receiver fails at first, and logs every attempt', async () => {
    let failuresLeft = 5;
    const rx = await receiver(() => (failuresLeft-- > 0 ? { status: 503 } : { status: 204 }));
    closers.push(rx.close);
    const { secret } = await store.set(rx.url);
    const uid = 'a'.repeat(32);
    events.emit({ type: 'live_input.connected', liveInputUid: uid, ingestProtocol: 'rtmp' });
    events.emit({ type: 'live_input.errored', liveInputUid: uid, code: 'ERR_GOP_OUT_OF_RANGE', message: 'gop', videoCodec: 'h264', audioCodec: 'aac' });
    events.emit({ type: 'video.state', videoUid: 'b'.repeat(32), state: 'live-inprogress', liveInputUid: uid });
    events.emit({ type: 'live_input.disconnected', liveInputUid: uid, reason: 'client_disconnect' });
    const delivered = await until(() => {
      const ok = rx.received.filter((r) => r.headers['webhook-id'] && failuresLeft < 0);
      const ids = new Set(ok.map((r) => r.headers['webhook-id']));
      return ids.size >= 4 ? ok : undefined;
    }, 'four events');
    // Every delivery verifies; the successful ones come in the order the events happened.
    for (const r of rx.received) expect(verifySignature(secret, String(r.headers['webhook-signature']), r.body).ok).toBe(true);
    const firstSeen: string[] = [];
    for (const r of rx.received) if (!firstSeen.includes(String(r.headers['webhook-event']))) firstSeen.push(String(r.headers['webhook-event']));
    expect(firstSeen).toEqual(['live_input.connected', 'live_input.errored', 'video.live-inprogress', 'live_input.disconnected']);
    const lastAttempts = delivered.slice(-4).map((r) => JSON.parse(r.body));
    expect(lastAttempts.map((b) => b.data?.event_type ?? `video.${b.status.state}`)).toEqual([
      'live_input.connected',
      'live_input.errored',
      'video.live-inprogress',
      'live_input.disconnected',
    ]);
    expect(lastAttempts[1].data.live_input_errored).toEqual({ error: { code: 'ERR_GOP_OUT_OF_RANGE', message: 'gop' }, video_codec: 'h264', audio_codec: 'aac' });
    // The id in the body is the Webhook-Id, the same on every retry of one event.
    for (const r of rx.received) expect(JSON.parse(r.body).id).toBe(r.headers['webhook-id']);
    const connectedId = String(rx.received[0]!.headers['webhook-id']);
    const log = await until(async () => {
      const a = await attemptsOf(connectedId);
      return a.some((x) => x.outcome === 'delivered') ? a : undefined;
    }, 'the log');
    expect(log.slice(0, -1).every((a) => a.outcome === 'retrying' && a.responseCode === 503 && a.nextAttemptAt)).toBe(true);
    expect(log.at(-1)).toMatchObject({ outcome: 'delivered', responseCode: 204, eventType: 'live_input.connected', subject: uid });
    expect(log.map((a) => a.attempt)).toEqual(log.map((_a, i) => i + 1));
  });

  it('never follows a redirect (it could lead into the private network) and gives up after maxRetrySeconds', async () => {
    let hitsBehindRedirect = 0;
    const inner = await receiver(() => {
      hitsBehindRedirect++;
      return { status: 200 };
    });
    closers.push(inner.close);
    const rx = await receiver(() => ({ status: 302, headers: { location: inner.url.replace('127.0.0.1', '127.0.0.2') } }));
    closers.push(rx.close);
    await store.set(rx.url);
    const uid = 'c'.repeat(32);
    events.emit({ type: 'live_input.connected', liveInputUid: uid, ingestProtocol: 'rtmp' });
    events.emit({ type: 'live_input.disconnected', liveInputUid: uid, reason: 'client_disconnect' });
    const given = await until(async () => {
      const all = (await store.deliveries(100)).filter((d) => d.subject === uid);
      return all.filter((d) => d.outcome === 'failed').length === 2 ? all : undefined;
    }, 'both events given up', 20_000);
    expect(given.every((d) => d.responseCode === 302)).toBe(true);
    expect(given.find((d) => d.outcome === 'failed')!.error).toMatch(/redirect \(302\) not followed/);
    expect(hitsBehindRedirect).toBe(0);
    // Order holds through a give-up: the disconnect was tried only once the connect was given up.
    const connect = given.filter((d) => d.eventType === 'live_input.connected');
    const disconnect = given.filter((d) => d.eventType === 'live_input.disconnected');
    const connectGaveUp = connect.find((d) => d.outcome === 'failed')!.at;
    expect(disconnect.every((d) => d.at >= connectGaveUp)).toBe(true);
  });

  it('refuses at delivery time a target that is not allowed (the check is not only at PUT)', async () => {
    // Written behind the API's back, as if the config changed or DNS moved: 127.0.0.3 is not allowed.
    await store.set('http://127.0.0.3:9/hook');
    const uid = 'd'.repeat(32);
    events.emit({ type: 'live_input.connected', liveInputUid: uid, ingestProtocol: 'rtmp' });
    const attempt = await until(async () => (await store.deliveries(100)).find((d) => d.subject === uid), 'an attempt');
    expect(attempt.responseCode).toBeNull();
    expect(attempt.error).toMatch(/loopback/);
  });
});

describe('webhook durability', () => {
  it('an event not yet delivered survives a restart of the node that queued it', async () => {
    const keys = createRedisKeys('whdur:');
    let accepting = false;
    const rx = await receiver(() => ({ status: accepting ? 200 : 503 }));
    const open = () => {
      const jobs = new JobQueues({
        connect: () => createRedis({ path: t.path }, silentLogger(), { maxRetriesPerRequest: null }),
        prefix: 'whdur:bull',
        logger: silentLogger(),
      });
      const store = new WebhookStore({ redis: t.redis, keys, deliveriesKept: 100, sequenceTtlSeconds: 3600 });
      const guard = new TargetGuard({ allowPrivateTargets: true, privateTargetAllowlist: [] });
      const settings = { timeoutMs: 2000, initialBackoffMs: 200, maxBackoffMs: 500, maxRetrySeconds: 60, concurrency: 1 };
      new WebhookWorker({ jobs, store, guard, settings, logger: silentLogger() }).start();
      return { jobs, store };
    };
    try {
      const first = open();
      const events = new EventBus();
      const dispatcher = new WebhookDispatcher({ events, jobs: first.jobs, store: first.store, logger: silentLogger(), renderVideo: async () => undefined });
      dispatcher.start();
      await first.store.set(rx.url);
      events.emit({ type: 'live_input.connected', liveInputUid: 'e'.repeat(32), ingestProtocol: 'rtmp' });
      const failed = await until(async () => (await first.store.deliveries(10)).find((d) => d.outcome === 'retrying'), 'a failed attempt');
      // The node goes away with the event still owed.
      await dispatcher.close();
      await first.jobs.close();
      accepting = true;
      const received = rx.received.length;

      const second = open();
      try {
        const delivered = await until(
          async () => (await second.store.deliveries(10)).find((d) => d.eventId === failed.eventId && d.outcome === 'delivered'),
          'delivery after the restart',
        );
        expect(delivered.attempt).toBeGreaterThan(failed.attempt);
        const after = rx.received.slice(received);
        expect(after.length).toBeGreaterThanOrEqual(1);
        expect(after.every((r) => r.headers['webhook-id'] === failed.eventId)).toBe(true);
      } finally {
        await second.jobs.close();
      }
    } finally {
      await rx.close();
    }
  });
});
