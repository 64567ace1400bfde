import { Writable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { apiPlugin } from '../../src/api/api-plugin.ts';
import { frameworkErrors, registerErrorHandling } from '../../src/api/errors.ts';
import { registerOpenApi } from '../../src/api/openapi.ts';
import { ApiKeyStore } from '../../src/state/api-key-store.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

/** Counts lookups, to prove that malformed ids are refused before reaching Redis. */
class CountingRepo extends LiveInputRepository {
  lookups = 0;
  override async get(uid: string) {
    this.lookups++;
    return super.get(uid);
  }
  override async update(...args: Parameters<LiveInputRepository['update']>) {
    this.lookups++;
    return super.update(...args);
  }
  override async delete(uid: string) {
    this.lookups++;
    return super.delete(uid);
  }
}

let t: TestRedis;
let app: FastifyInstance;
let repo: CountingRepo;
let apiKey: string;
// Every log line the app writes, to check that no secret reaches the log.
const logLines: string[] = [];
const streamKeys: string[] = [];
const auth = () => ({ authorization: `Bearer ${apiKey}` });

beforeAll(async () => {
  t = await startTestRedis();
  const keys = createRedisKeys('api:');
  repo = new CountingRepo({ redis: t.redis, keys });
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
    liveInputs: repo,
    apiKeys,
    publicUrls: { rtmp: 'rtmp://ingest.test:1935/live', playbackBase: 'https://video.test/' },
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await t?.stop();
});

beforeEach(() => {
  repo.lookups = 0;
});

describe('live inputs: the happy path', () => {
  it('create → get → list → update → rotate → delete', async () => {
    const created = await app.inject({
      method: 'POST',
      url: '/v1/live_inputs',
      headers: auth(),
      payload: { meta: { name: 'Main stage', venue: { hall: 2 } }, recording: { mode: 'automatic', timeoutSeconds: 60 } },
    });
    expect(created.statusCode).toBe(201);
    const body = created.json();
    expect(body).toMatchObject({ success: true, errors: [], messages: [] });
    const li = body.result;
    expect(li.uid).toMatch(/^[0-9a-f]{32}$/);
    expect(li).toMatchObject({
      meta: { name: 'Main stage', venue: { hall: 2 } },
      enabled: true,
      recording: { mode: 'automatic', timeoutSeconds: 60, requireSignedURLs: false, allowedOrigins: [] },
      deleteRecordingAfterDays: null,
      rtmp: { url: 'rtmp://ingest.test:1935/live' },
      webRTC: { url: `https://video.test/whip/${li.uid}` },
      status: null,
    });
    expect(li.rtmp.streamKey).toMatch(/^sk_/);
    streamKeys.push(li.rtmp.streamKey);

    const got = await app.inject({ method: 'GET', url: `/v1/live_inputs/${li.uid}`, headers: auth() });
    expect(got.statusCode).toBe(200);
    expect(got.json().result).toEqual(li);

    const list = await app.inject({ method: 'GET', url: '/v1/live_inputs?limit=10', headers: auth() });
    expect(list.statusCode).toBe(200);
    const listed = list.json().result;
    expect(listed.range).toBe(10);
    expect(listed.liveInputs[0].uid).toBe(li.uid);
    expect(list.body).not.toContain(li.rtmp.streamKey);
    expect(listed.liveInputs[0]).not.toHaveProperty('rtmp');

    const updated = await app.inject({
      method: 'PUT',
      url: `/v1/live_inputs/${li.uid}`,
      headers: auth(),
      payload: { enabled: false, recording: { requireSignedURLs: true }, deleteRecordingAfterDays: 30 },
    });
    expect(updated.statusCode).toBe(200);
    expect(updated.json().result).toMatchObject({
      enabled: false,
      recording: { mode: 'automatic', timeoutSeconds: 60, requireSignedURLs: true },
      deleteRecordingAfterDays: 30,
      meta: { name: 'Main stage' },
    });

    const rotated = await app.inject({
      method: 'POST',
      url: `/v1/live_inputs/${li.uid}/rotate_keys`,
      headers: { ...auth(), 'content-type': 'application/json' },
    });
    expect(rotated.statusCode).toBe(200);
    const newKey = rotated.json().result.rtmp.streamKey;
    expect(newKey).toMatch(/^sk_/);
    streamKeys.push(newKey);
    expect(newKey).not.toBe(li.rtmp.streamKey);
    expect(await repo.getByStreamKey(li.rtmp.streamKey)).toBeUndefined();
    expect((await repo.getByStreamKey(newKey))?.uid).toBe(li.uid);

    const deleted = await app.inject({ method: 'DELETE', url: `/v1/live_inputs/${li.uid}`, headers: auth() });
    expect(deleted.statusCode).toBe(200);
    expect(deleted.json()).toEqual({ result: null, success: true, errors: [], messages: [] });
    const gone = await app.inject({ method: 'GET', url: `/v1/live_inputs/${li.uid}`, headers: auth() });
    expect(gone.statusCode).toBe(404);
    expect(gone.json().errors[0].code).toBe('LIVE_INPUT_NOT_FOUND');
  });

  it('creates with defaults from an empty POST', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth() });
    expect(res.statusCode).toBe(201);
    expect(res.json().result).toMatchObject({ meta: {}, enabled: true, recording: { mode: 'off' } });
  });

  it('pages through the list with a cursor', async () => {
    for (let i = 0; i < 3; i++) await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth(), payload: {} });
    const first = (await app.inject({ method: 'GET', url: '/v1/live_inputs?limit=2', headers: auth() })).json().result;
    expect(first.liveInputs).toHaveLength(2);
    expect(first.cursor).toEqual(expect.any(String));
    const second = (
      await app.inject({ method: 'GET', url: `/v1/live_inputs?limit=2&cursor=${first.cursor}`, headers: auth() })
    ).json().result;
    expect(second.liveInputs[0].uid).not.toBe(first.liveInputs[1].uid);
    const bad = await app.inject({ method: 'GET', url: '/v1/live_inputs?cursor=zzzz', headers: auth() });
    expect(bad.statusCode).toBe(400);
  });
});

describe('bad input gets a clear error', () => {
  const expectError = (res: { statusCode: number; json: () => unknown }, status: number, code: string) => {
    expect(res.statusCode).toBe(status);
    const body = res.json() as { success: boolean; errors: { code: string; message: string }[] };
    expect(body.success).toBe(false);
    expect(body.errors[0]?.code).toBe(code);
    return body.errors[0]!.message;
  };

  it('401 without or with a wrong API key, with a Bearer challenge', async () => {
    const none = await app.inject({ method: 'GET', url: '/v1/live_inputs' });
    expectError(none, 401, 'UNAUTHORIZED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await app.inject({ method: 'GET', url: '/v1/live_inputs', headers: { authorization: 'Bearer nope' } });
    expectError(wrong, 401, 'UNAUTHORIZED');
    const basic = await app.inject({ method: 'GET', url: '/v1/live_inputs', headers: { authorization: `Basic ${apiKey}` } });
    expectError(basic, 401, 'UNAUTHORIZED');
    // The key is not echoed back.
    expect(basic.body).not.toContain(apiKey);
  });

  it('400 INVALID_JSON for a syntax error or prototype pollution', async () => {
    const headers = { ...auth(), 'content-type': 'application/json' };
    const bad = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers, payload: '{"meta": ' });
    expectError(bad, 400, 'INVALID_JSON');
    const proto = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers, payload: '{"__proto__": {"x": 1}}' });
    expectError(proto, 400, 'INVALID_JSON');
  });

  it('400 naming an unknown field, at the top level and nested', async () => {
    const top = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth(), payload: { nmae: 'x' } });
    expect(expectError(top, 400, 'VALIDATION_FAILED')).toContain('"nmae"');
    const nested = await app.inject({
      method: 'POST',
      url: '/v1/live_inputs',
      headers: auth(),
      payload: { recording: { mode: 'off', bogus: true } },
    });
    expect(expectError(nested, 400, 'VALIDATION_FAILED')).toMatch(/body\.recording.*"bogus"/);
  });

  it('400 for wrong types and out-of-range values, naming the field', async () => {
    const cases: [unknown, RegExp][] = [
      [{ enabled: 'true' }, /body\.enabled/],
      [{ recording: { mode: 'sometimes' } }, /body\.recording\.mode/],
      [{ recording: { timeoutSeconds: 3601 } }, /body\.recording\.timeoutSeconds/],
      [{ deleteRecordingAfterDays: 'soon' }, /body\.deleteRecordingAfterDays/],
      [{ meta: 'name' }, /body\.meta/],
      [[1, 2], /body/],
    ];
    for (const [payload, field] of cases) {
      const res = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth(), payload: payload as object });
      expect(expectError(res, 400, 'VALIDATION_FAILED')).toMatch(field);
    }
    const limit = await app.inject({ method: 'GET', url: '/v1/live_inputs?limit=0', headers: auth() });
    expect(expectError(limit, 400, 'VALIDATION_FAILED')).toMatch(/querystring\.limit/);
  });

  it('400 when meta is over 16 KiB', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/live_inputs',
      headers: auth(),
      payload: { meta: { blob: 'x'.repeat(20 * 1024) } },
    });
    expect(expectError(res, 400, 'VALIDATION_FAILED')).toMatch(/meta/);
  });

  it('413 for a body over 64 KiB', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/live_inputs',
      headers: auth(),
      payload: { meta: { blob: 'x'.repeat(70 * 1024) } },
    });
    expectError(res, 413, 'BODY_TOO_LARGE');
  });

  it('415 for a body that is not JSON', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/v1/live_inputs',
      headers: { ...auth(), 'content-type': 'text/plain' },
      payload: 'meta=x',
    });
    expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('404 for an unknown uid and for an unknown route', async () => {
    const res = await app.inject({ method: 'GET', url: `/v1/live_inputs/${'a'.repeat(32)}`, headers: auth() });
    expectError(res, 404, 'LIVE_INPUT_NOT_FOUND');
    const put = await app.inject({ method: 'PUT', url: `/v1/live_inputs/${'a'.repeat(32)}`, headers: auth(), payload: {} });
    expectError(put, 404, 'LIVE_INPUT_NOT_FOUND');
    const route = await app.inject({ method: 'GET', url: '/v1/nothing_here', headers: auth() });
    expectError(route, 404, 'NOT_FOUND');
    const root = await app.inject({ method: 'GET', url: '/nothing_here' });
    expectError(root, 404, 'NOT_FOUND');
  });

  it('malformed uids are refused before any lookup', async () => {
    const urls = [
      '/v1/live_inputs/../etc',
      '/v1/live_inputs/%2e%2e',
      '/v1/live_inputs/%2e%2e%2fetc',
      `/v1/live_inputs/${'a'.repeat(1000)}`,
      `/v1/live_inputs/${'A'.repeat(32)}`,
      `/v1/live_inputs/${'a'.repeat(31)}g`,
    ];
    for (const url of urls) {
      for (const method of ['GET', 'PUT', 'DELETE'] as const) {
        const res = await app.inject({ method, url, headers: auth(), ...(method === 'PUT' ? { payload: {} } : {}) });
        expect([400, 404, 414], `${method} ${url}`).toContain(res.statusCode);
        expect(res.json().success).toBe(false);
      }
    }
    const long = await app.inject({ method: 'GET', url: `/v1/live_inputs/${'a'.repeat(1000)}`, headers: auth() });
    expectError(long, 414, 'URI_TOO_LONG');
    const badEscape = await app.inject({ method: 'GET', url: '/v1/live_inputs/%E0%A4%A', headers: auth() });
    expectError(badEscape, 400, 'BAD_REQUEST');
    const hex = await app.inject({ method: 'GET', url: `/v1/live_inputs/${'A'.repeat(32)}`, headers: auth() });
    expect(expectError(hex, 400, 'VALIDATION_FAILED')).toMatch(/params\.uid/);
    expect(repo.lookups).toBe(0);
  });

  it('a good request still works after all of that', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth(), payload: { meta: { name: 'after' } } });
    expect(res.statusCode).toBe(201);
    expect(res.json().result.meta.name).toBe('after');
  });
});

describe('secrets', () => {
  it('never reach the log, even at trace level', () => {
    expect(logLines.length).toBeGreaterThan(10);
    const all = logLines.join('');
    expect(all).not.toContain(apiKey);
    for (const key of streamKeys) expect(all).not.toContain(key);
  });
});

describe('OpenAPI', () => {
  it('serves the UI at /docs from local assets', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs/' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).not.toMatch(/https?:\/\/(unpkg|cdn)/);
    const asset = await app.inject({ method: 'GET', url: '/docs/static/swagger-ui-bundle.js' });
    expect(asset.statusCode).toBe(200);
  });

  it('documents the live input paths with bearer auth', async () => {
    const res = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/v1/live_inputs', '/v1/live_inputs/{uid}', '/v1/live_inputs/{uid}/rotate_keys']),
    );
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
    const create = doc.paths['/v1/live_inputs'].post;
    expect(create.security).toEqual([{ bearerAuth: [] }]);
    expect(create.requestBody.content['application/json'].schema.properties).toHaveProperty('recording');
    expect(create.responses).toHaveProperty('201');
  });
});

describe('wiring', () => {
  it('shows the live layer status over the stored one', async () => {
    const keys = createRedisKeys('status:');
    const liveInputs = new LiveInputRepository({ redis: t.redis, keys });
    const apiKeys = new ApiKeyStore({ redis: t.redis, keys });
    const key = (await apiKeys.ensureInitialKey()).key!;
    const live = await liveInputs.create({});
    const statusApp = Fastify();
    await statusApp.register(apiPlugin, {
      prefix: '/v1',
      liveInputs,
      apiKeys,
      publicUrls: { rtmp: 'rtmp://x/live', webRTC: 'https://whip.test/whip/', playbackBase: 'https://x' },
      liveStatus: (uid) =>
        uid === live.uid ? { current: { state: 'connected', statusEnteredAt: '2030-01-01T00:00:00.000Z' } } : undefined,
    });
    try {
      const res = await statusApp.inject({ url: `/v1/live_inputs/${live.uid}`, headers: { authorization: `Bearer ${key}` } });
      expect(res.json().result.status).toEqual({ current: { state: 'connected', statusEnteredAt: '2030-01-01T00:00:00.000Z' } });
      expect(res.json().result.webRTC.url).toBe(`https://whip.test/whip/${live.uid}`);
      const list = await statusApp.inject({ url: '/v1/live_inputs', headers: { authorization: `Bearer ${key}` } });
      expect(list.json().result.liveInputs[0].status.current.state).toBe('connected');
    } finally {
      await statusApp.close();
    }
  });

  it('answers 503 STATE_UNAVAILABLE, without details, when Redis is unreachable', async () => {
    const down = createRedis({ path: '/nonexistent/tributary-test.sock' }, silentLogger(), { maxRetriesPerRequest: 1 });
    const keys = createRedisKeys('down:');
    const downApp = Fastify();
    await downApp.register(apiPlugin, {
      prefix: '/v1',
      liveInputs: new LiveInputRepository({ redis: down, keys }),
      apiKeys: new ApiKeyStore({ redis: down, keys }),
      publicUrls: { rtmp: 'rtmp://x/live', playbackBase: 'https://x' },
    });
    try {
      const res = await downApp.inject({ url: '/v1/live_inputs', headers: { authorization: 'Bearer some-key-0123456789' } });
      expect(res.statusCode).toBe(503);
      expect(res.json().errors[0].code).toBe('STATE_UNAVAILABLE');
      expect(res.body).not.toContain('nonexistent');
    } finally {
      await downApp.close();
      down.disconnect();
    }
  });
});
