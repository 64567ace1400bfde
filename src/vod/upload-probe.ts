import { execFile } from 'node:child_process';
import { open } from 'node:fs/promises';
import path from 'node:path';

/**
 * What an uploaded file holds, read with ffprobe before anything is queued: a file that is not a
 * video, is broken or is too long is refused here, with Cloudflare Stream's errorReasonCodes.
 */

export type UploadRejectReason =
  | 'ERR_NON_VIDEO'
  | 'ERR_MALFORMED_VIDEO'
  | 'ERR_DURATION_EXCEED_CONSTRAINT'
  | 'ERR_DURATION_TOO_SHORT';

export class UploadRejectedError extends Error {
  readonly reasonCode: UploadRejectReason;

  constructor(reasonCode: UploadRejectReason, message: string) {
    super(message);
    this.name = 'UploadRejectedError';
    this.reasonCode = reasonCode;
  }
}

export interface ProbedUpload {
  /** Seconds. */
  duration: number;
  formatName: string;
  video: { codec: string; width: number; height: number; fps?: number };
  audio?: { codec: string };
}

interface FfprobeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  disposition?: { attached_pic?: number };
}

interface FfprobeOutput {
  streams?: FfprobeStream[];
  format?: { format_name?: string; duration?: string };
}

/** Demuxers that read pictures or text, not video: a still image probes as a one-frame video. */
const NOT_VIDEO_FORMATS = /^(image2|[a-z0-9]+_pipe|tty|gif|apng|webp|svg|txt|srt|ass|webvtt|ico)$/;
const MIN_DURATION = 0.1;

function frameRate(text: string | undefined): number | undefined {
  const m = /^(\d+)\/(\d+)$/.exec(text ?? '');
  if (!m) return undefined;
  const fps = Number(m[1]) / Number(m[2]);
  return Number.isFinite(fps) && fps > 0 && fps <= 240 ? fps : undefined;
}

/** Pure: ffprobe's JSON in, the upload's description out, or an UploadRejectedError. */
export function interpretProbe(output: FfprobeOutput, limits: { maxDurationSeconds: number }): ProbedUpload {
  const formatName = output.format?.format_name ?? '';
  const streams = output.streams ?? [];
  const video = streams.find((s) => s.codec_type === 'video' && s.disposition?.attached_pic !== 1);
  if (!video || NOT_VIDEO_FORMATS.test(formatName)) {
    throw new UploadRejectedError('ERR_NON_VIDEO', `The upload is not a video (${formatName || 'unknown format'}, no video stream)`);
  }
  const width = video.width ?? 0;
  const height = video.height ?? 0;
  if (!(width > 0 && height > 0) || !video.codec_name) {
    throw new UploadRejectedError('ERR_MALFORMED_VIDEO', 'The video stream has no size or codec');
  }
  const duration = Number(output.format?.duration);
  if (!Number.isFinite(duration)) throw new UploadRejectedError('ERR_MALFORMED_VIDEO', 'The video has no duration');
  if (duration < MIN_DURATION) throw new UploadRejectedError('ERR_DURATION_TOO_SHORT', `The video is shorter than ${MIN_DURATION} s`);
  if (duration > limits.maxDurationSeconds) {
    throw new UploadRejectedError(
      'ERR_DURATION_EXCEED_CONSTRAINT',
      `The video lasts ${duration.toFixed(1)} s, more than the ${limits.maxDurationSeconds} s allowed`,
    );
  }
  const audio = streams.find((s) => s.codec_type === 'audio' && s.codec_name);
  const fps = frameRate(video.avg_frame_rate) ?? frameRate(video.r_frame_rate);
  return {
    duration,
    formatName,
    video: { codec: video.codec_name, width, height, ...(fps !== undefined ? { fps } : {}) },
    ...(audio?.codec_name ? { audio: { codec: audio.codec_name } } : {}),
  };
}

/** ffprobe next to the configured ffmpeg (same directory), or from PATH. */
export function ffprobePathFor(ffmpegPath: string): string {
  return ffmpegPath.includes('/') ? path.join(path.dirname(ffmpegPath), 'ffprobe') : 'ffprobe';
}

/** Container signatures: a file that starts like a video container but cannot be read is broken, not "not a video". */
function looksLikeContainer(head: Buffer): boolean {
  const at4 = head.subarray(4, 8).toString('latin1');
  return (
    ['ftyp', 'moov', 'mdat', 'free', 'wide', 'skip'].includes(at4) ||
    head.subarray(0, 4).equals(Buffer.from([0x1a, 0x45, 0xdf, 0xa3])) || // Matroska / WebM
    head.subarray(0, 3).toString('latin1') === 'FLV' ||
    head.subarray(0, 4).toString('latin1') === 'RIFF' ||
    (head[0] === 0x47 && head[188] === 0x47) // MPEG-TS
  );
}

export async function probeUpload(
  file: string,
  opts: { ffprobePath: string; maxDurationSeconds: number; timeoutMs?: number },
): Promise<ProbedUpload> {
  let stdout: string;
  try {
    stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        opts.ffprobePath,
        ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file],
        { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 8 * 1024 * 1024 },
        (error, out) => (error ? reject(error) : resolve(out)),
      );
    });
  } catch (error) {
    // ffprobe itself missing is our fault, not the upload's.
    if ((error as { code?: unknown }).code === 'ENOENT') throw error;
    const handle = await open(file, 'r');
    const head = Buffer.alloc(256);
    try {
      await handle.read(head, 0, head.length, 0);
    } finally {
      await handle.close();
    }
    if (looksLikeContainer(head)) {
      throw new UploadRejectedError('ERR_MALFORMED_VIDEO', 'The video is incomplete or corrupt (it cannot be read)');
    }
    throw new UploadRejectedError('ERR_NON_VIDEO', 'The upload is not a video (no known container)');
  }
  return interpretProbe(JSON.parse(stdout) as FfprobeOutput, opts);
}
