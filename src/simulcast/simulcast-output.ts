/**
 * One simulcast output while its input is live: a supervised FFmpeg that copies the source FLV
 * to the target. A failing or slow target only ever affects this output: its queue is bounded
 * (tags are dropped up to the next keyframe), a stall or exit restarts FFmpeg with backoff, and
 * the reason is kept (secrets masked) for the API's `status`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { backoffDelay, type BackoffOptions } from '../lib/backoff.ts';
import type { Logger } from '../observability/logger.ts';
import type { FanoutTag, FlvSink } from './flv-fanout.ts';
import { FfmpegProgress } from './ffmpeg-progress.ts';
import { buildOutputArgs, describeTarget, maskSecrets, type OutputTarget } from './output-target.ts';

export interface SimulcastOutputSettings {
  ffmpegPath: string;
  /** FLV bytes queued for one FFmpeg beyond which tags are dropped up to the next keyframe. */
  queueBytes: number;
  /** Delay before each retry after a failure (exponential between the bounds). */
  backoff: BackoffOptions;
  /** A new FFmpeg must have sent bytes to the target this long after its input began, or it is restarted. */
  connectTimeoutMs: number;
  /** A connected FFmpeg that is fed but sends nothing for this long is restarted. */
  stallTimeoutMs: number;
}

export type OutputRunState = 'connecting' | 'connected' | 'reconnecting';

export interface OutputRunStatus {
  state: OutputRunState;
  statusEnteredAt: string;
  lastError: { message: string; at: string } | null;
  /** Restarts of FFmpeg during this broadcast. */
  reconnects: number;
  /** Bytes sent to the target during this broadcast. */
  bytesSent: number;
  /** Source tags dropped because the target did not keep up. */
  droppedTags: number;
}

export interface SimulcastOutputOptions {
  uid: string;
  target: OutputTarget;
  /** The source's header, onMetaData and sequence headers, asked for at every (re)start. */
  headers: () => Buffer[];
  settings: SimulcastOutputSettings;
  logger: Logger;
}

const WATCHDOG_INTERVAL_MS = 500;
const STDERR_TAIL_LINES = 5;
const STDERR_MAX_LINE = 500;
const STOP_GRACE_MS = 2_000;
const DROP_LOG_INTERVAL_MS = 5_000;

export class SimulcastOutput implements FlvSink {
  readonly uid: string;
  readonly target: OutputTarget;
  readonly #opts: SimulcastOutputOptions;
  readonly #log: Logger;
  #state: OutputRunState = 'connecting';
  #enteredAt = Date.now();
  #lastError: { message: string; at: string } | null = null;
  #child: ChildProcess | undefined;
  #childExited: Promise<void> = Promise.resolve();
  #progress = new FfmpegProgress();
  #stderrTail: string[] = [];
  #killReason: string | undefined;
  /** When the current FFmpeg got its first bytes: the connect timeout runs from here, not from spawn. */
  #feedingSince = 0;
  #lastProgressAt = 0;
  #lastInputAt = 0;
  #headersSent = false;
  #skipToKeyframe = false;
  #failures = 0;
  #reconnects = 0;
  #bytesBefore = 0;
  #dropped = 0;
  #lastDropLog = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: SimulcastOutputOptions) {
    this.uid = opts.uid;
    this.target = opts.target;
    this.#opts = opts;
    this.#log = opts.logger.child({ output: opts.uid, target: describeTarget(opts.target) });
  }

  start(): void {
    if (this.#closed || this.#child || this.#retryTimer) return;
    this.#watchdog ??= setInterval(() => this.#checkHealth(), WATCHDOG_INTERVAL_MS);
    this.#watchdog.unref();
    this.#spawn();
  }

  get status(): OutputRunStatus {
    return {
      state: this.#state,
      statusEnteredAt: new Date(this.#enteredAt).toISOString(),
      lastError: this.#lastError,
      reconnects: this.#reconnects,
      bytesSent: this.#bytesBefore + this.#progress.totalSize,
      droppedTags: this.#dropped,
    };
  }

  /** The current FFmpeg's pid, if one runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  write(tag: FanoutTag): void {
    const stdin = this.#child?.stdin;
    if (!stdin || stdin.destroyed || stdin.writableEnded) return;
    // Source media arrived for FFmpeg, written or dropped: the stall watchdog counts from here.
    this.#lastInputAt = Date.now();
    if (!this.#headersSent) {
      // A fresh FFmpeg starts with a decodable beginning: headers, then a keyframe.
      if (!tag.keyframe) return;
      for (const header of this.#opts.headers()) stdin.write(header);
      this.#headersSent = true;
      this.#feedingSince = Date.now();
    } else if (stdin.writableLength > this.#opts.settings.queueBytes) {
      // The target is not keeping up: drop, and resume at a keyframe once the queue has drained.
      this.#skipToKeyframe = true;
      this.#countDrop();
      return;
    } else if (this.#skipToKeyframe) {
      if (!tag.keyframe) {
        this.#countDrop();
        return;
      }
      this.#skipToKeyframe = false;
    }
    stdin.write(tag.bytes);
  }

  /** Ends FFmpeg's input (it flushes and unpublishes), then SIGTERM / SIGKILL. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearInterval(this.#watchdog);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      const term = setTimeout(() => child.kill('SIGTERM'), STOP_GRACE_MS);
      const kill = setTimeout(() => child.kill('SIGKILL'), 2 * STOP_GRACE_MS);
      await this.#childExited;
      clearTimeout(term);
      clearTimeout(kill);
    } else {
      await this.#childExited;
    }
  }

  #spawn(): void {
    this.#retryTimer = undefined;
    if (this.#closed) return;
    const { settings } = this.#opts;
    this.#bytesBefore += this.#progress.totalSize;
    this.#progress = new FfmpegProgress();
    this.#stderrTail = [];
    this.#killReason = undefined;
    this.#headersSent = false;
    this.#skipToKeyframe = false;
    this.#feedingSince = 0;
    this.#lastProgressAt = Date.now();
    const child = spawn(settings.ffmpegPath, buildOutputArgs(this.target), { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    let spawnError: Error | undefined;
    child.on('error', (err) => {
      if (child.pid === undefined) spawnError = err;
    });
    child.stdin?.on('error', () => {
      // EPIPE once FFmpeg has gone: its exit is handled below.
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => {
      if (this.#progress.push(text) === undefined) return;
      this.#lastProgressAt = Date.now();
      if (this.#state !== 'connected' && this.#child === child) this.#connected();
    });
    child.stderr?.setEncoding('utf8');
    // Whole lines only: a secret split across two chunks must still be masked.
    let partial = '';
    const keepLine = (line: string) => {
      if (!line.trim()) return;
      this.#stderrTail.push(maskSecrets(line, this.target).slice(0, STDERR_MAX_LINE));
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
    };
    child.stderr?.on('data', (text: string) => {
      const lines = (partial + text).split(/\r?\n|\r/);
      partial = lines.pop() ?? '';
      // A runaway line without a newline is cut (masked first, so no secret survives the cut).
      if (partial.length > 4 * STDERR_MAX_LINE) {
        keepLine(partial);
        partial = '';
      }
      for (const line of lines) keepLine(line);
    });
    child.stderr?.on('end', () => keepLine(partial));
    this.#childExited = new Promise<void>((resolve) => {
      child.on('close', (code, signal) => {
        resolve();
        if (this.#child === child) this.#child = undefined;
        if (this.#closed) return;
        const why = spawnError
          ? `cannot run ffmpeg: ${spawnError.message}`
          : (this.#killReason ?? `ffmpeg ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
        const said = this.#stderrTail.length > 0 ? `: ${this.#stderrTail.join(' | ')}` : '';
        this.#failed(`${why}${said}`);
      });
    });
  }

  #connected(): void {
    this.#setState('connected');
    this.#failures = 0;
    this.#log.info({ reconnects: this.#reconnects }, 'simulcast output connected');
  }

  #failed(message: string): void {
    this.#lastError = { message: message.slice(0, 2000), at: new Date().toISOString() };
    const delay = backoffDelay(this.#failures, this.#opts.settings.backoff);
    this.#failures++;
    this.#reconnects++;
    this.#setState('reconnecting');
    this.#log.warn({ error: this.#lastError.message, retryInMs: delay, failures: this.#failures }, 'simulcast output failed; retrying');
    this.#retryTimer = setTimeout(() => this.#spawn(), delay);
    this.#retryTimer.unref();
  }

  #checkHealth(): void {
    const child = this.#child;
    if (!child || this.#killReason) return;
    const { connectTimeoutMs, stallTimeoutMs } = this.#opts.settings;
    const now = Date.now();
    if (this.#state !== 'connected' && this.#feedingSince > 0 && now - this.#feedingSince > connectTimeoutMs) {
      this.#kill(child, `nothing reached the target within ${connectTimeoutMs} ms`);
    } else if (this.#state === 'connected' && this.#lastInputAt > this.#lastProgressAt && now - this.#lastProgressAt > stallTimeoutMs) {
      // Fed but sending nothing: the target stopped reading (a blackholed connection never errors).
      this.#kill(child, `the target accepted nothing for ${stallTimeoutMs} ms`);
    }
  }

  #kill(child: ChildProcess, reason: string): void {
    this.#killReason = reason;
    child.kill('SIGKILL');
  }

  #setState(state: OutputRunState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#enteredAt = Date.now();
  }

  #countDrop(): void {
    this.#dropped++;
    const now = Date.now();
    if (now - this.#lastDropLog >= DROP_LOG_INTERVAL_MS) {
      this.#lastDropLog = now;
      this.#log.warn({ droppedTags: this.#dropped }, 'simulcast target is slow; dropping to the next keyframe');
    }
  }
}
