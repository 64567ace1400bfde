/**
 * The query of `/{id}/thumbnails/thumbnail.jpg` and `thumbnail.gif` (Cloudflare Stream's names):
 * parsed and bounded here, purely, before any lookup or FFmpeg run. Times are `68`, `68s`, `1m8s`,
 * `1h2m3.5s` or a percentage of the video (`25%`); sizes are pixels; `fit` is Cloudflare's
 * crop | clip | scale | fill. Anything else is refused with a reason (HTTP 400).
 */

export type ThumbnailFit = 'crop' | 'clip' | 'scale' | 'fill';
export const THUMBNAIL_FITS: readonly ThumbnailFit[] = ['crop', 'clip', 'scale', 'fill'];

/** A point in the video: absolute seconds, or a fraction of its duration (resolved later). */
export type ThumbnailTime = { seconds: number } | { fraction: number };

export interface JpegParams {
  format: 'jpg';
  /** Undefined: the video's default (thumbnailTimestampPct). */
  time: ThumbnailTime | undefined;
  width: number | undefined;
  height: number | undefined;
  fit: ThumbnailFit;
}

export interface GifParams {
  format: 'gif';
  time: ThumbnailTime | undefined;
  width: number | undefined;
  height: number | undefined;
  fit: ThumbnailFit;
  /** Seconds. */
  duration: number;
  fps: number;
}

export type ThumbnailParams = JpegParams | GifParams;

export const THUMBNAIL_LIMITS = {
  minSize: 16,
  maxSize: 1920,
  /** Longest time accepted at parse time (the video's own duration is checked later). */
  maxTimeSeconds: 24 * 3600,
  gif: {
    defaultDuration: 5,
    maxDuration: 15,
    defaultFps: 8,
    minFps: 1,
    maxFps: 15,
    /** A GIF's every frame is a full palette image: its default and largest size are small. */
    defaultHeight: 240,
    maxSize: 640,
  },
} as const;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

const KNOWN = {
  jpg: new Set(['time', 'width', 'height', 'fit', 'token']),
  gif: new Set(['time', 'width', 'height', 'fit', 'duration', 'fps', 'token']),
};

// 68 | 68.5 | 68s | 1m8s | 1h | 1h2m3.5s — each unit at most once, in that order.
const TIME = /^(?:(\d{1,5})h)?(?:(\d{1,5})m)?(?:(\d{1,6}(?:\.\d{1,3})?)s?)?$/;
const PERCENT = /^(\d{1,3}(?:\.\d{1,3})?)%$/;
const INTEGER = /^[1-9]\d{0,5}$/;

/** `query` as fastify parses it: a value is a string, or an array when the name repeats. */
export function parseThumbnailQuery(
  format: 'jpg' | 'gif',
  query: Record<string, string | string[] | undefined>,
): ParseResult<ThumbnailParams> {
  const values: Record<string, string> = {};
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined) continue;
    if (!KNOWN[format].has(name)) return fail(`unknown parameter "${shorten(name)}" for thumbnail.${format}`);
    if (Array.isArray(value)) return fail(`parameter "${name}" is given more than once`);
    values[name] = value;
  }

  const time = values.time === undefined ? { ok: true as const, value: undefined } : parseTime(values.time);
  if (!time.ok) return time;
  const maxSize = format === 'gif' ? THUMBNAIL_LIMITS.gif.maxSize : THUMBNAIL_LIMITS.maxSize;
  const width = parseSize('width', values.width, maxSize);
  if (!width.ok) return width;
  const height = parseSize('height', values.height, maxSize);
  if (!height.ok) return height;
  let fit: ThumbnailFit = 'crop';
  if (values.fit !== undefined) {
    if (!(THUMBNAIL_FITS as readonly string[]).includes(values.fit)) {
      return fail(`fit must be one of ${THUMBNAIL_FITS.join(', ')}`);
    }
    fit = values.fit as ThumbnailFit;
  }
  if (format === 'jpg') return { ok: true, value: { format, time: time.value, width: width.value, height: height.value, fit } };

  const { gif } = THUMBNAIL_LIMITS;
  let duration: number = gif.defaultDuration;
  if (values.duration !== undefined) {
    const d = parseTime(values.duration);
    if (!d.ok) return fail(`duration: ${d.message}`);
    if (!('seconds' in d.value) || d.value.seconds <= 0 || d.value.seconds > gif.maxDuration) {
      return fail(`duration must be more than 0 s and at most ${gif.maxDuration} s (e.g. 4s)`);
    }
    duration = d.value.seconds;
  }
  let fps: number = gif.defaultFps;
  if (values.fps !== undefined) {
    const f = Number(values.fps);
    if (!/^\d{1,2}(?:\.\d{1,2})?$/.test(values.fps) || f < gif.minFps || f > gif.maxFps) {
      return fail(`fps must be a number from ${gif.minFps} to ${gif.maxFps}`);
    }
    fps = f;
  }
  return {
    ok: true,
    value: {
      format,
      time: time.value,
      width: width.value,
      // A GIF with no size asked for is kept small; one side given keeps the aspect ratio.
      height: height.value ?? (width.value === undefined ? gif.defaultHeight : undefined),
      fit,
      duration,
      fps,
    },
  };
}

export function parseTime(text: string): ParseResult<ThumbnailTime> {
  const pct = PERCENT.exec(text);
  if (pct) {
    const value = Number(pct[1]);
    if (value > 100) return fail('a percentage time must be from 0% to 100%');
    return { ok: true, value: { fraction: value / 100 } };
  }
  const m = text === '' ? null : TIME.exec(text);
  if (!m || (m[1] === undefined && m[2] === undefined && m[3] === undefined)) {
    return fail('time must look like 68, 68s, 1m8s, 1h2m3.5s or 25%');
  }
  const seconds = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
  if (seconds > THUMBNAIL_LIMITS.maxTimeSeconds) return fail(`time is beyond ${THUMBNAIL_LIMITS.maxTimeSeconds} s`);
  return { ok: true, value: { seconds } };
}

function parseSize(name: string, text: string | undefined, max: number): ParseResult<number | undefined> {
  if (text === undefined) return { ok: true, value: undefined };
  const n = INTEGER.test(text) ? Number(text) : NaN;
  if (!(n >= THUMBNAIL_LIMITS.minSize && n <= max)) return fail(`${name} must be a whole number of pixels from ${THUMBNAIL_LIMITS.minSize} to ${max}`);
  return { ok: true, value: n };
}

/** The time in seconds for a video `duration` s long; undefined when it lies past the end. */
export function resolveTime(time: ThumbnailTime | undefined, defaultFraction: number, duration: number): number | undefined {
  const t = time === undefined ? { fraction: defaultFraction } : time;
  if ('fraction' in t) {
    // The very end has no frame to show: the last frame is a moment before it.
    return Math.max(0, Math.min(t.fraction * duration, duration - 0.05));
  }
  return t.seconds <= duration ? Math.min(t.seconds, Math.max(0, duration - 0.05)) : undefined;
}

/**
 * The name a rendered thumbnail is cached under (one object per distinct picture): the time
 * rounded to 10 ms, every other parameter spelled out, so equal requests share one object.
 */
export function thumbnailCacheName(p: ThumbnailParams, seconds: number): string {
  const parts = [`t${Math.round(seconds * 100)}`, `w${p.width ?? 0}`, `h${p.height ?? 0}`, p.fit];
  if (p.format === 'gif') parts.push(`d${Math.round(p.duration * 1000)}`, `f${Math.round(p.fps * 100)}`);
  return `${parts.join('-')}.${p.format}`;
}

function fail(message: string): { ok: false; message: string } {
  return { ok: false, message };
}

function shorten(name: string): string {
  const clean = name.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 40 ? `${clean.slice(0, 40)}…` : clean;
}

/** FFmpeg video filters that bring a frame to the asked size: none when no size is asked for. */
export function scaleFilters(p: Pick<ThumbnailParams, 'width' | 'height' | 'fit'>): string[] {
  const { width: w, height: h, fit } = p;
  if (w === undefined && h === undefined) return [];
  // One side given: the other follows the aspect ratio, whatever the fit.
  if (w === undefined) return [`scale=-2:${h}`, 'setsar=1'];
  if (h === undefined) return [`scale=${w}:-2`, 'setsar=1'];
  switch (fit) {
    case 'scale':
      return [`scale=${w}:${h}`, 'setsar=1'];
    case 'clip':
      return [`scale=${w}:${h}:force_original_aspect_ratio=decrease`, 'setsar=1'];
    case 'fill':
      return [`scale=${w}:${h}:force_original_aspect_ratio=decrease`, `pad=${w}:${h}:(ow-iw)/2:(oh-ih)/2:black`, 'setsar=1'];
    case 'crop':
      return [`scale=${w}:${h}:force_original_aspect_ratio=increase`, `crop=${w}:${h}`, 'setsar=1'];
  }
}
