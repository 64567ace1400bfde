import { LRUCache } from 'lru-cache';

/** Where a live stream that is not on this node lives (implemented over the Redis leases). */
export interface LiveOwners {
  /** The owner's base URL (`http://10.0.0.5:8080`), or undefined when no other node has it live. */
  ownerUrl(liveInputUid: string): Promise<string | undefined>;
}

/** An answer relayed from the owner. */
export interface ProxiedResponse {
  status: number;
  contentType: string;
  cacheControl: string;
  body: Buffer;
}

export class OwnerUnreachableError extends Error {
  readonly timedOut: boolean;
  constructor(message: string, timedOut: boolean, cause?: unknown) {
    super(message, { cause });
    this.name = 'OwnerUnreachableError';
    this.timedOut = timedOut;
  }
}

export interface OwnerProxyOptions {
  owners: LiveOwners;
  /** Header name and value that node-to-node requests carry (the owner trusts them). */
  credential: () => { header: string; value: string };
  /** Upper bound on one upstream request beyond the hold it may ask for, ms. */
  timeoutMs: number;
  /** How long an owner lookup (found or not) is reused, ms. */
  lookupCacheMs?: number;
  /** How long immutable media fetched from an owner is kept for the next viewer, ms. */
  mediaCacheMs?: number;
  /** Bytes of media kept at most. */
  mediaCacheBytes?: number;
}

/**
 * Relays live playlists and media from the node that owns a stream. Identical requests in flight
 * at once (every viewer's blocking reload for the same next part) share one upstream request;
 * immutable media (random per-session names) is kept a few seconds for the viewers that follow.
 */
export class OwnerProxy {
  readonly #opts: OwnerProxyOptions;
  readonly #inFlight = new Map<string, Promise<ProxiedResponse>>();
  readonly #owners: LRUCache<string, { url: string | null }> | undefined;
  readonly #media: LRUCache<string, ProxiedResponse>;
  /** Upstream requests sent, and requests answered by joining one in flight (for figures and tests). */
  readonly stats = { upstream: 0, coalesced: 0, cached: 0 };

  constructor(opts: OwnerProxyOptions) {
    this.#opts = opts;
    // lru-cache reads a ttl of 0 as "forever": no cache at all then.
    const lookupTtl = opts.lookupCacheMs ?? 1000;
    this.#owners = lookupTtl > 0 ? new LRUCache({ max: 10_000, ttl: lookupTtl }) : undefined;
    this.#media = new LRUCache({
      max: 2048,
      ttl: opts.mediaCacheMs ?? 6000,
      maxSize: opts.mediaCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (r) => Math.max(1, r.body.length),
    });
  }

  /** The owner of a live stream elsewhere, looked up at most once per cache period. */
  async ownerOf(liveInputUid: string): Promise<string | undefined> {
    const cached = this.#owners?.get(liveInputUid);
    if (cached) return cached.url ?? undefined;
    const url = await this.#opts.owners.ownerUrl(liveInputUid);
    this.#owners?.set(liveInputUid, { url: url ?? null });
    return url;
  }

  /** Forgets a looked-up owner (it did not answer: the next request asks Redis again). */
  forget(liveInputUid: string): void {
    this.#owners?.delete(liveInputUid);
  }

  /**
   * GETs `path` (with its query: blocking directives travel with it, so the owner holds the
   * request) from `ownerUrl`. `holdMs` is how long the owner may hold it. Throws
   * OwnerUnreachableError when the owner does not answer.
   */
  fetch(ownerUrl: string, path: string, holdMs: number): Promise<ProxiedResponse> {
    const key = ownerUrl + path;
    const cached = this.#media.get(key);
    if (cached) {
      this.stats.cached++;
      return Promise.resolve(cached);
    }
    const running = this.#inFlight.get(key);
    if (running) {
      this.stats.coalesced++;
      return running;
    }
    this.stats.upstream++;
    const request = this.#request(ownerUrl + path, holdMs).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, request);
    void request.then(
      (r) => {
        if (r.status === 200 && r.cacheControl.includes('immutable')) this.#media.set(key, r);
      },
      () => undefined,
    );
    return request;
  }

  async #request(url: string, holdMs: number): Promise<ProxiedResponse> {
    const { header, value } = this.#opts.credential();
    const signal = AbortSignal.timeout(holdMs + this.#opts.timeoutMs);
    let response: Response;
    let body: Buffer;
    try {
      // Identity encoding: the edge gzips playlists for its own clients.
      response = await fetch(url, { headers: { [header]: value, 'accept-encoding': 'identity' }, signal });
      body = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new OwnerUnreachableError(timedOut ? 'the owning node did not answer in time' : 'the owning node is unreachable', timedOut, error);
    }
    return {
      status: response.status,
      contentType: response.headers.get('content-type') ?? 'application/octet-stream',
      cacheControl: response.headers.get('cache-control') ?? 'no-cache',
      body,
    };
  }
}
