/**
 * Choosing the ABR ladder of one live session from the size of its source. Pure.
 */

/** One output of the session's FFmpeg process, in the order of its output pipes. */
export interface RenditionSpec {
  /** 'source' for the copied input, else the rung name ('1080p', '720p', …). */
  name: string;
  /** The source stream copied as is (no decode, no encode). */
  copy: boolean;
  /** Output size; for a copy rendition, the source size when known. */
  width?: number;
  height?: number;
  videoBitrateKbps?: number;
  maxrateKbps?: number;
  audioBitrateKbps?: number;
}

export interface LadderRung {
  name: string;
  height: number;
  videoBitrateKbps: number;
  audioBitrateKbps: number;
}

export const DEFAULT_LADDER: readonly LadderRung[] = [
  { name: '1080p', height: 1080, videoBitrateKbps: 4500, audioBitrateKbps: 128 },
  { name: '720p', height: 720, videoBitrateKbps: 2500, audioBitrateKbps: 128 },
  { name: '480p', height: 480, videoBitrateKbps: 1200, audioBitrateKbps: 96 },
  { name: '360p', height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 },
];

/**
 * When the source size is unknown (no onMetaData, sequence header not parsed), rungs up to this
 * height are offered: 720p is below what nearly every encoder that sends such a stream produces,
 * so it rarely upscales, and it still gives phones a cheap rendition. The copy rendition keeps
 * the full quality either way.
 */
export const UNKNOWN_SOURCE_MAX_HEIGHT = 720;

/** Used when only the height is known (or the width is nonsense). */
const DEFAULT_ASPECT = 16 / 9;

/** Peak rate over the average for transcoded rungs: a little headroom, still a tight VBV for live. */
const MAXRATE_FACTOR = 1.1;

export interface ChooseLadderOptions {
  /** Put the copied source first (the usual case). */
  includeSource: boolean;
  /** Upper bound on the number of renditions, the source included. */
  maxRenditions?: number;
  /**
   * Also produce the rung at the source's own height. For a source that cannot be copied (an
   * upload in a codec players lack), the top rung then stands in for the copy.
   */
  rungAtSourceHeight?: boolean;
}

/**
 * The renditions for a source: the copied source first (when asked), then every rung strictly
 * below the source's short side (its height, or its width in portrait), highest first. Never
 * upscales. The long side keeps the source aspect ratio; both are rounded to even numbers
 * (yuv420p needs even sizes).
 */
export function chooseLadder(
  source: { width?: number; height?: number },
  rungs: readonly LadderRung[],
  opts: ChooseLadderOptions,
): RenditionSpec[] {
  const out: RenditionSpec[] = [];
  const sourceHeight = positive(source.height);
  const sourceWidth = positive(source.width);

  if (opts.includeSource) {
    const copy: RenditionSpec = { name: 'source', copy: true };
    if (sourceWidth !== undefined && sourceHeight !== undefined) {
      copy.width = sourceWidth;
      copy.height = sourceHeight;
    }
    out.push(copy);
  }

  // A rung's height is the short side: a 720x1280 phone stream is "720p" and gets 480p and
  // 360p rungs in portrait, not a 608x1080 "1080p" above its real resolution.
  const portrait = sourceWidth !== undefined && sourceHeight !== undefined && sourceWidth < sourceHeight;
  const shortSide = portrait ? sourceWidth : sourceHeight;
  const longOverShort =
    sourceWidth !== undefined && sourceHeight !== undefined
      ? Math.max(sourceWidth, sourceHeight) / Math.min(sourceWidth, sourceHeight)
      : DEFAULT_ASPECT;
  const fits = (rung: LadderRung): boolean =>
    shortSide === undefined
      ? rung.height <= UNKNOWN_SOURCE_MAX_HEIGHT
      : rung.height < shortSide || (opts.rungAtSourceHeight === true && rung.height === shortSide);

  const chosen = [...rungs]
    .filter((rung) => rung.height > 0 && fits(rung))
    .sort((a, b) => b.height - a.height);
  for (const rung of chosen) {
    const short = even(rung.height);
    const long = even(rung.height * longOverShort);
    out.push({
      name: rung.name,
      copy: false,
      width: portrait ? short : long,
      height: portrait ? long : short,
      videoBitrateKbps: rung.videoBitrateKbps,
      maxrateKbps: Math.round(rung.videoBitrateKbps * MAXRATE_FACTOR),
      audioBitrateKbps: rung.audioBitrateKbps,
    });
  }

  const max = opts.maxRenditions;
  return max !== undefined && max >= 0 ? out.slice(0, max) : out;
}

function positive(n: number | undefined): number | undefined {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** Nearest even integer, at least 2. */
function even(n: number): number {
  return Math.max(2, Math.round(n / 2) * 2);
}
