import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/**
 * One-time direct upload URLs: a random token (only its SHA-256 is stored) that lets a browser
 * upload one file into one video without an API key. The record outlives its expiry by a day so
 * that a late or second use gets a precise answer ("expired", "used") rather than "unknown".
 */

export type ClaimResult = { ok: true; videoUid: string } | { ok: false; reason: 'unknown' | 'expired' | 'used' };

const LINGER_MS = 86_400_000;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

// KEYS: token. ARGV: now (ms). Marks the token used, atomically, when it is valid.
const CLAIM = `
local raw = redis.call('GET', KEYS[1])
if not raw then return 'unknown' end
local d = cjson.decode(raw)
if d.used then return 'used' end
if tonumber(ARGV[1]) > tonumber(d.expiresAt) then return 'expired' end
d.used = true
redis.call('SET', KEYS[1], cjson.encode(d), 'KEEPTTL')
return 'ok:' .. d.uid`;

export class UploadTokenRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(opts: { redis: Redis; keys: RedisKeys }) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
  }

  /** A new token for `videoUid`, valid until `expiresAt`. */
  async create(videoUid: string, expiresAt: Date): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    const ttl = Math.max(1, expiresAt.getTime() - Date.now() + LINGER_MS);
    await this.#redis.set(this.#key(token), JSON.stringify({ uid: videoUid, expiresAt: expiresAt.getTime() }), 'PX', ttl);
    return token;
  }

  /** Uses the token up: succeeds once, before its expiry. */
  async claim(token: string, now: number = Date.now()): Promise<ClaimResult> {
    if (!TOKEN_RE.test(token)) return { ok: false, reason: 'unknown' };
    const result = String(await this.#redis.eval(CLAIM, 1, this.#key(token), now));
    if (result.startsWith('ok:')) return { ok: true, videoUid: result.slice(3) };
    return { ok: false, reason: result === 'expired' || result === 'used' ? result : 'unknown' };
  }

  #key(token: string): string {
    return this.#keys.uploadToken(createHash('sha256').update(token).digest('hex'));
  }
}
