/**
 * What the origin needs from the live layer, named where it is used (origin never imports live/).
 */
export interface PlaybackResource {
  body: Buffer;
  contentType: string;
}

export interface HlsStreamView {
  /** Undefined until every rendition has its init and a first segment. */
  masterPlaylist(): string | undefined;
  mediaPlaylist(rendition: string): string | undefined;
  /** An init segment, segment or part of a rendition, by file name; undefined when unknown or gone. */
  resource(rendition: string, fileName: string): PlaybackResource | undefined;
  /** True once the broadcast has ended (playlists carry EXT-X-ENDLIST). */
  readonly ended: boolean;
}

export interface LivePlayback {
  /** The current (or just-ended) live stream of a live input, by its uid. */
  stream(liveInputUid: string): HlsStreamView | undefined;
}
