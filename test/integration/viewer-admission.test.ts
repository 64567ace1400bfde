import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisKeys } from '../../src/state/keys.ts';
import { ViewerCounter } from '../../src/state/viewer-counter.ts';
import { RedisViewerAdmission } from '../../src/state/viewer-admission.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

describe('viewer limit per stream in Redis', () => {
  let t: TestRedis;
  beforeAll(async () => {
    t = await startTestRedis();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('admits up to the limit across nodes, never refuses a viewer already in, frees a slot once a viewer goes quiet', async () => {
    let now = 5_000_000;
    const keys = createRedisKeys('admit:');
    const opts = { redis: t.redis, keys, maxViewers: 2, windowSeconds: 10, refreshSeconds: 2, now: () => now };
    // Two origin nodes, each with its own in-process memory, on one Redis.
    const a = new RedisViewerAdmission(opts);
    const b = new RedisViewerAdmission(opts);
    const counter = new ViewerCounter({ redis: t.redis, keys, windowSeconds: 10, refreshSeconds: 2, now: () => now });
    const input = 'c'.repeat(32);

    expect(await a.admit(input, 'v1')).toBe(true);
    expect(await b.admit(input, 'v2')).toBe(true);
    expect(await counter.count(input)).toBe(2);
    // The third is refused on either node; the first two are admitted again on either node.
    expect(await a.admit(input, 'v3')).toBe(false);
    expect(await b.admit(input, 'v3')).toBe(false);
    expect(await b.admit(input, 'v1')).toBe(true);
    expect(await a.admit(input, 'v2')).toBe(true);
    expect(await counter.count(input)).toBe(2);
    // Another stream has its own slots.
    expect(await a.admit('d'.repeat(32), 'v3')).toBe(true);
    expect(a.retryAfterSeconds).toBe(5);

    // v1 keeps requesting parts (the counter's touch keeps its slot), v2 goes quiet.
    now += 6_000;
    counter.touch(input, 'v1');
    await t.redis.ping();
    now += 5_000;
    expect(await counter.count(input)).toBe(1);
    expect(await b.admit(input, 'v3')).toBe(true);
    // v2 comes back after its slot went: it is a new viewer now, and the stream is full.
    expect(await a.admit(input, 'v2')).toBe(false);
    expect(await a.admit(input, 'v1')).toBe(true);
  });

  it('gives the last slot to exactly one of many viewers racing for it on several nodes', async () => {
    const keys = createRedisKeys('race:');
    const nodes = Array.from({ length: 4 }, () => new RedisViewerAdmission({ redis: t.redis, keys, maxViewers: 5, windowSeconds: 30, refreshSeconds: 5 }));
    const input = 'e'.repeat(32);
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => nodes[i % 4]!.admit(input, `viewer-${i}`)));
    expect(answers.filter(Boolean)).toHaveLength(5);
    expect(await t.redis.zcard(keys.liveViewers(input))).toBe(5);
  });

  it('with no limit (0) admits everyone and counts them (what WebRTC playback uses to be counted)', async () => {
    const keys = createRedisKeys('nolimit:');
    const admission = new RedisViewerAdmission({ redis: t.redis, keys, maxViewers: 0, windowSeconds: 30, refreshSeconds: 5 });
    const counter = new ViewerCounter({ redis: t.redis, keys, windowSeconds: 30, refreshSeconds: 5 });
    const input = 'g'.repeat(32);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => admission.admit(input, `w-${i}`)));
    expect(answers.every(Boolean)).toBe(true);
    expect(await counter.count(input)).toBe(50);
  });

  it('lets viewers in when Redis does not answer (live playback does not depend on it), and says so', async () => {
    const broken = t.redis.duplicate({ maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true });
    const errors: unknown[] = [];
    const admission = new RedisViewerAdmission({
      redis: broken,
      keys: createRedisKeys('down:'),
      maxViewers: 1,
      windowSeconds: 30,
      refreshSeconds: 5,
      onError: (e) => errors.push(e),
    });
    expect(await admission.admit('f'.repeat(32), 'v1')).toBe(true);
    expect(await admission.admit('f'.repeat(32), 'v2')).toBe(true);
    expect(errors).toHaveLength(2);
    broken.disconnect();
  });
});
