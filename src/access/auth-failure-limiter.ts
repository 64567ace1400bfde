import { LRUCache } from 'lru-cache';
import { TrustedProxies } from './client-info.ts';

export interface AuthFailureLimiterOptions {
  /** Failures allowed per address within `windowMs`; the next one blocks the address. 0: never block. */
  maxFailures: number;
  windowMs: number;
  /** How long a blocked address is refused (every attempt, even with the right secret). */
  blockMs: number;
  /** Addresses never blocked (CIDRs), e.g. loopback for local tools. */
  exemptCidrs?: readonly string[];
  /** Addresses tracked at once; the least recently seen are forgotten first. */
  maxTracked?: number;
  now?: () => number;
}

interface Entry {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

/**
 * Counts failed authentications per client address (wrong API key, unknown stream key, forged
 * playback token) and refuses an address that fails too often, for a while. One instance per
 * surface (API, ingest, playback) so a broken player does not lock an operator out of the API.
 * Per node and in memory: an attacker spread over N nodes gets N × the budget, which still turns
 * brute force from millions of guesses a minute into dozens.
 */
export class AuthFailureLimiter {
  readonly #opts: AuthFailureLimiterOptions;
  readonly #exempt: TrustedProxies;
  readonly #entries: LRUCache<string, Entry>;
  readonly #now: () => number;
  #blockedTotal = 0;

  constructor(opts: AuthFailureLimiterOptions) {
    this.#opts = opts;
    try {
      this.#exempt = new TrustedProxies(opts.exemptCidrs ?? []);
    } catch (error) {
      throw new Error(`limits.authFailures.exemptCidrs: ${(error as Error).message.replace(/^[^:]*: /, '')}`, { cause: error });
    }
    this.#entries = new LRUCache<string, Entry>({ max: opts.maxTracked ?? 100_000 });
    this.#now = opts.now ?? Date.now;
  }

  /** Addresses blocked so far (each block counted once). */
  get blockedTotal(): number {
    return this.#blockedTotal;
  }

  /** Seconds until `ip` may try again; 0 when it is not blocked. */
  retryAfterSeconds(ip: string): number {
    const entry = this.#entries.get(ip);
    if (!entry) return 0;
    const left = entry.blockedUntil - this.#now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /** Records a failed attempt; returns true when this failure blocked the address. */
  fail(ip: string): boolean {
    if (this.#opts.maxFailures <= 0 || ip === '' || this.#exempt.has(ip)) return false;
    const now = this.#now();
    let entry = this.#entries.get(ip);
    if (!entry || now - entry.windowStart >= this.#opts.windowMs) {
      entry = { windowStart: now, failures: 0, blockedUntil: entry?.blockedUntil ?? 0 };
      this.#entries.set(ip, entry);
    }
    entry.failures++;
    if (entry.failures > this.#opts.maxFailures && entry.blockedUntil <= now) {
      entry.blockedUntil = now + this.#opts.blockMs;
      this.#blockedTotal++;
      return true;
    }
    return false;
  }
}
