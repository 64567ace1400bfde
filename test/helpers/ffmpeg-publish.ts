import { spawn, type ChildProcess } from 'node:child_process';

export const FFMPEG = process.env.FFMPEG_PATH ?? '/usr/bin/ffmpeg';

export interface PublishTestStreamOptions {
  /** rtmp://…, or any URL/file FFmpeg can write FLV to. */
  url: string;
  /** Duration of the test stream; omit to publish until `stop()`. */
  seconds?: number;
  width?: number;
  height?: number;
  fps?: number;
  /** Keyframe interval in frames. Default: one per second. */
  gop?: number;
  /** Include an AAC sine tone. Default true. */
  audio?: boolean;
  /** Pace at real time (`-re`). Default true; false sends as fast as FFmpeg encodes. */
  realtime?: boolean;
  /** Extra output options, placed before the output URL. */
  extraOutputArgs?: string[];
  /** Output container. Default 'flv' (RTMP); 'mpegts' for SRT. */
  format?: 'flv' | 'mpegts';
}

export interface PublishExit {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The tail of FFmpeg's stderr (warnings and errors only). */
  stderr: string;
}

export interface TestPublisher {
  process: ChildProcess;
  /** Resolves (never rejects) when FFmpeg has exited; a spawn failure resolves with code -1. */
  exited: Promise<PublishExit>;
  /** Asks FFmpeg to finish (SIGINT, then SIGKILL after `graceMs`); resolves on exit. */
  stop(graceMs?: number): Promise<PublishExit>;
}

const STDERR_TAIL = 64 * 1024;

/** The FFmpeg arguments for a synthetic H.264/AAC FLV publish (exported for tests that need them). */
export function publishArgs(opts: PublishTestStreamOptions): string[] {
  const { width = 640, height = 360, fps = 30, audio = true, realtime = true } = opts;
  const gop = opts.gop ?? fps;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'warning'];
  const re = realtime ? ['-re'] : [];
  args.push(...re, '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=${fps}`);
  if (audio) args.push(...re, '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  if (opts.seconds !== undefined) args.push('-t', String(opts.seconds));
  args.push(
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p',
    '-g', String(gop), '-keyint_min', String(gop), '-sc_threshold', '0',
  );
  if (audio) args.push('-c:a', 'aac', '-b:a', '64k', '-ac', '2');
  args.push(...(opts.extraOutputArgs ?? []), '-f', opts.format ?? 'flv', opts.url);
  return args;
}

/**
 * Spawns FFmpeg publishing a test pattern (and tone) as FLV to `opts.url`. The caller must
 * `await stop()` (or `exited`) before the test ends; the process is killed if Node exits first.
 */
export function publishTestStream(opts: PublishTestStreamOptions): TestPublisher {
  const child = spawn(FFMPEG, publishArgs(opts), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL);
  });

  const exited = new Promise<PublishExit>((resolve) => {
    child.once('error', (err) => {
      // ENOENT and friends: no 'exit' will follow.
      if (child.exitCode === null && child.pid === undefined) resolve({ code: -1, signal: null, stderr: String(err) });
    });
    // 'close' (not 'exit') so that stderr is fully read.
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });

  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));

  const stop = async (graceMs = 5_000): Promise<PublishExit> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      timer.unref();
      void exited.then(() => clearTimeout(timer));
    }
    return exited;
  };

  return { process: child, exited, stop };
}
