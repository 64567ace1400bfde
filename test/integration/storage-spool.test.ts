import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { deferred } from '../../src/lib/deferred.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { createObjectStore } from '../../src/storage/create-store.ts';
import { DiskStore } from '../../src/storage/disk-store.ts';
import { StorageClosedError, StorageQuotaError } from '../../src/storage/errors.ts';
import type { ObjectStore, PutBody, PutOptions } from '../../src/storage/object-store.ts';
import { Spool } from '../../src/storage/spool.ts';
import { startTestS3Server, type TestS3Server } from '../helpers/s3-server.ts';

let s3: TestS3Server;
let workDir: string;

beforeAll(async () => {
  s3 = await startTestS3Server();
  workDir = await mkdtemp(join(tmpdir(), 'trib-spool-'));
});

afterAll(async () => {
  await s3?.dispose();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const FAST_RETRY = { baseMs: 50, maxMs: 500, jitter: 0.2 };
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function readObject(store: ObjectStore, key: string): Promise<Buffer | undefined> {
  const got = await store.get(key);
  return got ? Buffer.concat((await got.body.toArray()) as Buffer[]) : undefined;
}

/** Wraps a store to observe puts: hooks before and after each one, and the order they landed in. */
class ObservedStore implements ObjectStore {
  readonly kind: string;
  readonly landed: string[] = [];
  readonly started: string[] = [];
  beforePut: (key: string) => Promise<void> | void = () => {};
  afterPut: (key: string) => void = () => {};
  readonly #inner: ObjectStore;
  constructor(inner: ObjectStore) {
    this.#inner = inner;
    this.kind = inner.kind;
  }
  async put(key: string, body: PutBody, opts?: PutOptions): Promise<void> {
    this.started.push(key);
    await this.beforePut(key);
    await this.#inner.put(key, body, opts);
    this.landed.push(key);
    this.afterPut(key);
  }
  get: ObjectStore['get'] = (key, range) => this.#inner.get(key, range);
  head: ObjectStore['head'] = (key) => this.#inner.head(key);
  delete: ObjectStore['delete'] = (key) => this.#inner.delete(key);
  deletePrefix: ObjectStore['deletePrefix'] = (prefix) => this.#inner.deletePrefix(prefix);
  list: ObjectStore['list'] = (prefix) => this.#inner.list(prefix);
  close: ObjectStore['close'] = () => this.#inner.close();
}

/** A store that is down: every put fails. */
function downStore(): ObjectStore {
  const inner = new DiskStore({ dir: join(workDir, 'never') });
  const s = new ObservedStore(inner);
  s.beforePut = () => {
    throw new Error('store is down');
  };
  return s;
}

async function spoolFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

const backends = [
  { name: 'disk', make: async () => createObjectStore({ kind: 'disk', dir: await mkdtemp(join(workDir, 'media-')) }) },
  { name: 's3', make: async () => createObjectStore({ kind: 's3', ...s3.storeOptions() }) },
] as const;

describe.each(backends)('Spool → $name', ({ name, make }) => {
  let store: ObjectStore;
  beforeAll(async () => {
    store = await make();
  });
  afterAll(async () => {
    await store?.close();
  });

  it('uploads 200 small files and leaves the spool empty', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const spool = new Spool({ dir, store, logger: silentLogger(), retry: FAST_RETRY });
    await spool.start();
    const files = new Map<string, Buffer>();
    try {
      for (let i = 0; i < 200; i++) {
        const key = `${name}/many/seg-${String(i).padStart(4, '0')}.m4s`;
        const data = randomBytes(1000 + i);
        files.set(key, data);
        await spool.add(key, data);
      }
      await spool.flush();
      expect(spool.pendingFiles).toBe(0);
      expect(spool.pendingBytes).toBe(0);
      expect(spool.oldestPendingAgeMs).toBe(0);
      expect(spool.uploadedTotal).toBe(200);
      expect(await spoolFiles(dir)).toEqual([]);
      for (const [key, data] of files) expect(sha((await readObject(store, key))!), key).toBe(sha(data));
    } finally {
      await spool.close();
    }
  });

  it('after a crash, a fresh spool uploads what the last one left, and removes half-written debris', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    // "Crashed" process: it spooled files but never uploaded them (never started, never closed).
    const crashed = new Spool({ dir, store: downStore(), logger: silentLogger() });
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 30; i++) {
      const key = `${name}/crash/seg-${i}.m4s`;
      const data = randomBytes(5000);
      files.set(key, data);
      await crashed.add(key, data);
    }
    const source = join(workDir, `${name}-moved.bin`);
    const moved = randomBytes(7000);
    await writeFile(source, moved);
    await crashed.add(`${name}/crash/moved.mp4`, { filePath: source, move: true });
    files.set(`${name}/crash/moved.mp4`, moved);
    expect(crashed.pendingFiles).toBe(31);
    // What a crash mid-add leaves: temp files and a data file without its commit record.
    await writeFile(join(dir, '000000000000001-000000001-deadbeef.data.tmp'), 'partial');
    await writeFile(join(dir, '000000000000001-000000002-deadbeef.data'), 'uncommitted');
    // And a corrupt record, which is set aside rather than retried forever.
    await writeFile(join(dir, '000000000000001-000000003-deadbeef.json'), '{not json');
    await writeFile(join(dir, '000000000000001-000000003-deadbeef.data'), 'x');

    const fresh = new Spool({ dir, store, logger: silentLogger(), retry: FAST_RETRY });
    try {
      await fresh.start();
      // The initial scan queued everything the crashed spool left.
      expect(fresh.pendingFiles + fresh.uploadedTotal).toBe(31);
      await fresh.flush();
      expect(fresh.uploadedTotal).toBe(31);
      for (const [key, data] of files) expect(sha((await readObject(store, key))!), key).toBe(sha(data));
      expect(await spoolFiles(dir)).toEqual(['000000000000001-000000003-deadbeef.bad', '000000000000001-000000003-deadbeef.data']);
    } finally {
      await fresh.close();
    }
  });

  it('flush(prefix) waits for that prefix only, so callers can order dependent writes', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const observed = new ObservedStore(store);
    const gate = deferred<void>();
    observed.beforePut = async (key) => {
      if (key.includes('/other/')) await gate.promise;
      else await new Promise<void>((res) => setImmediate(res));
    };
    const spool = new Spool({ dir, store: observed, logger: silentLogger(), retry: FAST_RETRY, concurrency: 4 });
    await spool.start();
    try {
      await spool.add(`${name}/other/blocked.m4s`, Buffer.from('blocked until the gate opens'));
      const segments: string[] = [];
      for (let i = 0; i < 12; i++) {
        segments.push(`${name}/live/seg-${i}.m4s`);
        await spool.add(`${name}/live/seg-${i}.m4s`, randomBytes(2000));
      }
      await spool.flush(`${name}/live/`);
      for (const key of segments) expect(await store.head(key), key).toBeDefined();
      await spool.add(`${name}/live/index.m3u8`, Buffer.from('#EXTM3U\n'));
      await spool.flush(`${name}/live/`);
      expect(observed.landed.filter((k) => k.includes('/live/')).at(-1)).toBe(`${name}/live/index.m3u8`);
      // The other prefix is still held back.
      expect(observed.landed).not.toContain(`${name}/other/blocked.m4s`);
      expect(spool.pendingFiles).toBe(1);
      gate.resolve();
      await spool.flush();
      expect(spool.pendingFiles).toBe(0);
    } finally {
      gate.resolve();
      await spool.close();
    }
  });

  it('keeps `after` ordering through a restart', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const crashed = new Spool({ dir, store: downStore(), logger: silentLogger() });
    for (let i = 0; i < 10; i++) await crashed.add(`${name}/vod/seg-${i}.m4s`, randomBytes(3000));
    await crashed.add(`${name}/vod/index.m3u8`, Buffer.from('#EXTM3U\n'), { after: `${name}/vod/` });
    await crashed.add(`${name}/vod/seg-late.m4s`, randomBytes(3000));

    const observed = new ObservedStore(store);
    // Make uploads finish out of order: earlier files are slower.
    let n = 0;
    let landedWhenPlaylistStarted: string[] = [];
    observed.beforePut = async (key) => {
      if (key.endsWith('index.m3u8')) landedWhenPlaylistStarted = [...observed.landed];
      const mine = n++;
      for (let i = 0; i < 10 - mine; i++) await new Promise<void>((res) => setImmediate(res));
    };
    const spool = new Spool({ dir, store: observed, logger: silentLogger(), retry: FAST_RETRY, concurrency: 4 });
    try {
      await spool.start();
      await spool.flush();
      expect(observed.landed).toHaveLength(12);
      // The playlist's upload did not even start before every earlier segment had landed.
      for (let i = 0; i < 10; i++) expect(landedWhenPlaylistStarted).toContain(`${name}/vod/seg-${i}.m4s`);
      // A file added after it is not held back by it.
      expect(observed.started.indexOf(`${name}/vod/seg-late.m4s`)).toBeLessThan(observed.started.indexOf(`${name}/vod/index.m3u8`));
    } finally {
      await spool.close();
    }
  });

  it('close() rejects pending flushes, leaves unsent files on disk, and refuses further adds', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const spool = new Spool({ dir, store: downStore(), logger: silentLogger(), retry: FAST_RETRY, closeGraceMs: 1000 });
    await spool.start();
    await spool.add(`${name}/closing/a.m4s`, Buffer.from('a'));
    await spool.add(`${name}/closing/b.m4s`, Buffer.from('b'));
    const flushed = spool.flush();
    await vi.waitFor(() => expect(spool.failedAttempts).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    expect(spool.oldestPendingAgeMs).toBeGreaterThanOrEqual(0);
    expect(spool.pendingBytes).toBe(2);
    await spool.close();
    await spool.close();
    await expect(flushed).rejects.toBeInstanceOf(StorageClosedError);
    await expect(spool.add(`${name}/closing/c.m4s`, Buffer.from('c'))).rejects.toBeInstanceOf(StorageClosedError);
    expect((await spoolFiles(dir)).filter((f) => f.endsWith('.json'))).toHaveLength(2);
  });
});

describe('Spool lifecycle', () => {
  it('maxBytes caps what waits for a store that is down: further adds are refused whole, and accepted again once it drains', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const store = new ObservedStore(new DiskStore({ dir: await mkdtemp(join(workDir, 'media-')) }));
    let down = true;
    store.beforePut = () => {
      if (down) throw new Error('store is down');
    };
    const spool = new Spool({ dir, store, logger: silentLogger(), retry: { baseMs: 20, maxMs: 50 }, maxBytes: 1000 });
    await spool.start();
    try {
      await spool.add('cap/a.m4s', randomBytes(600));
      // Two at once: the bytes of an add under way count too.
      const [b, c] = await Promise.allSettled([spool.add('cap/b.m4s', randomBytes(300)), spool.add('cap/c.m4s', randomBytes(300))]);
      expect([b.status, c.status].sort()).toEqual(['fulfilled', 'rejected']);
      const refused = (b.status === 'rejected' ? b.reason : (c as PromiseRejectedResult).reason) as StorageQuotaError;
      expect(refused).toBeInstanceOf(StorageQuotaError);
      expect(refused.code).toBe('ERR_STORAGE_QUOTA_EXHAUSTED');
      expect(refused.message).toMatch(/storage\.spoolMaxBytes = 1000/);
      const { Readable } = await import('node:stream');
      await expect(spool.add('cap/stream.m4s', Readable.from([randomBytes(500)]))).rejects.toBeInstanceOf(StorageQuotaError);
      // Nothing half-written: two committed files, no temp files.
      expect((await spoolFiles(dir)).map((f) => f.replace(/^[^.]+/, 'ID')).sort()).toEqual(['ID.data', 'ID.data', 'ID.json', 'ID.json']);
      expect(spool.pendingBytes).toBe(900);
      down = false;
      await spool.flush();
      await spool.add('cap/d.m4s', randomBytes(900));
      await spool.flush();
      expect(store.landed).toHaveLength(3);
    } finally {
      await spool.close();
    }
  });

  it('picks up a file another writer renames into the spool while it runs', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const media = await mkdtemp(join(workDir, 'media-'));
    const store = new DiskStore({ dir: media });
    const spool = new Spool({ dir, store, logger: silentLogger(), retry: FAST_RETRY });
    await spool.start();
    try {
      const id = `${String(Date.now()).padStart(15, '0')}-000000000-0badc0de`;
      await writeFile(join(dir, `${id}.data`), 'from elsewhere');
      await writeFile(join(dir, `${id}.json.tmp`), JSON.stringify({ v: 1, key: 'ext/file.txt', size: 14, addedAt: Date.now() }));
      const { rename } = await import('node:fs/promises');
      await rename(join(dir, `${id}.json.tmp`), join(dir, `${id}.json`));
      await vi.waitFor(() => expect(spool.uploadedTotal).toBe(1), { timeout: 10_000, interval: 20 });
      expect((await readObject(store, 'ext/file.txt'))?.toString()).toBe('from elsewhere');
      await vi.waitFor(async () => expect(await spoolFiles(dir)).toEqual([]), { timeout: 5000, interval: 20 });
    } finally {
      await spool.close();
    }
  });

  it('close() aborts an upload that outlives the grace and keeps the file for the next start', async () => {
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const inner = new DiskStore({ dir: await mkdtemp(join(workDir, 'media-')) });
    const hung = deferred<void>();
    const aborted = deferred<void>();
    const hanging: ObjectStore = Object.assign(new ObservedStore(inner), {
      put: (_key: string, _body: PutBody, opts?: PutOptions) =>
        new Promise<void>((_res, rej) => {
          hung.resolve();
          opts?.signal?.addEventListener('abort', () => {
            aborted.resolve();
            rej(opts.signal?.reason);
          });
        }),
    });
    const spool = new Spool({ dir, store: hanging, logger: silentLogger(), closeGraceMs: 200 });
    await spool.start();
    await spool.add('hang/a.m4s', Buffer.from('a'));
    await hung.promise;
    await spool.close();
    await aborted.promise;
    expect(spool.uploadedTotal).toBe(0);
    expect((await spoolFiles(dir)).length).toBe(2);

    const next = new Spool({ dir, store: inner, logger: silentLogger() });
    try {
      await next.start();
      await next.flush();
      expect((await readObject(inner, 'hang/a.m4s'))?.toString()).toBe('a');
    } finally {
      await next.close();
    }
  });
});

describe('Spool → s3 outage', () => {
  it('loses nothing when the store goes away mid-drain and comes back on the same port', async () => {
    const store = createObjectStore({ kind: 's3', ...s3.storeOptions(), maxAttempts: 1, requestTimeoutMs: 5000 });
    const observed = new ObservedStore(store);
    const dir = await mkdtemp(join(workDir, 'spool-'));
    const spool = new Spool({ dir, store: observed, logger: silentLogger(), retry: { baseMs: 100, maxMs: 1000 } });
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 200; i++) {
      const key = `outage/seg-${String(i).padStart(4, '0')}.m4s`;
      const data = randomBytes(20_000);
      files.set(key, data);
      await spool.add(key, data);
    }
    const fiftyLanded = deferred<void>();
    observed.afterPut = () => {
      if (observed.landed.length >= 50) fiftyLanded.resolve();
    };
    try {
      await spool.start();
      await fiftyLanded.promise;
      await s3.stop();
      const landedAtStop = spool.uploadedTotal;
      expect(landedAtStop).toBeLessThan(200);
      // The outage lasts until the spool has failed a good number of times (a few seconds).
      await vi.waitFor(() => expect(spool.failedAttempts).toBeGreaterThanOrEqual(12), { timeout: 30_000, interval: 50 });
      expect(spool.pendingFiles).toBe(200 - spool.uploadedTotal);
      expect(spool.oldestPendingAgeMs).toBeGreaterThan(0);
      await s3.start();
      await spool.flush();
      expect(spool.uploadedTotal).toBe(200);
      expect(await spoolFiles(dir)).toEqual([]);
      for (const [key, data] of files) expect(sha((await readObject(store, key))!), key).toBe(sha(data));
      console.log(
        `[spool outage] ${landedAtStop} landed before the outage, ${spool.failedAttempts} failed attempts during it, all 200 landed after`,
      );
    } finally {
      await s3.start();
      await spool.close();
      await store.close();
    }
  });
});

describe('Spool on a full disk', () => {
  let mountDir: string | undefined;

  beforeAll(async () => {
    const dir = join(workDir, 'tiny-tmpfs');
    await mkdir(dir);
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'ignore' });
      mountDir = dir;
    } catch {
      // Not root, or no mount permission in this container: the test below is skipped (the
      // errno mapping itself is unit-tested in test/unit/storage/keys.test.ts).
    }
  });

  afterAll(() => {
    if (mountDir) execFileSync('umount', [mountDir], { stdio: 'ignore' });
  });

  it('throws StorageQuotaError on ENOSPC, leaves no partial file, and recovers once space frees', async (ctx) => {
    if (!mountDir) ctx.skip();
    const dir = join(mountDir!, 'spool');
    const media = await mkdtemp(join(workDir, 'media-'));
    const store = new ObservedStore(new DiskStore({ dir: media }));
    const release = deferred<void>();
    store.beforePut = () => release.promise;
    const spool = new Spool({ dir, store, logger: silentLogger(), retry: FAST_RETRY });
    await spool.start();
    try {
      await spool.add('full/first.m4s', randomBytes(600 * 1024));
      const err = await spool.add('full/second.m4s', randomBytes(600 * 1024)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageQuotaError);
      expect((err as StorageQuotaError).code).toBe('ERR_STORAGE_QUOTA_EXHAUSTED');
      // Only the first file is in the spool: no temp file or uncommitted data left behind.
      expect((await spoolFiles(dir)).map((f) => f.replace(/^[^.]+/, 'ID'))).toEqual(['ID.data', 'ID.json']);
      expect(spool.pendingFiles).toBe(1);
      // A Readable source fails the same way.
      const { Readable } = await import('node:stream');
      await expect(spool.add('full/stream.m4s', Readable.from([randomBytes(700 * 1024)]))).rejects.toBeInstanceOf(StorageQuotaError);

      // The disk store on a full disk says the same.
      const full = new DiskStore({ dir: join(mountDir!, 'media') });
      await expect(full.put('x/big.bin', randomBytes(900 * 1024))).rejects.toBeInstanceOf(StorageQuotaError);
      expect(await full.head('x/big.bin')).toBeUndefined();

      release.resolve();
      await spool.flush();
      await spool.add('full/second.m4s', randomBytes(600 * 1024));
      await spool.flush();
      expect(store.landed).toEqual(['full/first.m4s', 'full/second.m4s']);
      expect(await spoolFiles(dir)).toEqual([]);
    } finally {
      release.resolve();
      await spool.close();
    }
  });
});
