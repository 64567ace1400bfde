import { spawn } from 'node:child_process';

export interface FfmpegJobOptions {
  ffmpegPath: string;
  args: string[];
  /** Killed (SIGKILL) after this long; the promise rejects. */
  timeoutMs: number;
  /** stdout is collected up to this many bytes; more fails the job (default: stdout ignored). */
  maxStdoutBytes?: number;
  signal?: AbortSignal;
}

/**
 * One short FFmpeg run over files (a thumbnail, a remux): resolves with its stdout when it exits
 * 0, rejects with the tail of its stderr otherwise. No shell: arguments go to FFmpeg as they are.
 */
export function runFfmpegJob(opts: FfmpegJobOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    opts.signal?.throwIfAborted();
    const child = spawn(opts.ffmpegPath, opts.args, {
      stdio: ['ignore', opts.maxStdoutBytes === undefined ? 'ignore' : 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let failure: Error | undefined;
    const kill = (error: Error) => {
      failure ??= error;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(new Error(`ffmpeg took longer than ${opts.timeoutMs} ms`)), opts.timeoutMs);
    const onAbort = () => kill(new Error('ffmpeg job aborted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > (opts.maxStdoutBytes ?? 0)) return kill(new Error(`ffmpeg output larger than ${opts.maxStdoutBytes} bytes`));
      chunks.push(chunk);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      stderr = (stderr + text).slice(-2000);
    });
    child.once('error', (error) => kill(error));
    child.once('close', (code) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure) return reject(failure);
      if (code !== 0) return reject(new Error(`ffmpeg exited with code ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      resolve(Buffer.concat(chunks));
    });
  });
}
