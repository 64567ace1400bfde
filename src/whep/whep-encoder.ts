/**
 * The one FFmpeg of a live session's WHEP viewers: reads the source as FLV on stdin and writes
 * Opus in Ogg (20 ms packets, one page each) for the audio and — only for sources a WebRTC player
 * cannot take as they are (B-frames, not H.264) — a low-latency H.264 rendition as FLV (x264
 * constrained baseline, zerolatency, no B-frames, a keyframe every `gopSeconds`). Runs only
 * while the session has WHEP viewers; restarted by the Transcoder supervisor when it crashes.
 */
import type { FlvTag } from '../media/flv-tag.ts';
import { encodeFlvHeader, encodeFlvTag } from '../media/flv-tags.ts';
import { FlvStreamReader } from '../media/flv-stream-reader.ts';
import type { Logger } from '../observability/logger.ts';
import { Transcoder } from '../transcode/transcoder.ts';
import { OggOpusReader } from './ogg-opus-reader.ts';

export interface WhepEncoderOptions {
  ffmpegPath: string;
  opusBitrateKbps: number;
  maxRestarts: number;
  logger: Logger;
  /** Set to also encode the low-latency video rendition. */
  video?: { gopSeconds: number; x264Preset: string; maxBitrateKbps: number };
  /** One Opus packet (20 ms at 48 kHz), in order. */
  onOpus: (packet: Buffer) => void;
  /** One FLV video tag of the rendition (sequence header first). */
  onVideoTag: (tag: FlvTag) => void;
}

/** FFmpeg arguments (pure): FLV in; Opus in Ogg on the first output, FLV video on the next. */
export function whepEncoderArgs(o: { audio: boolean; opusBitrateKbps: number; video?: WhepEncoderOptions['video'] }): string[] {
  const args = [
    '-hide_banner', '-nostdin', '-loglevel', 'warning',
    // Sequence headers come first: nothing to probe for, nothing to buffer.
    '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
    '-f', 'flv', '-i', 'pipe:0',
  ];
  let fd = 3;
  if (o.audio) {
    args.push(
      '-map', '0:a:0', '-c:a', 'libopus', '-b:a', `${o.opusBitrateKbps}k`, '-ar', '48000', '-ac', '2',
      '-application', 'lowdelay', '-frame_duration', '20',
      '-f', 'ogg', '-page_duration', '20000', '-flush_packets', '1', `pipe:${fd++}`,
    );
  }
  if (o.video) {
    const kbps = o.video.maxBitrateKbps;
    args.push(
      '-map', '0:v:0', '-c:v', 'libx264', '-preset', o.video.x264Preset, '-tune', 'zerolatency',
      '-profile:v', 'baseline', '-bf', '0', '-pix_fmt', 'yuv420p',
      '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${kbps}k`,
      '-force_key_frames', `expr:gte(t,n_forced*${o.video.gopSeconds})`,
      '-fps_mode', 'passthrough', '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', `pipe:${fd++}`,
    );
  }
  return args;
}

export class WhepEncoder {
  readonly #opts: WhepEncoderOptions;
  #transcoder: Transcoder | undefined;
  #ogg = new OggOpusReader();
  #flv = new FlvStreamReader();
  #headers = new Map<number, FlvTag>();
  #audio = false;
  #closed = false;

  constructor(opts: WhepEncoderOptions) {
    this.#opts = opts;
  }

  get video(): boolean {
    return this.#opts.video !== undefined;
  }

  /** Starts FFmpeg given the source's sequence headers (AAC; and AVC for the video rendition). */
  start(headers: FlvTag[]): void {
    if (this.#transcoder || this.#closed) return;
    for (const h of headers) this.#headers.set(h.type, h);
    this.#audio = this.#headers.has(8);
    const log = this.#opts.logger;
    const outputs = (this.#audio ? 1 : 0) + (this.video ? 1 : 0);
    if (outputs === 0) return;
    const transcoder = new Transcoder({
      ffmpegPath: this.#opts.ffmpegPath,
      args: whepEncoderArgs({ audio: this.#audio, opusBitrateKbps: this.#opts.opusBitrateKbps, video: this.#opts.video }),
      outputs,
      logger: log,
      startTimeoutMs: 10_000,
      eofGraceMs: 200,
      maxStdinBufferBytes: 4 * 1024 * 1024,
      restart: { maxRestarts: this.#opts.maxRestarts, windowMs: 60_000, backoff: { baseMs: 250, maxMs: 5000 } },
    });
    this.#setHeaders(transcoder);
    transcoder.on('data', (index, chunk) => this.#onData(this.#audio && index === 0 ? 'audio' : 'video', chunk));
    transcoder.on('restart', (attempt, error) => {
      log.warn({ attempt, err: error }, 'whep encoder restarted');
      this.#ogg = new OggOpusReader();
      this.#flv = new FlvStreamReader();
    });
    transcoder.on('failed', (error) => log.error({ err: error }, 'whep encoder failed for good'));
    this.#transcoder = transcoder;
    transcoder.start().catch((error: unknown) => {
      if (!this.#closed) log.error({ err: error }, 'whep encoder did not start');
    });
  }

  #setHeaders(t: Transcoder): void {
    const header = encodeFlvHeader({ audio: this.#audio, video: this.video });
    t.setHeaders([header, ...[...this.#headers.values()].map((h) => encodeFlvTag({ ...h, timestamp: 0 }))]);
  }

  /** One source tag (audio, and video when the rendition is on). */
  write(tag: FlvTag): void {
    const t = this.#transcoder;
    if (!t) return;
    if (tag.type === 9 && !this.video) return;
    if (tag.type === 8 && !this.#audio) return;
    if (tag.sequenceHeader) {
      this.#headers.set(tag.type, tag);
      this.#setHeaders(t);
    }
    // Without video every audio tag is a place a (re)started FFmpeg can begin; with it, keyframes.
    const start = this.video ? tag.type === 9 && tag.keyframe : true;
    t.write(encodeFlvTag(tag), { keyframe: start });
  }

  #onData(kind: 'audio' | 'video', chunk: Buffer): void {
    try {
      if (kind === 'audio') for (const p of this.#ogg.push(chunk)) this.#opts.onOpus(p);
      else for (const tag of this.#flv.push(chunk)) if (tag.type === 9) this.#opts.onVideoTag(tag);
    } catch (error) {
      this.#opts.logger.error({ err: error, kind }, 'unreadable output from the whep encoder');
      if (kind === 'audio') this.#ogg = new OggOpusReader();
      else this.#flv = new FlvStreamReader();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#transcoder?.close();
  }
}
