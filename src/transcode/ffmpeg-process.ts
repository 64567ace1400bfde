/**
 * One FFmpeg child: FLV in on stdin, fragmented MP4 out on pipes 3…(3 + outputs − 1).
 * `start()` resolves once every output has produced bytes; a later exit is the 'exit' event.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { deferred } from '../lib/deferred.ts';
import type { Logger } from '../observability/logger.ts';
import { FIRST_OUTPUT_FD } from './ffmpeg-args.ts';

export interface FfmpegProcessOptions {
  ffmpegPath: string;
  args: string[];
  /** Number of output pipes, fds 3 … 3 + outputs − 1. */
  outputs: number;
  logger: Logger;
  /** How long `start()` waits for bytes on every output (default 10 s). */
  startTimeoutMs?: number;
  /**
   * After stdin ends, how long FFmpeg may take to work through what it was given before SIGTERM
   * (default 5 s). Live input is seldom more than a second ahead of FFmpeg; what is cut here is
   * missing from the recording.
   */
  eofGraceMs?: number;
  /** After SIGTERM, how long before SIGKILL (default 3 s). */
  killGraceMs?: number;
  /** FFmpeg's stdout, as text (`-progress pipe:1`); ignored when absent. */
  onStdout?: (text: string) => void;
}

export type FfmpegProcessEvents = {
  data: [outputIndex: number, chunk: Buffer];
  /** Emitted once, after every output pipe has delivered its last byte. */
  exit: [code: number | null, signal: NodeJS.Signals | null, stderrTail: string[]];
};

const STDERR_TAIL_LINES = 20;
const STDERR_MAX_LINE = 1000;

export class FfmpegProcess extends EventEmitter<FfmpegProcessEvents> {
  readonly #opts: Required<Omit<FfmpegProcessOptions, 'logger' | 'onStdout'>> & Pick<FfmpegProcessOptions, 'logger' | 'onStdout'>;
  #child: ChildProcess | undefined;
  #started: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #exited = deferred<void>();
  #hasExited = false;
  #spawnError: Error | undefined;
  readonly #stderrTail: string[] = [];
  #stderrPartial = '';

  constructor(opts: FfmpegProcessOptions) {
    super();
    if (!Number.isInteger(opts.outputs) || opts.outputs < 1) throw new Error('FfmpegProcess: outputs must be ≥ 1');
    this.#opts = { startTimeoutMs: 10_000, eofGraceMs: 5_000, killGraceMs: 3_000, ...opts };
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get exited(): boolean {
    return this.#hasExited;
  }

  /** Bytes written to stdin that FFmpeg has not read yet (for the supervisor's backpressure). */
  get stdinBufferedBytes(): number {
    return this.#child?.stdin?.writableLength ?? 0;
  }

  /** The last lines FFmpeg wrote to stderr (at most 20). */
  get stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  /** Idempotent: a second call returns the first call's promise. */
  start(): Promise<void> {
    this.#started ??= this.#start();
    return this.#started;
  }

  async #start(): Promise<void> {
    const { ffmpegPath, args, outputs, logger, startTimeoutMs } = this.#opts;
    const ready = deferred<void>();
    const child = spawn(ffmpegPath, args, {
      stdio: ['pipe', this.#opts.onStdout ? 'pipe' : 'ignore', 'pipe', ...Array.from({ length: outputs }, () => 'pipe' as const)],
    });
    this.#child = child;
    const onStdout = this.#opts.onStdout;
    if (onStdout) child.stdout?.setEncoding('utf8').on('data', (text: string) => onStdout(text));

    child.on('error', (err) => {
      // Spawn failures (ENOENT, EACCES) arrive here, followed by 'close'; kill failures too.
      if (child.pid === undefined) this.#spawnError = err;
      else logger.warn({ err, pid: child.pid }, 'ffmpeg process error');
    });
    child.stdin?.on('error', (err: NodeJS.ErrnoException) => {
      // EPIPE / ECONNRESET once FFmpeg has exited or closed its input: the exit path reports it.
      logger.debug({ code: err.code, pid: child.pid }, 'ffmpeg stdin error');
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => this.#onStderr(text));

    const pending = new Set<number>();
    for (let i = 0; i < outputs; i++) {
      pending.add(i);
      const stream = child.stdio[FIRST_OUTPUT_FD + i] as Readable | null | undefined;
      if (!stream) {
        child.kill('SIGKILL');
        throw new Error(`FfmpegProcess: output pipe ${FIRST_OUTPUT_FD + i} missing`);
      }
      stream.on('error', (err) => logger.debug({ err, output: i }, 'ffmpeg output pipe error'));
      stream.on('data', (chunk: Buffer) => {
        if (pending.delete(i) && pending.size === 0) ready.resolve();
        this.emit('data', i, chunk);
      });
    }

    // 'close' (not 'exit'): it fires after every output pipe has been read to its end, so the
    // last fragment is emitted before 'exit'. It also fires after a failed spawn.
    child.on('close', (code, signal) => {
      this.#flushStderr();
      this.#hasExited = true;
      const tail = this.stderrTail;
      if (!ready.settled) ready.reject(this.#startError(code, signal, tail));
      this.#exited.resolve();
      this.emit('exit', code, signal, tail);
    });

    const timer = setTimeout(() => {
      if (ready.settled) return;
      ready.reject(new Error(`ffmpeg produced no output on every pipe within ${startTimeoutMs} ms${formatTail(this.stderrTail)}`));
      child.kill('SIGKILL');
    }, startTimeoutMs);

    try {
      await ready.promise;
      logger.debug({ pid: child.pid }, 'ffmpeg started');
    } catch (err) {
      // Reject having cleaned up: the child is gone and reaped before the caller hears of it.
      if (!this.#hasExited) child.kill('SIGKILL');
      await this.#exited.promise;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Queues a chunk on FFmpeg's stdin. Returns false when it was not accepted (not started, or
   * exited, or stopping). Never throws: a write racing the process's exit is dropped silently.
   */
  write(chunk: Buffer): boolean {
    const stdin = this.#child?.stdin;
    if (!stdin || this.#hasExited || this.#stopping || stdin.destroyed || stdin.writableEnded) return false;
    try {
      stdin.write(chunk);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Ends stdin so FFmpeg finishes what it has, then SIGTERM, then SIGKILL; resolves once the
   * child has exited and been reaped. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const child = this.#child;
    if (!child || this.#hasExited) return;
    const { eofGraceMs, killGraceMs, logger } = this.#opts;
    child.stdin?.end();
    const term = setTimeout(() => {
      logger.debug({ pid: child.pid }, 'ffmpeg still running after stdin ended: SIGTERM');
      child.kill('SIGTERM');
    }, eofGraceMs);
    const kill = setTimeout(() => {
      logger.warn({ pid: child.pid }, 'ffmpeg ignored SIGTERM: SIGKILL');
      child.kill('SIGKILL');
    }, eofGraceMs + killGraceMs);
    try {
      await this.#exited.promise;
    } finally {
      clearTimeout(term);
      clearTimeout(kill);
    }
  }

  #startError(code: number | null, signal: NodeJS.Signals | null, tail: string[]): Error {
    if (this.#spawnError) {
      const err = new Error(`cannot run ffmpeg at ${this.#opts.ffmpegPath}: ${this.#spawnError.message}`, {
        cause: this.#spawnError,
      });
      return err;
    }
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    return new Error(`ffmpeg ${how} before producing output on every pipe${formatTail(tail)}`);
  }

  #onStderr(text: string): void {
    const lines = (this.#stderrPartial + text).split(/\r\n|\r|\n/);
    this.#stderrPartial = (lines.pop() ?? '').slice(-STDERR_MAX_LINE);
    for (const line of lines) this.#pushStderrLine(line);
  }

  #flushStderr(): void {
    if (this.#stderrPartial) this.#pushStderrLine(this.#stderrPartial);
    this.#stderrPartial = '';
  }

  #pushStderrLine(line: string): void {
    if (!line.trim()) return;
    this.#opts.logger.debug({ pid: this.#child?.pid, line }, 'ffmpeg stderr');
    this.#stderrTail.push(line.slice(0, STDERR_MAX_LINE));
    if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
  }
}

function formatTail(tail: string[]): string {
  return tail.length > 0 ? `; ffmpeg said:\n${tail.join('\n')}` : ' (nothing on stderr)';
}
