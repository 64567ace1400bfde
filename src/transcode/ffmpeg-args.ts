/**
 * The FFmpeg command line of one live session (FLV on stdin) or one uploaded file: one fragmented
 * MP4 per rendition on pipe:3, pipe:4, … Pure; checked against FFmpeg 5.1.
 */
import type { RenditionSpec } from './ladder.ts';

export interface LiveArgsOptions {
  /** In output order: rendition i is written to pipe:(3 + i). */
  renditions: readonly RenditionSpec[];
  /**
   * Keyframe interval of transcoded renditions when there is no copy rendition. With a copy
   * rendition, transcoded keyframes follow the source's instead (see `keyframeArgs`).
   */
  gopSeconds: number;
  /**
   * Source frame rate when known. Without a copy rendition it caps x264's own GOP at twice
   * gopSeconds, a safety net should the forced-keyframe expression ever miss.
   */
  fps?: number;
  /** Fragment (LL-HLS part) duration in seconds, e.g. 0.25. */
  partDurationSeconds: number;
  sourceAudio: 'aac' | 'other' | 'none';
  /** A live session's FLV on stdin, or an uploaded file read as fast as FFmpeg can. */
  input: 'flv-stdin' | { file: string };
  /** Progress lines (`out_time_us=…`, `progress=end`) on stdout, for a file's completion. */
  progress?: boolean;
  /**
   * Size of the live source when known: up to 1080p its decoder runs without frame threading
   * (see `decoderArgs`).
   */
  sourceSize?: { width?: number; height?: number };
  /** libx264 preset; 'veryfast' by default. */
  x264Preset?: string;
  /** Encoder threads per transcoded rendition; FFmpeg's default (auto) when omitted. */
  threadsPerRendition?: number;
  /**
   * Encode audio of transcoded renditions at the rung's bitrate even when the source audio is AAC.
   * Off by default: copying costs no CPU and keeps audio timestamps identical across renditions,
   * at the price of low rungs carrying the source's audio bitrate.
   */
  transcodeAudio?: boolean;
}

/** The first output pipe's file descriptor (0–2 are stdin, stdout, stderr). */
export const FIRST_OUTPUT_FD = 3;

/** libx264's cap on the GOP when keyframes are forced; large so x264 never adds its own. */
const NO_NATURAL_KEYFRAMES = 100_000;

/** Default AAC bitrate when a rendition does not name one. */
const DEFAULT_AUDIO_KBPS = 128;

/**
 * Fast start: the live session sends the FLV header and sequence headers first, which is all the
 * FLV demuxer needs to describe the streams; probing longer only delays the first part.
 * `nobuffer` is deliberately absent: it discards the packets read while probing (the first
 * half-second of video, keyframe included).
 */
const INPUT_ARGS = [
  '-hide_banner',
  '-loglevel', 'warning',
  '-fflags', '+genpts',
  '-analyzeduration', '500000',
  '-probesize', '500000',
  '-f', 'flv',
  '-i', 'pipe:0',
];

/** Largest live source decoded without frame threading: 1080p (1088 coded lines). */
const SLICE_DECODE_MAX_PIXELS = 1920 * 1088;

/**
 * FFmpeg's H.264 decoder uses frame threading by default, which holds each decoded frame until
 * (threads − 1) later frames have arrived: on a live input paced in real time that is 2 frames
 * (~67 ms at 30 fps on 2 cores) added to every transcoded rendition. Slice threading adds no
 * delay (and still runs in parallel on sources with several slices per frame, as low-latency
 * encoders send); one core decodes 1080p60 comfortably, larger or unknown sources keep the
 * default. Decoder options go before the input they apply to.
 */
function decoderArgs(opts: LiveArgsOptions): string[] {
  if (opts.renditions.every((r) => r.copy)) return [];
  const w = opts.sourceSize?.width;
  const h = opts.sourceSize?.height;
  if (!(w !== undefined && h !== undefined && w > 0 && h > 0 && w * h <= SLICE_DECODE_MAX_PIXELS)) return [];
  return ['-thread_type', 'slice'];
}

/** A whole file, as fast as it decodes; `-nostdin`: nothing is ever typed at this FFmpeg. */
function fileInputArgs(file: string): string[] {
  return ['-hide_banner', '-loglevel', 'warning', '-nostdin', '-i', file];
}

export function buildLiveArgs(opts: LiveArgsOptions): string[] {
  if (opts.renditions.length === 0) throw new Error('buildLiveArgs: at least one rendition is required');
  if (!(opts.partDurationSeconds > 0)) throw new Error('buildLiveArgs: partDurationSeconds must be > 0');
  if (!(opts.gopSeconds > 0)) throw new Error('buildLiveArgs: gopSeconds must be > 0');

  const hasCopy = opts.renditions.some((r) => r.copy);
  const args = opts.input === 'flv-stdin' ? [...INPUT_ARGS] : fileInputArgs(opts.input.file);
  if (opts.input === 'flv-stdin') args.splice(args.indexOf('-f'), 0, ...decoderArgs(opts));
  if (opts.progress) args.splice(1, 0, '-progress', 'pipe:1', '-nostats');
  opts.renditions.forEach((rendition, index) => {
    args.push(...mapArgs(opts));
    args.push(...(rendition.copy ? copyVideoArgs() : encodeVideoArgs(rendition, opts, hasCopy)));
    args.push(...audioArgs(rendition, opts));
    args.push(...fragmentedMp4Args(opts.partDurationSeconds, opts.fps), `pipe:${FIRST_OUTPUT_FD + index}`);
  });
  return args;
}

function mapArgs(opts: LiveArgsOptions): string[] {
  // `?`: a publisher may send video only for a while; the output must not fail on it.
  return opts.sourceAudio === 'none' ? ['-map', '0:v:0'] : ['-map', '0:v:0', '-map', '0:a:0?'];
}

function copyVideoArgs(): string[] {
  return ['-c:v', 'copy'];
}

function encodeVideoArgs(r: RenditionSpec, opts: LiveArgsOptions, hasCopy: boolean): string[] {
  if (r.width === undefined || r.height === undefined || r.videoBitrateKbps === undefined) {
    throw new Error(`buildLiveArgs: transcoded rendition ${r.name} needs width, height and videoBitrateKbps`);
  }
  const maxrate = r.maxrateKbps ?? r.videoBitrateKbps;
  const args = [
    // FFmpeg decodes each input stream once and hands the frames to every output's filter
    // graph, so a per-output scale costs one decode in total, like a split graph would.
    '-vf', `scale=${r.width}:${r.height}`,
    '-c:v', 'libx264',
    '-preset', opts.x264Preset ?? 'veryfast',
    '-tune', 'zerolatency',
    '-profile:v', r.height > 480 ? 'high' : 'main',
    '-pix_fmt', 'yuv420p',
    '-bf', '0',
    '-sc_threshold', '0',
    '-b:v', `${r.videoBitrateKbps}k`,
    '-maxrate', `${maxrate}k`,
    // One second of VBV: tight enough for sub-second parts, loose enough to keep quality.
    '-bufsize', `${maxrate}k`,
    // Keep the source's frame timing exactly: no duplicated or dropped frames, and timestamps in
    // the input's time base rather than re-quantised to 1/fps, so that keyframes of every
    // rendition carry the very same timestamps as the copied source.
    '-fps_mode', 'passthrough',
    '-enc_time_base:v', '-1',
    ...keyframeArgs(opts, hasCopy),
  ];
  if (opts.threadsPerRendition !== undefined) args.push('-threads:v', String(opts.threadsPerRendition));
  return args;
}

/**
 * Segment boundaries of all renditions must match. The copy rendition can only cut where the
 * publisher put keyframes, so with a copy rendition every transcoded keyframe is forced on a
 * source keyframe (`-force_key_frames source`, present in 5.1) and x264 adds none of its
 * own (huge -g, no scenecut). The cost: transcoded GOPs are as long as the publisher's.
 * Without a copy rendition the GOP is ours: a keyframe every gopSeconds of input time, and as
 * every output sees the same frames with the same timestamps, they land on the same frames.
 * Every output encodes the same frames with the same settings, so x264's own keyframes (the
 * safety cap) would coincide too. `forced-idr` makes forced keyframes IDR frames, which CMAF
 * segments must start with.
 */
function keyframeArgs(opts: LiveArgsOptions, hasCopy: boolean): string[] {
  const force = hasCopy ? 'source' : `expr:gte(t,n_forced*${formatNumber(opts.gopSeconds)})`;
  const gop = hasCopy || opts.fps === undefined ? NO_NATURAL_KEYFRAMES : Math.ceil(opts.fps * opts.gopSeconds) * 2;
  return ['-force_key_frames', force, '-forced-idr', '1', '-g', String(gop)];
}

function audioArgs(r: RenditionSpec, opts: LiveArgsOptions): string[] {
  if (opts.sourceAudio === 'none') return [];
  const copy = opts.sourceAudio === 'aac' && (r.copy || opts.transcodeAudio !== true);
  if (copy) return ['-c:a', 'copy'];
  return ['-c:a', 'aac', '-b:a', `${r.audioBitrateKbps ?? DEFAULT_AUDIO_KBPS}k`];
}

/**
 * CMAF-style fragmented MP4 on a pipe: ftyp+moov up front (empty_moov), then one moof+mdat per
 * fragment, cut at every video keyframe (frag_keyframe) and whenever a fragment reaches the part
 * duration (frag_duration, µs), whichever comes first. `flush_packets 1` pushes each fragment out
 * of FFmpeg's 32 KiB I/O buffer as soon as it is written instead of when the buffer fills.
 */
/**
 * FFmpeg's mp4 muxer cuts a fragment at the first packet of ANY track whose time since the
 * fragment's start reaches frag_duration. Asking for just under n whole video frames (n = frames
 * that fit in the part) gives parts of n frames — or n-1 when an AAC frame (21.3 ms) triggers the
 * cut first — so parts stay within PART-TARGET and, from 24 to 60 fps, above the 85 % floor of
 * rfc8216bis 4.4.4.9. Without a known frame rate, 30 fps is assumed.
 */
export function fragmentDurationMicros(partDurationSeconds: number, fps = 30): number {
  const frames = Math.max(1, Math.floor(partDurationSeconds * fps + 1e-9));
  return Math.max(1000, Math.round((frames / fps) * 1_000_000) - 1000);
}

function fragmentedMp4Args(partDurationSeconds: number, fps: number | undefined): string[] {
  return [
    '-f', 'mp4',
    '-movflags', '+frag_keyframe+empty_moov+default_base_moof+skip_trailer',
    '-frag_duration', String(fragmentDurationMicros(partDurationSeconds, fps)),
    '-flush_packets', '1',
  ];
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toFixed(6)));
}
