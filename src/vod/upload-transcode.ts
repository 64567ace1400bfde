import { randomBytes } from 'node:crypto';
import { Fmp4Reader } from '../media/fmp4-reader.ts';
import { mainFragmentTrack } from '../media/mp4-types.ts';
import { HlsLiveStream, type LiveSegmentEvent } from '../hls/live-stream.ts';
import type { Logger } from '../observability/logger.ts';
import { buildLiveArgs } from '../transcode/ffmpeg-args.ts';
import { FfmpegProcess } from '../transcode/ffmpeg-process.ts';
import { chooseLadder, type LadderRung, type RenditionSpec } from '../transcode/ladder.ts';
import { videoPrefix, type FinalizeDeps } from './finalize.ts';
import type { ProbedUpload } from './upload-probe.ts';
import type { InitEntry, SegmentEntry } from './vod-playlist.ts';

/**
 * Transcodes one uploaded file with the live ladder code: the same renditions, FFmpeg arguments,
 * fMP4 reader and segmenter as a live session, and its segments written into the spool and the
 * video's manifest exactly as a recording's are — so an upload is stored and played like one.
 */

export interface UploadTranscodeSettings {
  ffmpegPath: string;
  ladder: readonly LadderRung[];
  includeSource: boolean;
  maxRenditions: number;
  gopSeconds: number;
  x264Preset: string;
  segmentTargetSeconds: number;
  partTargetSeconds: number;
  startTimeoutMs: number;
}

export interface UploadTranscodeJob {
  uid: string;
  file: string;
  probe: ProbedUpload;
  /** Media time done over the probed duration, 0–100. */
  onProgress: (pct: number) => void;
  signal: AbortSignal;
}

/** Codecs players have everywhere: such a source is offered as is, like a live source. */
function copyable(probe: ProbedUpload): boolean {
  return probe.video.codec === 'h264';
}

/** The renditions of an upload: the live ladder; a source that cannot be copied gets its own height encoded instead. */
export function uploadRenditions(probe: ProbedUpload, s: UploadTranscodeSettings): RenditionSpec[] {
  const copy = s.includeSource && copyable(probe);
  const renditions = chooseLadder(probe.video, s.ladder, {
    includeSource: copy,
    maxRenditions: s.maxRenditions,
    rungAtSourceHeight: !copy,
  });
  if (renditions.length > 0) return renditions;
  // Smaller than every rung, and not copyable: encoded at its own size with the smallest rung's rates.
  const lowest = [...s.ladder].sort((a, b) => a.height - b.height)[0];
  const even = (n: number) => Math.max(2, Math.round(n / 2) * 2);
  return [
    {
      name: 'source',
      copy: false,
      width: even(probe.video.width),
      height: even(probe.video.height),
      videoBitrateKbps: lowest?.videoBitrateKbps ?? 700,
      audioBitrateKbps: lowest?.audioBitrateKbps ?? 96,
    },
  ];
}

/** Parses `-progress` output: the media time reached, in seconds, from each `out_time_us=` line. */
export function progressParser(onTime: (seconds: number) => void): (text: string) => void {
  let partial = '';
  return (text) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^out_time_us=(\d+)/.exec(line.trim());
      if (m) onTime(Number(m[1]) / 1e6);
    }
  };
}

/** FFmpeg could not read the file to its end: the upload, not the server, is at fault. */
export class FfmpegFailedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FfmpegFailedError';
  }
}

/**
 * Runs FFmpeg over the file to the end; resolves once every segment is in the spool and listed
 * in the manifest (the caller finalizes), with the seconds of media written. Rejects on an
 * FFmpeg failure, a write failure or abort.
 */
export async function transcodeUpload(deps: FinalizeDeps, s: UploadTranscodeSettings, job: UploadTranscodeJob, log: Logger): Promise<number> {
  const { probe } = job;
  const renditions = uploadRenditions(probe, s);
  const args = buildLiveArgs({
    renditions,
    gopSeconds: s.gopSeconds,
    ...(probe.video.fps !== undefined ? { fps: probe.video.fps } : {}),
    partDurationSeconds: s.partTargetSeconds,
    sourceAudio: probe.audio ? (probe.audio.codec === 'aac' ? 'aac' : 'other') : 'none',
    input: { file: job.file },
    progress: true,
    x264Preset: s.x264Preset,
  });
  const hls = new HlsLiveStream({
    prefix: randomBytes(8).toString('hex'),
    segmentTarget: s.segmentTargetSeconds,
    windowSegments: 3,
    partTarget: s.partTargetSeconds,
  });
  for (const r of renditions) hls.addRendition(r.name, { bandwidthHint: (r.videoBitrateKbps ?? 0) * 1000 });
  log.info({ source: probe, renditions: renditions.map((r) => r.name) }, 'transcoding upload');

  const writer = new SegmentWriter(deps, job.uid, hls.prefix);
  hls.onSegment((event) => writer.add(event));
  const readers = renditions.map(() => new Fmp4Reader());
  const started = Date.now();
  const proc = new FfmpegProcess({
    ffmpegPath: s.ffmpegPath,
    args,
    outputs: renditions.length,
    logger: log,
    startTimeoutMs: s.startTimeoutMs,
    eofGraceMs: 0,
    onStdout: progressParser((t) => job.onProgress(Math.min(100, (t / probe.duration) * 100))),
  });
  let outputError: Error | undefined;
  proc.on('data', (index, chunk) => {
    const rendition = renditions[index];
    const reader = readers[index];
    if (!rendition || !reader || outputError) return;
    try {
      for (const event of reader.push(chunk)) {
        if (event.type === 'init') hls.pushInit(rendition.name, event.init);
        else {
          const track = mainFragmentTrack(event.fragment);
          const mediaMs = track && track.timescale > 0 ? (track.baseMediaDecodeTime / track.timescale) * 1000 : 0;
          hls.pushFragment(rendition.name, event.fragment, started + mediaMs);
        }
      }
    } catch (error) {
      outputError = error instanceof Error ? error : new Error(String(error));
      void proc.stop();
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; tail: string[] }>((resolve) =>
    proc.once('exit', (code, signal, tail) => resolve({ code, signal, tail })),
  );
  const abort = () => void proc.stop();
  job.signal.addEventListener('abort', abort, { once: true });
  try {
    await proc.start().catch((error: unknown) => {
      if (job.signal.aborted) throw error;
      throw new FfmpegFailedError(error instanceof Error ? error.message : String(error));
    });
    const { code, signal, tail } = await exited;
    if (job.signal.aborted) throw new Error('processing interrupted');
    if (outputError) throw new Error(`unreadable FFmpeg output: ${outputError.message}`, { cause: outputError });
    if (code !== 0) throw new FfmpegFailedError(`ffmpeg ${signal ? `was killed by ${signal}` : `exited with code ${code}`}: ${tail.join(' | ')}`);
    hls.end();
    await writer.done();
    return writer.duration;
  } finally {
    job.signal.removeEventListener('abort', abort);
    await proc.stop();
  }
}

/** Writes segments into the spool and manifest in order per rendition; the first failure fails the upload. */
class SegmentWriter {
  readonly #deps: FinalizeDeps;
  readonly #uid: string;
  readonly #prefix: string;
  readonly #chains = new Map<string, Promise<void>>();
  readonly #inits = new Set<string>();
  readonly #durations = new Map<string, number>();
  #error: unknown;

  constructor(deps: FinalizeDeps, uid: string, prefix: string) {
    this.#deps = deps;
    this.#uid = uid;
    this.#prefix = prefix;
  }

  add(event: LiveSegmentEvent): void {
    const previous = this.#chains.get(event.rendition) ?? Promise.resolve();
    this.#chains.set(
      event.rendition,
      previous.then(() => (this.#error === undefined ? this.#write(event) : undefined)).catch((error: unknown) => {
        this.#error ??= error;
      }),
    );
  }

  /** Seconds of media written, in the longest rendition. */
  get duration(): number {
    return Math.max(0, ...this.#durations.values());
  }

  async done(): Promise<void> {
    await Promise.all(this.#chains.values());
    if (this.#error !== undefined) throw this.#error;
  }

  async #write(event: LiveSegmentEvent): Promise<void> {
    const { rendition, init, segment } = event;
    const base = `${videoPrefix(this.#uid)}${rendition}/`;
    if (!this.#inits.has(`${rendition}/${init.name}`)) {
      await this.#deps.spool.add(base + init.name, init.data, { contentType: 'video/mp4' });
      await this.#deps.videos.appendManifest(this.#uid, describeInit(rendition, init.name, init.data));
      this.#inits.add(`${rendition}/${init.name}`);
    }
    const name = `seg-${this.#prefix}-${segment.msn}.m4s`;
    await this.#deps.spool.add(base + name, segment.data, { contentType: 'video/iso.segment' });
    const entry: SegmentEntry = { r: rendition, t: 'seg', f: name, i: init.name, d: segment.duration, b: segment.data.length };
    if (segment.discontinuity) entry.disc = true;
    await this.#deps.videos.appendManifest(this.#uid, entry);
    this.#durations.set(rendition, (this.#durations.get(rendition) ?? 0) + segment.duration);
  }
}

/** The manifest entry of an init segment: its codecs and size, read from its moov. */
function describeInit(rendition: string, name: string, data: Buffer): InitEntry {
  const entry: InitEntry = { r: rendition, t: 'init', f: name, codecs: [], b: data.length };
  const event = new Fmp4Reader().push(data).find((e) => e.type === 'init');
  if (event?.type !== 'init') return entry;
  const video = event.init.tracks.find((t) => t.kind === 'video');
  const audio = event.init.tracks.find((t) => t.kind === 'audio');
  entry.codecs = [video?.codec, audio?.codec].filter((c): c is string => !!c);
  if (video?.width) entry.w = video.width;
  if (video?.height) entry.h = video.height;
  return entry;
}
