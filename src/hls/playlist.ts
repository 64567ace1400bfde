/**
 * HLS playlist rendering (draft-pantos-hls-rfc8216bis), pure: a model in, playlist text out.
 * Attribute values follow section 4.2: URIs and CODECS are quoted strings, enumerated strings
 * (YES, PART, MAP) and numbers are bare.
 */

export interface PlaylistPart {
  uri: string;
  /** Seconds. */
  duration: number;
  independent?: boolean;
  gap?: boolean;
  byteRange?: { length: number; offset?: number };
}

export interface PlaylistSegment {
  uri: string;
  /** Seconds. */
  duration: number;
  /** URI of the init segment (EXT-X-MAP); rendered where it changes from the previous segment. */
  mapUri: string;
  /** Wall clock of the segment start, ms since epoch. */
  programDateTime?: number;
  discontinuity?: boolean;
  gap?: boolean;
  /** LL-HLS parts of this segment, listed before its EXTINF. */
  parts?: PlaylistPart[];
}

export interface ServerControl {
  canBlockReload?: boolean;
  /** Seconds. */
  canSkipUntil?: number;
  canSkipDateRanges?: boolean;
  holdBack?: number;
  partHoldBack?: number;
}

export interface PreloadHint {
  type: 'PART' | 'MAP';
  uri: string;
  byteRangeStart?: number;
  byteRangeLength?: number;
}

export interface RenditionReport {
  uri: string;
  lastMsn?: number;
  lastPart?: number;
}

export interface MediaPlaylistModel {
  /** Overrides the computed EXT-X-VERSION. */
  version?: number;
  /** Lower bound for EXT-X-TARGETDURATION (keeps it stable across reloads); the rendered value is never below any segment. */
  targetDuration?: number;
  mediaSequence: number;
  discontinuitySequence?: number;
  /** Default true: every segment starts with a keyframe. */
  independentSegments?: boolean;
  playlistType?: 'VOD' | 'EVENT';
  endList?: boolean;
  segments: PlaylistSegment[];
  /** Number of segments left out at the start of a delta update (EXT-X-SKIP); `mediaSequence` still counts them. */
  skippedSegments?: number;
  /** Parts of the segment in progress, after the last complete segment. */
  openParts?: PlaylistPart[];
  /** Init segment of the segment in progress, if it has no complete segment yet to carry its EXT-X-MAP. */
  openMapUri?: string;
  /** Wall clock of the segment in progress (ms since epoch), rendered before its parts. */
  openProgramDateTime?: number;
  /** The segment in progress follows a discontinuity. */
  openDiscontinuity?: boolean;
  /**
   * With `skippedSegments`: the answer to `_HLS_skip=v2`, whose EXT-X-SKIP must carry
   * RECENTLY-REMOVED-DATERANGES (tab-separated IDs, possibly none) and needs version 10.
   */
  recentlyRemovedDateRanges?: string[];
  partTarget?: number;
  serverControl?: ServerControl;
  preloadHint?: PreloadHint;
  renditionReports?: RenditionReport[];
}

export interface Variant {
  uri: string;
  /** Peak bits per second. */
  bandwidth: number;
  averageBandwidth?: number;
  codecs?: string[];
  resolution?: { width: number; height: number };
  frameRate?: number;
}

export interface MasterPlaylistModel {
  version?: number;
  /** Default true. */
  independentSegments?: boolean;
  variants: Variant[];
}

export function renderMediaPlaylist(model: MediaPlaylistModel): string {
  const lines: string[] = ['#EXTM3U'];
  const skipped = model.skippedSegments ?? 0;
  const removedDateRanges = skipped > 0 ? model.recentlyRemovedDateRanges : undefined;
  // Version 6 for EXT-X-MAP without I-FRAMES-ONLY, 9 for EXT-X-SKIP, 10 for an EXT-X-SKIP that
  // stands for skipped date ranges too (rfc8216bis section 8).
  lines.push(`#EXT-X-VERSION:${model.version ?? (removedDateRanges ? 10 : skipped > 0 ? 9 : 6)}`);
  lines.push(`#EXT-X-TARGETDURATION:${targetDuration(model)}`);
  if (model.serverControl) lines.push(renderServerControl(model.serverControl));
  if (model.partTarget !== undefined) lines.push(`#EXT-X-PART-INF:PART-TARGET=${decimal(model.partTarget)}`);
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${integer(model.mediaSequence)}`);
  if (model.discontinuitySequence) {
    lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${integer(model.discontinuitySequence)}`);
  }
  if (model.playlistType) lines.push(`#EXT-X-PLAYLIST-TYPE:${model.playlistType}`);
  if (model.independentSegments ?? true) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  if (skipped > 0) {
    const removed = removedDateRanges ? `,RECENTLY-REMOVED-DATERANGES=${quoted(removedDateRanges.join('\t'))}` : '';
    lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${integer(skipped)}${removed}`);
  }

  let mapUri: string | undefined;
  for (const segment of model.segments) {
    if (segment.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (segment.mapUri !== mapUri) {
      mapUri = segment.mapUri;
      lines.push(`#EXT-X-MAP:URI=${quoted(mapUri)}`);
    }
    if (segment.programDateTime !== undefined) {
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(segment.programDateTime).toISOString()}`);
    }
    for (const part of segment.parts ?? []) lines.push(renderPart(part));
    if (segment.gap) lines.push('#EXT-X-GAP');
    lines.push(`#EXTINF:${segment.duration.toFixed(5)},`);
    lines.push(uriLine(segment.uri));
  }
  const openHasParts = (model.openParts?.length ?? 0) > 0;
  if (openHasParts && model.openDiscontinuity) lines.push('#EXT-X-DISCONTINUITY');
  if (model.openMapUri !== undefined && model.openMapUri !== mapUri && (openHasParts || model.preloadHint)) {
    lines.push(`#EXT-X-MAP:URI=${quoted(model.openMapUri)}`);
  }
  if (openHasParts && model.openProgramDateTime !== undefined) {
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(model.openProgramDateTime).toISOString()}`);
  }
  for (const part of model.openParts ?? []) lines.push(renderPart(part));
  if (model.preloadHint) lines.push(renderPreloadHint(model.preloadHint));
  for (const report of model.renditionReports ?? []) lines.push(renderRenditionReport(report));
  if (model.endList) lines.push('#EXT-X-ENDLIST');
  return lines.join('\n') + '\n';
}

export function renderMasterPlaylist(model: MasterPlaylistModel): string {
  const lines: string[] = ['#EXTM3U'];
  if (model.version !== undefined) lines.push(`#EXT-X-VERSION:${integer(model.version)}`);
  if (model.independentSegments ?? true) lines.push('#EXT-X-INDEPENDENT-SEGMENTS');
  for (const v of model.variants) {
    const attrs = [`BANDWIDTH=${integer(Math.ceil(v.bandwidth))}`];
    if (v.averageBandwidth !== undefined) attrs.push(`AVERAGE-BANDWIDTH=${integer(Math.ceil(v.averageBandwidth))}`);
    if (v.codecs && v.codecs.length > 0) attrs.push(`CODECS=${quoted(v.codecs.join(','))}`);
    if (v.resolution) attrs.push(`RESOLUTION=${integer(v.resolution.width)}x${integer(v.resolution.height)}`);
    if (v.frameRate !== undefined) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`);
    lines.push(uriLine(v.uri));
  }
  return lines.join('\n') + '\n';
}

/** Ceil of the longest EXTINF as rendered (5 decimals), so no segment ever exceeds it. */
// The spec's rule: each EXTINF rounded to the nearest integer is at most the target duration.
// (Ceiling would turn a 2.02 s segment into a 3 s target and make players hold back further.)
function targetDuration(model: MediaPlaylistModel): number {
  let target = Math.max(1, Math.round(model.targetDuration ?? 1));
  for (const s of model.segments) target = Math.max(target, Math.round(Number(s.duration.toFixed(5))));
  return target;
}

function renderServerControl(sc: ServerControl): string {
  const attrs: string[] = [];
  if (sc.canBlockReload) attrs.push('CAN-BLOCK-RELOAD=YES');
  if (sc.canSkipUntil !== undefined) attrs.push(`CAN-SKIP-UNTIL=${decimal(sc.canSkipUntil)}`);
  if (sc.canSkipUntil !== undefined && sc.canSkipDateRanges) attrs.push('CAN-SKIP-DATERANGES=YES');
  if (sc.holdBack !== undefined) attrs.push(`HOLD-BACK=${decimal(sc.holdBack)}`);
  if (sc.partHoldBack !== undefined) attrs.push(`PART-HOLD-BACK=${decimal(sc.partHoldBack)}`);
  return `#EXT-X-SERVER-CONTROL:${attrs.join(',')}`;
}

function renderPart(part: PlaylistPart): string {
  const attrs = [`DURATION=${part.duration.toFixed(5)}`, `URI=${quoted(part.uri)}`];
  if (part.independent) attrs.push('INDEPENDENT=YES');
  if (part.byteRange) {
    const { length, offset } = part.byteRange;
    attrs.push(`BYTERANGE=${quoted(offset === undefined ? `${integer(length)}` : `${integer(length)}@${integer(offset)}`)}`);
  }
  if (part.gap) attrs.push('GAP=YES');
  return `#EXT-X-PART:${attrs.join(',')}`;
}

function renderPreloadHint(hint: PreloadHint): string {
  const attrs = [`TYPE=${hint.type}`, `URI=${quoted(hint.uri)}`];
  if (hint.byteRangeStart !== undefined) attrs.push(`BYTERANGE-START=${integer(hint.byteRangeStart)}`);
  if (hint.byteRangeLength !== undefined) attrs.push(`BYTERANGE-LENGTH=${integer(hint.byteRangeLength)}`);
  return `#EXT-X-PRELOAD-HINT:${attrs.join(',')}`;
}

function renderRenditionReport(report: RenditionReport): string {
  const attrs = [`URI=${quoted(report.uri)}`];
  if (report.lastMsn !== undefined) attrs.push(`LAST-MSN=${integer(report.lastMsn)}`);
  if (report.lastPart !== undefined) attrs.push(`LAST-PART=${integer(report.lastPart)}`);
  return `#EXT-X-RENDITION-REPORT:${attrs.join(',')}`;
}

/** quoted-string: no double quote, CR or LF inside (section 4.2). */
function quoted(value: string): string {
  if (/["\r\n]/.test(value)) throw new RangeError(`value cannot be a quoted-string: ${JSON.stringify(value)}`);
  return `"${value}"`;
}

/** A URI line must be one line and not look like a tag or comment. */
function uriLine(uri: string): string {
  if (uri === '' || /[\r\n]/.test(uri) || uri.startsWith('#')) throw new RangeError(`invalid URI line: ${JSON.stringify(uri)}`);
  return uri;
}

/** decimal-integer: 0 to 2^64-1, no sign, no exponent. */
function integer(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`not a decimal-integer: ${n}`);
  return String(n);
}

/** decimal-floating-point, non-negative, at most 5 decimals, trailing zeros dropped. */
function decimal(n: number): string {
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`not a decimal-floating-point: ${n}`);
  return n.toFixed(5).replace(/\.?0+$/, '');
}
