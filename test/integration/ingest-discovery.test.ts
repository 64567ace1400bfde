import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiPlugin } from '../../src/api/api-plugin.ts';
import { frameworkErrors, registerErrorHandling } from '../../src/api/errors.ts';
import { ApiKeyStore } from '../../src/state/api-key-store.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

// Discovery: a live input lists every ingest URL the server runs (RTMP, RTMPS, SRT, WHIP), with
// its secrets; rotating the keys changes the stream key and the SRT passphrase together.
describe('live input ingest discovery', () => {
  let t: TestRedis;
  let app: FastifyInstance;
  let auth: Record<string, string>;
  let repo: LiveInputRepository;

  beforeAll(async () => {
    t = await startTestRedis();
    const keys = createRedisKeys('disc:');
    repo = new LiveInputRepository({ redis: t.redis, keys });
    const apiKeys = new ApiKeyStore({ redis: t.redis, keys });
    auth = { authorization: `Bearer ${(await apiKeys.ensureInitialKey()).key!}` };
    app = Fastify({ frameworkErrors });
    registerErrorHandling(app);
    await app.register(apiPlugin, {
      prefix: '/v1',
      liveInputs: repo,
      apiKeys,
      publicUrls: {
        rtmp: 'rtmp://ingest.test:1935/live',
        rtmps: 'rtmps://ingest.test:1936/live',
        srt: 'srt://ingest.test:9000',
        playbackBase: 'https://video.test',
      },
    });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await t?.stop();
  });

  it('lists rtmp, rtmps, srt and webRTC; rotation renews the key and the passphrase; lists leak neither', async () => {
    const created = await app.inject({ method: 'POST', url: '/v1/live_inputs', headers: auth, payload: { meta: { name: 'all' } } });
    expect(created.statusCode).toBe(201);
    const li = created.json().result;
    const key = li.rtmp.streamKey as string;
    expect(li).toMatchObject({
      rtmp: { url: 'rtmp://ingest.test:1935/live', streamKey: key },
      rtmps: { url: 'rtmps://ingest.test:1936/live', streamKey: key },
      srt: { url: 'srt://ingest.test:9000', streamId: key, passphrase: expect.stringMatching(/^[0-9a-f]{32}$/) },
      webRTC: { url: `https://video.test/whip/${li.uid}` },
    });

    const rotated = (await app.inject({ method: 'POST', url: `/v1/live_inputs/${li.uid}/rotate_keys`, headers: auth })).json().result;
    expect(rotated.srt.streamId).toBe(rotated.rtmp.streamKey);
    expect(rotated.rtmp.streamKey).not.toBe(key);
    expect(rotated.srt.passphrase).not.toBe(li.srt.passphrase);
    expect((await repo.getByStreamKey(rotated.rtmp.streamKey))?.srtPassphrase).toBe(rotated.srt.passphrase);

    const list = await app.inject({ method: 'GET', url: '/v1/live_inputs', headers: auth });
    expect(list.body).not.toContain(rotated.srt.passphrase);
    expect(list.body).not.toContain(rotated.rtmp.streamKey);
  });
});
