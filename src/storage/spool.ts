import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { watch, type FSWatcher } from 'chokidar';
import { delay } from '../lib/abort.ts';
import { backoffDelay, type BackoffOptions } from '../lib/backoff.ts';
import { deferred, type Deferred } from '../lib/deferred.ts';
import type { Logger } from '../observability/logger.ts';
import { syncDir, syncFile } from './disk-store.ts';
import { isErrno, StorageClosedError, StorageError, StorageQuotaError, toStorageError } from './errors.ts';
import { assertValidKey, assertValidPrefix, isValidKey } from './keys.ts';
import type { ObjectStore } from './object-store.ts';

export interface SpoolOptions {
  /** The spool directory, e.g. `<dataDir>/spool`. One Spool (one process) per directory. */
  dir: string;
  store: ObjectStore;
  logger: Logger;
  /** Uploads in flight at once (default 4). */
  concurrency?: number;
  /** Delay between attempts of one file (default 500 ms doubling to 30 s, 20 % jitter). */
  retry?: BackoffOptions;
  /** How long close() lets in-flight uploads finish before aborting them (default 10 s). */
  closeGraceMs?: number;
  /** fsync files and the directory before add() resolves, so a power loss loses nothing (default true). */
  fsync?: boolean;
  /**
   * Bytes the spool may hold that have not landed yet; beyond it add() refuses with
   * StorageQuotaError instead of filling the disk while the store is down (0: no cap).
   */
  maxBytes?: number;
}

export interface SpoolAddOptions {
  contentType?: string;
  /**
   * Upload this file only after everything added earlier under this prefix has landed, also after
   * a crash (it is recorded in the spool). For a playlist that must not appear before its segments.
   */
  after?: string;
}

/** `{ filePath }` is copied into the spool; with `move: true` it is renamed in (and gone from its place). */
export type SpoolSource = Buffer | Uint8Array | Readable | { filePath: string; move?: boolean };

/** The commit record of one spooled file: `<id>.json` next to `<id>.data`. */
interface SpoolRecord {
  v: 1;
  key: string;
  size: number;
  addedAt: number;
  contentType?: string;
  after?: string;
}

interface Job {
  id: string;
  record: SpoolRecord;
  inFlight: boolean;
  landed: Deferred<void>;
}

const DATA = '.data';
const META = '.json';
const TMP = '.tmp';
const BAD = '.bad';
const FAILURE_LOG_INTERVAL_MS = 30_000;
const LANDED_MEMORY = 4096;

/**
 * The spool every finished file passes through on its way to the object store. `add()` returns
 * once the file is durably in the spool directory; uploads then happen in the background with
 * bounded concurrency and retry (backoff with jitter) until they land or the spool closes. A file
 * is deleted from the spool only after the store confirmed it. The directory alone is the state:
 * a chokidar watcher's initial scan picks up whatever a crash or an earlier close left behind.
 *
 * On disk, each entry is `<id>.data` (the bytes) and `<id>.json` (key, size, time added), both
 * written to `*.tmp` and renamed; the `.json` is written last and is the commit point. `<id>` sorts
 * in the order files were added.
 */
export class Spool {
  readonly #dir: string;
  readonly #store: ObjectStore;
  readonly #log: Logger;
  readonly #concurrency: number;
  readonly #retry: BackoffOptions;
  readonly #closeGraceMs: number;
  readonly #fsync: boolean;
  readonly #maxBytes: number;
  /** Bytes of add()s under way, counted against maxBytes before they are written. */
  #addingBytes = 0;

  readonly #jobs = new Map<string, Job>();
  /** Not yet started, sorted by id (= order added). */
  #queue: Job[] = [];
  #active = 0;
  readonly #idle = new Set<Deferred<void>>();
  /** Ids being written by add() right now: start() must not take their data files for orphans. */
  readonly #adding = new Set<string>();
  readonly #discovering = new Set<Promise<void>>();
  /** Recently landed ids: a late watcher event for one must not queue it again. */
  readonly #landed = new Set<string>();

  #watcher: FSWatcher | undefined;
  #started: Promise<void> | undefined;
  #closed: Promise<void> | undefined;
  #closing = false;
  /** Uploads begin with start(); add() before that only spools. */
  #running = false;
  /** Aborts backoff waits at once on close. */
  readonly #stop = new AbortController();
  /** Aborts in-flight uploads when the close grace runs out. */
  readonly #abortUploads = new AbortController();

  #uploadedTotal = 0;
  #uploadedBytes = 0;
  #failedAttempts = 0;
  #lastFailureLogAt = 0;
  #lastError: { message: string; at: number } | undefined;
  #failuresSinceLog = 0;

  constructor(opts: SpoolOptions) {
    this.#dir = resolve(opts.dir);
    this.#store = opts.store;
    this.#log = opts.logger.child({ component: 'spool' });
    this.#concurrency = Math.max(1, Math.floor(opts.concurrency ?? 4));
    this.#retry = opts.retry ?? { baseMs: 500, maxMs: 30_000, jitter: 0.2 };
    this.#closeGraceMs = opts.closeGraceMs ?? 10_000;
    this.#fsync = opts.fsync ?? true;
    this.#maxBytes = Math.max(0, Math.floor(opts.maxBytes ?? 0));
  }

  get dir(): string {
    return this.#dir;
  }

  /** Files in the spool that have not landed yet (queued or uploading). */
  get pendingFiles(): number {
    return this.#jobs.size;
  }

  get pendingBytes(): number {
    let n = 0;
    for (const job of this.#jobs.values()) n += job.record.size;
    return n;
  }

  /** Age of the oldest file not yet landed: the upload lag (0 when empty). */
  get oldestPendingAgeMs(): number {
    let oldest = Infinity;
    for (const job of this.#jobs.values()) oldest = Math.min(oldest, job.record.addedAt);
    return oldest === Infinity ? 0 : Math.max(0, Date.now() - oldest);
  }

  get uploadedTotal(): number {
    return this.#uploadedTotal;
  }

  get uploadedBytes(): number {
    return this.#uploadedBytes;
  }

  /** The last failed upload attempt: its message (never credentials) and when (ms since the epoch). */
  get lastError(): { message: string; at: number } | undefined {
    return this.#lastError;
  }

  /** Upload attempts that failed (each retry counts). */
  get failedAttempts(): number {
    return this.#failedAttempts;
  }

  /** Creates the directory, removes debris of interrupted adds, and resolves once the watcher's
   * initial scan has queued everything already there. Idempotent. */
  start(): Promise<void> {
    if (this.#closing) return Promise.reject(new StorageClosedError('spool was closed; create a new one'));
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
    await this.#removeDebris();
    this.#running = true;
    // Files add()ed before start() are queued already.
    this.#pump();
    const watcher = watch(this.#dir, {
      depth: 0,
      atomic: false,
      awaitWriteFinish: false,
      // Only commit records matter; the root itself must not be ignored.
      ignored: (path, stats) => path !== this.#dir && (stats?.isDirectory() === true || !path.endsWith(META)),
    });
    this.#watcher = watcher;
    const ready = deferred<void>();
    watcher.on('add', (path) => this.#onRecord(path));
    watcher.on('change', (path) => this.#onRecord(path));
    watcher.on('error', (err) => {
      this.#log.error({ err }, 'spool watcher error');
      if (!ready.settled) ready.reject(err);
    });
    watcher.once('ready', () => ready.resolve());
    try {
      await ready.promise;
      // The scan's records are read asynchronously; wait so that start() reports them as pending.
      while (this.#discovering.size > 0) await Promise.all([...this.#discovering]);
    } catch (err) {
      this.#running = false;
      await watcher.close();
      this.#watcher = undefined;
      throw err;
    }
    this.#log.info({ dir: this.#dir, pending: this.#jobs.size, pendingBytes: this.pendingBytes }, 'spool started');
  }

  /**
   * Durably writes `source` into the spool for upload under `key`. Resolves once it is safe on
   * disk (it will be uploaded even after a crash); throws StorageQuotaError when the disk is full
   * or `maxBytes` would be passed, InvalidKeyError for a bad key, StorageClosedError after close().
   * Nothing is left half-written.
   */
  async add(key: string, source: SpoolSource, opts: SpoolAddOptions = {}): Promise<void> {
    assertValidKey(key);
    if (opts.after !== undefined) assertValidPrefix(opts.after, false);
    if (this.#closing) throw new StorageClosedError('spool is closed');
    const id = newId();
    const dataPath = join(this.#dir, id + DATA);
    const metaPath = join(this.#dir, id + META);
    const known = source instanceof Uint8Array ? source.byteLength : 0;
    this.#checkQuota(key, known);
    this.#adding.add(id);
    this.#addingBytes += known;
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      const size = await this.#writeData(dataPath, source);
      // A stream or file's size is only known once written.
      if (size > known) this.#checkQuota(key, size - known);
      const record: SpoolRecord = {
        v: 1,
        key,
        size,
        addedAt: Date.now(),
        ...(opts.contentType === undefined ? {} : { contentType: opts.contentType }),
        ...(opts.after === undefined ? {} : { after: opts.after }),
      };
      await this.#writeAtomic(metaPath, Buffer.from(JSON.stringify(record)));
      if (this.#fsync) await syncDir(this.#dir);
      // Queued right away (not only when the watcher reports it) so that flush() includes it.
      if (!this.#closing) this.#enqueue(id, record);
    } catch (err) {
      await Promise.all([unlink(dataPath).catch(() => {}), unlink(metaPath + TMP).catch(() => {})]);
      throw toStorageError(err, `spooling ${key}`);
    } finally {
      this.#adding.delete(id);
      this.#addingBytes -= known;
    }
  }

  /** Refuses a file that would take the bytes not yet landed past maxBytes. */
  #checkQuota(key: string, bytes: number): void {
    if (this.#maxBytes === 0) return;
    const held = this.pendingBytes + this.#addingBytes;
    if (held + bytes > this.#maxBytes) {
      throw new StorageQuotaError(
        `spool holds ${held} bytes not yet uploaded (cap storage.spoolMaxBytes = ${this.#maxBytes}); refusing ${key}`,
      );
    }
  }

  /**
   * Resolves when everything added so far (under `prefix`, if given) has landed in the store.
   * Rejects with StorageClosedError if the spool closes first (the files stay spooled), or with
   * StorageError if a file vanished from the spool before it could be uploaded.
   */
  async flush(prefix?: string): Promise<void> {
    if (prefix !== undefined) assertValidPrefix(prefix, true);
    if (this.#closing) throw new StorageClosedError('spool is closed');
    const waits: Promise<void>[] = [];
    for (const job of this.#jobs.values()) {
      if (prefix === undefined || job.record.key.startsWith(prefix)) waits.push(job.landed.promise);
    }
    await Promise.all(waits);
  }

  /**
   * Stops the watcher and new uploads, lets in-flight uploads finish for up to closeGraceMs, then
   * aborts them. Everything not uploaded stays in the directory for the next start(). Idempotent.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#stop.abort(new StorageClosedError('spool is closing'));
    for (const job of this.#queue) job.landed.reject(new StorageClosedError('spool closed before the file was uploaded'));
    this.#queue = [];
    await this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#active > 0) {
      const idle = deferred<void>();
      this.#idle.add(idle);
      const timer = setTimeout(() => {
        this.#log.warn({ inFlight: this.#active, graceMs: this.#closeGraceMs }, 'aborting uploads still in flight at close');
        this.#abortUploads.abort(new StorageClosedError('spool closed'));
      }, this.#closeGraceMs);
      await idle.promise;
      clearTimeout(timer);
    }
    for (const job of this.#jobs.values()) job.landed.reject(new StorageClosedError('spool closed before the file was uploaded'));
    const left = this.#jobs.size;
    this.#jobs.clear();
    this.#log.info({ left, uploaded: this.#uploadedTotal }, 'spool closed');
  }

  async #writeData(dataPath: string, source: SpoolSource): Promise<number> {
    if (source instanceof Uint8Array) {
      await this.#writeAtomic(dataPath, source);
      return source.byteLength;
    }
    const tmp = dataPath + TMP;
    try {
      if ('filePath' in source && typeof source.filePath === 'string') {
        if (source.move) {
          try {
            await rename(source.filePath, tmp);
          } catch (err) {
            if (!isErrno(err, 'EXDEV')) throw err;
            await copyFile(source.filePath, tmp);
            await unlink(source.filePath);
          }
        } else {
          await copyFile(source.filePath, tmp);
        }
        if (this.#fsync) await syncFile(tmp);
      } else {
        await pipeline(source as Readable, createWriteStream(tmp, { flags: 'wx', mode: 0o600, flush: this.#fsync }));
      }
      const { size } = await stat(tmp);
      await rename(tmp, dataPath);
      return size;
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  async #writeAtomic(path: string, data: Uint8Array): Promise<void> {
    const tmp = path + TMP;
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(data);
        if (this.#fsync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** Temp files, and data files whose commit record was never written, are from interrupted adds. */
  async #removeDebris(): Promise<void> {
    const names = await readdir(this.#dir);
    const committed = new Set(names.filter((n) => n.endsWith(META)).map((n) => n.slice(0, -META.length)));
    for (const name of names) {
      const id = name.split('.')[0] ?? '';
      if (this.#adding.has(id)) continue;
      const debris = name.endsWith(TMP) || (name.endsWith(DATA) && !committed.has(name.slice(0, -DATA.length)));
      if (!debris) continue;
      this.#log.warn({ file: name }, 'removing an incomplete file left in the spool by an interrupted write');
      await unlink(join(this.#dir, name)).catch(() => {});
    }
  }

  #onRecord(path: string): void {
    const name = basename(path);
    if (!name.endsWith(META)) return;
    const id = name.slice(0, -META.length);
    if (this.#jobs.has(id) || this.#adding.has(id) || this.#landed.has(id) || this.#closing) return;
    const p = this.#discover(id).finally(() => this.#discovering.delete(p));
    this.#discovering.add(p);
  }

  async #discover(id: string): Promise<void> {
    const metaPath = join(this.#dir, id + META);
    let record: SpoolRecord | undefined;
    try {
      record = parseRecord(await readFile(metaPath, 'utf8'));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return; // uploaded and removed meanwhile
      this.#log.error({ err, file: id + META }, 'cannot read a spool record');
      return;
    }
    if (!record) {
      this.#log.error({ file: id + META }, `unreadable spool record; renamed to ${id + BAD} for inspection`);
      await rename(metaPath, join(this.#dir, id + BAD)).catch(() => {});
      return;
    }
    if (this.#jobs.has(id) || this.#landed.has(id) || this.#closing) return;
    this.#enqueue(id, record);
  }

  #rememberLanded(id: string): void {
    this.#landed.add(id);
    if (this.#landed.size > LANDED_MEMORY) {
      const oldest = this.#landed.values().next().value;
      if (oldest !== undefined) this.#landed.delete(oldest);
    }
  }

  #enqueue(id: string, record: SpoolRecord): void {
    if (this.#jobs.has(id)) return;
    const job: Job = { id, record, inFlight: false, landed: deferred<void>() };
    this.#jobs.set(id, job);
    const last = this.#queue.at(-1);
    this.#queue.push(job);
    if (last && last.id > id) this.#queue.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.#pump();
  }

  #pump(): void {
    while (this.#running && !this.#closing && this.#active < this.#concurrency) {
      const index = this.#queue.findIndex((job) => this.#eligible(job));
      if (index < 0) return;
      const [job] = this.#queue.splice(index, 1);
      if (!job) return;
      this.#active++;
      job.inFlight = true;
      void this.#run(job).finally(() => {
        job.inFlight = false;
        this.#active--;
        if (this.#active === 0) {
          for (const d of this.#idle) d.resolve();
          this.#idle.clear();
        }
        this.#pump();
      });
    }
  }

  /** A file marked `after` waits until nothing added before it under that prefix is pending. */
  #eligible(job: Job): boolean {
    const after = job.record.after;
    if (after === undefined) return true;
    for (const other of this.#jobs.values()) {
      if (other.id < job.id && other.record.key.startsWith(after)) return false;
    }
    return true;
  }

  async #run(job: Job): Promise<void> {
    const { key, size, contentType } = job.record;
    const dataPath = join(this.#dir, job.id + DATA);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#store.put(key, { filePath: dataPath }, {
          size,
          ...(contentType === undefined ? {} : { contentType }),
          signal: this.#abortUploads.signal,
        });
      } catch (err) {
        if (this.#abortUploads.signal.aborted) return;
        if (isErrno(err, 'ENOENT') && !(await exists(dataPath))) {
          // Someone removed the spooled file: it cannot be uploaded, ever. Drop the record too.
          this.#log.error({ key, file: job.id + DATA }, 'spooled file vanished before upload; dropping it');
          await unlink(join(this.#dir, job.id + META)).catch(() => {});
          this.#jobs.delete(job.id);
          job.landed.reject(new StorageError('ERR_STORAGE_SPOOL_FILE_MISSING', `spooled file for ${key} vanished`));
          return;
        }
        this.#failedAttempts++;
        this.#logFailure(err, key, attempt);
        if (this.#closing) return;
        try {
          await delay(backoffDelay(attempt, this.#retry), this.#stop.signal);
        } catch {
          return; // closing
        }
        continue;
      }
      // Landed. The record goes first: without it, a leftover data file is debris, not a re-upload.
      try {
        await unlink(join(this.#dir, job.id + META));
        await unlink(dataPath);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) this.#log.warn({ err, key }, 'uploaded, but could not remove the spooled file');
      }
      this.#uploadedTotal++;
      this.#uploadedBytes += size;
      this.#jobs.delete(job.id);
      this.#rememberLanded(job.id);
      job.landed.resolve();
      return;
    }
  }

  // During an outage every attempt fails; one line per interval says so without flooding the log.
  #logFailure(err: unknown, key: string, attempt: number): void {
    this.#failuresSinceLog++;
    this.#lastError = { message: err instanceof Error ? err.message.slice(0, 300) : String(err).slice(0, 300), at: Date.now() };
    const now = Date.now();
    if (now - this.#lastFailureLogAt < FAILURE_LOG_INTERVAL_MS) return;
    this.#lastFailureLogAt = now;
    this.#log.warn(
      { err, key, attempt, failures: this.#failuresSinceLog, pending: this.#jobs.size, store: this.#store.kind },
      'upload from spool failed; retrying with backoff',
    );
    this.#failuresSinceLog = 0;
  }
}

let counter = 0;

/** Sorts in the order created: zero-padded ms clock, then a per-process counter, then randomness. */
function newId(): string {
  counter = (counter + 1) % 1e9;
  return `${String(Date.now()).padStart(15, '0')}-${String(counter).padStart(9, '0')}-${randomBytes(4).toString('hex')}`;
}

function parseRecord(text: string): SpoolRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (r.v !== 1 || !isValidKey(r.key)) return undefined;
  if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) return undefined;
  if (typeof r.addedAt !== 'number' || !Number.isFinite(r.addedAt)) return undefined;
  if (r.contentType !== undefined && typeof r.contentType !== 'string') return undefined;
  if (r.after !== undefined && typeof r.after !== 'string') return undefined;
  return r as unknown as SpoolRecord;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
