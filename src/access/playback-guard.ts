import { LRUCache } from 'lru-cache';
import { evaluateRules, needsCountry } from './access-rules.ts';
import { originAllowed } from './allowed-origins.ts';
import { clientInfo, TrustedProxies, type HeaderMap } from './client-info.ts';
import type { GeoIp } from './geoip.ts';
import type { AuthFailureLimiter } from './auth-failure-limiter.ts';
import type { TokenClaims, TokenFailureCode, TokenVerifier } from './tokens.ts';

/**
 * The one question the origin asks: may this request play this asset? Order: find the uid (the
 * path id is a uid, or a token standing in for one) → verify the token, if any → the asset's
 * policy (require signed URLs, allowed origins) → the token's access rules → allowed origins.
 *
 * The warm path — a token the verifier has cached and a policy this guard has cached — is a few
 * map lookups: no Redis, no crypto.
 */

export interface PlaybackPolicy {
  requireSignedURLs: boolean;
  allowedOrigins: string[];
}

export type GuardFailureCode =
  | TokenFailureCode
  | 'TOKEN_REQUIRED'
  | 'ACCESS_RULE_BLOCKED'
  | 'COUNTRY_UNKNOWN'
  | 'ORIGIN_NOT_ALLOWED'
  | 'TOO_MANY_AUTH_FAILURES'
  | 'NOT_FOUND';

export type GuardResult =
  | {
      ok: true;
      uid: string;
      token?: string;
      claims?: TokenClaims;
      /** The asset limits embedding origins. */
      originRestricted: boolean;
      /** The asset's allowed origins, present only when it has any (for the embed page's frame-ancestors). */
      allowedOrigins?: string[];
      /** The MP4 download may be served: the asset needs no signed URL, or the token has `downloadable: true`. */
      mayDownload: boolean;
    }
  | { ok: false; status: 401 | 403 | 404 | 429; code: GuardFailureCode; message: string; retryAfterSeconds?: number };

export interface PlaybackRequest {
  /** The `{id}` path segment: a 32-hex uid or a signed token. */
  pathId: string;
  /** `?token=`: lets the first request of a uid path carry a token. */
  queryToken?: string | undefined;
  /** The socket peer (request.socket.remoteAddress). */
  remoteAddress: string;
  headers: HeaderMap;
}

export interface PlaybackGuardOptions {
  tokens: TokenVerifier;
  /** Without it, country rules fail closed (COUNTRY_UNKNOWN) unless a trusted CDN header says. */
  geoip?: GeoIp | undefined;
  /** CIDRs whose X-Forwarded-For and country header are believed. */
  trustedProxies: string[];
  /** e.g. `CF-IPCountry` or `CloudFront-Viewer-Country`; read only from trusted proxies. */
  countryHeader?: string | undefined;
  /** The asset's playback policy, or undefined when there is no such asset. Cached here. */
  policyOf: (uid: string) => Promise<PlaybackPolicy | undefined>;
  /** How long a policy is reused (default 5 s); a policy change takes at most this long to apply. */
  policyCacheMs?: number;
  /** How long "no such asset" is reused (default 1 s): cheap 404s for scanners, quick for new assets. */
  missingPolicyCacheMs?: number;
  policyCacheSize?: number;
  /**
   * How long a policy lookup may take before the last policy read for the asset is used instead
   * (default 1 s): playback of known assets survives a hung or restarting Redis.
   */
  staleAfterMs?: number;
  /** Blocks addresses that keep presenting forged tokens (bad signature, unknown key, garbage). */
  authLimiter?: AuthFailureLimiter;
  /** Told every decision (checks and refusals by reason). */
  metrics?: { playbackChecked(result: GuardResult): void } | undefined;
}

/** Token failures that only a forger produces; an expired or early token is an honest mistake. */
const FORGERY_CODES: ReadonlySet<GuardFailureCode> = new Set([
  'TOKEN_MALFORMED',
  'TOKEN_TOO_LARGE',
  'TOKEN_ALG_NOT_ALLOWED',
  'TOKEN_KID_UNKNOWN',
  'TOKEN_SIGNATURE_INVALID',
]);

const UID_RE = /^[0-9a-f]{32}$/;
const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

// No credentials → 401; credentials that do not grant this request (malformed, expired, not yet
// valid, revoked, tampered, for another asset, refused by a rule) → 403 with the reason code.
const STATUS: Record<GuardFailureCode, 401 | 403 | 404 | 429> = {
  TOKEN_MALFORMED: 403,
  TOKEN_TOO_LARGE: 403,
  TOKEN_ALG_NOT_ALLOWED: 403,
  TOKEN_KID_UNKNOWN: 403,
  TOKEN_SIGNATURE_INVALID: 403,
  TOKEN_EXPIRED: 403,
  TOKEN_NOT_YET_VALID: 403,
  TOKEN_EXP_TOO_FAR: 403,
  TOKEN_REQUIRED: 401,
  TOKEN_WRONG_SUBJECT: 403,
  ACCESS_RULE_BLOCKED: 403,
  COUNTRY_UNKNOWN: 403,
  ORIGIN_NOT_ALLOWED: 403,
  TOO_MANY_AUTH_FAILURES: 429,
  NOT_FOUND: 404,
};

interface PolicyEntry {
  policy: PlaybackPolicy | undefined;
}

export class PlaybackGuard {
  readonly #tokens: TokenVerifier;
  readonly #geoip: GeoIp | undefined;
  readonly #proxies: TrustedProxies;
  readonly #countryHeader: string | undefined;
  readonly #policyOf: (uid: string) => Promise<PlaybackPolicy | undefined>;
  readonly #policyMs: number;
  readonly #missingMs: number;
  readonly #policies: LRUCache<string, PolicyEntry>;
  readonly #inflight = new Map<string, Promise<PlaybackPolicy | undefined>>();
  /** The last policy read for each uid, kept past its ttl: served while Redis is slow or away. */
  readonly #lastKnown: LRUCache<string, PlaybackPolicy>;
  readonly #staleAfterMs: number;
  readonly #authLimiter: AuthFailureLimiter | undefined;
  readonly #metrics: PlaybackGuardOptions['metrics'];

  constructor(opts: PlaybackGuardOptions) {
    this.#tokens = opts.tokens;
    this.#geoip = opts.geoip;
    this.#proxies = new TrustedProxies(opts.trustedProxies);
    this.#countryHeader = opts.countryHeader || undefined;
    this.#policyOf = opts.policyOf;
    this.#policyMs = opts.policyCacheMs ?? 5_000;
    this.#missingMs = opts.missingPolicyCacheMs ?? 1_000;
    this.#metrics = opts.metrics;
    this.#policies = new LRUCache<string, PolicyEntry>({ max: opts.policyCacheSize ?? 10_000, ttl: this.#policyMs });
    this.#lastKnown = new LRUCache<string, PlaybackPolicy>({ max: opts.policyCacheSize ?? 10_000 });
    this.#staleAfterMs = opts.staleAfterMs ?? 1_000;
    this.#authLimiter = opts.authLimiter;
  }

  #clientIp(req: PlaybackRequest): string {
    return clientInfo(req.remoteAddress, req.headers, { trustedProxies: this.#proxies, countryHeader: this.#countryHeader }).ip;
  }

  /** Forget a cached policy (e.g. after an API update on this node). */
  invalidate(uid: string): void {
    this.#policies.delete(uid);
    this.#lastKnown.delete(uid);
  }

  async check(req: PlaybackRequest): Promise<GuardResult> {
    const result = await this.#check(req);
    this.#metrics?.playbackChecked(result);
    return result;
  }

  async #check(req: PlaybackRequest): Promise<GuardResult> {
    let uid: string;
    let token: string | undefined;
    let claims: TokenClaims | undefined;

    if (UID_RE.test(req.pathId)) {
      uid = req.pathId;
      token = req.queryToken || undefined;
    } else if (TOKEN_SHAPE.test(req.pathId) || req.pathId.length > 8 * 1024) {
      token = req.pathId;
      uid = '';
    } else {
      return deny('NOT_FOUND', 'no such video or live input');
    }

    if (token !== undefined) {
      const limiter = this.#authLimiter;
      const ip = limiter ? this.#clientIp(req) : '';
      const retryAfter = limiter?.retryAfterSeconds(ip) ?? 0;
      if (retryAfter > 0) {
        return { ...deny('TOO_MANY_AUTH_FAILURES', 'too many forged tokens from this address; retry later'), retryAfterSeconds: retryAfter };
      }
      const verified = await this.#tokens.verify(token, uid === '' ? undefined : uid);
      if (!verified.ok) {
        if (FORGERY_CODES.has(verified.code)) limiter?.fail(ip);
        return deny(verified.code, verified.message);
      }
      claims = verified.claims;
      uid = claims.sub;
    }

    const policy = await this.#policy(uid);
    if (!policy) return deny('NOT_FOUND', 'no such video or live input');
    if (policy.requireSignedURLs && !claims) {
      return deny('TOKEN_REQUIRED', 'this video requires a signed URL: use a token in place of the id');
    }

    if (claims?.accessRules) {
      const client = clientInfo(req.remoteAddress, req.headers, { trustedProxies: this.#proxies, countryHeader: this.#countryHeader });
      let country: string | undefined;
      let countryError: string | undefined;
      if (needsCountry(claims.accessRules)) {
        country = client.headerCountry ?? this.#geoip?.lookupCountry(client.ip);
        if (country === undefined) {
          countryError = this.#geoip ? 'no GeoIP record for the address' : 'no GeoIP database configured';
        }
      }
      const decision = evaluateRules(claims.accessRules, {
        ip: client.ip,
        country,
        ...(countryError !== undefined ? { countryError } : {}),
      });
      if (!decision.allowed) return deny(decision.code, decision.message);
    }

    if (policy.allowedOrigins.length > 0) {
      const origin = first(req.headers['origin']) ?? first(req.headers['referer']);
      // The embed page's own requests come from this origin: the page itself was checked (and
      // framed only by allowed sites through its frame-ancestors).
      if (!originAllowed(policy.allowedOrigins, origin) && !sameOrigin(origin, req.headers)) {
        return deny('ORIGIN_NOT_ALLOWED', 'this video may not be played from this site');
      }
    }

    return {
      ok: true,
      uid,
      originRestricted: policy.allowedOrigins.length > 0,
      mayDownload: !policy.requireSignedURLs || claims?.downloadable === true,
      ...(policy.allowedOrigins.length > 0 ? { allowedOrigins: policy.allowedOrigins } : {}),
      ...(token !== undefined ? { token } : {}),
      ...(claims !== undefined ? { claims } : {}),
    };
  }

  async #policy(uid: string): Promise<PlaybackPolicy | undefined> {
    const hit = this.#policies.get(uid);
    if (hit) return hit.policy;
    let pending = this.#inflight.get(uid);
    if (!pending) {
      // One lookup per uid however many viewers ask at once when the entry expires.
      pending = this.#policyOf(uid)
        .then((policy) => {
          this.#policies.set(uid, { policy }, { ttl: policy ? this.#policyMs : this.#missingMs });
          if (policy) this.#lastKnown.set(uid, policy);
          else this.#lastKnown.delete(uid);
          return policy;
        })
        .finally(() => this.#inflight.delete(uid));
      this.#inflight.set(uid, pending);
    }
    const lastKnown = this.#lastKnown.get(uid);
    if (!lastKnown) return pending;
    // Redis hung or restarting: viewers of a stream already known keep watching under the last
    // policy read, instead of waiting for (or failing with) the lookup.
    let timer: NodeJS.Timeout | undefined;
    const stale = new Promise<PlaybackPolicy>((resolve) => {
      timer = setTimeout(() => resolve(lastKnown), this.#staleAfterMs);
    });
    try {
      return await Promise.race([pending.catch(() => lastKnown), stale]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function deny(code: GuardFailureCode, message: string): Extract<GuardResult, { ok: false }> {
  return { ok: false, status: STATUS[code], code, message };
}

/** Whether an Origin or Referer names the host the request was sent to (Host, or :authority on HTTP/2). */
export function sameOrigin(originOrReferer: string | undefined, headers: HeaderMap): boolean {
  const host = first(headers['host']) ?? first(headers[':authority']);
  if (originOrReferer === undefined || host === undefined || originOrReferer.length > 4096) return false;
  try {
    const url = new URL(originOrReferer.trim());
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.host === new URL(`${url.protocol}//${host}`).host;
  } catch {
    return false;
  }
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
