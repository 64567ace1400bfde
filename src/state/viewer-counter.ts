import { LRUCache } from 'lru-cache';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

export interface ViewerCounterOptions {
  redis: Redis;
  keys: RedisKeys;
  /** A playback session counts this long after its last request. */
  windowSeconds: number;
  /** Per session, at most one write this often (in-process). */
  refreshSeconds: number;
  onError?: (error: unknown) => void;
  now?: () => number;
}

// Record the session and drop the ones that fell out of the window, in one round trip; the key
// expires on its own once nobody watches.
const TOUCH = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1`;

/**
 * Live viewers per live input, counted in Redis so that every origin node sees the same number:
 * one sorted set per input, member = a playback session id, score = its last request (ms).
 */
export class ViewerCounter {
  readonly #opts: ViewerCounterOptions;
  readonly #now: () => number;
  readonly #lastWrite: LRUCache<string, number>;

  constructor(opts: ViewerCounterOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#lastWrite = new LRUCache({ max: 100_000 });
  }

  /** A playback request of `session` on `liveInputUid`. Cheap: most calls write nothing. */
  touch(liveInputUid: string, session: string): void {
    const id = `${liveInputUid}:${session}`;
    const now = this.#now();
    const last = this.#lastWrite.get(id);
    if (last !== undefined && now - last < this.#opts.refreshSeconds * 1000) return;
    this.#lastWrite.set(id, now);
    const windowMs = this.#opts.windowSeconds * 1000;
    this.#opts.redis
      .eval(TOUCH, 1, this.#opts.keys.liveViewers(liveInputUid), now, session, now - windowMs, windowMs * 2)
      .catch((error: unknown) => {
        this.#lastWrite.delete(id);
        this.#opts.onError?.(error);
      });
  }

  /** Distinct sessions with a request in the window. */
  async count(liveInputUid: string): Promise<number> {
    const since = this.#now() - this.#opts.windowSeconds * 1000;
    return this.#opts.redis.zcount(this.#opts.keys.liveViewers(liveInputUid), `(${since}`, '+inf');
  }
}
