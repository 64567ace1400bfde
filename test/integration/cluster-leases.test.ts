import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '../../src/observability/logger.ts';
import { ClusterLeases } from '../../src/state/cluster-leases.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { createRedis } from '../../src/state/redis-client.ts';
import { OwnerProxy, OwnerUnreachableError } from '../../src/origin/owner-proxy.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

const UID = 'a'.repeat(32);
const until = async (check: () => Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe('cluster leases in a real Redis', () => {
  let redis: TestRedis;
  const keys = createRedisKeys('t:');
  const nodes: ClusterLeases[] = [];
  const node = (id: string, ttlMs = 600) => {
    const n = new ClusterLeases({ redis: redis.redis, keys, nodeId: id, roles: ['ingest', 'origin', 'worker'], ttlMs, logger: silentLogger() });
    nodes.push(n);
    return n;
  };

  beforeAll(async () => {
    redis = await startTestRedis();
  });
  afterAll(async () => {
    for (const n of nodes) await n.close();
    await redis?.stop();
  });

  it('every node shares one secret; a wrong, short or missing credential is refused', async () => {
    const a = node('node-a');
    const b = node('node-b');
    await a.start('http://127.0.0.1:1');
    await b.start('http://127.0.0.1:2');
    expect(a.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(b.secret).toBe(a.secret);
    expect(b.isSecret(a.secret)).toBe(true);
    expect(b.isSecret(`${a.secret}x`)).toBe(false);
    expect(b.isSecret(a.secret.slice(1))).toBe(false);
    expect(b.isSecret('')).toBe(false);
    expect(b.isSecret(undefined)).toBe(false);
    expect(b.isSecret([a.secret, a.secret])).toBe(false);
    await a.close();
    await b.close();
  });

  it('a lease is renewed while held, taken over by a newer publish, and never deleted by its old owner', async () => {
    const a = node('owner-a');
    const b = node('owner-b');
    await a.start('http://127.0.0.1:10');
    await b.start('http://127.0.0.1:11');
    let aHolds = true;
    await a.claim(UID, 's1', () => aHolds);
    expect(await b.lease(UID)).toEqual({ node: 'owner-a', url: 'http://127.0.0.1:10', session: 's1', live: true });
    // The broadcast ends: the lease stays (ended playlists are still served) but says so.
    await a.ended(UID);
    expect(await b.lease(UID)).toEqual({ node: 'owner-a', url: 'http://127.0.0.1:10', session: 's1', live: false });
    // Renewed past several TTLs.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await b.lease(UID))?.node).toBe('owner-a');

    // The publisher reconnects to B: B's claim replaces A's; A's renewals and release leave it alone.
    await b.claim(UID, 's2', () => true);
    await new Promise((r) => setTimeout(r, 500));
    await a.release(UID);
    expect(await a.lease(UID)).toEqual({ node: 'owner-b', url: 'http://127.0.0.1:11', session: 's2', live: true });
    // Nor does A's late "ended" rewrite B's lease.
    await a.ended(UID);
    expect((await a.lease(UID))?.live).toBe(true);
    expect(await redis.redis.smembers(keys.nodeLiveInputs('owner-a'))).toEqual([]);

    // A session that is no longer current is released at the next renewal.
    const other = 'b'.repeat(32);
    await a.claim(other, 's3', () => aHolds);
    aHolds = false;
    await until(async () => (await a.lease(other)) === undefined);
    await a.close();
    await b.close();
  });

  it('the owner publishes its live status with the lease; a node that lost the lease never overwrites the new owner’s; it goes with the lease', async () => {
    const uid = 'c'.repeat(32);
    const a = node('status-a');
    const b = node('status-b');
    await a.start('http://127.0.0.1:11');
    await b.start('http://127.0.0.1:12');
    let health = { state: 'connected', bitrateKbps: 1000 };
    await a.claim(uid, 'sess-a', () => true, () => health);
    // Published at the next renewal (every ttl/3), and refreshed after.
    await until(async () => JSON.stringify(await b.liveStatus(uid)) === JSON.stringify(health));
    health = { state: 'connected', bitrateKbps: 2000 };
    await until(async () => ((await b.liveStatus(uid)) as typeof health | undefined)?.bitrateKbps === 2000);

    // The publisher moves to B: A's status is dropped at once; A's renewals write nothing more.
    await b.claim(uid, 'sess-b', () => true, () => ({ state: 'reconnected', node: 'b' }));
    expect(await a.liveStatus(uid)).toBeUndefined();
    await until(async () => ((await a.liveStatus(uid)) as { node?: string } | undefined)?.node === 'b');
    await new Promise((r) => setTimeout(r, 500)); // past a renewal of A
    expect(await a.liveStatus(uid)).toEqual({ state: 'reconnected', node: 'b' });

    // The broadcast ends: no live status any more, the lease stays (live: false).
    await b.ended(uid);
    expect(await a.liveStatus(uid)).toBeUndefined();
    expect((await a.lease(uid))?.live).toBe(false);
    await new Promise((r) => setTimeout(r, 500));
    expect(await a.liveStatus(uid)).toBeUndefined();

    // A malformed status reads as none.
    await redis.redis.set(keys.liveStatus(uid), '{not json');
    expect(await a.liveStatus(uid)).toBeUndefined();
    await b.release(uid);
    expect(await redis.redis.exists(keys.liveStatus(uid))).toBe(0);
  });

  it('a node that stops renewing (dies) loses its heartbeat and leases; members() says so', async () => {
    // The dying node has its own connection: cutting it is a SIGKILL as Redis sees it.
    const conn = createRedis({ path: redis.path }, silentLogger());
    const dead = new ClusterLeases({ redis: conn, keys, nodeId: 'dying', roles: ['ingest'], ttlMs: 300, logger: silentLogger() });
    const alive = node('surviving', 300);
    await dead.start('http://127.0.0.1:20');
    await alive.start('http://127.0.0.1:21');
    const uid = 'c'.repeat(32);
    await dead.claim(uid, 's', () => true);
    expect((await alive.members()).find((m) => m.node === 'dying')).toEqual({ node: 'dying', alive: true });
    conn.disconnect();
    await until(async () => (await alive.members()).some((m) => m.node === 'dying' && !m.alive), 5000);
    expect(await alive.lease(uid)).toBeUndefined();
    // What it held stays listed for the failover sweeper, until swept.
    expect(await alive.liveInputsOf('dying')).toEqual([uid]);
    await alive.forgetLiveInput('dying', uid);
    await alive.forgetNode('dying');
    expect((await alive.members()).some((m) => m.node === 'dying')).toBe(false);
    await dead.close();
    await alive.close();
  });

  it('a malformed lease names no owner', async () => {
    const a = node('reader');
    const uid = 'd'.repeat(32);
    for (const raw of ['not json', '{}', '{"node":1,"url":"x","session":"s"}', '[]', 'null']) {
      await redis.redis.set(keys.liveLease(uid), raw);
      expect(await a.lease(uid)).toBeUndefined();
    }
    await redis.redis.del(keys.liveLease(uid));
  });

  it('a lock is held by one node at a time and released after', async () => {
    const a = node('lock-a');
    const b = node('lock-b');
    await a.start('http://127.0.0.1:30');
    await b.start('http://127.0.0.1:31');
    let release!: () => void;
    const inside = new Promise<void>((r) => {
      release = r;
    });
    const first = a.withLock('job', 10_000, () => inside.then(() => 'a'));
    await new Promise((r) => setTimeout(r, 50));
    expect(await b.withLock('job', 10_000, async () => 'b')).toBeUndefined();
    release();
    expect(await first).toEqual({ value: 'a' });
    expect(await b.withLock('job', 10_000, async () => 'b')).toEqual({ value: 'b' });
    await a.close();
    await b.close();
  });
});

describe('OwnerProxy against a real HTTP owner', () => {
  let owner: http.Server;
  let ownerUrl = '';
  let requests: string[] = [];
  let hang: http.Server;
  let hangUrl = '';

  beforeAll(async () => {
    owner = http.createServer((req, res) => {
      requests.push(`${req.url} ${String(req.headers['x-internal'])}`);
      if (req.url?.includes('missing')) return void res.writeHead(404).end('{}');
      const media = req.url?.endsWith('.m4s');
      // Held like a blocking reload, so that concurrent requests overlap.
      setTimeout(() => {
        res
          .writeHead(200, {
            'content-type': media ? 'video/iso.segment' : 'application/vnd.apple.mpegurl',
            'cache-control': media ? 'public, max-age=31536000, immutable' : 'public, max-age=6',
          })
          .end(media ? Buffer.alloc(1000, 7) : '#EXTM3U\n');
      }, 200);
    });
    hang = http.createServer(() => undefined);
    for (const s of [owner, hang]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    ownerUrl = `http://127.0.0.1:${(owner.address() as AddressInfo).port}`;
    hangUrl = `http://127.0.0.1:${(hang.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    hang.closeAllConnections();
    for (const s of [owner, hang]) await new Promise((r) => s.close(r));
  });

  const proxy = () =>
    new OwnerProxy({ owners: { ownerUrl: async () => ownerUrl }, credential: () => ({ header: 'x-internal', value: 'sekret' }), timeoutMs: 500 });

  it('identical concurrent requests become one upstream request, carrying the credential', async () => {
    requests = [];
    const p = proxy();
    const path = `/${UID}/manifest/240p/index.m3u8?_HLS_msn=5&_HLS_part=1`;
    const answers = await Promise.all(Array.from({ length: 50 }, () => p.fetch(ownerUrl, path, 1000)));
    expect(requests).toEqual([`${path} sekret`]);
    expect(p.stats).toMatchObject({ upstream: 1, coalesced: 49 });
    for (const a of answers) expect(a).toMatchObject({ status: 200, cacheControl: 'public, max-age=6', body: Buffer.from('#EXTM3U\n') });
    // A different directive is a different request.
    await p.fetch(ownerUrl, `/${UID}/manifest/240p/index.m3u8?_HLS_msn=5&_HLS_part=2`, 1000);
    expect(requests).toHaveLength(2);
    // Playlists are not kept once answered: the next reload asks again.
    await p.fetch(ownerUrl, path, 1000);
    expect(requests).toHaveLength(3);
  });

  it('immutable media is kept for the viewers that follow; a 404 is relayed, not kept', async () => {
    requests = [];
    const p = proxy();
    const part = `/${UID}/manifest/240p/part-x-1-0.m4s`;
    await p.fetch(ownerUrl, part, 0);
    const again = await p.fetch(ownerUrl, part, 0);
    expect(again.body.length).toBe(1000);
    expect(requests).toHaveLength(1);
    expect(p.stats.cached).toBe(1);
    expect((await p.fetch(ownerUrl, `/${UID}/missing.m4s`, 0)).status).toBe(404);
    expect((await p.fetch(ownerUrl, `/${UID}/missing.m4s`, 0)).status).toBe(404);
    expect(requests).toHaveLength(3);
  });

  it('a dead owner is unreachable at once; a hung one times out; the owner lookup is cached and can be forgotten', async () => {
    const p = proxy();
    await expect(p.fetch('http://127.0.0.1:1', '/x', 0)).rejects.toMatchObject({ name: 'OwnerUnreachableError', timedOut: false });
    const hung = p.fetch(hangUrl, '/x', 100);
    await expect(hung).rejects.toBeInstanceOf(OwnerUnreachableError);
    await expect(hung).rejects.toMatchObject({ timedOut: true });

    let lookups = 0;
    const counted = new OwnerProxy({
      owners: { ownerUrl: async () => (lookups++ === 0 ? undefined : ownerUrl) },
      credential: () => ({ header: 'x-internal', value: 's' }),
      timeoutMs: 500,
      lookupCacheMs: 60_000,
    });
    expect(await counted.ownerOf(UID)).toBeUndefined();
    expect(await counted.ownerOf(UID)).toBeUndefined();
    expect(lookups).toBe(1);
    counted.forget(UID);
    expect(await counted.ownerOf(UID)).toBe(ownerUrl);
  });
});
