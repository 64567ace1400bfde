/**
 * The one AAC → Opus transcode of a live session's WHEP viewers: a supervised FFmpeg reading the
 * source's audio as FLV on stdin and writing Ogg Opus (20 ms packets, one page each) on pipe:3.
 * Runs only while the session has WHEP viewers.
 */
import type { FlvTag } from '../media/flv-tag.ts';
import { encodeFlvHeader, encodeFlvTag } from '../media/flv-tags.ts';
import type { Logger } from '../observability/logger.ts';
import { Transcoder } from '../transcode/transcoder.ts';
import { OggOpusReader } from './ogg-opus-reader.ts';

export interface OpusEncoderOptions {
  ffmpegPath: string;
  bitrateKbps: number;
  maxRestarts: number;
  logger: Logger;
  /** One Opus packet (20 ms at 48 kHz), in order. */
  onPacket: (packet: Buffer) => void;
}

/** FFmpeg arguments (pure): FLV audio in, low-delay Opus in Ogg out, nothing buffered. */
export function opusEncoderArgs(bitrateKbps: number): string[] {
  return [
    '-hide_banner', '-nostdin', '-loglevel', 'warning',
    // The FLV header says audio only and the AAC config comes first: nothing to probe for.
    '-fflags', '+nobuffer', '-probesize', '32', '-analyzeduration', '0',
    '-f', 'flv', '-i', 'pipe:0',
    '-map', '0:a:0', '-c:a', 'libopus', '-b:a', `${bitrateKbps}k`, '-ar', '48000', '-ac', '2',
    '-application', 'lowdelay', '-frame_duration', '20',
    '-f', 'ogg', '-page_duration', '20000', '-flush_packets', '1', 'pipe:3',
  ];
}

export class OpusEncoder {
  readonly #opts: OpusEncoderOptions;
  #transcoder: Transcoder | undefined;
  #reader = new OggOpusReader();
  #config: FlvTag | undefined;
  #closed = false;

  constructor(opts: OpusEncoderOptions) {
    this.#opts = opts;
  }

  /** Starts FFmpeg with the source's AAC configuration (the sequence header tag). */
  start(config: FlvTag): void {
    if (this.#transcoder || this.#closed) return;
    this.#config = config;
    const log = this.#opts.logger;
    const transcoder = new Transcoder({
      ffmpegPath: this.#opts.ffmpegPath,
      args: opusEncoderArgs(this.#opts.bitrateKbps),
      outputs: 1,
      logger: log,
      startTimeoutMs: 10_000,
      eofGraceMs: 200,
      maxStdinBufferBytes: 256 * 1024,
      restart: { maxRestarts: this.#opts.maxRestarts, windowMs: 60_000, backoff: { baseMs: 250, maxMs: 5000 } },
    });
    transcoder.setHeaders([encodeFlvHeader({ audio: true, video: false }), encodeFlvTag({ ...config, timestamp: 0 })]);
    transcoder.on('data', (_index, chunk) => this.#onData(chunk));
    transcoder.on('restart', (attempt, error) => {
      log.warn({ attempt, err: error }, 'whep opus encoder restarted');
      this.#reader = new OggOpusReader();
    });
    transcoder.on('failed', (error) => log.error({ err: error }, 'whep opus encoder failed for good; WHEP viewers get no audio'));
    this.#transcoder = transcoder;
    transcoder.start().catch((error: unknown) => {
      if (!this.#closed) log.error({ err: error }, 'whep opus encoder did not start');
    });
  }

  get running(): boolean {
    return this.#transcoder !== undefined && !this.#closed;
  }

  /** One source audio tag; a changed AAC configuration restarts nothing (FFmpeg reads it in band). */
  write(tag: FlvTag): void {
    const t = this.#transcoder;
    if (!t) return;
    if (tag.sequenceHeader && this.#config) {
      this.#config = tag;
      t.setHeaders([encodeFlvHeader({ audio: true, video: false }), encodeFlvTag({ ...tag, timestamp: 0 })]);
    }
    // Every audio tag is a place a (re)started FFmpeg can begin.
    t.write(encodeFlvTag(tag), { keyframe: true });
  }

  #onData(chunk: Buffer): void {
    let packets: Buffer[];
    try {
      packets = this.#reader.push(chunk);
    } catch (error) {
      this.#opts.logger.error({ err: error }, 'unreadable Ogg from the opus encoder');
      this.#reader = new OggOpusReader();
      return;
    }
    for (const p of packets) this.#opts.onPacket(p);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#transcoder?.close();
  }
}
