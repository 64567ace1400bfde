import type { Readable } from 'node:stream';

/**
 * What the origin needs from the live layer, named where it is used (origin never imports live/).
 * `HlsLiveStream` (hls/) satisfies `HlsStreamView` structurally.
 */
export interface PlaybackResource {
  body: Buffer;
  contentType: string;
}

/** How a held request ended without error: its condition holds, or the stream ended. */
export type HoldResult = 'ready' | 'released';

export interface HlsStreamView {
  /** Undefined until every rendition has its init and a first segment. */
  masterPlaylist(): string | undefined;
  /** `skip` asks for a delta update (`_HLS_skip`); undefined for unknown renditions or before a first segment. */
  mediaPlaylist(rendition: string, skip?: 'YES' | 'v2'): string | undefined;
  /**
   * A blocking reload (`_HLS_msn`, `_HLS_part`) now: answerable, to be held, or too far ahead
   * (400); undefined when the rendition has no playlist.
   */
  blockingState(rendition: string, msn: number, part?: number): 'ready' | 'wait' | 'too-far' | undefined;
  /** Resolves when the playlist holds that segment or part, or the stream ends; rejects when `signal` aborts. */
  waitForPlaylist(rendition: string, msn: number, part: number | undefined, signal?: AbortSignal): Promise<HoldResult>;
  /**
   * For the next part (the preload-hinted one), a wait until it exists or never will; undefined
   * for any other file name.
   */
  waitForPart(rendition: string, fileName: string, signal?: AbortSignal): Promise<HoldResult> | undefined;
  /** An init segment, segment or part of a rendition, by file name; undefined when unknown or gone. */
  resource(rendition: string, fileName: string): PlaybackResource | undefined;
  /** EXT-X-TARGETDURATION, seconds. */
  readonly targetDuration: number;
  /** PART-TARGET, seconds. */
  readonly partTarget: number;
  /** True once the broadcast has ended (playlists carry EXT-X-ENDLIST). */
  readonly ended: boolean;
}

export interface LivePlayback {
  /** The current (or just-ended) live stream of a live input, by its uid. */
  stream(liveInputUid: string): HlsStreamView | undefined;
}

/** What the origin asks before serving anything (implemented by access/PlaybackGuard). */
export interface PlaybackAccess {
  check(req: {
    pathId: string;
    queryToken?: string | undefined;
    remoteAddress: string;
    headers: Record<string, string | string[] | undefined>;
  }): Promise<
    | {
        ok: true;
        uid: string;
        token?: string;
        originRestricted: boolean;
        allowedOrigins?: string[];
        /** The MP4 download may be served: the asset is public, or the token says `downloadable: true`. */
        mayDownload?: boolean;
      }
    | { ok: false; status: 401 | 403 | 404 | 429; code: string; message: string; retryAfterSeconds?: number }
  >;
}

/** Finished videos (recordings, uploads), read from the object store (implemented by vod/). */
export interface VodSource {
  masterPlaylist(uid: string): Promise<string | undefined>;
  mediaPlaylist(uid: string, rendition: string): Promise<string | undefined>;
  resource(
    uid: string,
    rendition: string,
    file: string,
  ): Promise<{ body: Readable | Buffer; contentType: string; size: number } | undefined>;
}
