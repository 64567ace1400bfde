import type { Readable } from 'node:stream';
import type { ObjectStore } from '../storage/object-store.ts';
import { videoPrefix } from './finalize.ts';

export interface VodResource {
  body: Readable | Buffer;
  contentType: string;
  /** Bytes in `body`. */
  size: number;
}

export interface VodPlaybackOptions {
  store: ObjectStore;
  /** Playlists kept in memory (default 512). */
  cacheEntries?: number;
  /** How long a cached playlist is reused (default 60 s; VOD playlists never change, but a video can be deleted). */
  cacheTtlMs?: number;
}

const UID = /^[0-9a-f]{32}$/;
const RENDITION = /^[a-z0-9][a-z0-9_-]{0,31}$/i;
const FILE = /^(?:init-[0-9a-z]{4,32}(?:-[1-9][0-9]{0,8})?\.mp4|seg-[0-9a-z]{4,32}-(?:0|[1-9][0-9]{0,14})\.m4s)$/;
/** Content type of the playlists VodPlayback returns. */
export const VOD_PLAYLIST_CONTENT_TYPE = 'application/vnd.apple.mpegurl';
/** A VOD playlist of 10 hours of 1 s segments is under 2 MiB. */
const MAX_PLAYLIST_BYTES = 8 * 1024 * 1024;

/**
 * Serves finalized videos from the object store, with the URL shapes of live playback:
 * master (`video.m3u8`), `<rendition>/index.m3u8`, and `init-…mp4` / `seg-…m4s` under the
 * rendition. Every name is checked against its format before any lookup; playlists (small, read
 * on every start of playback) are cached in memory.
 */
export class VodPlayback {
  readonly #store: ObjectStore;
  readonly #maxEntries: number;
  readonly #ttlMs: number;
  /** Insertion order = least recently used first. */
  readonly #cache = new Map<string, { text: string; at: number }>();

  constructor(opts: VodPlaybackOptions) {
    this.#store = opts.store;
    this.#maxEntries = opts.cacheEntries ?? 512;
    this.#ttlMs = opts.cacheTtlMs ?? 60_000;
  }

  async masterPlaylist(uid: string): Promise<string | undefined> {
    if (!UID.test(uid)) return undefined;
    return this.#playlist(`${videoPrefix(uid)}master.m3u8`);
  }

  async mediaPlaylist(uid: string, rendition: string): Promise<string | undefined> {
    if (!UID.test(uid) || !RENDITION.test(rendition)) return undefined;
    return this.#playlist(`${videoPrefix(uid)}${rendition}/index.m3u8`);
  }

  /** An init segment or segment; the body streams from the store. */
  async resource(uid: string, rendition: string, file: string): Promise<VodResource | undefined> {
    if (!UID.test(uid) || !RENDITION.test(rendition) || !FILE.test(file)) return undefined;
    const got = await this.#store.get(`${videoPrefix(uid)}${rendition}/${file}`);
    if (!got) return undefined;
    return {
      body: got.body,
      contentType: file.endsWith('.mp4') ? 'video/mp4' : 'video/iso.segment',
      size: got.length,
    };
  }

  /** Drops a video's cached playlists (it was deleted). */
  forget(uid: string): void {
    const prefix = videoPrefix(uid);
    for (const key of [...this.#cache.keys()]) if (key.startsWith(prefix)) this.#cache.delete(key);
  }

  async #playlist(key: string): Promise<string | undefined> {
    const hit = this.#cache.get(key);
    if (hit && Date.now() - hit.at < this.#ttlMs) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      return hit.text;
    }
    const got = await this.#store.get(key);
    if (!got) return undefined;
    if (got.length > MAX_PLAYLIST_BYTES) {
      got.body.destroy();
      throw new Error(`playlist ${key} is larger than ${MAX_PLAYLIST_BYTES} bytes`);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of got.body) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    // Misses are not cached: a video being finalized gets its playlists a moment later.
    this.#cache.set(key, { text, at: Date.now() });
    while (this.#cache.size > this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    return text;
  }
}
