import net from 'node:net';
import tls from 'node:tls';
import type { IngestHandler } from '../../live/ingest-contract.ts';
import type { Logger } from '../../observability/logger.ts';
import { RtmpConnection } from './rtmp-connection.ts';

export interface RtmpServerOptions {
  host: string;
  port: number;
  handler: IngestHandler;
  logger: Logger;
  /** The only RTMP application accepted (`rtmp://host/<app>/<key>`). Default 'live'. */
  app?: string;
  /** Wait before answering a refused publish, to slow down key guessing. Default 1000. */
  authFailureDelayMs?: number;
  /** Handshake, connect and publish must be done (and authorised) within this. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** A publisher that sends nothing for this long is ended with 'timeout'. Default 30 000. */
  idleTimeoutMs?: number;
  /** Connections beyond this are closed on accept. Default 1000. */
  maxConnections?: number;
  /** Largest RTMP message (one video frame) accepted from a publisher. Default 8 MiB. */
  maxMessageBytes?: number;
  /** Serve RTMPS (RTMP over TLS) instead of plain RTMP. */
  tls?: { key: Buffer; cert: Buffer };
}

const PROTOCOL_ERROR_LOG_INTERVAL_MS = 60_000;

/**
 * The RTMP(S) ingest listener. Owns its connections: `close()` stops listening and closes every
 * one of them, ending their sessions.
 */
export class RtmpServer {
  readonly #opts: Required<Omit<RtmpServerOptions, 'tls'>> & Pick<RtmpServerOptions, 'tls'>;
  readonly #connections = new Set<RtmpConnection>();
  /** Raw sockets still in the TLS handshake, which no connection owns yet. */
  readonly #pendingTls = new Set<net.Socket>();
  #server: net.Server | undefined;
  #tlsServer: tls.Server | undefined;
  #closing: Promise<void> | undefined;
  #nextId = 1;
  #protocolErrors = 0;
  #protocolErrorsLogged = 0;
  #lastProtocolErrorLog = 0;

  constructor(opts: RtmpServerOptions) {
    this.#opts = {
      app: 'live',
      authFailureDelayMs: 1_000,
      handshakeTimeoutMs: 10_000,
      idleTimeoutMs: 30_000,
      maxConnections: 1_000,
      maxMessageBytes: 8 * 1024 * 1024,
      ...opts,
    };
  }

  async start(): Promise<void> {
    if (this.#server) throw new Error('RtmpServer already started');
    const { tls: tlsOptions, handshakeTimeoutMs } = this.#opts;
    let server: net.Server;
    if (tlsOptions) {
      const tlsServer = tls.createServer({ key: tlsOptions.key, cert: tlsOptions.cert, handshakeTimeout: handshakeTimeoutMs });
      tlsServer.on('connection', (raw: net.Socket) => {
        this.#pendingTls.add(raw);
        raw.once('close', () => this.#pendingTls.delete(raw));
      });
      tlsServer.on('secureConnection', (socket: tls.TLSSocket) => this.#accept(socket));
      tlsServer.on('tlsClientError', (err, socket) => {
        this.#opts.logger.debug({ error: err.message }, 'rtmps tls error');
        // With a listener here Node leaves the socket open (a handshake timeout included): close it.
        socket.destroy();
      });
      this.#tlsServer = tlsServer;
      server = tlsServer;
    } else {
      server = net.createServer((socket) => this.#accept(socket));
    }
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.#server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host: this.#opts.host, port: this.#opts.port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.#opts.logger.error({ err }, 'rtmp listener error'));
    this.#opts.logger.info({ host: this.#opts.host, port: this.port, tls: Boolean(tlsOptions) }, 'rtmp ingest listening');
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    const address = this.#server?.address();
    if (!address || typeof address === 'string') throw new Error('RtmpServer is not listening');
    return address.port;
  }

  /**
   * Serves a new certificate and key to connections accepted from now on; live sessions keep the
   * TLS session they negotiated. Throws (keeping the current pair) if the pair is unusable.
   */
  setCertificate(pair: { key: Buffer; cert: Buffer }): void {
    if (!this.#tlsServer) throw new Error('RtmpServer is not serving TLS');
    this.#tlsServer.setSecureContext({ key: pair.key, cert: pair.cert });
  }

  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Connections closed because of malformed input since start. */
  get protocolErrorCount(): number {
    return this.#protocolErrors;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const server = this.#server;
    const stopped = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    for (const raw of this.#pendingTls) raw.destroy();
    await Promise.all([...this.#connections].map((connection) => connection.close()));
    await stopped;
  }

  #accept(socket: net.Socket): void {
    const id = this.#nextId++;
    const remoteAddress = socket.remoteAddress ?? '';
    if (this.#closing || this.#connections.size >= this.#opts.maxConnections) {
      this.#opts.logger.warn({ remoteAddress, reason: this.#closing ? 'closing' : 'max_connections' }, 'rtmp connection refused');
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const connection = new RtmpConnection({
      socket,
      protocol: this.#opts.tls ? 'rtmps' : 'rtmp',
      handler: this.#opts.handler,
      logger: this.#opts.logger.child({ rtmpConn: id, remoteAddress }),
      app: this.#opts.app,
      authFailureDelayMs: this.#opts.authFailureDelayMs,
      handshakeTimeoutMs: this.#opts.handshakeTimeoutMs,
      idleTimeoutMs: this.#opts.idleTimeoutMs,
      maxMessageBytes: this.#opts.maxMessageBytes,
      onProtocolError: () => this.#countProtocolError(),
    });
    this.#connections.add(connection);
    void connection.closed.then(() => this.#connections.delete(connection));
    connection.start();
  }

  /** Scanners and fuzzers make this noisy: a summary at most once a minute. */
  #countProtocolError(): void {
    this.#protocolErrors++;
    const now = Date.now();
    if (now - this.#lastProtocolErrorLog < PROTOCOL_ERROR_LOG_INTERVAL_MS) return;
    this.#opts.logger.warn(
      { count: this.#protocolErrors - this.#protocolErrorsLogged },
      'rtmp connections closed for malformed input',
    );
    this.#lastProtocolErrorLog = now;
    this.#protocolErrorsLogged = this.#protocolErrors;
  }
}
