import { generateKeyPair, randomBytes, type JsonWebKey, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';

/**
 * Signing keys for playback tokens. Only the public JWK of a user key is stored: the private part
 * is returned once, at creation, and never again (Cloudflare's model). One more key, the
 * deployment's internal key, signs the tokens minted by `POST …/token`; its private JWK lives only
 * in Redis (not encrypted: anyone who can read Redis can already change every policy), and it is
 * never listed by nor revocable through the API.
 */

export const SIGNING_ALGORITHMS = ['RS256', 'ES256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

export const SIGNING_KEY_ID_PATTERN = '^[0-9a-f]{32}$';
const KEY_ID_RE = new RegExp(SIGNING_KEY_ID_PATTERN);

/** What Redis holds per key: public material only. */
export interface SigningKeyRecord {
  id: string;
  algorithm: SigningAlgorithm;
  created: string;
  /** Public JWK with `kid` and `alg`. */
  publicJwk: JsonWebKey;
  /** The deployment's own key for server-side signing; hidden from the API. */
  internal: boolean;
}

/** Returned once by create(): the caller shows the private parts to the user and forgets them. */
export interface CreatedSigningKey {
  record: SigningKeyRecord;
  /** PKCS#8 PEM of the private key. */
  privatePem: string;
  /** Private JWK with `kid`, `alg` and `use: "sig"`. */
  privateJwk: JsonWebKey;
}

export interface InternalSigningKey {
  id: string;
  algorithm: SigningAlgorithm;
  privateJwk: JsonWebKey;
}

export interface SigningKeyWatchHandlers {
  /** A key was revoked (here or on another node). */
  onRevoked(id: string): void;
  /** The subscription came back after a disconnect: revocations may have been missed, reload. */
  onResync?(): void;
}

export interface SigningKeyWatch {
  close(): Promise<void>;
}

export interface SigningKeyRepositoryOptions {
  redis: Redis;
  keys: RedisKeys;
  now?: () => Date;
}

const generateKeyPairAsync = promisify(generateKeyPair);

// Delete and announce in one step: no node can see the key gone without the message being sent.
const REVOKE = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local ok, rec = pcall(cjson.decode, raw)
if ok and type(rec) == 'table' and rec.internal == true then return -1 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1`;

// Two nodes signing their first token together must end up with one internal key, not two.
const CREATE_INTERNAL = `
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return ARGV[1]`;

export class SigningKeyRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #now: () => Date;
  readonly #localListeners = new Set<(id: string) => void>();

  constructor(opts: SigningKeyRepositoryOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#now = opts.now ?? (() => new Date());
  }

  async create(algorithm: SigningAlgorithm = 'RS256'): Promise<CreatedSigningKey> {
    const { id, privateKey, publicKey } = await newKeyPair(algorithm);
    const record: SigningKeyRecord = {
      id,
      algorithm,
      created: this.#now().toISOString(),
      publicJwk: { ...publicKey.export({ format: 'jwk' }), kid: id, alg: algorithm, use: 'sig' },
      internal: false,
    };
    // HSETNX: a 128-bit id collision is all but impossible, but must never overwrite a key.
    const added = await this.#redis.hsetnx(this.#keys.signingKeys(), id, JSON.stringify(record));
    if (added !== 1) throw new Error('signing key id collision; retry');
    return {
      record,
      privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      privateJwk: { ...privateKey.export({ format: 'jwk' }), kid: id, alg: algorithm, use: 'sig' },
    };
  }

  /** User keys (not the internal one), newest first. */
  async list(): Promise<SigningKeyRecord[]> {
    return (await this.loadAll())
      .filter((r) => !r.internal)
      .sort((a, b) => b.created.localeCompare(a.created) || a.id.localeCompare(b.id));
  }

  /** Every key a verifier should accept, the internal one included. Corrupt entries are skipped (fail closed). */
  async loadAll(): Promise<SigningKeyRecord[]> {
    const raw = await this.#redis.hgetall(this.#keys.signingKeys());
    const out: SigningKeyRecord[] = [];
    for (const [id, json] of Object.entries(raw)) {
      const record = parseRecord(id, json);
      if (record) out.push(record);
    }
    return out;
  }

  /**
   * Deletes a user key and publishes its id on the revocation channel, atomically. Returns false for
   * an unknown id or the internal key. Watchers in this process are told before this resolves.
   */
  async revoke(id: string): Promise<boolean> {
    if (!KEY_ID_RE.test(id)) return false;
    const result = await this.#redis.eval(REVOKE, 1, this.#keys.signingKeys(), id, this.#keys.signingKeyRevocations());
    if (result !== 1) return false;
    for (const listener of this.#localListeners) listener(id);
    return true;
  }

  /** The internal signing key (ES256: short tokens, fast signing), created on first use. */
  async internalKey(): Promise<InternalSigningKey> {
    const existing = await this.#redis.get(this.#keys.internalSigningKey());
    if (existing !== null) return parseInternal(existing);
    const algorithm: SigningAlgorithm = 'ES256';
    const { id, privateKey, publicKey } = await newKeyPair(algorithm);
    const created = this.#now().toISOString();
    const internal: InternalSigningKey = {
      id,
      algorithm,
      privateJwk: { ...privateKey.export({ format: 'jwk' }), kid: id, alg: algorithm },
    };
    const record: SigningKeyRecord = {
      id,
      algorithm,
      created,
      publicJwk: { ...publicKey.export({ format: 'jwk' }), kid: id, alg: algorithm, use: 'sig' },
      internal: true,
    };
    const stored = await this.#redis.eval(
      CREATE_INTERNAL,
      2,
      this.#keys.internalSigningKey(),
      this.#keys.signingKeys(),
      JSON.stringify(internal),
      id,
      JSON.stringify(record),
    );
    return parseInternal(String(stored));
  }

  /**
   * Subscribes to revocations from every node (a dedicated connection, as Redis requires for
   * SUBSCRIBE) and from this process. Resolves once subscribed.
   */
  async watch(handlers: SigningKeyWatchHandlers): Promise<SigningKeyWatch> {
    const channel = this.#keys.signingKeyRevocations();
    const local = (id: string) => handlers.onRevoked(id);
    this.#localListeners.add(local);
    const sub = this.#redis.duplicate();
    // The subscriber reconnects on its own; errors are the main client's to log.
    sub.on('error', () => {});
    let subscribedOnce = false;
    sub.on('message', (ch: string, message: string) => {
      if (ch === channel && KEY_ID_RE.test(message)) handlers.onRevoked(message);
    });
    // ioredis re-subscribes after a reconnect; anything published meanwhile was lost.
    sub.on('ready', () => {
      if (subscribedOnce) handlers.onResync?.();
    });
    try {
      await sub.subscribe(channel);
    } catch (err) {
      this.#localListeners.delete(local);
      sub.disconnect();
      throw err;
    }
    subscribedOnce = true;
    let closed: Promise<void> | undefined;
    return {
      close: () => {
        closed ??= (async () => {
          this.#localListeners.delete(local);
          try {
            await sub.quit();
          } catch {
            sub.disconnect();
          }
        })();
        return closed;
      },
    };
  }
}

export function isSigningKeyId(id: string): boolean {
  return KEY_ID_RE.test(id);
}

async function newKeyPair(
  algorithm: SigningAlgorithm,
): Promise<{ id: string; privateKey: KeyObject; publicKey: KeyObject }> {
  const id = randomBytes(16).toString('hex');
  const { privateKey, publicKey } =
    algorithm === 'RS256'
      ? await generateKeyPairAsync('rsa', { modulusLength: 2048, publicExponent: 0x10001 })
      : await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
  return { id, privateKey, publicKey };
}

function parseRecord(id: string, json: string): SigningKeyRecord | undefined {
  try {
    const r = JSON.parse(json) as Partial<SigningKeyRecord>;
    if (r.id !== id || !KEY_ID_RE.test(id)) return undefined;
    if (r.algorithm !== 'RS256' && r.algorithm !== 'ES256') return undefined;
    if (typeof r.created !== 'string' || typeof r.publicJwk !== 'object' || r.publicJwk === null) return undefined;
    // A private member in a stored public record would be a bug; never hand it to a verifier.
    if ('d' in r.publicJwk) return undefined;
    return { id, algorithm: r.algorithm, created: r.created, publicJwk: r.publicJwk, internal: r.internal === true };
  } catch {
    return undefined;
  }
}

function parseInternal(json: string): InternalSigningKey {
  const k = JSON.parse(json) as Partial<InternalSigningKey>;
  if (typeof k.id !== 'string' || !KEY_ID_RE.test(k.id) || (k.algorithm !== 'RS256' && k.algorithm !== 'ES256') || !k.privateJwk) {
    throw new Error('stored internal signing key is corrupt');
  }
  return { id: k.id, algorithm: k.algorithm, privateJwk: k.privateJwk };
}
