import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';
import { IngestRefusal, type IngestHandler, type IngestRefusalCode } from '../../live/ingest-contract.ts';
import type { Logger } from '../../observability/logger.ts';
import { SrtConnection } from './srt-connection.ts';
import {
  HS_TYPE_CONCLUSION,
  HS_TYPE_INDUCTION,
  inductionResponse,
  keyMaterialOf,
  parseHandshake,
  parseStreamId,
  REJECT,
  rejectResponse,
  streamIdOf,
  type Handshake,
} from './srt-handshake.ts';
import { checkPassphrase } from './srt-key-material.ts';

export interface SrtServerOptions {
  host: string;
  port: number;
  handler: IngestHandler;
  /**
   * The SRT passphrase of the live input a stream key belongs to; undefined: no such input;
   * null: an input created before SRT ingest, which gets a passphrase when its keys are rotated.
   */
  passphraseOf: (streamKey: string) => Promise<string | null | undefined>;
  logger: Logger;
  ffmpegPath: string;
  latencyMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnections: number;
  /** Wait before refusing a wrong stream id or passphrase, to slow down guessing. */
  authFailureDelayMs: number;
}

const REFUSAL_REASON: Record<IngestRefusalCode, number> = {
  STREAM_KEY_UNKNOWN: REJECT.unauthorized,
  LIVE_INPUT_DISABLED: REJECT.forbidden,
  LIVE_INPUT_BUSY: REJECT.conflict,
  NODE_AT_CAPACITY: REJECT.overload,
  TOO_MANY_AUTH_FAILURES: REJECT.tooManyRequests,
  SHUTTING_DOWN: REJECT.overload,
};
/** A refused caller's retransmitted conclusions get the same answer for this long. */
const REJECTED_MEMORY_MS = 5_000;
const COOKIE_PERIOD_MS = 60_000;
const GARBAGE_LOG_INTERVAL_MS = 60_000;

type Peer =
  | { state: 'authenticating'; handshake: Handshake }
  | { state: 'rejected'; response: Buffer }
  | { state: 'accepted'; connection: SrtConnection };

/**
 * The SRT ingest front: one UDP port. It answers inductions statelessly (SYN cookie), reads the
 * caller's stream id and key material from its conclusion, checks the input's passphrase and opens
 * the publish before any media is accepted, and refuses with an SRT reject reason otherwise.
 * Accepted callers are handed to an `SrtConnection` (a relay to a per-caller FFmpeg listener).
 */
export class SrtServer {
  readonly #opts: SrtServerOptions;
  readonly #socket = dgram.createSocket('udp4');
  readonly #peers = new Map<string, Peer>();
  readonly #cookieSecret = randomBytes(32);
  readonly #socketId = randomBytes(4).readUInt32BE(0) & 0x3fffffff;
  #nextId = 1;
  #listening = false;
  #closing: Promise<void> | undefined;
  #garbage = 0;
  #garbageLogged = 0;
  #lastGarbageLog = 0;

  constructor(opts: SrtServerOptions) {
    this.#opts = opts;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#socket.once('error', reject);
      this.#socket.bind(this.#opts.port, this.#opts.host, () => {
        this.#socket.off('error', reject);
        resolve();
      });
    });
    this.#listening = true;
    this.#socket.on('error', (error) => this.#opts.logger.error({ err: error }, 'srt listener error'));
    this.#socket.on('message', (packet, rinfo) => this.#onPacket(packet, rinfo));
    this.#opts.logger.info({ host: this.#opts.host, port: this.port }, 'srt ingest listening');
  }

  get port(): number {
    return this.#socket.address().port;
  }

  /** Callers currently accepted (publishing). */
  get connectionCount(): number {
    return [...this.#peers.values()].filter((p) => p.state === 'accepted').length;
  }

  /** Datagrams dropped as neither a handshake nor from a known caller, since start. */
  get garbageCount(): number {
    return this.#garbage;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const connections = [...this.#peers.values()].flatMap((p) => (p.state === 'accepted' ? [p.connection] : []));
      for (const c of connections) c.close();
      await Promise.all(connections.map((c) => c.closed));
      if (this.#listening) await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
      this.#peers.clear();
    })();
    return this.#closing;
  }

  #onPacket(packet: Buffer, rinfo: dgram.RemoteInfo): void {
    const key = `${rinfo.address}:${rinfo.port}`;
    const peer = this.#peers.get(key);
    if (peer?.state === 'accepted') {
      peer.connection.fromCaller(packet);
      return;
    }
    const hs = parseHandshake(packet);
    if (!hs) {
      this.#countGarbage();
      return;
    }
    const reply = (response: Buffer) => this.#send(response, rinfo);
    if (hs.type === HS_TYPE_INDUCTION && hs.version === 4) {
      reply(inductionResponse(hs, this.#cookie(key, 0), this.#socketId));
      return;
    }
    if (hs.type !== HS_TYPE_CONCLUSION || hs.version < 5) {
      this.#countGarbage();
      return;
    }
    if (peer?.state === 'rejected') {
      reply(peer.response);
      return;
    }
    if (peer) return; // still authenticating: a retransmitted conclusion
    if (hs.cookie !== this.#cookie(key, 0) && hs.cookie !== this.#cookie(key, -1)) {
      this.#countGarbage();
      return;
    }
    // Callers still authenticating count too, so that many source ports cannot pile up lookups.
    const busy = [...this.#peers.values()].filter((p) => p.state !== 'rejected').length;
    if (this.#closing || busy >= this.#opts.maxConnections) {
      this.#reject(key, hs, REJECT.overload, rinfo);
      return;
    }
    this.#peers.set(key, { state: 'authenticating', handshake: hs });
    void this.#authenticate(key, hs, packet, rinfo);
  }

  async #authenticate(key: string, hs: Handshake, conclusion: Buffer, rinfo: dgram.RemoteInfo): Promise<void> {
    const id = this.#nextId++;
    const log = this.#opts.logger.child({ srtConn: id, remoteAddress: rinfo.address });
    const refuse = async (reason: number, why: string, slow: boolean) => {
      log.info({ reason, why }, 'srt publish refused');
      if (slow) await sleep(this.#opts.authFailureDelayMs);
      this.#reject(key, hs, reason, rinfo);
    };
    try {
      const streamId = streamIdOf(hs);
      if (streamId === undefined) return await refuse(REJECT.unauthorized, 'no stream id', true);
      const parsed = parseStreamId(streamId);
      if ('error' in parsed) return await refuse(REJECT.unauthorized, parsed.error, true);
      const km = keyMaterialOf(hs);
      if (!km) return await refuse(REJECT.unsecure, 'no passphrase: this server only accepts encrypted SRT', false);
      const passphrase = await this.#opts.passphraseOf(parsed.resource);
      if (passphrase === undefined) return await refuse(REJECT.unauthorized, 'unknown stream id', true);
      if (passphrase === null) return await refuse(REJECT.unauthorized, 'the live input has no SRT passphrase yet: rotate its keys', false);
      const check = await checkPassphrase(km, passphrase);
      if (!check.ok) return await refuse(REJECT.badSecret, check.reason === 'bad_secret' ? 'wrong passphrase' : 'malformed key material', true);
      let session;
      try {
        session = await this.#opts.handler.openPublish({ protocol: 'srt', streamKey: parsed.resource, remoteAddress: rinfo.address });
      } catch (error) {
        if (!(error instanceof IngestRefusal)) throw error;
        return await refuse(REFUSAL_REASON[error.code], error.code, false);
      }
      const connection = new SrtConnection({
        conclusion,
        handshake: hs,
        session,
        passphrase,
        keyLength: check.keyLength,
        toCaller: (packet) => this.#send(packet, rinfo),
        ffmpegPath: this.#opts.ffmpegPath,
        latencyMs: this.#opts.latencyMs,
        handshakeTimeoutMs: this.#opts.handshakeTimeoutMs,
        idleTimeoutMs: this.#opts.idleTimeoutMs,
        logger: log.child({ liveInputUid: session.liveInputUid }),
      });
      this.#peers.set(key, { state: 'accepted', connection });
      void connection.closed.then(() => {
        if (this.#peers.get(key)?.state === 'accepted') this.#peers.delete(key);
      });
      log.info({ liveInputUid: session.liveInputUid }, 'srt publish accepted');
      if (this.#closing) connection.close();
      else await connection.start();
    } catch (error) {
      log.error({ err: error }, 'srt publish failed');
      const peer = this.#peers.get(key);
      if (peer?.state === 'accepted') peer.connection.close();
      else this.#peers.delete(key);
    }
  }

  #reject(key: string, hs: Handshake, reason: number, rinfo: dgram.RemoteInfo): void {
    const response = rejectResponse(hs, reason, this.#socketId);
    this.#send(response, rinfo);
    this.#peers.set(key, { state: 'rejected', response });
    setTimeout(() => {
      if (this.#peers.get(key)?.state === 'rejected') this.#peers.delete(key);
    }, REJECTED_MEMORY_MS).unref();
  }

  #send(packet: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.#listening || (this.#closing && this.#peers.size === 0)) return;
    this.#socket.send(packet, rinfo.port, rinfo.address, (error) => {
      if (error) this.#opts.logger.debug({ error: error.message }, 'srt send failed');
    });
  }

  /** A SYN cookie: the caller's address and the current (or previous) minute, under a per-process secret. */
  #cookie(key: string, periodOffset: number): number {
    const period = Math.floor(Date.now() / COOKIE_PERIOD_MS) + periodOffset;
    return createHmac('sha256', this.#cookieSecret).update(`${key}/${period}`).digest().readUInt32BE(0);
  }

  /** Scanners make this noisy: a summary at most once a minute. */
  #countGarbage(): void {
    this.#garbage++;
    const now = Date.now();
    if (now - this.#lastGarbageLog < GARBAGE_LOG_INTERVAL_MS) return;
    this.#opts.logger.warn({ count: this.#garbage - this.#garbageLogged }, 'srt datagrams dropped (not a handshake, unknown peer)');
    this.#lastGarbageLog = now;
    this.#garbageLogged = this.#garbage;
  }
}
