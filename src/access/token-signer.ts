import { importJWK, SignJWT, type CryptoKey } from 'jose';
import type { InternalSigningKey, SigningAlgorithm } from '../state/signing-key-repo.ts';
import { parseAccessRules, type AccessRule } from './access-rules.ts';
import { MAX_TOKEN_LIFETIME_SECONDS } from './tokens.ts';

/**
 * Server-side token minting (`POST /v1/live_inputs/{uid}/token`, `POST /v1/videos/{uid}/token`)
 * with the deployment's internal key. Requests are checked here with messages meant for the API
 * caller; the verifier checks the same things again on every token it sees.
 */

export interface TokenRequest {
  /** Expiry, seconds since the epoch; default now + 1 h, at most now + 24 h. */
  exp?: number;
  /** Not before, seconds since the epoch. */
  nbf?: number;
  downloadable?: boolean;
  /** Untrusted until parsed: at most 5 rules. */
  accessRules?: unknown[];
}

export const DEFAULT_TOKEN_LIFETIME_SECONDS = 60 * 60;

export type TokenRequestProblem = 'ACCESS_RULES_INVALID' | 'TOKEN_EXP_INVALID';

/** A signing request that breaks a rule: the caller's fault, with a message saying which. */
export class TokenRequestError extends Error {
  readonly problem: TokenRequestProblem;
  constructor(problem: TokenRequestProblem, message: string) {
    super(message);
    this.name = 'TokenRequestError';
    this.problem = problem;
  }
}

export interface InternalKeySource {
  internalKey(): Promise<InternalSigningKey>;
}

export interface TokenSignerOptions {
  keys: InternalKeySource;
  now?: () => number;
}

interface ReadyKey {
  id: string;
  algorithm: SigningAlgorithm;
  key: CryptoKey | Uint8Array;
}

export class TokenSigner {
  readonly #source: InternalKeySource;
  readonly #now: () => number;
  #key: Promise<ReadyKey> | undefined;

  constructor(opts: TokenSignerOptions) {
    this.#source = opts.keys;
    this.#now = opts.now ?? Date.now;
  }

  /** Signs a token for `uid`; throws TokenRequestError for a request that breaks a rule. */
  async sign(uid: string, request: TokenRequest = {}): Promise<string> {
    const nowSec = Math.floor(this.#now() / 1000);
    const exp = request.exp ?? nowSec + DEFAULT_TOKEN_LIFETIME_SECONDS;
    if (!Number.isInteger(exp) || exp <= nowSec) {
      throw new TokenRequestError('TOKEN_EXP_INVALID', `exp must be a future time in seconds since the epoch (now is ${nowSec})`);
    }
    if (exp - nowSec > MAX_TOKEN_LIFETIME_SECONDS) {
      throw new TokenRequestError(
        'TOKEN_EXP_INVALID',
        `exp may be at most 24 hours (${MAX_TOKEN_LIFETIME_SECONDS} s) from now: at most ${nowSec + MAX_TOKEN_LIFETIME_SECONDS}, got ${exp}`,
      );
    }
    if (request.nbf !== undefined && (!Number.isInteger(request.nbf) || request.nbf >= exp)) {
      throw new TokenRequestError('TOKEN_EXP_INVALID', 'nbf must be a time in seconds since the epoch before exp');
    }
    let accessRules: AccessRule[] | undefined;
    if (request.accessRules !== undefined) {
      const parsed = parseAccessRules(request.accessRules);
      if (!parsed.ok) throw new TokenRequestError('ACCESS_RULES_INVALID', parsed.message);
      accessRules = parsed.rules;
    }

    const key = await this.#ready();
    const jwt = new SignJWT({
      // Cloudflare also puts kid in the payload; players and SDKs that read it keep working.
      kid: key.id,
      ...(request.downloadable !== undefined ? { downloadable: request.downloadable } : {}),
      ...(accessRules !== undefined ? { accessRules } : {}),
    })
      .setProtectedHeader({ alg: key.algorithm, kid: key.id, typ: 'JWT' })
      .setSubject(uid)
      .setIssuedAt(nowSec)
      .setExpirationTime(exp);
    if (request.nbf !== undefined) jwt.setNotBefore(request.nbf);
    return jwt.sign(key.key);
  }

  #ready(): Promise<ReadyKey> {
    this.#key ??= (async () => {
      const k = await this.#source.internalKey();
      return { id: k.id, algorithm: k.algorithm, key: await importJWK({ ...k.privateJwk }, k.algorithm) };
    })().catch((err: unknown) => {
      this.#key = undefined;
      throw err;
    });
    return this.#key;
  }
}
