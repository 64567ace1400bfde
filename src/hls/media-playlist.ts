/**
 * The LL-HLS media playlist model of one rendition window (rfc8216bis, appendix B profile):
 * EXT-X-PART for the last three target durations plus the segment in progress, the preload hint,
 * server control, rendition reports and delta updates. Pure: window and settings in, model out.
 */
import type { MediaPlaylistModel, PlaylistPart, PlaylistSegment, RenditionReport } from './playlist.ts';
import type { PartPosition, RenditionWindow, WindowSegment } from './rendition-window.ts';

export type SkipDirective = 'YES' | 'v2';

export interface MediaPlaylistInput {
  window: RenditionWindow;
  /** Integer seconds, the same for every rendition of the session. */
  targetDuration: number;
  partTarget: number;
  ended: boolean;
  /** The part the preload hint names (ignored once ended). */
  nextPart: PartPosition | undefined;
  renditionReports: RenditionReport[];
  skip?: SkipDirective;
}

/** Float sums of part durations: a hair over a limit still counts as within it. */
const TOLERANCE = 1e-3;

/** Server control of a session; every rendition must announce the same values (6.2.4). */
export function serverControl(targetDuration: number, partTarget: number): NonNullable<MediaPlaylistModel['serverControl']> {
  return {
    canBlockReload: true,
    // Skip Boundary at least six target durations (4.4.3.8).
    canSkipUntil: 6 * targetDuration,
    // At least three target durations (HOLD-BACK) and three part targets (PART-HOLD-BACK).
    holdBack: 3 * targetDuration,
    partHoldBack: 3 * partTarget,
  };
}

export function buildMediaPlaylistModel(input: MediaPlaylistInput): MediaPlaylistModel {
  const { window, targetDuration, partTarget, ended } = input;
  const segments = window.segments;
  const open = ended ? undefined : window.openSegment;
  const openDuration = open?.duration ?? 0;
  const playlistEnd = segments.reduce((sum, s) => sum + s.duration, 0) + openDuration;

  // EXT-X-PART tags go once they are more than three target durations from the end (6.2.2).
  const partHorizon = 3 * targetDuration;
  const skipCount = input.skip && !ended ? skippable(segments, 6 * targetDuration) : 0;

  let start = 0;
  const rendered: PlaylistSegment[] = [];
  for (const s of segments) {
    const fromStart = playlistEnd - start;
    start += s.duration;
    const segment: PlaylistSegment = {
      uri: window.segmentName(s.msn),
      duration: s.duration,
      mapUri: s.initName,
      programDateTime: s.programDateTime,
      discontinuity: s.discontinuity,
    };
    if (fromStart <= partHorizon + TOLERANCE) segment.parts = s.parts.map((p) => part(window, s.msn, p));
    rendered.push(segment);
  }

  const model: MediaPlaylistModel = {
    targetDuration,
    mediaSequence: window.mediaSequence,
    discontinuitySequence: window.discontinuitySequence,
    endList: ended,
    partTarget,
    serverControl: serverControl(targetDuration, partTarget),
    segments: rendered.slice(skipCount),
    renditionReports: input.renditionReports,
  };
  if (skipCount > 0) {
    model.skippedSegments = skipCount;
    // We publish no EXT-X-DATERANGE, so none was removed; v2 still requires the attribute.
    if (input.skip === 'v2') model.recentlyRemovedDateRanges = [];
  }
  const initName = window.initName;
  if (open && open.parts.length > 0) {
    model.openParts = open.parts.map((p) => part(window, open.msn, p));
    model.openProgramDateTime = open.programDateTime;
    model.openDiscontinuity = window.openDiscontinuity;
  }
  if (initName !== undefined) model.openMapUri = initName;
  if (!ended && input.nextPart) {
    model.preloadHint = { type: 'PART', uri: window.partName(input.nextPart.msn, input.nextPart.part) };
  }
  return model;
}

/**
 * Segments a delta update leaves out: those further than the Skip Boundary from the end of the
 * last segment (measured from their own end, so a segment straddling the boundary stays).
 */
function skippable(segments: readonly WindowSegment[], skipBoundary: number): number {
  let fromEnd = 0;
  for (let i = segments.length - 1; i >= 0; i--) {
    if (fromEnd >= skipBoundary - TOLERANCE) return i + 1;
    fromEnd += segments[i]?.duration ?? 0;
  }
  return 0;
}

function part(window: RenditionWindow, msn: number, p: { index: number; duration: number; independent: boolean }): PlaylistPart {
  return { uri: window.partName(msn, p.index), duration: p.duration, independent: p.independent };
}
