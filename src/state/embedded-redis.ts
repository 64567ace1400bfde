import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
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
// Who runs the redis-server in a data dir: written at start, removed at close (see OwnerRecord).
const OWNER_FILE = 'tributary-owner.json';
// redis-server's own pidfile: a fallback if we crashed between spawning it and recording its pid.
const REDIS_PID_FILE = 'redis-server.pid';
// After SIGKILL of an orphan, how long to wait for it to disappear before giving up.
const ORPHAN_KILL_WAIT_MS = 5_000;

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
    // Two servers appending to one AOF would corrupt it; refuse rather than race. A redis-server
    // orphaned by a crashed Tributary is shut down first, if (and only if) it is provably ours.
    await this.#takeOverOrRefuse(dir);
    if (await ping(socketPath, 1000)) throw this.#inUseError(socketPath);
    const target = { path: socketPath, url: `unix://${socketPath}` };
    try {
      await this.#spawnAndWait(dir, socketPath);
    } catch (err) {
      this.#removeOwnerRecord();
      throw err;
    }
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
    this.#removeOwnerRecord();
    this.#log.info('embedded redis-server stopped');
  }

  #inUseError(socketPath: string, ownerPid?: number): Error {
    const who = ownerPid === undefined ? 'another Tributary' : `another Tributary (pid ${ownerPid})`;
    return new Error(
      `a redis-server is already listening on ${socketPath}; ${who} may be using ${this.#opts.dataDir} ` +
        '(stop it, or remove the stale process)',
    );
  }

  /**
   * Reads the owner record a previous start() left in `dir`. If its owner (a Tributary process)
   * is still alive, refuses. If the owner is gone but its redis-server still runs, positively
   * identified (live, same start time, `redis-server`, listening on the recorded socket), shuts
   * that orphan down (SHUTDOWN flushes the AOF; SIGTERM, then SIGKILL, as fallbacks). Anything
   * it cannot identify is left alone (the PING check in start() then refuses if needed).
   */
  async #takeOverOrRefuse(dir: string): Promise<void> {
    const rec = await readOwnerRecord(join(dir, OWNER_FILE));
    if (!rec || !(await procfsAvailable())) return;
    const bootId = bootIdSync();
    // Pids from before a reboot mean nothing now, and nothing of that run can still be running.
    if (rec.bootId && bootId && rec.bootId !== bootId) return;

    let redisPid = rec.redisPid;
    let redisStartTime = rec.redisStartTime;
    if (redisPid === undefined || !(await isAlive(redisPid, redisStartTime))) {
      redisPid = await readPidFile(join(dir, REDIS_PID_FILE));
      redisStartTime = undefined;
    }
    const ours = redisPid === undefined ? undefined : await identifyRedis(redisPid, redisStartTime, rec.socketPath);

    if (await isAlive(rec.ownerPid, rec.ownerStartTime)) {
      if (ours || (await ping(rec.socketPath, 1000))) throw this.#inUseError(rec.socketPath, rec.ownerPid);
      throw new Error(
        `another Tributary (pid ${rec.ownerPid}) is using ${this.#opts.dataDir} (its redis-server is not ` +
          'running right now; it may be restarting it). Stop that process first.',
      );
    }
    if (!ours || redisPid === undefined) return;
    await this.#stopOrphan(redisPid, ours.startTime, rec.socketPath);
    this.#log.warn(
      { pid: redisPid, previousOwnerPid: rec.ownerPid, socket: rec.socketPath },
      `took over an orphaned redis-server from a previous run (pid ${redisPid})`,
    );
  }

  async #stopOrphan(pid: number, startTime: string, socketPath: string): Promise<void> {
    const stillOurs = async () => (await identifyRedis(pid, startTime, socketPath)) !== undefined;
    const grace = this.#opts.closeGraceMs ?? 10_000;
    let asked = (await ping(socketPath, 1000)) && (await sendShutdown(socketPath, grace));
    if (!asked && (await stillOurs())) asked = signal(pid, 'SIGTERM');
    if (await waitForExit(pid, startTime, grace)) return;
    if (await stillOurs()) {
      this.#log.warn({ pid, graceMs: grace }, 'orphaned redis-server did not shut down; killing');
      signal(pid, 'SIGKILL');
    }
    if (!(await waitForExit(pid, startTime, ORPHAN_KILL_WAIT_MS))) {
      throw new Error(
        `an orphaned redis-server from a previous run (pid ${pid}) is still using ${this.#opts.dataDir} and ` +
          'could not be stopped; stop it by hand',
      );
    }
  }

  #ownerRecordPath: string | undefined;

  /** Records that this process owns `dir` and, once spawned, which redis-server it runs. */
  #writeOwnerRecord(dir: string, socketPath: string, redisPid: number | undefined, redisStartTime?: string): void {
    const ownStartTime = statSync(process.pid)?.startTime;
    const ownBootId = bootIdSync();
    const rec: OwnerRecord = {
      ownerPid: process.pid,
      ...(ownStartTime !== undefined ? { ownerStartTime: ownStartTime } : {}),
      ...(ownBootId !== undefined ? { bootId: ownBootId } : {}),
      socketPath,
      ...(redisPid !== undefined ? { redisPid } : {}),
      ...(redisStartTime !== undefined ? { redisStartTime } : {}),
    };
    const path = join(dir, OWNER_FILE);
    const tmp = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 });
      renameSync(tmp, path);
      this.#ownerRecordPath = path;
    } catch (err) {
      // Without the record a crash leaves an orphan that needs removing by hand, as before.
      this.#log.warn({ err, path }, 'could not write the redis owner record');
    }
  }

  #removeOwnerRecord(): void {
    if (!this.#ownerRecordPath) return;
    rmSync(this.#ownerRecordPath, { force: true });
    this.#ownerRecordPath = undefined;
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
      '--pidfile', join(dir, REDIS_PID_FILE),
    ];
  }

  /** Spawns one redis-server and resolves once it answers PING; rejects (child killed) otherwise. */
  async #spawnAndWait(dir: string, socketPath: string): Promise<void> {
    const bin = this.#opts.redisServerPath ?? 'redis-server';
    this.#outputTail = [];
    const child = spawn(bin, this.#args(dir, socketPath), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    // Right away, so a crash from here on leaves a record that the next start() can act on.
    // The start time is fixed at fork, so it identifies this process even before it execs.
    this.#writeOwnerRecord(dir, socketPath, child.pid, child.pid === undefined ? undefined : statSync(child.pid)?.startTime);
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
        if (this.#closing) {
          await this.#killCurrent();
          this.#removeOwnerRecord();
        }
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

/**
 * `<dataDir>/redis/tributary-owner.json`: the Tributary process that runs the redis-server in
 * that dir, and that server. Start times (/proc/<pid>/stat field 22) and the boot id guard
 * against pid reuse.
 */
interface OwnerRecord {
  ownerPid: number;
  ownerStartTime?: string;
  bootId?: string;
  socketPath: string;
  redisPid?: number;
  redisStartTime?: string;
}

function isPid(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 1;
}

function optString(v: unknown): v is string | undefined {
  return v === undefined || typeof v === 'string';
}

async function readOwnerRecord(path: string): Promise<OwnerRecord | undefined> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const r = raw as Record<string, unknown>;
  if (!isPid(r.ownerPid) || typeof r.socketPath !== 'string' || !r.socketPath.startsWith('/')) return undefined;
  if (r.redisPid !== undefined && !isPid(r.redisPid)) return undefined;
  if (!optString(r.ownerStartTime) || !optString(r.bootId) || !optString(r.redisStartTime)) return undefined;
  return r as unknown as OwnerRecord;
}

async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return isPid(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

interface ProcStat {
  /** Field 3: R, S, D, Z (zombie), X (dead), ... */
  state: string;
  /** Field 22: start time in clock ticks since boot. */
  startTime: string;
}

function parseStat(text: string): ProcStat | undefined {
  // Field 2 (comm, in parentheses) may itself contain spaces and parentheses; skip past the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  return state && startTime ? { state, startTime } : undefined;
}

function statSync(pid: number): ProcStat | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

async function stat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

async function procfsAvailable(): Promise<boolean> {
  return (await stat(process.pid)) !== undefined;
}

function bootIdSync(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Running (not a zombie) and, when `startTime` is known, the same process as recorded. */
async function isAlive(pid: number, startTime: string | undefined): Promise<boolean> {
  const s = await stat(pid);
  if (!s || s.state === 'Z' || s.state === 'X') return false;
  return startTime === undefined || s.startTime === startTime;
}

/**
 * Returns the process's start time if `pid` is a live `redis-server` (by /proc comm) whose
 * command line (argv, or the title redis rewrites it to: `redis-server unixsocket:<path>`)
 * names `socketPath`, and, when `startTime` is given, started at that time. Otherwise undefined.
 */
async function identifyRedis(
  pid: number,
  startTime: string | undefined,
  socketPath: string,
): Promise<{ startTime: string } | undefined> {
  const s = await stat(pid);
  if (!s || s.state === 'Z' || s.state === 'X') return undefined;
  if (startTime !== undefined && s.startTime !== startTime) return undefined;
  try {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
    if (comm !== 'redis-server') return undefined;
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0+/g, ' ').trim();
    const tokens = cmdline.split(/\s+/);
    if (!tokens.some((t) => t === socketPath || t === `unixsocket:${socketPath}`)) return undefined;
  } catch {
    return undefined;
  }
  return { startTime: s.startTime };
}

/** True once `pid` (with that start time) has exited or is a zombie, false if still running at the deadline. */
async function waitForExit(pid: number, startTime: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(pid, startTime)) {
    if (Date.now() >= deadline) return false;
    await delay(50);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Sends SHUTDOWN (redis fsyncs the AOF and exits); true if the server closed the connection without an error reply. */
function sendShutdown(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((res) => {
    const sock = createConnection({ path: socketPath });
    let reply = '';
    let connected = false;
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      res(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => {
      connected = true;
      sock.write('SHUTDOWN\r\n');
    });
    sock.on('data', (d) => {
      reply += d.toString('utf8');
      if (reply.includes('\r\n')) done(false); // any reply is an error: success closes the connection
    });
    sock.once('error', () => done(connected && reply === ''));
    sock.once('close', () => done(connected && reply === ''));
  });
}
