import type { Redis } from 'ioredis';
import { readRecencyPage } from './recency-page.ts';
import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import type { RedisKeys } from './keys.ts';
import { isUid, LiveInputMeta, newUid, parseStoredRecord, UID_PATTERN } from './live-input-record.ts';

/**
 * Video records (Cloudflare Stream's video object): recordings of live inputs today, uploads
 * later. One JSON string per video, a global creation-time index, one per live input, the
 * recording manifest (a list) and, per node, the set of videos it is recording.
 */

export const VIDEO_STATES = ['pendingupload', 'queued', 'inprogress', 'live-inprogress', 'ready', 'error'] as const;
export type VideoState = (typeof VIDEO_STATES)[number];

export const VideoRendition = Type.Object({
  name: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  /** Peak bits per second, as in the master playlist's BANDWIDTH. */
  bandwidth: Type.Integer(),
  codecs: Type.String({ description: 'RFC 6381 codecs, comma-separated' }),
});
export type VideoRendition = Static<typeof VideoRendition>;

export const VideoStatus = Type.Object({
  state: Type.Enum([...VIDEO_STATES]),
  pctComplete: Type.Optional(Type.String()),
  errorReasonCode: Type.Optional(Type.String()),
});
export type VideoStatus = Static<typeof VideoStatus>;

// Records written by a newer version may carry extra fields; reading them must not fail.
export const VideoRecordSchema = Type.Object({
  uid: Type.String({ pattern: UID_PATTERN }),
  liveInput: Type.Union([Type.String({ pattern: UID_PATTERN }), Type.Null()], {
    description: 'The live input this video is a recording of',
  }),
  meta: LiveInputMeta,
  created: Type.String({ format: 'date-time' }),
  modified: Type.String({ format: 'date-time' }),
  status: VideoStatus,
  duration: Type.Number({ description: 'Seconds; -1 while unknown (live)' }),
  size: Type.Integer({ description: 'Bytes of media stored' }),
  input: Type.Object({ width: Type.Integer(), height: Type.Integer() }, { description: 'Source size; -1 while unknown' }),
  renditions: Type.Array(VideoRendition),
  requireSignedURLs: Type.Boolean(),
  allowedOrigins: Type.Array(Type.String()),
  scheduledDeletion: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
    description: 'When the video and its media are deleted; null: kept',
  }),
  thumbnailTimestampPct: Type.Optional(
    Type.Number({ minimum: 0, maximum: 1, description: 'Where the default thumbnail is taken, as a fraction of the duration' }),
  ),
  readyToStream: Type.Boolean(),
  recording: Type.Object({ sessions: Type.Integer({ description: 'Broadcast sessions (reconnects + 1) in this video' }) }),
  maxDurationSeconds: Type.Optional(
    Type.Union([Type.Integer(), Type.Null()], { description: 'Uploads: longest duration accepted for this video' }),
  ),
  uploadExpiry: Type.Optional(
    Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'Uploads: when a pending upload expires' }),
  ),
});
export type VideoRecord = Static<typeof VideoRecordSchema>;

const checkRecord = Compile(VideoRecordSchema);

export interface NewLiveVideo {
  liveInput: string;
  meta: VideoRecord['meta'];
  requireSignedURLs: boolean;
  allowedOrigins: string[];
  deleteRecordingAfterDays: number | null;
  sessions: number;
}

export interface NewUploadVideo {
  meta: VideoRecord['meta'];
  requireSignedURLs: boolean;
  allowedOrigins: string[];
  scheduledDeletion: string | null;
  maxDurationSeconds: number | null;
  /** The upload must have arrived by then, or the video is removed. */
  uploadExpiry: Date;
}

export interface VideoPage {
  items: VideoRecord[];
  total: number;
  nextCursor?: string;
}

export interface VideoRepositoryOptions {
  redis: Redis;
  keys: RedisKeys;
  now?: () => Date;
}

const DAY_MS = 86_400_000;
const MAX_ATTEMPTS = 8;

// The deletion index (a sorted set by scheduledDeletion) changes in the same step as the record.
// KEYS: video, global index, input index, node set, deletion index. ARGV: json, uid, score, deletion ms or ''.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[2])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2]) end
return 1`;
// KEYS: video, global index, pending uploads, deletion index. ARGV: json, uid, score, expiry (ms), deletion ms or ''.
const CREATE_UPLOAD = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2]) end
return 1`;
// KEYS: video, node set, deletion index. ARGV: old json, new json, uid, done (1: leaves the node's set), deletion ms or ''.
const CAS_SET = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] == '1' then redis.call('SREM', KEYS[2], ARGV[3]) end
if ARGV[5] ~= '' then redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3]) else redis.call('ZREM', KEYS[3], ARGV[3]) end
return 1`;
// KEYS: video, manifest, global index, input index, deletion index. ARGV: old json, uid.
const CAS_DELETE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
return 1`;

/** The deletion index's score: ms since the epoch, or '' for none. */
/** The fields every new video starts with, before it has media; callers add what differs. */
function blankRecord(
  uid: string,
  at: string,
  video: Pick<VideoRecord, 'meta' | 'requireSignedURLs' | 'allowedOrigins'>,
): Omit<VideoRecord, 'liveInput' | 'status' | 'scheduledDeletion' | 'recording'> {
  return {
    uid,
    meta: video.meta,
    created: at,
    modified: at,
    duration: -1,
    size: 0,
    input: { width: -1, height: -1 },
    renditions: [],
    requireSignedURLs: video.requireSignedURLs,
    allowedOrigins: video.allowedOrigins,
    readyToStream: false,
  };
}

function deletionScore(record: VideoRecord): string {
  if (record.scheduledDeletion === null) return '';
  const ms = Date.parse(record.scheduledDeletion);
  return Number.isFinite(ms) ? String(ms) : '';
}

export class VideoRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #now: () => Date;

  constructor(opts: VideoRepositoryOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#now = opts.now ?? (() => new Date());
  }

  /** A recording that has begun (`live-inprogress`), listed in `nodeId`'s set until it is finalized. */
  async createLive(video: NewLiveVideo, nodeId: string, uid: string = newUid()): Promise<VideoRecord> {
    const now = this.#now();
    const record: VideoRecord = {
      ...blankRecord(uid, now.toISOString(), video),
      liveInput: video.liveInput,
      status: { state: 'live-inprogress' },
      scheduledDeletion:
        video.deleteRecordingAfterDays === null ? null : new Date(now.getTime() + video.deleteRecordingAfterDays * DAY_MS).toISOString(),
      recording: { sessions: video.sessions },
    };
    const ok = await this.#redis.eval(
      CREATE,
      5,
      this.#keys.video(uid),
      this.#keys.videoIndex(),
      this.#keys.liveInputVideos(video.liveInput),
      this.#keys.nodeRecordings(nodeId),
      this.#keys.videoDeletions(),
      JSON.stringify(record),
      uid,
      now.getTime(),
      deletionScore(record),
    );
    if (ok !== 1) throw new Error(`video ${uid} exists already`);
    return record;
  }

  /** A video waiting for its upload (`pendingupload`), listed as pending until `uploadExpiry`. */
  async createUpload(video: NewUploadVideo, uid: string = newUid()): Promise<VideoRecord> {
    const now = this.#now();
    const record: VideoRecord = {
      ...blankRecord(uid, now.toISOString(), video),
      liveInput: null,
      status: { state: 'pendingupload' },
      scheduledDeletion: video.scheduledDeletion,
      recording: { sessions: 0 },
      maxDurationSeconds: video.maxDurationSeconds,
      uploadExpiry: video.uploadExpiry.toISOString(),
    };
    const ok = await this.#redis.eval(
      CREATE_UPLOAD,
      4,
      this.#keys.video(uid),
      this.#keys.videoIndex(),
      this.#keys.pendingUploads(),
      this.#keys.videoDeletions(),
      JSON.stringify(record),
      uid,
      now.getTime(),
      video.uploadExpiry.getTime(),
      deletionScore(record),
    );
    if (ok !== 1) throw new Error(`video ${uid} exists already`);
    return record;
  }

  /** Uids whose upload wait ended before `now` (ms). */
  async expiredUploads(now: number): Promise<string[]> {
    return (await this.#redis.zrangebyscore(this.#keys.pendingUploads(), '-inf', now, 'LIMIT', 0, 1000)).filter(isUid);
  }

  /** The upload arrived (or the video is gone): no longer waited for. */
  async uploadArrived(uid: string): Promise<void> {
    await this.#redis.zrem(this.#keys.pendingUploads(), uid);
  }

  /** Empties a video's manifest (processing starts again from the source). */
  async clearManifest(uid: string): Promise<void> {
    await this.#redis.del(this.#keys.videoManifest(uid));
  }

  async get(uid: string): Promise<VideoRecord | undefined> {
    if (!isUid(uid)) return undefined;
    return (await this.#read(uid))?.record;
  }

  /** Every video, newest first. */
  async list(opts: { limit: number; cursor?: string }): Promise<VideoPage> {
    return this.#page(this.#keys.videoIndex(), opts);
  }

  /** The recordings of a live input, newest first. */
  async listByLiveInput(liveInputUid: string, opts: { limit: number; cursor?: string }): Promise<VideoPage> {
    if (!isUid(liveInputUid)) return { items: [], total: 0 };
    return this.#page(this.#keys.liveInputVideos(liveInputUid), opts);
  }

  /**
   * Applies `change` with compare-and-set; `done` also takes the video out of `nodeId`'s set of
   * recordings in the same step. Undefined when there is no such video.
   */
  async update(
    uid: string,
    change: (r: VideoRecord) => VideoRecord,
    opts: { nodeId?: string; done?: boolean } = {},
  ): Promise<VideoRecord | undefined> {
    if (!isUid(uid)) return undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(uid);
      if (!current) {
        if (opts.done && opts.nodeId !== undefined) await this.#redis.srem(this.#keys.nodeRecordings(opts.nodeId), uid);
        return undefined;
      }
      const next = { ...change(current.record), modified: this.#now().toISOString() };
      const ok = await this.#redis.eval(
        CAS_SET,
        3,
        this.#keys.video(uid),
        this.#keys.nodeRecordings(opts.nodeId ?? '-'),
        this.#keys.videoDeletions(),
        current.raw,
        JSON.stringify(next),
        uid,
        opts.done && opts.nodeId !== undefined ? '1' : '0',
        deletionScore(next),
      );
      if (ok === 1) return next;
    }
    throw new Error(`video ${uid} is being modified concurrently; gave up after ${MAX_ATTEMPTS} attempts`);
  }

  /** Deletes the record, its manifest and its index entries (not its media: the caller does). */
  async delete(uid: string): Promise<VideoRecord | undefined> {
    if (!isUid(uid)) return undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(uid);
      if (!current) return undefined;
      const ok = await this.#redis.eval(
        CAS_DELETE,
        5,
        this.#keys.video(uid),
        this.#keys.videoManifest(uid),
        this.#keys.videoIndex(),
        this.#keys.liveInputVideos(current.record.liveInput ?? '-'),
        this.#keys.videoDeletions(),
        current.raw,
        uid,
      );
      if (ok === 1) return current.record;
    }
    throw new Error(`video ${uid} is being modified concurrently; gave up after ${MAX_ATTEMPTS} attempts`);
  }

  /** Appends one entry (any JSON value) to a recording's manifest. */
  async appendManifest(uid: string, entry: unknown): Promise<void> {
    await this.#redis.rpush(this.#keys.videoManifest(uid), JSON.stringify(entry));
  }

  /** The manifest entries in the order appended; unreadable entries are left out. */
  async readManifest(uid: string): Promise<unknown[]> {
    const raws = await this.#redis.lrange(this.#keys.videoManifest(uid), 0, -1);
    const out: unknown[] = [];
    for (const raw of raws) {
      try {
        out.push(JSON.parse(raw));
      } catch {
        // A corrupt entry costs one segment, not the video.
      }
    }
    return out;
  }

  /** Uids of the videos `nodeId` is (or was, before a crash) recording. */
  async recordingsOf(nodeId: string): Promise<string[]> {
    return (await this.#redis.smembers(this.#keys.nodeRecordings(nodeId))).filter(isUid);
  }

  /** Uids whose scheduledDeletion is at or before `nowMs`, soonest first. */
  async dueForDeletion(nowMs: number, limit: number): Promise<string[]> {
    return (await this.#redis.zrangebyscore(this.#keys.videoDeletions(), '-inf', nowMs, 'LIMIT', 0, limit)).filter(isUid);
  }

  /** Drops a uid from the deletion index (its record is gone or no longer scheduled). */
  async unscheduleDeletion(uid: string): Promise<void> {
    await this.#redis.zrem(this.#keys.videoDeletions(), uid);
  }

  async forgetRecording(nodeId: string, uid: string): Promise<void> {
    await this.#redis.srem(this.#keys.nodeRecordings(nodeId), uid);
  }

  async #page(index: string, opts: { limit: number; cursor?: string }): Promise<VideoPage> {
    return readRecencyPage(this.#redis, index, opts, (uid) => this.#keys.video(uid), parseVideo);
  }

  async #read(uid: string): Promise<{ record: VideoRecord; raw: string } | undefined> {
    const key = this.#keys.video(uid);
    const raw = await this.#redis.get(key);
    if (raw === null) return undefined;
    return { record: parseVideo(key, raw), raw };
  }
}

export function parseVideo(key: string, raw: string): VideoRecord {
  return parseStoredRecord<VideoRecord>(key, raw, checkRecord);
}
