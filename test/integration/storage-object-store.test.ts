import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createObjectStore } from '../../src/storage/create-store.ts';
import { InvalidKeyError, StorageRangeError } from '../../src/storage/errors.ts';
import type { ObjectStore } from '../../src/storage/object-store.ts';
import { S3Store } from '../../src/storage/s3-store.ts';
import { startTestS3Server, type TestS3Server } from '../helpers/s3-server.ts';

interface Backend {
  name: 'disk' | 's3';
  store: ObjectStore;
  dispose(): Promise<void>;
}

let s3: TestS3Server;
let workDir: string;

beforeAll(async () => {
  s3 = await startTestS3Server();
  workDir = await mkdtemp(join(tmpdir(), 'trib-store-'));
});

afterAll(async () => {
  await s3?.dispose();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const backends: Array<{ name: 'disk' | 's3'; make: () => Promise<Backend> }> = [
  {
    name: 'disk',
    make: async () => {
      const dir = await mkdtemp(join(workDir, 'disk-'));
      const store = createObjectStore({ kind: 'disk', dir });
      return { name: 'disk', store, dispose: () => store.close() };
    },
  },
  {
    name: 's3',
    make: async () => {
      const store = createObjectStore({ kind: 's3', ...s3.storeOptions() });
      return { name: 's3', store, dispose: () => store.close() };
    },
  },
];

async function readAll(body: Readable): Promise<Buffer> {
  return Buffer.concat((await body.toArray()) as Buffer[]);
}

async function keysUnder(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const e of store.list(prefix)) keys.push(e.key);
  return keys.sort();
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.each(backends)('ObjectStore ($name)', ({ name, make }) => {
  let backend: Backend;
  let store: ObjectStore;
  // Each backend gets its own key space in the shared bucket.
  const k = (key: string) => `${name}/${key}`;

  beforeAll(async () => {
    backend = await make();
    store = backend.store;
  });
  afterAll(async () => {
    await backend?.dispose();
  });

  it('puts, heads, gets and overwrites an object', async () => {
    await store.put(k('a/one.txt'), Buffer.from('hello world'), { contentType: 'text/plain' });
    expect(await store.head(k('a/one.txt'))).toEqual({ size: 11, contentType: 'text/plain' });
    const got = await store.get(k('a/one.txt'));
    expect(got?.size).toBe(11);
    expect(got?.length).toBe(11);
    expect(got?.contentType).toBe('text/plain');
    expect((await readAll(got!.body)).toString()).toBe('hello world');

    await store.put(k('a/one.txt'), Buffer.from('bye'), { contentType: 'application/octet-stream' });
    const again = await store.get(k('a/one.txt'));
    expect((await readAll(again!.body)).toString()).toBe('bye');
    expect(again?.contentType).toBe('application/octet-stream');
  });

  it('returns undefined for a missing object, and deleting one is not an error', async () => {
    expect(await store.get(k('nope/missing.bin'))).toBeUndefined();
    expect(await store.head(k('nope/missing.bin'))).toBeUndefined();
    await expect(store.delete(k('nope/missing.bin'))).resolves.toBeUndefined();
  });

  it('serves inclusive byte ranges and refuses one past the end', async () => {
    const data = Buffer.from('0123456789');
    await store.put(k('r/digits.bin'), data);
    const mid = await store.get(k('r/digits.bin'), { start: 2, end: 5 });
    expect(mid?.range).toEqual({ start: 2, end: 5 });
    expect(mid?.size).toBe(10);
    expect(mid?.length).toBe(4);
    expect((await readAll(mid!.body)).toString()).toBe('2345');

    const tail = await store.get(k('r/digits.bin'), { start: 7 });
    expect(tail?.range).toEqual({ start: 7, end: 9 });
    expect((await readAll(tail!.body)).toString()).toBe('789');

    const clamped = await store.get(k('r/digits.bin'), { start: 8, end: 100 });
    expect((await readAll(clamped!.body)).toString()).toBe('89');

    await expect(store.get(k('r/digits.bin'), { start: 10 })).rejects.toBeInstanceOf(StorageRangeError);
  });

  it('stores a stream of unknown length and a file by path', async () => {
    const parts = [randomBytes(1000), randomBytes(70_000), randomBytes(3)];
    await store.put(k('s/stream.bin'), Readable.from(parts));
    const got = await store.get(k('s/stream.bin'));
    expect(sha(await readAll(got!.body))).toBe(sha(Buffer.concat(parts)));

    const file = join(workDir, `${name}-file.bin`);
    const content = randomBytes(123_456);
    await writeFile(file, content);
    await store.put(k('s/file.m4s'), { filePath: file });
    const fromFile = await store.get(k('s/file.m4s'));
    expect(fromFile?.size).toBe(content.length);
    expect(sha(await readAll(fromFile!.body))).toBe(sha(content));
  });

  it('keeps the previous object when a streamed put fails midway', async () => {
    await store.put(k('f/keep.bin'), Buffer.from('old'));
    async function* failing() {
      yield randomBytes(10_000);
      throw new Error('encoder died');
    }
    await expect(store.put(k('f/keep.bin'), Readable.from(failing()))).rejects.toThrow();
    const got = await store.get(k('f/keep.bin'));
    expect((await readAll(got!.body)).toString()).toBe('old');
    expect(await keysUnder(store, k('f/'))).toEqual([k('f/keep.bin')]);
  });

  it('lists by string prefix and deletes by prefix', async () => {
    for (const key of ['l/a/1', 'l/a/2', 'l/a/sub/3', 'l/ab', 'l/b/1']) await store.put(k(key), Buffer.from(key));
    expect(await keysUnder(store, k('l/a/'))).toEqual([k('l/a/1'), k('l/a/2'), k('l/a/sub/3')]);
    expect(await keysUnder(store, k('l/a'))).toEqual([k('l/a/1'), k('l/a/2'), k('l/a/sub/3'), k('l/ab')]);
    const sizes: number[] = [];
    for await (const e of store.list(k('l/b/'))) sizes.push(e.size);
    expect(sizes).toEqual(['l/b/1'.length]);
    expect(await keysUnder(store, '')).toEqual(expect.arrayContaining([k('l/ab'), k('l/b/1')]));

    expect(await store.deletePrefix(k('l/a/'))).toBe(3);
    expect(await keysUnder(store, k('l/'))).toEqual([k('l/ab'), k('l/b/1')]);
    expect(await store.deletePrefix(k('l/a/'))).toBe(0);
    await store.delete(k('l/ab'));
    expect(await keysUnder(store, k('l/'))).toEqual([k('l/b/1')]);
  });

  it('rejects bad keys with InvalidKeyError before any I/O', async () => {
    const bad = ['../x', '/abs', 'a//b', 'x'.repeat(2000), 'a\0b', '', 'a/./b', 'a/', 'a b', 'dir/../../etc/passwd'];
    for (const key of bad) {
      await expect(store.put(key, Buffer.from('x')), key).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.get(key), key).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.head(key), key).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(store.delete(key), key).rejects.toBeInstanceOf(InvalidKeyError);
    }
    await expect(store.deletePrefix('')).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.deletePrefix('../')).rejects.toBeInstanceOf(InvalidKeyError);
    expect(() => store.list('/etc')).toThrow(InvalidKeyError);
    if (name === 'disk') {
      // Nothing escaped the base directory.
      expect(await readdir(join(workDir, '..'))).not.toContain('x');
    }
  });

  it('uploads a body over 8 MiB (multipart on S3) intact', async () => {
    const multipartBefore = store instanceof S3Store ? store.multipartUploads : 0;
    const big = randomBytes(12 * 1024 * 1024 + 12345);
    await store.put(k('big/recording.mp4'), big, { contentType: 'video/mp4' });
    const file = join(workDir, `${name}-big.bin`);
    await writeFile(file, big);
    await store.put(k('big/from-file.mp4'), { filePath: file });

    for (const key of [k('big/recording.mp4'), k('big/from-file.mp4')]) {
      const got = await store.get(key);
      expect(got?.size).toBe(big.length);
      expect(got?.contentType).toBe('video/mp4');
      expect(sha(await readAll(got!.body))).toBe(sha(big));
    }
    const range = await store.get(k('big/recording.mp4'), { start: 9 * 1024 * 1024, end: 9 * 1024 * 1024 + 99 });
    expect((await readAll(range!.body)).equals(big.subarray(9 * 1024 * 1024, 9 * 1024 * 1024 + 100))).toBe(true);

    if (store instanceof S3Store) expect(store.multipartUploads - multipartBefore).toBe(2);
  });
});
