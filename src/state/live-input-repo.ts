import type { Redis } from 'ioredis';
import { readRecencyPage } from './recency-page.ts';

export { InvalidCursorError } from './recency-page.ts';
import type { RedisKeys } from './keys.ts';
import {
  applyChanges,
  buildRecord,
  isStreamKeyFormat,
  isUid,
  newStreamKey,
  parseRecord,
  type LiveInputChanges,
  type LiveInputRecord,
  type LiveInputState,
} from './live-input-record.ts';
import { safeEqual, sha256Hex } from './secret-hash.ts';

export interface LiveInputPage {
  items: LiveInputRecord[];
  /** Total number of live inputs. */
  total: number;
  /** Pass to the next list() call; absent on the last page. */
  nextCursor?: string;
}

export interface LiveInputRepositoryOptions {
  redis: Redis;
  keys: RedisKeys;
  /** Injectable clock for tests. */
  now?: () => Date;
}

// Every mutation is a compare-and-set on the record's previous JSON, so concurrent writers on one
// shared connection never lose an update, and multi-key changes (indexes) happen in one script.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1`;
const CAS_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;
const CAS_ROTATE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], ARGV[3])
return 1`;
const CAS_DELETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('ZREM', KEYS[3], ARGV[2])
return 1`;

const MAX_ATTEMPTS = 8;

/** Live inputs in Redis: one JSON string per record, a creation-time index, and a stream-key index. */
export class LiveInputRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #now: () => Date;

  constructor(opts: LiveInputRepositoryOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#now = opts.now ?? (() => new Date());
  }

  async create(changes: LiveInputChanges = {}): Promise<LiveInputRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const record = buildRecord(changes, this.#now());
      const ok = await this.#redis.eval(
        CREATE,
        3,
        this.#keys.liveInput(record.uid),
        this.#keys.streamKeyIndex(sha256Hex(record.streamKey)),
        this.#keys.liveInputIndex(),
        JSON.stringify(record),
        record.uid,
        Date.parse(record.created),
      );
      if (ok === 1) return record;
      // A collision of 128-bit ids is all but impossible; retrying with fresh ones is still correct.
    }
    throw new Error('could not allocate a unique live input id');
  }

  async get(uid: string): Promise<LiveInputRecord | undefined> {
    if (!isUid(uid)) return undefined;
    return (await this.#read(uid))?.record;
  }

  /** Newest first. The cursor is opaque to callers. */
  async list(opts: { limit: number; cursor?: string }): Promise<LiveInputPage> {
    return readRecencyPage(this.#redis, this.#keys.liveInputIndex(), opts, (uid) => this.#keys.liveInput(uid), parseRecord);
  }

  async update(uid: string, changes: LiveInputChanges): Promise<LiveInputRecord | undefined> {
    return this.#mutate(uid, (record) => applyChanges(record, changes, this.#now()));
  }

  /** Status changes are runtime state, not configuration, so `modified` is left alone. */
  async setStatus(uid: string, state: LiveInputState, reason?: string): Promise<LiveInputRecord | undefined> {
    return this.#mutate(uid, (record) => ({
      ...record,
      status: { current: { state, statusEnteredAt: this.#now().toISOString(), ...(reason ? { reason } : {}) } },
    }));
  }

  async delete(uid: string): Promise<boolean> {
    if (!isUid(uid)) return false;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(uid);
      if (!current) return false;
      const ok = await this.#redis.eval(
        CAS_DELETE,
        4,
        this.#keys.liveInput(uid),
        this.#keys.streamKeyIndex(sha256Hex(current.record.streamKey)),
        this.#keys.liveInputIndex(),
        // Its simulcast outputs go with it.
        this.#keys.liveInputOutputs(uid),
        current.raw,
        uid,
      );
      if (ok === 1) return true;
    }
    throw conflict(uid);
  }

  /** A new stream key; the old one stops working in the same atomic step. */
  async rotateKeys(uid: string): Promise<LiveInputRecord | undefined> {
    if (!isUid(uid)) return undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(uid);
      if (!current) return undefined;
      const next: LiveInputRecord = { ...current.record, streamKey: newStreamKey(), modified: this.#now().toISOString() };
      const ok = await this.#redis.eval(
        CAS_ROTATE,
        3,
        this.#keys.liveInput(uid),
        this.#keys.streamKeyIndex(sha256Hex(current.record.streamKey)),
        this.#keys.streamKeyIndex(sha256Hex(next.streamKey)),
        current.raw,
        JSON.stringify(next),
        uid,
      );
      if (ok === 1) return next;
    }
    throw conflict(uid);
  }

  /** The live input a publisher's stream key belongs to, or undefined. The key never leaves this call. */
  async getByStreamKey(streamKey: string): Promise<LiveInputRecord | undefined> {
    if (!isStreamKeyFormat(streamKey)) return undefined;
    const uid = await this.#redis.get(this.#keys.streamKeyIndex(sha256Hex(streamKey)));
    if (uid === null || !isUid(uid)) return undefined;
    const current = await this.#read(uid);
    if (!current) return undefined;
    // The index said yes; the record must agree (a rotate may have raced the lookup).
    return safeEqual(current.record.streamKey, streamKey) ? current.record : undefined;
  }

  async #read(uid: string): Promise<{ record: LiveInputRecord; raw: string } | undefined> {
    const key = this.#keys.liveInput(uid);
    const raw = await this.#redis.get(key);
    if (raw === null) return undefined;
    return { record: parseRecord(key, raw), raw };
  }

  async #mutate(uid: string, change: (r: LiveInputRecord) => LiveInputRecord): Promise<LiveInputRecord | undefined> {
    if (!isUid(uid)) return undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(uid);
      if (!current) return undefined;
      const next = change(current.record);
      const ok = await this.#redis.eval(CAS_SET, 1, this.#keys.liveInput(uid), current.raw, JSON.stringify(next));
      if (ok === 1) return next;
    }
    throw conflict(uid);
  }
}

function conflict(uid: string): Error {
  return new Error(`live input ${uid} is being modified concurrently; gave up after ${MAX_ATTEMPTS} attempts`);
}

