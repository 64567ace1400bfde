import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from '../observability/logger.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { Semaphore, SemaphoreFullError } from '../lib/semaphore.ts';
import { runFfmpegJob } from './ffmpeg-job.ts';
import { videoPrefix } from './finalize.ts';
import { resolveTime, scaleFilters, thumbnailCacheName, type ThumbnailParams } from './thumbnail-params.ts';
import { segmentsCovering, type SourceRendition, type VodSource } from './vod-source.ts';

export interface ThumbnailServiceOptions {
  store: ObjectStore;
  source: VodSource;
  logger: Logger;
  ffmpegPath: string;
  /** Scratch files (init + segments handed to FFmpeg) go under here. */
  tmpDir: string;
  /** FFmpeg processes rendering thumbnails at once on this node. */
  maxConcurrent: number;
  /** Renders waiting for a slot; past this, requests get 503 (a flood of distinct thumbnails). */
  maxQueued: number;
  timeoutMs?: number;
  /** The video's thumbnailTimestampPct (0…1), the time of a thumbnail asked for without one. */
  defaultFraction: (uid: string) => Promise<number>;
}

export type ThumbnailResult =
  | { ok: true; body: Buffer | Readable; size: number; contentType: string; cache: 'hit' | 'miss' }
  | { ok: false; status: 400 | 404 | 503; code: string; message: string };

/** Renditions above this are not decoded for a thumbnail: a 4K frame costs much and shows no more. */
const MAX_SOURCE_HEIGHT = 1080;
const MAX_JPEG_BYTES = 8 * 1024 * 1024;
const MAX_GIF_BYTES = 32 * 1024 * 1024;
const CONTENT_TYPE = { jpg: 'image/jpeg', gif: 'image/gif' } as const;

/**
 * Thumbnails rendered on demand from a finished video's stored segments: the segment covering the
 * time (and, for a GIF, the ones after it) is fetched with its init segment, FFmpeg seeks and
 * renders, and the picture is cached in the store next to the video (`thumbnails/<params>`), so
 * each distinct picture is rendered once. Identical requests in flight share one render; renders
 * on this node are bounded in number, and a full wait list is refused rather than queued.
 */
export class ThumbnailService {
  readonly #o: ThumbnailServiceOptions;
  readonly #log: Logger;
  readonly #slots: Semaphore;
  readonly #inflight = new Map<string, Promise<Buffer>>();
  #rendered = 0;

  constructor(opts: ThumbnailServiceOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'thumbnails' });
    this.#slots = new Semaphore(opts.maxConcurrent, opts.maxQueued);
  }

  /** FFmpeg renders done by this node (cache misses that rendered). */
  get rendered(): number {
    return this.#rendered;
  }

  async get(uid: string, params: ThumbnailParams): Promise<ThumbnailResult> {
    const renditions = await this.#o.source.renditions(uid);
    if (!renditions) return { ok: false, status: 404, code: 'NOT_FOUND', message: 'no such video, or it is not ready yet' };
    const rendition = pickRendition(renditions, params.height ?? params.width);
    const segments = await this.#o.source.segments(uid, rendition.name);
    const last = segments?.at(-1);
    if (!segments || !last) return { ok: false, status: 404, code: 'NOT_FOUND', message: 'the video has no media' };
    const duration = last.start + last.duration;
    const seconds = resolveTime(params.time, await this.#o.defaultFraction(uid), duration);
    if (seconds === undefined) {
      return { ok: false, status: 400, code: 'TIME_OUT_OF_RANGE', message: `time is past the end of the video (${duration.toFixed(3)} s)` };
    }
    const key = `${videoPrefix(uid)}thumbnails/${thumbnailCacheName(params, seconds)}`;
    const contentType = CONTENT_TYPE[params.format];
    const cached = await this.#o.store.get(key);
    if (cached) return { ok: true, body: cached.body, size: cached.length, contentType, cache: 'hit' };

    let pending = this.#inflight.get(key);
    if (!pending) {
      if (this.#slots.full) {
        return { ok: false, status: 503, code: 'THUMBNAIL_BUSY', message: 'too many thumbnails being rendered; retry shortly' };
      }
      pending = this.#render(uid, rendition.name, segments, seconds, params, key).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    try {
      const body = await pending;
      return { ok: true, body, size: body.length, contentType, cache: 'miss' };
    } catch (error) {
      if (error instanceof SemaphoreFullError) {
        return { ok: false, status: 503, code: 'THUMBNAIL_BUSY', message: 'too many thumbnails being rendered; retry shortly' };
      }
      throw error;
    }
  }

  async #render(
    uid: string,
    rendition: string,
    segments: Parameters<typeof segmentsCovering>[0],
    seconds: number,
    params: ThumbnailParams,
    key: string,
  ): Promise<Buffer> {
    return this.#slots.run(async () => {
      const span = params.format === 'gif' ? params.duration : 0.001;
      const files = segmentsCovering(segments, seconds, span);
      const head = files[0];
      if (!head) throw new Error('no segment covers the time');
      // Seeking to the very end of a segment can land past its last frame: stay a frame inside.
      const offset = Math.max(0, Math.min(seconds - head.start, head.duration - 0.1));
      await mkdir(this.#o.tmpDir, { recursive: true });
      const dir = await mkdtemp(join(this.#o.tmpDir, 'thumb-'));
      try {
        const input = join(dir, 'in.mp4');
        await this.#o.source.writeFiles(uid, rendition, [head.map, ...files.map((f) => f.uri)], input);
        const filters = scaleFilters(params);
        const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-ss', offset.toFixed(3)];
        if (params.format === 'jpg') {
          args.push('-i', input, '-an', '-frames:v', '1');
          if (filters.length > 0) args.push('-vf', filters.join(','));
          args.push('-c:v', 'mjpeg', '-q:v', '3', '-pix_fmt', 'yuvj420p', '-f', 'image2pipe', 'pipe:1');
        } else {
          const chain = [`fps=${params.fps}`, ...filters, 'split[a][b]', '[a]palettegen=stats_mode=diff[p]', '[b][p]paletteuse'];
          args.push('-t', params.duration.toFixed(3), '-i', input, '-an', '-filter_complex', chain.join(','), '-loop', '0', '-f', 'gif', 'pipe:1');
        }
        const started = Date.now();
        const body = await runFfmpegJob({
          ffmpegPath: this.#o.ffmpegPath,
          args,
          timeoutMs: this.#o.timeoutMs ?? 30_000,
          maxStdoutBytes: params.format === 'jpg' ? MAX_JPEG_BYTES : MAX_GIF_BYTES,
        });
        if (body.length === 0) throw new Error('ffmpeg rendered no frame');
        this.#rendered++;
        this.#log.debug({ video: uid, key, bytes: body.length, ms: Date.now() - started }, 'thumbnail rendered');
        // The cache is an optimisation: a failed write costs a render next time, not this answer.
        // A video deleted during the render must not get a cached picture back.
        try {
          if (await this.#o.store.head(`${videoPrefix(uid)}master.m3u8`)) {
            await this.#o.store.put(key, body, { contentType: CONTENT_TYPE[params.format] });
          }
        } catch (error) {
          this.#log.warn({ err: error, video: uid }, 'could not cache a thumbnail');
        }
        return body;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
}

/**
 * The smallest rendition at least as tall as the picture asked for (no upscaling, least decoding),
 * never one above 1080 lines when a smaller one exists.
 */
export function pickRendition(renditions: readonly SourceRendition[], wanted: number | undefined): SourceRendition {
  const usable = renditions.filter((r) => r.height <= MAX_SOURCE_HEIGHT);
  const pool = usable.length > 0 ? usable : [...renditions].sort((a, b) => a.height - b.height).slice(0, 1);
  const ascending = [...pool].sort((a, b) => a.height - b.height);
  const fit = wanted === undefined ? undefined : ascending.find((r) => r.height >= wanted);
  return fit ?? (ascending.at(-1) as SourceRendition);
}
