import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisKeys } from '../../src/state/keys.ts';
import { ViewerCounter } from '../../src/state/viewer-counter.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

describe('live viewer count in Redis', () => {
  let t: TestRedis;
  beforeAll(async () => {
    t = await startTestRedis();
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('counts distinct sessions seen in the window, across nodes, writing each session at most once per refresh', async () => {
    let now = 1_000_000;
    const keys = createRedisKeys('views:');
    // Two origin nodes: separate counters (and throttles) on one Redis.
    const nodeA = new ViewerCounter({ redis: t.redis, keys, windowSeconds: 30, refreshSeconds: 5, now: () => now });
    const nodeB = new ViewerCounter({ redis: t.redis, keys, windowSeconds: 30, refreshSeconds: 5, now: () => now });
    const input = 'a'.repeat(32);
    const key = keys.liveViewers(input);
    const settle = () => t.redis.ping();

    nodeA.touch(input, 's1');
    nodeA.touch(input, 's1');
    nodeB.touch(input, 's1'); // the same viewer through another node
    nodeB.touch(input, 's2');
    nodeA.touch('b'.repeat(32), 's3'); // another input
    await settle();
    expect(await nodeA.count(input)).toBe(2);
    expect(await nodeB.count(input)).toBe(2);
    expect(await t.redis.zscore(key, 's1')).toBe(String(1_000_000));

    // Within the refresh interval a session's requests write nothing; after it, its score moves.
    now += 4_000;
    nodeA.touch(input, 's1');
    await settle();
    expect(await t.redis.zscore(key, 's1')).toBe(String(1_000_000));
    now += 2_000;
    nodeA.touch(input, 's1');
    await settle();
    expect(await t.redis.zscore(key, 's1')).toBe(String(1_006_000));

    // s2 stops requesting: it no longer counts 30 s after its last request; s1 still does.
    now = 1_000_000 + 30_001;
    expect(await nodeA.count(input)).toBe(1);
    now = 1_006_000 + 30_001;
    expect(await nodeA.count(input)).toBe(0);
    // The next write drops the expired members, and the key expires on its own.
    nodeB.touch(input, 's4');
    await settle();
    expect(await t.redis.zrange(key, 0, -1)).toEqual(['s4']);
    expect(await t.redis.pttl(key)).toBeGreaterThan(0);
  });
});
