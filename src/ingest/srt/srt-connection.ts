import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import type { PublishSession } from '../../live/ingest-contract.ts';
import { FlvStreamReader } from '../../media/flv-stream-reader.ts';
import type { Logger } from '../../observability/logger.ts';
import {
  encodeHandshake,
  HS_TYPE_CONCLUSION,
  HS_TYPE_INDUCTION,
  parseHandshake,
  withCookie,
  type Handshake,
} from './srt-handshake.ts';

export interface SrtConnectionOptions {
  /** The authenticated conclusion request (cookie still the front's). */
  conclusion: Buffer;
  handshake: Handshake;
  session: PublishSession;
  passphrase: string;
  keyLength: number;
  /** Sends a datagram back to the caller through the front's socket. */
  toCaller: (packet: Buffer) => void;
  ffmpegPath: string;
  latencyMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  logger: Logger;
}

const INDUCTION_RETRY_MS = 100;
const STDERR_TAIL = 8 * 1024;

/**
 * One accepted SRT publisher. The caller finished its handshake with our front; this relays its
 * datagrams to an FFmpeg SRT listener started for it alone with its input's passphrase (libsrt
 * decrypts, reorders and retransmits), and reads the FLV FFmpeg remuxes from the MPEG-TS into the
 * live session. The front answered the caller's induction itself, so the relay does its own
 * induction with FFmpeg and swaps FFmpeg's SYN cookie into the caller's conclusions.
 */
export class SrtConnection {
  readonly #opts: SrtConnectionOptions;
  readonly #relay = dgram.createSocket('udp4');
  #ffmpeg: ChildProcess | undefined;
  #ffmpegPort = 0;
  #listenerCookie: number | undefined;
  #inductionTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #mediaTimer: NodeJS.Timeout | undefined;
  #stderr = '';
  #gotMedia = false;
  #closed = false;
  #relayOpen = true;
  readonly closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(opts: SrtConnectionOptions) {
    this.#opts = opts;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
  }

  async start(): Promise<void> {
    const { session, logger } = this.#opts;
    session.onTerminate((reason) => {
      logger.info({ reason }, 'srt publish terminated by session');
      this.close();
    });
    this.#relay.on('error', (error) => logger.debug({ error: error.message }, 'srt relay socket error'));
    this.#relay.on('message', (packet) => this.#fromListener(packet));
    await new Promise<void>((resolve) => this.#relay.bind(0, '127.0.0.1', resolve));
    this.#ffmpegPort = await freeUdpPort();
    if (this.#closed) return; // terminated while starting: close() already cleaned up
    this.#spawnFfmpeg();
    this.#sendInduction();
    this.#touch();
    // The caller connected but FFmpeg never produced media (no handshake, no TS, no keyframe).
    this.#mediaTimer = setTimeout(() => {
      if (!this.#gotMedia) this.#fail('no media from the SRT publisher');
    }, this.#opts.handshakeTimeoutMs + 15_000);
  }

  /** A datagram from the caller. */
  fromCaller(packet: Buffer): void {
    if (this.#closed) return;
    this.#touch();
    const hs = parseHandshake(packet);
    if (hs && hs.type === HS_TYPE_CONCLUSION) {
      // Retransmitted conclusions wait until FFmpeg gave its cookie; the first is sent then.
      if (this.#listenerCookie !== undefined) this.#toListener(withCookie(packet, this.#listenerCookie));
      return;
    }
    if (hs && hs.type === HS_TYPE_INDUCTION) return;
    this.#toListener(packet);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#inductionTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#mediaTimer);
    const ffmpeg = this.#ffmpeg;
    if (ffmpeg && ffmpeg.exitCode === null && ffmpeg.signalCode === null) {
      // SIGTERM lets libsrt send its shutdown to the caller (through the relay, still open).
      ffmpeg.kill('SIGTERM');
      const kill = setTimeout(() => ffmpeg.kill('SIGKILL'), 3_000);
      kill.unref();
      ffmpeg.once('close', () => {
        clearTimeout(kill);
        this.#finish();
      });
    } else {
      this.#finish();
    }
  }

  #finish(): void {
    this.#relayOpen = false;
    this.#relay.close();
    this.#opts.session.end('client_disconnect');
    this.#resolveClosed();
  }

  #fail(message: string): void {
    if (this.#closed) return;
    this.#opts.logger.warn({ error: message }, 'srt publish failed');
    this.#opts.session.end('protocol_error');
    this.close();
  }

  #touch(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => {
      this.#opts.logger.info('srt publisher idle, closing');
      this.close();
    }, this.#opts.idleTimeoutMs);
  }

  #spawnFfmpeg(): void {
    const { passphrase, keyLength, latencyMs, handshakeTimeoutMs, idleTimeoutMs, ffmpegPath, logger } = this.#opts;
    const url =
      `srt://127.0.0.1:${this.#ffmpegPort}?mode=listener&passphrase=${passphrase}&pbkeylen=${keyLength}` +
      `&latency=${latencyMs * 1000}&listen_timeout=${handshakeTimeoutMs * 1000}&timeout=${idleTimeoutMs * 1000}`;
    const args = [
      '-hide_banner', '-nostdin', '-loglevel', 'error',
      '-analyzeduration', '1000000', '-f', 'mpegts', '-i', url,
      '-map', '0:v:0?', '-map', '0:a:0?', '-c', 'copy',
      '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:1',
    ];
    const child = spawn(ffmpegPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#ffmpeg = child;
    const reader = new FlvStreamReader();
    child.stdout.on('data', (chunk: Buffer) => {
      let tags;
      try {
        tags = reader.push(chunk);
      } catch (error) {
        this.#fail((error as Error).message);
        return;
      }
      if (tags.length > 0 && !this.#gotMedia) {
        this.#gotMedia = true;
        logger.info('srt media flowing');
      }
      for (const tag of tags) this.#opts.session.pushFlvTag(tag);
    });
    child.stderr.setEncoding('utf8').on('data', (text: string) => {
      this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL);
    });
    child.once('error', (error) => this.#fail(`ffmpeg: ${error.message}`));
    child.once('close', (code, signal) => {
      if (this.#closed) return;
      const detail = this.#stderr.replaceAll(passphrase, '[redacted]').trim().split('\n').slice(-3).join(' | ');
      if (/hevc|h265/i.test(this.#stderr) && /not (compatible|supported)/i.test(this.#stderr)) {
        this.#fail('HEVC over SRT is not supported: this FFmpeg cannot carry HEVC in FLV; publish H.264');
      } else if (!this.#gotMedia) {
        this.#fail(`ffmpeg exited before any media (code ${code}, signal ${signal}): ${detail}`);
      } else {
        logger.info({ code, signal }, 'srt publisher disconnected');
        this.close();
      }
    });
  }

  /** Induction with the FFmpeg listener on the caller's behalf, retried until it listens. */
  #sendInduction(): void {
    const hs = this.#opts.handshake;
    const request = encodeHandshake({
      timestamp: 0,
      destinationSocketId: 0,
      version: 4,
      encryptionField: 0,
      extensionField: 2, // UDT_DGRAM, as an HSv5 caller's induction says
      initialSequence: hs.initialSequence,
      mtu: hs.mtu,
      flowWindow: hs.flowWindow,
      type: HS_TYPE_INDUCTION,
      socketId: hs.socketId,
      cookie: 0,
      peerIp: hs.peerIp,
    });
    const send = () => this.#toListener(request);
    send();
    this.#inductionTimer = setInterval(send, INDUCTION_RETRY_MS);
  }

  #fromListener(packet: Buffer): void {
    if (this.#listenerCookie === undefined) {
      const hs = parseHandshake(packet);
      if (!hs || hs.type !== HS_TYPE_INDUCTION) return;
      clearInterval(this.#inductionTimer);
      this.#listenerCookie = hs.cookie;
      this.#toListener(withCookie(this.#opts.conclusion, hs.cookie));
      return;
    }
    this.#opts.toCaller(packet);
  }

  #toListener(packet: Buffer): void {
    if (!this.#relayOpen) return;
    this.#relay.send(packet, this.#ffmpegPort, '127.0.0.1');
  }
}

/** A UDP port free right now on the loopback (FFmpeg binds it a moment later). */
async function freeUdpPort(): Promise<number> {
  const probe = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
  const { port } = probe.address();
  await new Promise<void>((resolve) => probe.close(resolve));
  return port;
}
