import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { backoffDelay } from '../../lib/backoff.ts';
import type { FlvTag } from '../../media/flv-tag.ts';
import { FlvStreamReader } from '../../media/flv-stream-reader.ts';
import type { Logger } from '../../observability/logger.ts';
import { bridgeArgs, bridgeSdp } from './bridge-args.ts';
import { TimestampRebaser } from './timestamp-rebaser.ts';
import type { VideoCodecName } from './whip-offer.ts';

export interface WhipBridgeOptions {
  ffmpegPath: string;
  video: { codec: VideoCodecName; fmtp: string };
  audio: boolean;
  gopSeconds: number;
  x264Preset: string;
  logger: Logger;
  /** Crashes tolerated in a minute before the bridge gives up. */
  maxRestarts: number;
  onTag: (tag: FlvTag) => void;
  /** FFmpeg listens on its ports (first start or after a crash): send from a keyframe on. */
  onReady: (restarted: boolean) => void;
  /** FFmpeg exited: what is sent until the next `onReady` is lost. */
  onExit: () => void;
  onFailed: (error: Error) => void;
}

export type BridgeKind = 'video' | 'audio';

const STDERR_TAIL = 10;

/**
 * The per-session "bridge": a supervised FFmpeg that reads the publisher's RTP from local UDP
 * ports (described by an SDP file) and writes FLV, parsed here into tags. Restarted with backoff
 * when it crashes; timestamps stay monotonic across restarts.
 */
export class WhipBridge {
  readonly #opts: WhipBridgeOptions;
  #socket: dgram.Socket | undefined;
  #dir: string | undefined;
  #ports = { video: 0, audio: 0 };
  #child: ChildProcess | undefined;
  #closing: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #crashes: number[] = [];
  readonly #rebaser = new TimestampRebaser();
  #stderr: string[] = [];
  #spawns = 0;

  constructor(opts: WhipBridgeOptions) {
    this.#opts = opts;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Picks the local ports, writes the SDP and spawns FFmpeg (which then waits for RTP). */
  async start(): Promise<void> {
    const socket = dgram.createSocket('udp4');
    socket.on('error', (err) => this.#opts.logger.debug({ err }, 'bridge socket error'));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    this.#socket = socket;
    this.#ports.video = await freePortPair();
    if (this.#opts.audio) this.#ports.audio = await freePortPair(this.#ports.video);
    this.#dir = await mkdtemp(path.join(os.tmpdir(), 'trib-whip-'));
    const sdp = bridgeSdp({
      video: { ...this.#opts.video, port: this.#ports.video },
      audio: this.#opts.audio ? { port: this.#ports.audio } : undefined,
    });
    await writeFile(path.join(this.#dir, 'in.sdp'), sdp);
    if (this.#closing) return;
    this.#spawn();
  }

  /** Sends one RTP packet (payload type already rewritten) or RTCP packet to FFmpeg. */
  send(kind: BridgeKind, packet: Buffer, rtcp = false): void {
    const port = this.#ports[kind];
    if (!this.#socket || !port || this.#closing) return;
    this.#socket.send(packet, rtcp ? port + 1 : port, '127.0.0.1');
  }

  #spawn(): void {
    const dir = this.#dir;
    if (!dir) return;
    const args = bridgeArgs({
      sdpPath: path.join(dir, 'in.sdp'),
      codec: this.#opts.video.codec,
      audio: this.#opts.audio,
      gopSeconds: this.#opts.gopSeconds,
      x264Preset: this.#opts.x264Preset,
    });
    const child = spawn(this.#opts.ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#spawns += 1;
    this.#child = child;
    this.#rebaser.newSource();
    const reader = new FlvStreamReader();
    let broken = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      if (broken) return;
      let tags: FlvTag[];
      try {
        tags = reader.push(chunk);
      } catch (err) {
        broken = true;
        this.#opts.logger.error({ err }, 'bridge output unreadable; restarting it');
        child.kill('SIGKILL');
        return;
      }
      for (const tag of tags) this.#opts.onTag({ ...tag, timestamp: this.#rebaser.rebase(tag.timestamp) });
    });
    child.stderr?.setEncoding('utf8').on('data', (text: string) => {
      for (const line of text.split(/\r?\n/)) {
        if (!line.trim()) continue;
        this.#stderr.push(line.slice(0, 500));
        if (this.#stderr.length > STDERR_TAIL) this.#stderr.shift();
      }
    });
    child.on('error', (err) => this.#opts.logger.warn({ err }, 'bridge ffmpeg error'));
    child.on('close', (code, signal) => this.#onExit(child, code, signal));
    this.#opts.logger.debug({ pid: child.pid }, 'bridge ffmpeg started');
    void this.#whenListening(child);
  }

  /** Waits until FFmpeg has bound every RTP/RTCP port (a loaded host can take seconds to start it). */
  async #whenListening(child: ChildProcess): Promise<void> {
    const ports = [this.#ports.video, this.#ports.video + 1];
    if (this.#ports.audio) ports.push(this.#ports.audio, this.#ports.audio + 1);
    const deadline = Date.now() + 30_000;
    while (this.#child === child && !this.#closing && Date.now() < deadline) {
      const bound = await boundLocalUdpPorts();
      if (bound === undefined) {
        // Not Linux: no way to look; give FFmpeg a moment.
        await sleep(500);
        break;
      }
      if (ports.every((p) => bound.has(p))) break;
      await sleep(25);
    }
    if (this.#child !== child || this.#closing) return;
    this.#opts.onReady(this.#spawns > 1);
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child || this.#closing) return;
    this.#child = undefined;
    this.#opts.onExit();
    const now = Date.now();
    this.#crashes = this.#crashes.filter((t) => now - t < 60_000);
    this.#crashes.push(now);
    const tail = this.#stderr.join('\n');
    if (this.#crashes.length > this.#opts.maxRestarts) {
      this.#opts.onFailed(new Error(`bridge ffmpeg exited (${signal ?? code}) too often; last output:\n${tail}`));
      return;
    }
    const wait = backoffDelay(this.#crashes.length - 1, { baseMs: 250, maxMs: 5000 });
    this.#opts.logger.warn({ code, signal, restartInMs: wait, stderr: tail }, 'bridge ffmpeg exited; restarting');
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#closing) return;
      this.#spawn();
    }, wait);
  }

  /** Stops FFmpeg (SIGTERM, then SIGKILL) and frees the ports. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(kill);
    }
    this.#socket?.close();
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}

/** An even local UDP port whose successor (RTCP) is free too, as FFmpeg's RTP input needs. */
async function freePortPair(avoid = 0): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const a = await bindUdp(0);
    const port = a.address().port;
    if (port % 2 !== 0 || port === avoid || port + 1 === avoid || port > 65534) {
      a.close();
      continue;
    }
    const b = await bindUdp(port + 1).catch(() => undefined);
    a.close();
    if (!b) continue;
    b.close();
    return port;
  }
  throw new Error('no free local UDP port pair for the bridge');
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', (err) => {
      s.close();
      reject(err);
    });
    s.bind(port, '127.0.0.1', () => resolve(s));
  });
}

/** Local UDP ports bound on this host (Linux /proc), or undefined where that cannot be read. */
async function boundLocalUdpPorts(): Promise<Set<number> | undefined> {
  let text: string;
  try {
    text = await readFile('/proc/net/udp', 'latin1');
  } catch {
    return undefined;
  }
  const ports = new Set<number>();
  for (const line of text.split('\n').slice(1)) {
    const local = line.trim().split(/\s+/)[1];
    const hex = local?.split(':')[1];
    if (hex) ports.add(Number.parseInt(hex, 16));
  }
  return ports;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
