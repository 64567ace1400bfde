/**
 * The supervisor of one session's FFmpeg: feeds it FLV without ever blocking the publisher,
 * restarts it with backoff when it crashes, and gives up after too many crashes in a window.
 */
import { EventEmitter } from 'node:events';
import { backoffDelay, type BackoffOptions } from '../lib/backoff.ts';
import type { Logger } from '../observability/logger.ts';
import { FfmpegProcess } from './ffmpeg-process.ts';

export interface RestartPolicy {
  /** Crashes tolerated within `windowMs`; one more and the transcoder fails. */
  maxRestarts: number;
  windowMs: number;
  backoff: BackoffOptions;
}

export interface TranscoderOptions {
  ffmpegPath: string;
  args: string[];
  outputs: number;
  logger: Logger;
  restart?: RestartPolicy;
  /** Passed to each FFmpeg process: how long until every output has produced bytes. */
  startTimeoutMs?: number;
  /** Passed to each FFmpeg process: how long `close()` lets FFmpeg finish its input before SIGTERM. */
  eofGraceMs?: number;
  /** FLV bytes queued for FFmpeg beyond which tags are dropped up to the next keyframe. */
  maxStdinBufferBytes?: number;
}

export type TranscoderEvents = {
  data: [outputIndex: number, chunk: Buffer];
  /**
   * A crashed FFmpeg is being replaced (after the backoff, at the first keyframe written). Emitted
   * before the new process's first byte, so that per-output parsers can reset: each output
   * starts again with ftyp+moov.
   */
  restart: [attempt: number, lastError: Error];
  /** Too many crashes: no more processes will be started. */
  failed: [error: Error];
  /**
   * The replacement of a crashed FFmpeg is due and waits for the publisher's next keyframe: a
   * publisher that can send one on request (WHIP) should be asked now.
   */
  keyframeWanted: [];
};

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  maxRestarts: 5,
  windowMs: 60_000,
  backoff: { baseMs: 250, maxMs: 5_000 },
};

const DEFAULT_MAX_STDIN_BUFFER = 8 * 1024 * 1024;
const DROP_LOG_INTERVAL_MS = 5_000;

type State = 'idle' | 'starting' | 'running' | 'failed' | 'closed';

export class Transcoder extends EventEmitter<TranscoderEvents> {
  readonly #opts: TranscoderOptions;
  readonly #policy: RestartPolicy;
  readonly #maxBuffered: number;
  #state: State = 'idle';
  #proc: FfmpegProcess | undefined;
  #headers: Buffer[] = [];
  /** The process that has been given the FLV header and sequence headers. */
  #headersSentTo: FfmpegProcess | undefined;
  /** Drop tags until a video keyframe: after a (re)start or after dropping for backpressure. */
  #awaitKeyframe = true;
  readonly #recentRestarts: number[] = [];
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  /** The backoff after a crash is over: the next keyframe starts the new FFmpeg. */
  #restartDue: Error | undefined;
  #closing: Promise<void> | undefined;
  #dropped = 0;
  #droppedSinceLog = 0;
  #lastDropLog = 0;

  constructor(opts: TranscoderOptions) {
    super();
    this.#opts = opts;
    this.#policy = opts.restart ?? DEFAULT_RESTART_POLICY;
    this.#maxBuffered = opts.maxStdinBufferBytes ?? DEFAULT_MAX_STDIN_BUFFER;
  }

  /** The current FFmpeg's pid, if one is running. */
  get pid(): number | undefined {
    return this.#proc?.pid;
  }

  /** Tags dropped so far (before a keyframe after a restart, or for backpressure). */
  get droppedTags(): number {
    return this.#dropped;
  }

  /** Restarts so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Starts the first FFmpeg; resolves when every output has produced bytes, so the caller must
   * keep writing while it waits. Rejects (with FFmpeg's last stderr lines) when FFmpeg exits or
   * stays silent first; the failed process is reaped and there is no retry at this stage.
   */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new Error(`Transcoder.start: already ${this.#state}`);
    this.#state = 'starting';
    const proc = this.#spawn();
    try {
      await proc.start();
    } catch (err) {
      if (this.#proc === proc) this.#proc = undefined;
      if (this.#state === 'starting') this.#state = 'failed';
      throw err;
    }
    if (this.#state === 'starting') this.#state = 'running';
  }

  /**
   * The FLV file header, script data and sequence header tags: what a fresh FFmpeg must read
   * before any media tag. Sent to every process this transcoder starts (a restarted one
   * included). Call it before the first `write()`, and again when the sequence headers change
   * (also writing the new sequence header tag through `write()` for the running process).
   */
  setHeaders(buffers: Buffer[]): void {
    this.#headers = [...buffers];
  }

  /**
   * One complete FLV tag (11-byte header, body, PreviousTagSize). Synchronous, never throws,
   * never blocks: when FFmpeg is restarting, still waiting for a keyframe or too far behind,
   * the tag is dropped and counted. Returns whether the tag went to FFmpeg.
   */
  write(tagBytes: Buffer, info: { keyframe: boolean }): boolean {
    if (this.#restartDue && info.keyframe && this.#state === 'running') {
      const error = this.#restartDue;
      this.#restartDue = undefined;
      this.#restarts += 1;
      this.emit('restart', this.#restarts, error);
      this.#spawn();
    }
    const proc = this.#proc;
    if (!proc || proc.exited || (this.#state !== 'starting' && this.#state !== 'running')) {
      this.#awaitKeyframe = true;
      this.#drop('not running');
      return false;
    }
    if (proc.stdinBufferedBytes > this.#maxBuffered) {
      this.#awaitKeyframe = true;
      this.#drop('ffmpeg behind');
      return false;
    }
    if (this.#awaitKeyframe) {
      if (!info.keyframe) {
        this.#drop('waiting for keyframe');
        return false;
      }
      this.#awaitKeyframe = false;
    }
    this.#sendHeaders(proc);
    return proc.write(tagBytes);
  }

  /**
   * Stops FFmpeg (letting it finish what it has read: its last fragments are still emitted as
   * 'data') and cancels any pending restart. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const proc = this.#proc;
    if (proc) await proc.stop();
    if (this.#dropped > 0) this.#opts.logger.info({ dropped: this.#dropped }, 'transcoder closed with dropped tags');
  }

  #spawn(): FfmpegProcess {
    const { ffmpegPath, args, outputs, logger, startTimeoutMs, eofGraceMs } = this.#opts;
    const proc = new FfmpegProcess({
      ffmpegPath,
      args,
      outputs,
      logger,
      ...(startTimeoutMs !== undefined && { startTimeoutMs }),
      ...(eofGraceMs !== undefined && { eofGraceMs }),
    });
    this.#proc = proc;
    this.#awaitKeyframe = true;
    proc.on('data', (index, chunk) => {
      if (this.#proc === proc) this.emit('data', index, chunk);
    });
    proc.on('exit', (code, signal, tail) => {
      if (this.#proc !== proc || this.#state !== 'running') return;
      this.#proc = undefined;
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const exitError = new Error(`ffmpeg ${how}${tail.length > 0 ? `; ffmpeg said:\n${tail.join('\n')}` : ''}`);
      // A process that died while starting has a more telling error (timeout, spawn failure);
      // its start() settles right after 'exit'.
      void proc.start().then(
        () => this.#onCrash(exitError),
        (err: unknown) => this.#onCrash(err instanceof Error ? err : exitError),
      );
    });
    // start() spawns the child, so it comes before any write. The first start is awaited by
    // Transcoder.start(); a restarted process reports a failed start through 'exit'.
    const restarting = this.#state === 'running';
    proc.start().then(
      () => {
        if (restarting) logger.info({ pid: proc.pid, restarts: this.#restarts }, 'ffmpeg restarted');
      },
      () => {},
    );
    if (this.#headers.length > 0) this.#sendHeaders(proc);
    return proc;
  }

  #sendHeaders(proc: FfmpegProcess): void {
    if (this.#headersSentTo === proc) return;
    this.#headersSentTo = proc;
    for (const buf of this.#headers) proc.write(buf);
  }

  #onCrash(error: Error): void {
    const { logger } = this.#opts;
    if (this.#state !== 'running') return;
    const now = Date.now();
    while (this.#recentRestarts.length > 0 && now - (this.#recentRestarts[0] ?? 0) > this.#policy.windowMs) {
      this.#recentRestarts.shift();
    }
    if (this.#recentRestarts.length >= this.#policy.maxRestarts) {
      this.#state = 'failed';
      const failure = new Error(
        `ffmpeg crashed ${this.#recentRestarts.length + 1} times within ${this.#policy.windowMs} ms; last: ${error.message}`,
        { cause: error },
      );
      logger.error({ err: failure }, 'transcoder failed');
      this.emit('failed', failure);
      return;
    }
    const wait = backoffDelay(this.#recentRestarts.length, this.#policy.backoff);
    this.#recentRestarts.push(now);
    logger.warn({ err: error, restartInMs: wait }, 'ffmpeg crashed; restarting');
    // The new process starts with the publisher's next keyframe, not when the backoff ends: one
    // started while the publisher is silent would time out waiting for input and use up the
    // restart budget without a crash of its own.
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#state !== 'running') return;
      this.#restartDue = error;
      this.emit('keyframeWanted');
    }, wait);
  }

  #drop(reason: string): void {
    this.#dropped += 1;
    this.#droppedSinceLog += 1;
    const now = Date.now();
    if (now - this.#lastDropLog < DROP_LOG_INTERVAL_MS) return;
    // Drops before the first keyframe of a fresh process are expected; log the rest.
    if (reason !== 'waiting for keyframe') {
      this.#opts.logger.warn({ reason, dropped: this.#droppedSinceLog, total: this.#dropped }, 'transcoder dropping FLV tags');
    }
    this.#lastDropLog = now;
    this.#droppedSinceLog = 0;
  }
}
