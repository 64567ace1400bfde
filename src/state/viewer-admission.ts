import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/**
 * Whether a viewer may start watching a live stream: the per-stream viewer limit, cluster-wide.
 * Every playback path that starts a viewer (an LL-HLS playlist, later a WHEP session) asks it;
 * requests of a viewer already watching are never refused.
 */
export interface ViewerAdmission {
  /** True when `viewerKey` already watches `liveInputUid` or a slot is free (it then takes one). */
  admit(liveInputUid: string, viewerKey: string): Promise<boolean>;
  /** What a refused viewer is told to wait before trying again, seconds. */
  readonly retryAfterSeconds: number;
}

export interface RedisViewerAdmissionOptions {
  redis: Redis;
  keys: RedisKeys;
  /** Viewers per stream; 0: no limit (every viewer is admitted and counted). */
  maxViewers: number;
  /** The viewer counter's window: a viewer holds its slot this long after its last request. */
  windowSeconds: number;
  /** An admitted viewer is admitted again without asking Redis for this long (in-process). */
  refreshSeconds: number;
  onError?: (error: unknown) => void;
  now?: () => number;
}

// On the viewer counter's sorted set (member = viewer, score = last request, ms): drop the
// viewers out of the window; a viewer already in it is refreshed, a new one takes a slot only
// while fewer than the limit hold one. One script, so two nodes can never both take the last slot.
// KEYS: the set. ARGV: now, viewer, window start, key TTL ms, limit (0: none).
const ADMIT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local limit = tonumber(ARGV[5])
if limit > 0 and not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

/**
 * The viewer limit over the Redis viewer counter (state/viewer-counter.ts shares the key), so a
 * viewer counts once across every origin node. An admission also counts the viewer.
 */
export class RedisViewerAdmission implements ViewerAdmission {
  readonly #opts: RedisViewerAdmissionOptions;
  readonly #now: () => number;
  /** Viewers this node admitted recently: asked again only once this is older than refreshSeconds. */
  readonly #admitted: LRUCache<string, number>;
  readonly retryAfterSeconds: number;

  constructor(opts: RedisViewerAdmissionOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#admitted = new LRUCache({ max: 100_000 });
    // A slot frees once its viewer has been quiet for a whole window; half of it is a fair wait.
    this.retryAfterSeconds = Math.max(1, Math.ceil(opts.windowSeconds / 2));
  }

  async admit(liveInputUid: string, viewerKey: string): Promise<boolean> {
    const id = `${liveInputUid}:${viewerKey}`;
    const now = this.#now();
    const last = this.#admitted.get(id);
    if (last !== undefined && now - last < this.#opts.refreshSeconds * 1000) return true;
    const windowMs = this.#opts.windowSeconds * 1000;
    let ok: unknown;
    try {
      ok = await this.#opts.redis.eval(
        ADMIT,
        1,
        this.#opts.keys.liveViewers(liveInputUid),
        now,
        viewerKey,
        now - windowMs,
        windowMs * 2,
        this.#opts.maxViewers,
      );
    } catch (error) {
      // Redis unreachable: live playback itself does not need Redis, so viewers are let in.
      this.#opts.onError?.(error);
      return true;
    }
    if (ok !== 1) return false;
    this.#admitted.set(id, now);
    return true;
  }
}
