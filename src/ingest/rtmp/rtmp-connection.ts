import type { Socket } from 'node:net';
import {
  IngestRefusal,
  type IngestHandler,
  type IngestProtocol,
  type IngestRefusalCode,
  type PublishSession,
  type TerminateReason,
} from '../../live/ingest-contract.ts';
import { classifyFlvTag, stripSetDataFrame } from '../../media/flv-tags.ts';
import type { Logger } from '../../observability/logger.ts';
import { RtmpCodec, type RtmpCodecLimits } from './rtmp-codec.ts';

export interface RtmpConnectionOptions {
  socket: Socket;
  protocol: Extract<IngestProtocol, 'rtmp' | 'rtmps'>;
  handler: IngestHandler;
  /** Already bound to this connection (conn id, peer address). */
  logger: Logger;
  app: string;
  authFailureDelayMs: number;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxMessageBytes: number;
  /** Called for every connection closed because of bad input, for rate-limited reporting. */
  onProtocolError?: (error: unknown) => void;
}

/** `closing`: refused or finished; input is ignored while our last status is flushed. */
type State = 'handshake' | 'authenticating' | 'publishing' | 'closing' | 'closed';

// Before a publish is accepted the peer only sends commands: keep what it can make us hold small.
const PRE_PUBLISH_LIMITS: RtmpCodecLimits = { maxMessageBytes: 64 * 1024, maxBufferedBytes: 256 * 1024, maxChunkStreams: 16 };
const MAX_CHUNK_STREAMS = 64;

const REFUSAL_STATUS: Record<IngestRefusalCode | 'INTERNAL', { code: string; description: string }> = {
  STREAM_KEY_UNKNOWN: { code: 'NetStream.Publish.BadName', description: 'STREAM_KEY_UNKNOWN: stream key not recognised.' },
  LIVE_INPUT_BUSY: { code: 'NetStream.Publish.BadName', description: 'LIVE_INPUT_BUSY: the live input already has a publisher.' },
  LIVE_INPUT_DISABLED: { code: 'NetStream.Publish.Denied', description: 'LIVE_INPUT_DISABLED: the live input is disabled.' },
  NODE_AT_CAPACITY: { code: 'NetStream.Publish.Denied', description: 'NODE_AT_CAPACITY: the server is at capacity.' },
  TOO_MANY_AUTH_FAILURES: {
    code: 'NetStream.Publish.Denied',
    description: 'TOO_MANY_AUTH_FAILURES: too many unknown stream keys from this address; retry later.',
  },
  SHUTTING_DOWN: { code: 'NetStream.Publish.Denied', description: 'SHUTTING_DOWN: the server is shutting down.' },
  INTERNAL: { code: 'NetStream.Publish.Denied', description: 'INTERNAL: the publish could not be authorised.' },
};

/**
 * One RTMP publisher connection: drives the codec with the socket's bytes, authenticates the
 * publish before any media flows, then forwards every tag to the live session until one side
 * ends it. Every failure closes this connection only.
 */
export class RtmpConnection {
  readonly #opts: RtmpConnectionOptions;
  readonly #socket: Socket;
  readonly #codec: RtmpCodec;
  #log: Logger;
  #state: State = 'handshake';
  #session: PublishSession | undefined;
  /** True once the session no longer needs `end()`: ended by us or terminated by itself. */
  #sessionDone = false;
  #streamId = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #refusalTimer: NodeJS.Timeout | undefined;
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(opts: RtmpConnectionOptions) {
    this.#opts = opts;
    this.#socket = opts.socket;
    this.#log = opts.logger;
    this.#closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#codec = new RtmpCodec(
      {
        output: (buffer) => this.#write(buffer),
        connect: ({ app, transId }) => this.#onConnect(app, transId),
        publish: ({ streamName, streamId }) => this.#onPublish(streamName, streamId),
        play: ({ streamId }) => this.#onPlay(streamId),
        unpublish: () => this.#onUnpublish(),
        media: (type, timestamp, body) => this.#onMedia(type, timestamp, body),
      },
      PRE_PUBLISH_LIMITS,
    );
  }

  /** Resolves once the socket is closed and the session (if any) has been told. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  start(): void {
    const socket = this.#socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => this.#log.debug({ err: { code: (err as NodeJS.ErrnoException).code } }, 'rtmp socket error'));
    socket.on('close', () => this.#onSocketClose());
    this.#handshakeTimer = setTimeout(() => this.#onHandshakeTimeout(), this.#opts.handshakeTimeoutMs);
    if (socket.destroyed) this.#onSocketClose();
  }

  /** Closes the connection (server shutdown). Idempotent. */
  close(): Promise<void> {
    this.#endSession('client_disconnect');
    this.#socket.destroy();
    return this.#closed;
  }

  #write(buffer: Buffer): void {
    if (this.#state !== 'closed' && this.#socket.writable) this.#socket.write(buffer);
  }

  #onData(chunk: Buffer): void {
    if (this.#state === 'closed' || this.#state === 'closing') return;
    try {
      this.#codec.parserData(chunk);
    } catch (err) {
      this.#onProtocolError(err);
      return;
    }
    if (this.#state === 'publishing') this.#idleTimer?.refresh();
  }

  #onProtocolError(err: unknown): void {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (this.#state === 'publishing') {
      this.#log.warn({ liveInputUid: this.#session?.liveInputUid, error: message }, 'rtmp protocol error, closing publish');
    } else {
      this.#log.debug({ error: message }, 'rtmp protocol error, closing connection');
    }
    this.#opts.onProtocolError?.(err);
    this.#endSession('protocol_error');
    this.#socket.destroy();
  }

  #onConnect(app: string, transId: number): void {
    // Clients may send `live?param` or `live/`; only the name matters.
    const name = app.split('?')[0]?.replace(/\/+$/, '') ?? '';
    if (name === this.#opts.app) {
      this.#codec.acceptConnect(transId);
      return;
    }
    this.#log.info({ reason: 'unknown_app' }, 'rtmp connect refused');
    this.#codec.rejectConnect(transId, 'Unknown application.');
    this.#endGracefully();
  }

  #onPublish(streamName: string, streamId: number): void {
    if (this.#state !== 'handshake') {
      this.#onProtocolError(new Error('publish while already publishing'));
      return;
    }
    this.#state = 'authenticating';
    this.#streamId = streamId;
    // Hold further input in the kernel until we know who this is; media already parsed is dropped.
    this.#socket.pause();
    const streamKey = streamName.split('?')[0] ?? '';
    if (streamKey === '') {
      this.#refuse(new IngestRefusal('STREAM_KEY_UNKNOWN', 'empty stream key'), streamKey);
      return;
    }
    const request = { protocol: this.#opts.protocol, streamKey, remoteAddress: this.#socket.remoteAddress ?? '' };
    let pending: Promise<PublishSession>;
    try {
      pending = this.#opts.handler.openPublish(request);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (session) => this.#onAccepted(session),
      (err: unknown) => this.#refuse(err, streamKey),
    );
  }

  #onAccepted(session: PublishSession): void {
    if (this.#state !== 'authenticating') {
      // The publisher left (or timed out) while we were authenticating.
      this.#log.info({ liveInputUid: session.liveInputUid }, 'rtmp publisher gone before acceptance');
      session.end('client_disconnect');
      return;
    }
    this.#session = session;
    this.#state = 'publishing';
    this.#log = this.#log.child({ liveInputUid: session.liveInputUid });
    clearTimeout(this.#handshakeTimer);
    this.#idleTimer = setTimeout(() => this.#onIdleTimeout(), this.#opts.idleTimeoutMs);
    const maxMessageBytes = this.#opts.maxMessageBytes;
    this.#codec.setLimits({ maxMessageBytes, maxBufferedBytes: 2 * maxMessageBytes, maxChunkStreams: MAX_CHUNK_STREAMS });
    this.#codec.acceptPublish(this.#streamId);
    session.onTerminate((reason) => this.#onTerminate(reason));
    this.#log.info('rtmp publish accepted');
    if (this.#state === 'publishing') this.#socket.resume();
  }

  #refuse(err: unknown, streamKey: string): void {
    if (this.#state !== 'authenticating') return;
    this.#state = 'closing';
    const refusal = err instanceof IngestRefusal ? err : undefined;
    const status = REFUSAL_STATUS[refusal?.code ?? 'INTERNAL'];
    if (refusal) {
      this.#log.info({ code: refusal.code, liveInputUid: refusal.liveInputUid }, 'rtmp publish refused');
    } else {
      // A handler failure (e.g. Redis down) could echo the key: strip it before logging.
      const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      this.#log.warn({ error: streamKey ? text.replaceAll(streamKey, '[redacted]') : text }, 'rtmp publish authorisation failed');
    }
    // The delay slows down key guessing; the answer comes only after it.
    this.#refusalTimer = setTimeout(() => {
      this.#codec.rejectPublish(this.#streamId, status.code, status.description);
      this.#endGracefully();
    }, this.#opts.authFailureDelayMs);
  }

  #onPlay(streamId: number): void {
    this.#log.info({ reason: 'play_unsupported' }, 'rtmp play refused');
    this.#codec.refusePlay(streamId);
    this.#endGracefully();
  }

  #onUnpublish(): void {
    if (this.#state === 'publishing') this.#log.info('rtmp publisher unpublished');
    this.#endSession('client_disconnect');
    this.#endGracefully();
  }

  #onMedia(type: 8 | 9 | 18, timestamp: number, body: Buffer): void {
    const session = this.#session;
    if (this.#state !== 'publishing' || !session) return;
    // The codec reuses its reassembly buffer for the next message: hand over a copy.
    const data = Buffer.from(type === 18 ? stripSetDataFrame(body) : body);
    const { keyframe, sequenceHeader } = classifyFlvTag(type, data);
    session.pushFlvTag({ type, timestamp, data, keyframe, sequenceHeader });
  }

  #onTerminate(reason: TerminateReason): void {
    if (this.#state === 'closed') return;
    // Terminated by the session: it needs no `end()` from us.
    this.#sessionDone = true;
    this.#log.info({ reason }, 'rtmp publish terminated by session');
    this.#codec.sendStatusMessage(this.#streamId, 'status', 'NetStream.Unpublish.Success', `Stream terminated: ${reason}.`);
    this.#endGracefully();
  }

  #onHandshakeTimeout(): void {
    if (this.#state === 'publishing' || this.#state === 'closed' || this.#state === 'closing') return;
    this.#log.debug({ state: this.#state }, 'rtmp handshake timeout');
    this.#socket.destroy();
  }

  #onIdleTimeout(): void {
    if (this.#state !== 'publishing') return;
    this.#log.info('rtmp publisher idle, closing');
    this.#endSession('timeout');
    this.#socket.destroy();
  }

  /** Flushes what we wrote (a status), then closes; stops reading meanwhile. */
  #endGracefully(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    clearTimeout(this.#idleTimer);
    this.#socket.pause();
    this.#socket.end(() => this.#socket.destroy());
    // A peer that never reads would keep the socket half-open forever.
    setTimeout(() => this.#socket.destroy(), 2_000).unref();
  }

  #endSession(reason: 'client_disconnect' | 'protocol_error' | 'timeout'): void {
    if (!this.#session || this.#sessionDone) return;
    this.#sessionDone = true;
    this.#session.end(reason);
  }

  #onSocketClose(): void {
    if (this.#state === 'closed') return;
    const wasPublishing = this.#state === 'publishing';
    this.#state = 'closed';
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#refusalTimer);
    this.#endSession('client_disconnect');
    if (wasPublishing) this.#log.info('rtmp publisher disconnected');
    this.#resolveClosed();
  }
}
