import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { isUid } from './live-input-record.ts';

/** The state of a video's MP4 download, one JSON string per video (Cloudflare's `default` download). */
export interface DownloadRecord {
  status: 'inprogress' | 'ready' | 'error';
  /** 0…100. */
  percentComplete: number;
  /** Random id of this build: a job of an older build (deleted, then asked for again) leaves it alone. */
  build: string;
  created: string;
  /** Bytes of the MP4, once ready. */
  size?: number;
  /** Strong ETag of the MP4, once ready. */
  etag?: string;
  /** Why the build failed (status `error`). */
  error?: string;
}

// KEYS: download. ARGV: json. Sets unless a build is in progress or ready (a failed one is replaced).
const CREATE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if ok and type(rec) == 'table' and rec.status ~= 'error' then return cur end
end
redis.call('SET', KEYS[1], ARGV[1])
return false`;
// KEYS: download. ARGV: build, json. Sets only while the record is still this build.
const UPDATE = `
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local ok, rec = pcall(cjson.decode, cur)
if not ok or type(rec) ~= 'table' or rec.build ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`;

export class DownloadRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(opts: { redis: Redis; keys: RedisKeys }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
  }

  async get(uid: string): Promise<DownloadRecord | undefined> {
    if (!isUid(uid)) return undefined;
    const raw = await this.#redis.get(this.#keys.videoDownload(uid));
    return raw === null ? undefined : parse(raw);
  }

  /** Starts `record` unless a build is in progress or ready; returns `{ created, record }` (the existing one if not created). */
  async create(uid: string, record: DownloadRecord): Promise<{ created: boolean; record: DownloadRecord }> {
    const existing = (await this.#redis.eval(CREATE, 1, this.#keys.videoDownload(uid), JSON.stringify(record))) as string | null;
    if (existing === null) return { created: true, record };
    return { created: false, record: parse(existing) ?? record };
  }

  /** Applies an update of build `build`; false when the record is gone or belongs to another build. */
  async update(uid: string, build: string, record: DownloadRecord): Promise<boolean> {
    return (await this.#redis.eval(UPDATE, 1, this.#keys.videoDownload(uid), build, JSON.stringify(record))) === 1;
  }

  async delete(uid: string): Promise<boolean> {
    if (!isUid(uid)) return false;
    return (await this.#redis.del(this.#keys.videoDownload(uid))) === 1;
  }
}

function parse(raw: string): DownloadRecord | undefined {
  try {
    const r = JSON.parse(raw) as DownloadRecord;
    return typeof r === 'object' && r !== null && typeof r.build === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}
