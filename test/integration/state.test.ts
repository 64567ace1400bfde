import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, silentLogger, type Logger } from '../../src/observability/logger.ts';
import { ApiKeyStore } from '../../src/state/api-key-store.ts';
import { EmbeddedRedis } from '../../src/state/embedded-redis.ts';
import { createRedisKeys } from '../../src/state/keys.ts';
import { CorruptRecordError, LiveInputInvalidError, type LiveInputRecord } from '../../src/state/live-input-record.ts';
import { LiveInputRepository } from '../../src/state/live-input-repo.ts';
import { startTestRedis, type TestRedis } from '../helpers/redis.ts';

const keys = createRedisKeys('test:');

describe('EmbeddedRedis', () => {
  it('explains how to fix a missing redis-server binary', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'trib-noredis-'));
    const server = new EmbeddedRedis({ dataDir, logger: silentLogger(), redisServerPath: '/nonexistent/redis-server' });
    try {
      await expect(server.start()).rejects.toThrow(/redis-server not found.*apt-get install redis-server.*TRIBUTARY_REDIS_URL/s);
    } finally {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('rejects with the server output when redis-server exits during startup', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'trib-badredis-'));
    // `false` exits 1 at once, like a redis-server that dislikes its arguments.
    const server = new EmbeddedRedis({ dataDir, logger: silentLogger(), redisServerPath: 'false' });
    try {
      await expect(server.start()).rejects.toThrow(/exited during startup \(code 1/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('keeps data across close and restart on the same data dir', async () => {
    const first = await startTestRedis();
    const repo = new LiveInputRepository({ redis: first.redis, keys });
    const created = await repo.create({ meta: { name: 'durable' } });
    await first.stop({ keepData: true });

    const second = await startTestRedis({ dataDir: first.dataDir });
    try {
      const repo2 = new LiveInputRepository({ redis: second.redis, keys });
      expect(await repo2.get(created.uid)).toEqual(created);
      expect((await repo2.getByStreamKey(created.streamKey))?.uid).toBe(created.uid);
    } finally {
      await second.stop();
    }
  });

  it('restarts redis-server after it dies, and clients reconnect', async () => {
    const t = await startTestRedis();
    try {
      await t.redis.set('test:before', '1');
      const oldPid = t.server.pid;
      const dropped = once(t.redis, 'reconnecting');
      process.kill(oldPid!, 'SIGKILL');
      await dropped;
      // The client's offline queue holds the command until the supervisor's restart is up.
      expect(await t.redis.get('test:before')).toBe('1');
      expect(t.server.pid).not.toBe(oldPid);
    } finally {
      await t.stop();
    }
  });

  it('falls back to a socket in the temp dir when the data dir path is too long', async () => {
    const base = await mkdtemp(join(tmpdir(), 'trib-long-'));
    const dataDir = join(base, 'a'.repeat(60), 'b'.repeat(60));
    await mkdir(dataDir, { recursive: true });
    const t = await startTestRedis({ dataDir });
    try {
      expect(t.path.startsWith(tmpdir())).toBe(true);
      expect(t.path.startsWith(dataDir)).toBe(false);
      expect(await t.redis.ping()).toBe('PONG');
    } finally {
      await t.stop();
      await rm(base, { recursive: true, force: true });
    }
  });

  it('refuses to start a second server on a data dir that is in use', async () => {
    const t = await startTestRedis();
    const other = new EmbeddedRedis({ dataDir: t.dataDir, logger: silentLogger() });
    try {
      await expect(other.start()).rejects.toThrow(/already listening/);
    } finally {
      await other.close();
      await t.stop();
    }
  });
});

// A separate Node process that runs EmbeddedRedis on `dataDir`, writes a key, reports its
// redis-server pid and then idles until killed; its redis-server is a child of that process.
const OWNER_SCRIPT = `
import { EmbeddedRedis } from './src/state/embedded-redis.ts';
import { silentLogger } from './src/observability/logger.ts';
import { createRedis } from './src/state/redis-client.ts';
const server = new EmbeddedRedis({ dataDir: process.argv[1], logger: silentLogger() });
const target = await server.start();
const client = createRedis({ path: target.path }, silentLogger());
await client.set('orphan:key', 'written-before-the-crash');
process.stdout.write(JSON.stringify({ redisPid: server.pid }) + '\\n');
setInterval(() => {}, 60_000);
`;

async function startOwnerProcess(dataDir: string): Promise<{ child: ChildProcess; redisPid: number }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', OWNER_SCRIPT, dataDir], {
    cwd: resolve(import.meta.dirname, '../..'),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const line = await new Promise<string>((res, rej) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) res(out.split('\n')[0]!);
    });
    child.once('exit', (code) => rej(new Error(`owner process exited (${code}): ${err}`)));
  });
  const { redisPid } = JSON.parse(line) as { redisPid: number };
  return { child, redisPid };
}

/** Running and not a zombie (an orphan's exit may never be reaped in a container without init). */
function processRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: createLogger({ level: 'info' }, { write: (s: string) => void lines.push(s) }), lines };
}

describe('EmbeddedRedis takeover after a crash', () => {
  it('refuses while the owning process lives, then takes over its orphaned redis-server once it is killed', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'trib-orphan-'));
    const { child, redisPid } = await startOwnerProcess(dataDir);
    let t: TestRedis | undefined;
    try {
      // Another Tributary really is using the dir: refuse, and leave its server alone.
      const other = new EmbeddedRedis({ dataDir, logger: silentLogger() });
      await expect(other.start()).rejects.toThrow(/already listening.*another Tributary \(pid \d+\)/);
      await other.close();
      expect(processRunning(redisPid)).toBe(true);

      // The owner crashes; its redis-server survives, orphaned.
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      expect(processRunning(redisPid)).toBe(true);

      const { logger, lines } = capturingLogger();
      t = await startTestRedis({ dataDir, logger });
      expect(await t.redis.get('orphan:key')).toBe('written-before-the-crash');
      expect(processRunning(redisPid)).toBe(false);
      expect(t.server.pid).not.toBe(redisPid);
      const warning = lines.map((l) => JSON.parse(l) as { level: number; msg: string }).find((l) => /took over/.test(l.msg));
      expect(warning?.msg).toBe(`took over an orphaned redis-server from a previous run (pid ${redisPid})`);
      expect(warning?.level).toBe(40);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (processRunning(redisPid)) process.kill(redisPid, 'SIGKILL');
      if (t) await t.stop();
      else await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('never signals a process it cannot identify as its own redis-server', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'trib-forged-'));
    // A dead owner (an exited, reaped child) and a "redis" pid that is really something else.
    const dead = spawn(process.execPath, ['-e', '']);
    await once(dead, 'exit');
    const bystander = spawn(process.execPath, ['-e', 'setInterval(() => {}, 60_000)']);
    await once(bystander, 'spawn');
    await mkdir(join(dataDir, 'redis'), { recursive: true });
    await writeFile(
      join(dataDir, 'redis', 'tributary-owner.json'),
      JSON.stringify({ ownerPid: dead.pid, socketPath: join(dataDir, 'redis', 'redis.sock'), redisPid: bystander.pid }),
    );
    await writeFile(join(dataDir, 'redis', 'redis-server.pid'), `${bystander.pid}\n`);
    let t: TestRedis | undefined;
    try {
      t = await startTestRedis({ dataDir });
      expect(await t.redis.ping()).toBe('PONG');
      expect(processRunning(bystander.pid!)).toBe(true);
    } finally {
      bystander.kill('SIGKILL');
      if (t) await t.stop();
      else await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('LiveInputRepository', () => {
  let t: TestRedis;
  let repo: LiveInputRepository;
  beforeAll(async () => {
    t = await startTestRedis();
    repo = new LiveInputRepository({ redis: t.redis, keys });
  });
  afterAll(async () => {
    await t.stop();
  });

  it('creates with defaults and reads back', async () => {
    const rec = await repo.create({ meta: { name: 'studio' } });
    expect(rec.uid).toMatch(/^[0-9a-f]{32}$/);
    expect(rec.streamKey).toMatch(/^sk_[0-9a-f]{64}$/);
    expect(rec).toMatchObject({
      meta: { name: 'studio' },
      enabled: true,
      recording: { mode: 'off', timeoutSeconds: 0, requireSignedURLs: false, allowedOrigins: [], hideLiveViewerCount: false },
      deleteRecordingAfterDays: null,
      status: null,
    });
    expect(rec.created).toBe(rec.modified);
    expect(await repo.get(rec.uid)).toEqual(rec);
    expect(await repo.get('0'.repeat(32))).toBeUndefined();
    expect(await repo.get('../etc')).toBeUndefined();
  });

  it('updates: meta replaced, recording merged, modified bumped', async () => {
    const rec = await repo.create({ meta: { name: 'a', x: 1 }, recording: { mode: 'automatic' } });
    const upd = await repo.update(rec.uid, { meta: { name: 'b' }, recording: { timeoutSeconds: 30 }, enabled: false });
    expect(upd).toMatchObject({
      meta: { name: 'b' },
      enabled: false,
      recording: { mode: 'automatic', timeoutSeconds: 30 },
    });
    expect(upd?.meta).not.toHaveProperty('x');
    expect(Date.parse(upd!.modified)).toBeGreaterThanOrEqual(Date.parse(rec.modified));
    expect(await repo.get(rec.uid)).toEqual(upd);
    expect(await repo.update('f'.repeat(32), { enabled: true })).toBeUndefined();
  });

  it('rejects meta over 16 KiB and out-of-range values', async () => {
    await expect(repo.create({ meta: { name: 'x'.repeat(17 * 1024) } })).rejects.toThrow(LiveInputInvalidError);
    const rec = await repo.create({});
    await expect(repo.update(rec.uid, { recording: { timeoutSeconds: 99999 } })).rejects.toThrow(/timeoutSeconds/);
  });

  it('rotates the stream key atomically: old key fails, new key works', async () => {
    const rec = await repo.create({});
    expect((await repo.getByStreamKey(rec.streamKey))?.uid).toBe(rec.uid);
    const rotated = await repo.rotateKeys(rec.uid);
    expect(rotated?.streamKey).not.toBe(rec.streamKey);
    expect(await repo.getByStreamKey(rec.streamKey)).toBeUndefined();
    expect((await repo.getByStreamKey(rotated!.streamKey))?.uid).toBe(rec.uid);
    expect(await repo.getByStreamKey('sk_' + '0'.repeat(64))).toBeUndefined();
    expect(await repo.getByStreamKey('garbage')).toBeUndefined();
  });

  it('keeps stream keys out of index key names', async () => {
    const rec = await repo.create({});
    const names = await t.redis.keys('test:*');
    expect(names.some((n) => n.includes(rec.streamKey) || n.includes(rec.streamKey.slice(3)))).toBe(false);
  });

  it('concurrent updates are all applied (no lost update)', async () => {
    const rec = await repo.create({ meta: {} });
    await Promise.all([
      repo.update(rec.uid, { enabled: false }),
      repo.update(rec.uid, { recording: { mode: 'automatic' } }),
      repo.update(rec.uid, { deleteRecordingAfterDays: 7 }),
    ]);
    expect(await repo.get(rec.uid)).toMatchObject({
      enabled: false,
      recording: { mode: 'automatic' },
      deleteRecordingAfterDays: 7,
    });
  });

  it('setStatus records the state without touching modified', async () => {
    const rec = await repo.create({});
    const upd = await repo.setStatus(rec.uid, 'connected');
    expect(upd?.status?.current.state).toBe('connected');
    expect(upd?.modified).toBe(rec.modified);
  });

  it('deletes the record and its indexes', async () => {
    const rec = await repo.create({});
    expect(await repo.delete(rec.uid)).toBe(true);
    expect(await repo.get(rec.uid)).toBeUndefined();
    expect(await repo.getByStreamKey(rec.streamKey)).toBeUndefined();
    expect(await t.redis.zscore(keys.liveInputIndex(), rec.uid)).toBeNull();
    expect(await repo.delete(rec.uid)).toBe(false);
  });

  it('lists newest first across pages, with ties in the same millisecond', async () => {
    const fixed = new Date('2030-01-01T00:00:00.000Z');
    const tk = createRedisKeys('list:');
    let tick = 0;
    // Pairs of records share a millisecond to exercise the cursor tie-break.
    const r = new LiveInputRepository({ redis: t.redis, keys: tk, now: () => new Date(fixed.getTime() + Math.floor(tick++ / 2)) });
    const made: LiveInputRecord[] = [];
    for (let i = 0; i < 7; i++) made.push(await r.create({ meta: { name: `n${i}` } }));
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await r.list({ limit: 3, ...(cursor ? { cursor } : {}) });
      expect(page.total).toBe(7);
      seen.push(...page.items.map((i) => i.uid));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(7);
    const createdOrder = seen.map((uid) => Date.parse(made.find((m) => m.uid === uid)!.created));
    expect(createdOrder).toEqual([...createdOrder].sort((a, b) => b - a));
  });

  it('reports a corrupt record clearly instead of crashing', async () => {
    const rec = await repo.create({});
    await t.redis.set(keys.liveInput(rec.uid), '{"uid":"nope"}');
    await expect(repo.get(rec.uid)).rejects.toThrow(CorruptRecordError);
    await t.redis.set(keys.liveInput(rec.uid), 'not json');
    await expect(repo.get(rec.uid)).rejects.toThrow(/not valid JSON/);
  });
});

describe('ApiKeyStore', () => {
  let t: TestRedis;
  beforeAll(async () => {
    t = await startTestRedis();
  });
  afterAll(async () => {
    await t.stop();
  });

  it('generates a key once on first start and accepts only it', async () => {
    const store = new ApiKeyStore({ redis: t.redis, keys: createRedisKeys('gen:') });
    const first = await store.ensureInitialKey();
    expect(first.created).toBe(true);
    expect(first.key).toMatch(/^trib_[A-Za-z0-9_-]{43}$/);
    expect(await store.ensureInitialKey()).toEqual({ created: false });
    expect(await store.verify(first.key!)).toBe(true);
    expect(await store.verify(first.key! + 'x')).toBe(false);
    expect(await store.verify('')).toBe(false);
    // Only the hash is stored.
    const stored = JSON.stringify(await t.redis.hgetall(createRedisKeys('gen:').apiKeys()));
    expect(stored).not.toContain(first.key!);
  });

  it('makes a provided key the accepted one, idempotently, revoking others', async () => {
    const k = createRedisKeys('env:');
    const store = new ApiKeyStore({ redis: t.redis, keys: k, cacheTtlMs: 0 });
    const generated = await store.ensureInitialKey();
    expect(await store.ensureInitialKey('provided-key-0123456789')).toEqual({ created: true });
    expect(await store.ensureInitialKey('provided-key-0123456789')).toEqual({ created: false });
    expect(await store.verify('provided-key-0123456789')).toBe(true);
    expect(await store.verify(generated.key!)).toBe(false);
    expect(await store.verify('wrong-key-0123456789')).toBe(false);
    await expect(store.ensureInitialKey('short')).rejects.toThrow(/16 to/);
  });
});
