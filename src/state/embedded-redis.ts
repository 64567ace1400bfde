import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { backoffDelay } from '../lib/backoff.ts';
import { delay } from '../lib/abort.ts';
import type { Logger } from '../observability/logger.ts';

export interface EmbeddedRedisOptions {
  /** Tributary's data directory; Redis keeps its AOF and socket under `<dataDir>/redis/`. */
  dataDir: string;
  /** Path or name of the redis-server binary (default: `redis-server` on PATH). */
  redisServerPath?: string;
  logger: Logger;
  /** How long to wait for the server to accept connections (default 15 s). */
  startTimeoutMs?: number;
  /** How long close() waits after SIGTERM before SIGKILL (default 10 s). */
  closeGraceMs?: number;
}

/** Where clients connect: a unix socket path (ioredis `{ path }`) and the same as a URL for logs. */
export interface EmbeddedRedisTarget {
  path: string;
  url: string;
}

// sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS) including the NUL terminator.
const MAX_SOCKET_PATH_BYTES = 100;
const OUTPUT_TAIL_LINES = 20;
// A server that stayed up this long is considered healthy again, so backoff starts over.
const STABLE_AFTER_MS = 30_000;

/**
 * The redis-server child that Tributary runs when no external Redis is configured: unix socket
 * only (no TCP port), append-only persistence in the data directory, supervised and restarted
 * with backoff if it dies. Clients (ioredis) reconnect on their own after a restart.
 */
export class EmbeddedRedis {
  readonly #opts: EmbeddedRedisOptions;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #target: EmbeddedRedisTarget | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;
  #restartAbort = new AbortController();
  #outputTail: string[] = [];

  constructor(opts: EmbeddedRedisOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'embedded-redis' });
  }

  get target(): EmbeddedRedisTarget | undefined {
    return this.#target;
  }

  async start(): Promise<EmbeddedRedisTarget> {
    if (this.#closing) throw new Error('EmbeddedRedis was closed; create a new one');
    if (this.#target) return this.#target;
    const dir = resolve(this.#opts.dataDir, 'redis');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const socketPath = this.#chooseSocketPath(dir);
    // Two servers appending to one AOF would corrupt it; refuse rather than race.
    if (await ping(socketPath, 1000)) {
      throw new Error(
        `a redis-server is already listening on ${socketPath}; another Tributary may be using ${this.#opts.dataDir} ` +
          '(stop it, or remove the stale process)',
      );
    }
    const target = { path: socketPath, url: `unix://${socketPath}` };
    await this.#spawnAndWait(dir, socketPath);
    this.#target = target;
    this.#log.info({ socket: socketPath, dir }, 'embedded redis-server ready');
    return target;
  }

  /** Idempotent: SIGTERM (redis treats it as SHUTDOWN, flushing the AOF), SIGKILL after a grace. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#closing = true;
    this.#restartAbort.abort(new Error('closing'));
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    child.kill('SIGTERM');
    const grace = this.#opts.closeGraceMs ?? 10_000;
    const timer = setTimeout(() => {
      this.#log.warn({ graceMs: grace }, 'redis-server did not exit after SIGTERM; killing');
      child.kill('SIGKILL');
    }, grace);
    await exited;
    clearTimeout(timer);
    this.#log.info('embedded redis-server stopped');
  }

  #chooseSocketPath(dir: string): string {
    const preferred = join(dir, 'redis.sock');
    if (Buffer.byteLength(preferred) <= MAX_SOCKET_PATH_BYTES) return preferred;
    const fallback = join(tmpdir(), `tributary-redis-${randomBytes(6).toString('hex')}.sock`);
    this.#log.warn(
      { preferred, fallback },
      'data directory path is too long for a unix socket; using a socket in the temp directory instead',
    );
    return fallback;
  }

  #args(dir: string, socketPath: string): string[] {
    return [
      '--port', '0',
      '--unixsocket', socketPath,
      '--unixsocketperm', '700',
      '--dir', dir,
      '--appendonly', 'yes',
      '--daemonize', 'no',
      '--supervised', 'no',
      '--protected-mode', 'no',
      '--loglevel', 'notice',
    ];
  }

  /** Spawns one redis-server and resolves once it answers PING; rejects (child killed) otherwise. */
  async #spawnAndWait(dir: string, socketPath: string): Promise<void> {
    const bin = this.#opts.redisServerPath ?? 'redis-server';
    this.#outputTail = [];
    const child = spawn(bin, this.#args(dir, socketPath), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line.trim()) continue;
        this.#outputTail.push(line.trimEnd());
        if (this.#outputTail.length > OUTPUT_TAIL_LINES) this.#outputTail.shift();
        this.#log.debug({ line: line.trimEnd() }, 'redis-server output');
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);

    const failure = new Promise<never>((_, reject) => {
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') {
          reject(
            new Error(
              `redis-server not found (tried "${bin}"). Tributary keeps its state in Redis: install it ` +
                '(e.g. `apt-get install redis-server`), or set TRIBUTARY_REDIS_URL to an external Redis.',
            ),
          );
        } else {
          reject(new Error(`could not start redis-server ("${bin}"): ${err.message}`));
        }
      });
      child.once('exit', (code, signal) => {
        reject(
          new Error(
            `redis-server exited during startup (code ${code}, signal ${signal}). Last output:\n` +
              (this.#outputTail.join('\n') || '(none)'),
          ),
        );
      });
    });
    failure.catch(() => {});

    const deadline = Date.now() + (this.#opts.startTimeoutMs ?? 15_000);
    const ready = (async () => {
      for (let attempt = 0; Date.now() < deadline; attempt++) {
        if (child.exitCode !== null || child.signalCode !== null) return false;
        if (await ping(socketPath, 500)) return true;
        await delay(backoffDelay(attempt, { baseMs: 10, maxMs: 200 }));
      }
      return false;
    })();

    try {
      const ok = await Promise.race([ready, failure]);
      if (!ok) throw new Error(`redis-server did not accept connections on ${socketPath} in time`);
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((res) => child.once('exit', res));
        child.kill('SIGKILL');
        await exited;
      }
      this.#child = undefined;
      throw err;
    }
    const startedAt = Date.now();
    child.once('exit', (code, signal) => this.#onUnexpectedExit(child, startedAt, code, signal, dir, socketPath));
  }

  #restartAttempt = 0;

  #onUnexpectedExit(
    child: ChildProcess,
    startedAt: number,
    code: number | null,
    signal: NodeJS.Signals | null,
    dir: string,
    socketPath: string,
  ): void {
    if (this.#closing || this.#child !== child) return;
    if (Date.now() - startedAt > STABLE_AFTER_MS) this.#restartAttempt = 0;
    this.#log.error(
      { code, signal, lastOutput: this.#outputTail.slice(-5) },
      'embedded redis-server exited unexpectedly; restarting',
    );
    void this.#restartLoop(dir, socketPath);
  }

  async #restartLoop(dir: string, socketPath: string): Promise<void> {
    const signal = this.#restartAbort.signal;
    while (!this.#closing) {
      const wait = backoffDelay(this.#restartAttempt++, { baseMs: 200, maxMs: 10_000 });
      try {
        await delay(wait, signal);
        await this.#spawnAndWait(dir, socketPath);
        this.#log.info({ attempt: this.#restartAttempt }, 'embedded redis-server restarted');
        if (this.#closing) await this.#killCurrent();
        return;
      } catch (err) {
        if (this.#closing) return;
        this.#log.error({ err, attempt: this.#restartAttempt }, 'restarting redis-server failed; will retry');
      }
    }
  }

  // close() may have run while a restart was spawning; that new child must not outlive us.
  async #killCurrent(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((res) => child.once('exit', res));
    child.kill('SIGTERM');
    await exited;
  }

  /** For tests and diagnostics: the pid of the current redis-server child. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }
}

/** True when a Redis server answers PING on the unix socket within `timeoutMs`. */
export function ping(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((res) => {
    const sock = createConnection({ path: socketPath });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      res(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString('utf8');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.once('error', () => done(false));
    sock.once('close', () => done(false));
  });
}
