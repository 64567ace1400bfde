import { randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { copyFile, lstat, mkdir, open, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { contentTypeForKey } from './content-type.ts';
import { InvalidKeyError, isErrno, StorageRangeError, toStorageError } from './errors.ts';
import { assertValidKey, assertValidPrefix } from './keys.ts';
import {
  isFileBody,
  type ByteRange,
  type GetResult,
  type ListEntry,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
} from './object-store.ts';

export interface DiskStoreOptions {
  /** Base directory; every key resolves to a file strictly inside it. */
  dir: string;
  /** fsync each file (and its directory) before it becomes visible (default true). */
  fsync?: boolean;
}

// '~' is not a key character, so files whose names hold one (temp files, content-type sidecars)
// can never collide with an object and are skipped by list().
const SIDE = '~';
const META_SUFFIX = `${SIDE}meta.json`;

/**
 * Objects as plain files under a base directory (`<dir>/<key>`). Writes go to a temp file in the
 * target's directory and are renamed into place, so readers never see a partial object. A content
 * type that differs from what the extension implies is kept in a `<name>~meta.json` sidecar.
 *
 * Unlike S3, a key cannot be both an object and a "directory" (`a` and `a/b`): the second put
 * fails with the filesystem's ENOTDIR / EISDIR.
 */
export class DiskStore implements ObjectStore {
  readonly kind = 'disk';
  readonly #base: string;
  readonly #fsync: boolean;

  constructor(opts: DiskStoreOptions) {
    this.#base = resolve(opts.dir);
    this.#fsync = opts.fsync ?? true;
  }

  get dir(): string {
    return this.#base;
  }

  /** Absolute path of a key's file, checked to lie inside the base directory. */
  pathFor(key: string): string {
    assertValidKey(key);
    const path = resolve(this.#base, key);
    if (!path.startsWith(this.#base + sep)) throw new InvalidKeyError('object key resolves outside the store');
    return path;
  }

  async put(key: string, body: PutBody, opts: PutOptions = {}): Promise<void> {
    const path = this.pathFor(key);
    opts.signal?.throwIfAborted();
    const dir = dirname(path);
    const tmp = join(dir, `.${basename(path)}${SIDE}${randomBytes(6).toString('hex')}.tmp`);
    try {
      await mkdir(dir, { recursive: true });
      await this.#writeTemp(tmp, body, opts.signal);
      await this.#writeMeta(path, key, opts.contentType);
      await rename(tmp, path);
      if (this.#fsync) await syncDir(dir);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw toStorageError(err, `writing ${key}`);
    }
  }

  async #writeTemp(tmp: string, body: PutBody, signal: AbortSignal | undefined): Promise<void> {
    if (body instanceof Uint8Array) {
      const fh = await open(tmp, 'wx', 0o644);
      try {
        await fh.writeFile(body, signal ? { signal } : {});
        if (this.#fsync) await fh.sync();
      } finally {
        await fh.close();
      }
    } else if (isFileBody(body)) {
      await copyFile(body.filePath, tmp);
      signal?.throwIfAborted();
      if (this.#fsync) await syncFile(tmp);
    } else {
      const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: this.#fsync });
      await pipeline(body as Readable, out, signal ? { signal } : {});
    }
  }

  // The sidecar is written before the data is renamed into place; a crash in between leaves a
  // sidecar next to the previous version, which then reports the new type (the lesser evil).
  async #writeMeta(path: string, key: string, contentType: string | undefined): Promise<void> {
    const metaPath = path + META_SUFFIX;
    if (contentType === undefined || contentType === contentTypeForKey(key)) {
      await unlink(metaPath).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
      return;
    }
    const tmp = `${metaPath}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(tmp, JSON.stringify({ contentType }));
      await rename(tmp, metaPath);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async #contentType(path: string, key: string): Promise<string | undefined> {
    try {
      const meta = JSON.parse(await readFile(path + META_SUFFIX, 'utf8')) as { contentType?: unknown };
      if (typeof meta.contentType === 'string') return meta.contentType;
    } catch {
      // no sidecar (the usual case) or an unreadable one: fall back to the extension
    }
    return contentTypeForKey(key);
  }

  async get(key: string, range?: ByteRange): Promise<GetResult | undefined> {
    const path = this.pathFor(key);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return undefined;
      throw err;
    }
    try {
      // Size and content come from the same open file, so a concurrent put (a rename) cannot mix them.
      const st = await fh.stat();
      if (!st.isFile()) {
        await fh.close();
        return undefined;
      }
      const size = st.size;
      const contentType = await this.#contentType(path, key);
      const ct = contentType === undefined ? {} : { contentType };
      if (!range) {
        return { body: fh.createReadStream({ autoClose: true }), size, length: size, ...ct };
      }
      const r = resolveRange(range, size);
      const body = fh.createReadStream({ start: r.start, end: r.end, autoClose: true });
      return { body, size, length: r.end - r.start + 1, range: r, ...ct };
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathFor(key);
    try {
      const st = await lstat(path);
      if (!st.isFile()) return undefined;
      const contentType = await this.#contentType(path, key);
      return contentType === undefined ? { size: st.size } : { size: st.size, contentType };
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathFor(key);
    for (const p of [path, path + META_SUFFIX]) {
      await unlink(p).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw err;
      });
    }
  }

  async deletePrefix(prefix: string): Promise<number> {
    assertValidPrefix(prefix, false);
    let count = 0;
    const dirs = new Set<string>();
    for await (const entry of this.#walk(prefix)) {
      const path = this.pathFor(entry.key);
      await this.delete(entry.key);
      count++;
      for (let d = dirname(path); d.startsWith(this.#base + sep); d = dirname(d)) dirs.add(d);
    }
    // Directories already empty under a whole-directory prefix (left by single deletes) go too.
    if (prefix.endsWith('/')) {
      for await (const d of dirsUnder(this.pathFor(prefix.slice(0, -1)))) dirs.add(d);
    }
    // Remove directories that are now empty, deepest first; one still in use is left alone.
    for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
      await rmdir(d).catch(() => {});
    }
    return count;
  }

  list(prefix: string): AsyncIterable<ListEntry> {
    assertValidPrefix(prefix, true);
    return this.#walk(prefix);
  }

  async *#walk(prefix: string): AsyncGenerator<ListEntry> {
    // Start at the deepest directory the prefix fully names.
    const cut = prefix.lastIndexOf('/');
    const startKey = cut < 0 ? '' : prefix.slice(0, cut + 1);
    const stack: string[] = [startKey];
    while (stack.length > 0) {
      const dirKey = stack.pop() as string;
      let entries: Dirent[];
      try {
        entries = await readdir(dirKey === '' ? this.#base : this.pathFor(dirKey.slice(0, -1)), { withFileTypes: true });
      } catch (err) {
        if (isErrno(err, 'ENOENT', 'ENOTDIR')) continue;
        throw err;
      }
      entries.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
      for (const entry of entries) {
        if (entry.name.includes(SIDE)) continue;
        const key = dirKey + entry.name;
        // Symlinks are never followed: everything served must really be inside the base.
        if (entry.isDirectory()) {
          const sub = `${key}/`;
          if (sub.startsWith(prefix) || prefix.startsWith(sub)) stack.push(sub);
        } else if (entry.isFile() && key.startsWith(prefix)) {
          try {
            const st = await lstat(join(this.#base, key));
            yield { key, size: st.size };
          } catch (err) {
            if (!isErrno(err, 'ENOENT')) throw err;
          }
        }
      }
    }
  }

  async close(): Promise<void> {}
}

/** Every directory under `dir`, `dir` included; none when it does not exist. */
async function* dirsUnder(dir: string): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  yield dir;
  for (const entry of entries) if (entry.isDirectory()) yield* dirsUnder(join(dir, entry.name));
}

/** Clamps an inclusive range to the object; throws StorageRangeError when it starts past the end. */
export function resolveRange(range: ByteRange, size: number): { start: number; end: number } {
  const { start } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < start))) {
    throw new StorageRangeError(size, `invalid byte range ${start}-${range.end ?? ''}`);
  }
  if (start >= size) throw new StorageRangeError(size, `range starts at ${start}, object has ${size} bytes`);
  return { start, end: Math.min(range.end ?? size - 1, size - 1) };
}

export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs a directory so that a rename into it survives a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
    if (!isErrno(err, 'EINVAL', 'EISDIR', 'EBADF')) throw err;
  } finally {
    await fh.close();
  }
}
