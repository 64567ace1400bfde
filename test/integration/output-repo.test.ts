import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisKeys } from '../../src/state/keys.ts';
import { CorruptRecordError } from '../../src/state/live-input-record.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { OutputInvalidError } from '../../src/state/output-record.ts';
import { OutputRepository } from '../../src/state/output-repo.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

const keys = createRedisKeys('test:');

// The outputs repository against a real redis-server: the cap holds under concurrency, outputs
// die with their input, and a corrupt record is an error naming its key.
describe('OutputRepository', () => {
  let t: TestRedis;
  let inputs: LiveInputRepository;
  let outputs: OutputRepository;

  beforeAll(async () => {
    t = await startTestRedis();
    inputs = new LiveInputRepository({ redis: t.redis, keys });
    outputs = new OutputRepository({ redis: t.redis, keys, maxPerInput: 5 });
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('creates, lists oldest first, updates and deletes', async () => {
    const input = await inputs.create();
    let clock = Date.parse('2026-01-01T00:00:00Z');
    const timed = new OutputRepository({ redis: t.redis, keys, maxPerInput: 5, now: () => new Date((clock += 1000)) });
    const a = await timed.create(input.uid, { url: 'rtmp://h/a', streamKey: 'ka' });
    const b = await timed.create(input.uid, { url: 'srt://h:1', enabled: false });
    if (!a.ok || !b.ok) throw new Error('create failed');
    expect((await timed.list(input.uid)).map((o) => o.uid)).toEqual([a.record.uid, b.record.uid]);
    const updated = await timed.update(input.uid, a.record.uid, { enabled: false, streamKey: 'k2' });
    expect(updated).toMatchObject({ url: 'rtmp://h/a', streamKey: 'k2', enabled: false });
    expect(await timed.get(input.uid, a.record.uid)).toEqual(updated);
    await expect(timed.update(input.uid, a.record.uid, { url: 'http://h/' })).rejects.toThrow(OutputInvalidError);
    expect(await timed.delete(input.uid, a.record.uid)).toBe(true);
    expect(await timed.delete(input.uid, a.record.uid)).toBe(false);
    expect(await timed.get(input.uid, a.record.uid)).toBeUndefined();
    // Ids in the wrong format never reach Redis.
    expect(await timed.get('../x', a.record.uid)).toBeUndefined();
    expect(await timed.update(input.uid, 'nope', { enabled: true })).toBeUndefined();
  });

  it('never exceeds the cap, even with concurrent creates on separate connections', async () => {
    const input = await inputs.create();
    const clients = Array.from({ length: 4 }, () => createRedis({ path: t.path }, silentLogger()));
    try {
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          new OutputRepository({ redis: clients[i % clients.length]!, keys, maxPerInput: 5 }).create(input.uid, { url: `rtmp://h/${i}` }),
        ),
      );
      expect(results.filter((r) => r.ok)).toHaveLength(5);
      expect(results.filter((r) => !r.ok && r.reason === 'limit_reached')).toHaveLength(15);
      expect(await outputs.list(input.uid)).toHaveLength(5);
    } finally {
      for (const c of clients) c.disconnect();
    }
  });

  it('refuses outputs for a missing input and deletes outputs with their input', async () => {
    expect(await outputs.create('0'.repeat(32), { url: 'rtmp://h/a' })).toEqual({ ok: false, reason: 'live_input_not_found' });
    const input = await inputs.create();
    expect((await outputs.create(input.uid, { url: 'rtmp://h/a' })).ok).toBe(true);
    expect(await t.redis.exists(keys.liveInputOutputs(input.uid))).toBe(1);
    expect(await inputs.delete(input.uid)).toBe(true);
    expect(await t.redis.exists(keys.liveInputOutputs(input.uid))).toBe(0);
    expect(await outputs.liveInputExists(input.uid)).toBe(false);
    expect(await outputs.create(input.uid, { url: 'rtmp://h/b' })).toEqual({ ok: false, reason: 'live_input_not_found' });
  });

  it('reports a corrupt stored output as such, naming its key', async () => {
    const input = await inputs.create();
    await t.redis.hset(keys.liveInputOutputs(input.uid), 'f'.repeat(32), '{"uid":1}');
    await expect(outputs.list(input.uid)).rejects.toThrow(CorruptRecordError);
    await expect(outputs.list(input.uid)).rejects.toThrow(keys.liveInputOutputs(input.uid));
  });
});
