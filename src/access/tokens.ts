import { errors as joseErrors, importJWK, jwtVerify, type CryptoKey, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import type {
  SigningAlgorithm,
  SigningKeyRecord,
  SigningKeyWatch,
  SigningKeyWatchHandlers,
} from '../state/signing-key-repo.ts';
import { parseAccessRules, type AccessRule } from './access-rules.ts';

/**
 * Playback token verification: RS256 / ES256 JWTs with `kid` in the header, checked locally against
 * public keys cached from Redis — no network call per request. Verified tokens are cached (LRU,
 * bounded, never past `exp`), so a player's steady stream of part requests costs no crypto. A key
 * revoked on any node is dropped here, with every cached token it signed, as soon as the revocation
 * message arrives; a periodic reload covers a missed message.
 *
 * A kid not in the key set (a key just created, on this node or another) triggers a reload, so a
 * new key works on its first request. Reloads for unknown kids are at least `unknownKidGapMs`
 * apart (a request waits for the next one), and a kid that a reload did not find is refused
 * without another for `unknownKidReloadMs`: random kids cannot turn into a Redis storm.
 *
 * Clock skew: `exp` and `nbf` (and a future `iat`) are checked with a tolerance of
 * `clockSkewSeconds` (default 60 s), so a token minted on a host whose clock is a little ahead
 * works at once, and one expires up to that long after its `exp`. A cached token is never served
 * past its `exp` (the tolerance applies only to a fresh verification).
 *
 * verify() never throws: every failure is a stable reason code.
 */

export const TOKEN_FAILURE_CODES = [
  'TOKEN_MALFORMED',
  'TOKEN_TOO_LARGE',
  'TOKEN_ALG_NOT_ALLOWED',
  'TOKEN_KID_UNKNOWN',
  'TOKEN_SIGNATURE_INVALID',
  'TOKEN_EXPIRED',
  'TOKEN_NOT_YET_VALID',
  'TOKEN_EXP_TOO_FAR',
  'TOKEN_WRONG_SUBJECT',
] as const;
export type TokenFailureCode = (typeof TOKEN_FAILURE_CODES)[number];

/** Tokens longer than this are refused before any parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;
/** The longest a token may live: `exp` at most this far after `iat` and after now. */
export const MAX_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;
export const DEFAULT_TOKEN_CACHE_SIZE = 10_000;
export const ALLOWED_ALGORITHMS: readonly SigningAlgorithm[] = ['RS256', 'ES256'];

// Our own headers are ~80 characters; a header this long is not ours.
const MAX_HEADER_CHARS = 1024;
const MAX_PAYLOAD_DEPTH = 6;
const B64URL = /^[A-Za-z0-9_-]+$/;
const UID_RE = /^[0-9a-f]{32}$/;
const KID_RE = /^[0-9a-f]{32}$/;

export interface TokenClaims {
  /** The video or live input uid the token grants. */
  sub: string;
  /** The signing key id (from the header). */
  kid: string;
  /** Expiry, seconds since the epoch. */
  exp: number;
  nbf?: number;
  iat?: number;
  downloadable?: boolean;
  accessRules?: AccessRule[];
}

export type TokenVerifyResult =
  | { ok: true; claims: TokenClaims }
  | { ok: false; code: TokenFailureCode; message: string };

/** Where public keys come from: SigningKeyRepository, named here where it is used. */
export interface SigningKeySource {
  loadAll(): Promise<SigningKeyRecord[]>;
  watch(handlers: SigningKeyWatchHandlers): Promise<SigningKeyWatch>;
}

export interface TokenVerifierOptions {
  keys: SigningKeySource;
  /** Verified tokens kept (default 10 000). */
  cacheSize?: number;
  clockSkewSeconds?: number;
  /** Full reload of the key set, in case a revocation message was missed (default 30 s). */
  resyncIntervalMs?: number;
  /** A kid that a reload did not find is refused without another reload for this long (default 5 s). */
  unknownKidReloadMs?: number;
  /** Least time between two reloads caused by unknown kids (default 250 ms). */
  unknownKidGapMs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
  /** Told after a key was dropped (revocation here or elsewhere, or found missing on reload). */
  onKeyDropped?: (kid: string) => void;
  /** Told when a background reload fails (the old key set stays in use). */
  onError?: (err: unknown) => void;
}

interface LoadedKey {
  algorithm: SigningAlgorithm;
  key: CryptoKey | Uint8Array;
}

interface CacheEntry {
  claims: TokenClaims;
  expMs: number;
}

type Failure = Extract<TokenVerifyResult, { ok: false }>;

const fail = (code: TokenFailureCode, message: string): Failure => ({ ok: false, code, message });

export class TokenVerifier {
  readonly #source: SigningKeySource;
  readonly #skew: number;
  readonly #resyncMs: number;
  readonly #unknownKidReloadMs: number;
  readonly #unknownKidGapMs: number;
  // Kids a reload did not find → until when they are refused without asking the store again.
  readonly #missing = new Map<string, number>();
  #delayedReload: Promise<void> | undefined;
  readonly #now: () => number;
  readonly #onKeyDropped: ((kid: string) => void) | undefined;
  readonly #onError: (err: unknown) => void;
  readonly #keys = new Map<string, LoadedKey>();
  // Key ids are random and never reused; remembering revoked ones stops a reload that read Redis
  // just before the revocation from bringing the key back.
  readonly #revoked = new Set<string>();
  readonly #cache: LRUCache<string, CacheEntry>;
  #lastReload = Number.NEGATIVE_INFINITY;
  #reloading: Promise<void> | undefined;
  #watch: SigningKeyWatch | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed: Promise<void> | undefined;

  constructor(opts: TokenVerifierOptions) {
    this.#source = opts.keys;
    this.#skew = opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
    this.#resyncMs = opts.resyncIntervalMs ?? 30_000;
    this.#unknownKidReloadMs = opts.unknownKidReloadMs ?? 5_000;
    this.#unknownKidGapMs = opts.unknownKidGapMs ?? 250;
    this.#now = opts.now ?? Date.now;
    this.#onKeyDropped = opts.onKeyDropped;
    this.#onError = opts.onError ?? (() => {});
    this.#cache = new LRUCache<string, CacheEntry>({ max: Math.max(1, opts.cacheSize ?? DEFAULT_TOKEN_CACHE_SIZE) });
  }

  /** Loads the key set and subscribes to revocations; resolves when both are done. */
  async start(): Promise<void> {
    if (this.#closed) throw new Error('TokenVerifier was closed');
    await this.reload();
    this.#watch = await this.#source.watch({
      onRevoked: (kid) => this.revoke(kid),
      onResync: () => void this.reload().catch(this.#onError),
    });
    this.#timer = setInterval(() => void this.reload().catch(this.#onError), this.#resyncMs);
    this.#timer.unref();
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      if (this.#timer) clearInterval(this.#timer);
      await this.#watch?.close();
      this.#cache.clear();
    })();
    return this.#closed;
  }

  get keyCount(): number {
    return this.#keys.size;
  }

  get cachedTokens(): number {
    return this.#cache.size;
  }

  /** Drops a key and every cached token it signed, at once and for good. */
  revoke(kid: string): void {
    this.#revoked.add(kid);
    this.#dropKey(kid);
  }

  /** Reloads the key set from the store (single flight). Keys gone from the store are dropped. */
  reload(): Promise<void> {
    this.#reloading ??= this.#reload().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(): Promise<void> {
    this.#lastReload = this.#now();
    const records = await this.#source.loadAll();
    const next = new Map<string, LoadedKey>();
    for (const r of records) {
      if (this.#revoked.has(r.id)) continue;
      const known = this.#keys.get(r.id);
      if (known && known.algorithm === r.algorithm) {
        next.set(r.id, known);
        continue;
      }
      try {
        next.set(r.id, { algorithm: r.algorithm, key: await importJWK({ ...r.publicJwk, alg: r.algorithm }, r.algorithm) });
      } catch (err) {
        this.#onError(err);
      }
    }
    for (const kid of [...this.#keys.keys()]) if (!next.has(kid)) this.#dropKey(kid);
    // A revocation may have arrived while importing.
    for (const [kid, key] of next) if (!this.#revoked.has(kid)) this.#keys.set(kid, key);
  }

  #dropKey(kid: string): void {
    const had = this.#keys.delete(kid);
    for (const [token, entry] of this.#cache.entries()) {
      if (entry.claims.kid === kid) this.#cache.delete(token);
    }
    if (had) this.#onKeyDropped?.(kid);
  }

  /**
   * Verifies `token`; with `expectedUid`, its `sub` must be that uid. The warm path (a cached
   * token) does no crypto and no I/O.
   */
  async verify(token: string, expectedUid?: string): Promise<TokenVerifyResult> {
    try {
      return await this.#verify(token, expectedUid);
    } catch {
      // Defence in depth: nothing a token contains may surface as an exception.
      return fail('TOKEN_MALFORMED', 'token could not be parsed');
    }
  }

  /** The cached verdict for `token`, without any crypto or I/O; undefined when not cached. */
  cached(token: string): TokenClaims | undefined {
    const hit = this.#cache.get(token);
    if (!hit) return undefined;
    if (hit.expMs <= this.#now()) {
      this.#cache.delete(token);
      return undefined;
    }
    return hit.claims;
  }

  #recentlyMissing(kid: string): boolean {
    const until = this.#missing.get(kid);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#missing.delete(kid);
    return false;
  }

  #rememberMissing(kid: string): void {
    // Bounded: a flood of random kids only ever costs one reload per gap.
    if (this.#missing.size >= 10_000) this.#missing.clear();
    this.#missing.set(kid, this.#now() + this.#unknownKidReloadMs);
  }

  /** A reload, no sooner than `unknownKidGapMs` after the last one; concurrent callers share it. */
  async #reloadForUnknownKid(): Promise<void> {
    const wait = this.#lastReload + this.#unknownKidGapMs - this.#now();
    if (wait > 0) {
      this.#delayedReload ??= new Promise<void>((resolve) => setTimeout(resolve, Math.min(wait, this.#unknownKidGapMs))).finally(() => {
        this.#delayedReload = undefined;
      });
      await this.#delayedReload;
    }
    await this.reload();
  }

  async #verify(token: string, expectedUid: string | undefined): Promise<TokenVerifyResult> {
    if (typeof token !== 'string' || token.length === 0) return fail('TOKEN_MALFORMED', 'token is empty');
    if (token.length > MAX_TOKEN_BYTES) return fail('TOKEN_TOO_LARGE', `token is longer than ${MAX_TOKEN_BYTES} bytes`);

    const hit = this.cached(token);
    if (hit) return checkSubject(hit, expectedUid);

    const parts = token.split('.');
    if (parts.length !== 3) return fail('TOKEN_MALFORMED', 'token must have three dot-separated parts');
    const [h, p, s] = parts as [string, string, string];
    if (h.length > MAX_HEADER_CHARS) return fail('TOKEN_MALFORMED', 'token header is too large');
    const header = decodeHeader(h);
    if (!header) return fail('TOKEN_MALFORMED', 'token header is not a flat base64url JSON object');
    const alg = header['alg'];
    if (typeof alg !== 'string' || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) {
      return fail('TOKEN_ALG_NOT_ALLOWED', `token algorithm ${JSON.stringify(alg ?? null).slice(0, 20)} is not allowed (RS256 or ES256)`);
    }
    if (!B64URL.test(p) || !B64URL.test(s)) return fail('TOKEN_MALFORMED', 'token payload or signature is not base64url');
    const kid = header['kid'];
    if (typeof kid !== 'string') return fail('TOKEN_MALFORMED', 'token header has no kid');
    if (!KID_RE.test(kid)) return fail('TOKEN_KID_UNKNOWN', 'token kid is not a known signing key');

    let key = this.#keys.get(kid);
    if (!key && !this.#revoked.has(kid) && !this.#recentlyMissing(kid)) {
      try {
        await this.#reloadForUnknownKid();
      } catch (err) {
        this.#onError(err);
      }
      key = this.#keys.get(kid);
      if (!key) this.#rememberMissing(kid);
    }
    if (!key) return fail('TOKEN_KID_UNKNOWN', 'token kid is not a known signing key (unknown or revoked)');
    if (key.algorithm !== alg) return fail('TOKEN_ALG_NOT_ALLOWED', `signing key ${kid} is an ${key.algorithm} key, not ${alg}`);

    let payload: JWTPayload;
    try {
      const resolved = key.key;
      ({ payload } = await jwtVerify(token, () => resolved, {
        algorithms: [...ALLOWED_ALGORITHMS],
        clockTolerance: this.#skew,
        currentDate: new Date(this.#now()),
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      return fromJoseError(err);
    }

    const claims = checkClaims(payload, kid);
    if (!claims.ok) return claims;
    const nowSec = this.#now() / 1000;
    const c = claims.claims;
    if (c.iat !== undefined && c.iat > nowSec + this.#skew) return fail('TOKEN_NOT_YET_VALID', 'token iat is in the future');
    if (c.exp - nowSec > MAX_TOKEN_LIFETIME_SECONDS + this.#skew || (c.iat !== undefined && c.exp - c.iat > MAX_TOKEN_LIFETIME_SECONDS)) {
      return fail('TOKEN_EXP_TOO_FAR', 'token exp is more than 24 hours after its iat or now');
    }

    // Revoked while we were verifying: the verdict must not outlive the key.
    if (this.#keys.get(kid) !== key) return fail('TOKEN_KID_UNKNOWN', 'token signing key was revoked');
    const expMs = c.exp * 1000;
    const ttl = Math.floor(expMs - this.#now());
    if (ttl > 0) this.#cache.set(token, { claims: c, expMs }, { ttl });
    return checkSubject(c, expectedUid);
  }
}

function checkSubject(claims: TokenClaims, expectedUid: string | undefined): TokenVerifyResult {
  if (expectedUid !== undefined && claims.sub !== expectedUid) {
    return fail('TOKEN_WRONG_SUBJECT', 'token was issued for another video or live input');
  }
  return { ok: true, claims };
}

function decodeHeader(part: string): Record<string, unknown> | undefined {
  if (!B64URL.test(part)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  // Our headers are alg, kid, typ: nested values (crit, jwk, x5c, bombs) are refused outright.
  for (const v of Object.values(value)) {
    if (typeof v === 'object' && v !== null) return undefined;
  }
  return value as Record<string, unknown>;
}

function depthExceeds(value: unknown, limit: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (limit === 0) return true;
  for (const v of Object.values(value)) if (depthExceeds(v, limit - 1)) return true;
  return false;
}

function checkClaims(payload: JWTPayload, kid: string): { ok: true; claims: TokenClaims } | Failure {
  if (depthExceeds(payload, MAX_PAYLOAD_DEPTH)) return fail('TOKEN_MALFORMED', 'token payload is nested too deeply');
  const { sub, exp, nbf, iat } = payload;
  const downloadable = payload['downloadable'];
  const accessRules = payload['accessRules'];
  if (typeof sub !== 'string' || !UID_RE.test(sub)) return fail('TOKEN_MALFORMED', 'token sub must be a 32-hex uid');
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return fail('TOKEN_MALFORMED', 'token exp must be a number');
  if (downloadable !== undefined && typeof downloadable !== 'boolean') {
    return fail('TOKEN_MALFORMED', 'token downloadable must be a boolean');
  }
  const claims: TokenClaims = { sub, kid, exp };
  if (typeof nbf === 'number') claims.nbf = nbf;
  if (typeof iat === 'number') claims.iat = iat;
  if (downloadable !== undefined) claims.downloadable = downloadable;
  if (accessRules !== undefined) {
    const parsed = parseAccessRules(accessRules);
    if (!parsed.ok) return fail('TOKEN_MALFORMED', `token ${parsed.message}`);
    claims.accessRules = parsed.rules;
  }
  return { ok: true, claims };
}

function fromJoseError(err: unknown): Failure {
  if (err instanceof joseErrors.JWTExpired) return fail('TOKEN_EXPIRED', 'token has expired');
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return fail('TOKEN_SIGNATURE_INVALID', 'token signature does not verify');
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' && err.reason === 'check_failed') return fail('TOKEN_NOT_YET_VALID', 'token is not valid yet (nbf)');
    if (err.claim === 'iat' && err.reason === 'check_failed') return fail('TOKEN_NOT_YET_VALID', 'token iat is in the future');
    return fail('TOKEN_MALFORMED', `token claim ${err.claim} is ${err.reason === 'missing' ? 'missing' : 'invalid'}`);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return fail('TOKEN_ALG_NOT_ALLOWED', 'token algorithm is not allowed');
  return fail('TOKEN_MALFORMED', 'token is not a valid JWS');
}
