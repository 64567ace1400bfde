import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { safeEqual, sha256Hex } from './secret-hash.ts';

export interface ApiKeyStoreOptions {
  redis: Redis;
  keys: RedisKeys;
  /** How long a verified key is trusted without asking Redis again (default 5 s). */
  cacheTtlMs?: number;
  now?: () => number;
}

interface StoredKeyMeta {
  hash: string;
  source: 'env' | 'generated';
  created: string;
}

const CACHE_MAX_ENTRIES = 1000;
const MAX_KEY_LENGTH = 512;

/**
 * API keys, stored only as SHA-256 hashes: a Redis dump never yields a usable key.
 * (A fast hash is enough here: the keys are 256-bit random, not passwords.)
 */
export class ApiKeyStore {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #verified = new Map<string, number>();

  constructor(opts: ApiKeyStoreOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#ttl = opts.cacheTtlMs ?? 5_000;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * With `providedKey` (TRIBUTARY_API_KEY), that key becomes the only accepted key — so changing the
   * variable revokes the previous one. Without it, on a first start with no keys stored, a key is
   * generated and returned in plaintext exactly once, for the caller to show the operator.
   */
  async ensureInitialKey(providedKey?: string): Promise<{ created: boolean; key?: string }> {
    const field = this.#keys.apiKeys();
    if (providedKey !== undefined) {
      if (providedKey.length < 16 || providedKey.length > MAX_KEY_LENGTH) {
        throw new Error(`the provided API key must be 16 to ${MAX_KEY_LENGTH} characters long`);
      }
      const hash = sha256Hex(providedKey);
      const stored = await this.#redis.hkeys(field);
      if (stored.length === 1 && stored[0] === hash) return { created: false };
      const meta: StoredKeyMeta = { hash, source: 'env', created: new Date(this.#now()).toISOString() };
      await this.#redis.multi().del(field).hset(field, hash, JSON.stringify(meta)).exec();
      this.#verified.clear();
      return { created: true };
    }
    const key = `trib_${randomBytes(32).toString('base64url')}`;
    const hash = sha256Hex(key);
    const meta: StoredKeyMeta = { hash, source: 'generated', created: new Date(this.#now()).toISOString() };
    // Only when no key exists at all; two nodes starting together must not both mint one.
    const created = await this.#redis.eval(
      "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1",
      1,
      field,
      hash,
      JSON.stringify(meta),
    );
    return created === 1 ? { created: true, key } : { created: false };
  }

  async verify(key: string): Promise<boolean> {
    if (key.length === 0 || key.length > MAX_KEY_LENGTH) return false;
    const hash = sha256Hex(key);
    const now = this.#now();
    const until = this.#verified.get(hash);
    if (until !== undefined && until > now) return true;
    this.#verified.delete(hash);
    const raw = await this.#redis.hget(this.#keys.apiKeys(), hash);
    if (raw === null) return false;
    let storedHash = '';
    try {
      storedHash = (JSON.parse(raw) as Partial<StoredKeyMeta>).hash ?? '';
    } catch {
      return false;
    }
    if (!safeEqual(storedHash, hash)) return false;
    if (this.#verified.size >= CACHE_MAX_ENTRIES) this.#verified.clear();
    this.#verified.set(hash, now + this.#ttl);
    return true;
  }
}
