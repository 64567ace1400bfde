import {
  IngestRefusal,
  type IngestHandler,
  type IngestRefusalCode,
  type PublishSession,
} from '../../live/ingest-contract.ts';
import type { Logger } from '../../observability/logger.ts';
import { analyzeOffer, fragmentUfrag, type OfferChoice } from './whip-offer.ts';
import { WhipSession, type WhipSessionSettings } from './whip-session.ts';

/** Error codes as named in the API error table (src/api/errors.ts), which gives their status. */
export type WhipErrorCode =
  | 'WHIP_SDP_INVALID'
  | 'WHIP_CODECS_UNSUPPORTED'
  | 'STREAM_KEY_INVALID'
  | 'LIVE_INPUT_DISABLED'
  | 'LIVE_INPUT_BUSY'
  | 'NODE_AT_CAPACITY'
  | 'TOO_MANY_AUTH_FAILURES'
  | 'SHUTTING_DOWN'
  | 'WHIP_TOO_MANY_PENDING'
  | 'WHIP_SESSION_NOT_FOUND'
  | 'WHIP_ETAG_MISMATCH'
  | 'WHIP_ICE_RESTART_UNSUPPORTED'
  | 'INTERNAL';

export class WhipError extends Error {
  readonly code: WhipErrorCode;
  constructor(code: WhipErrorCode, message: string) {
    super(message);
    this.name = 'WhipError';
    this.code = code;
  }
}

const REFUSAL_CODES: Record<IngestRefusalCode, WhipErrorCode> = {
  STREAM_KEY_UNKNOWN: 'STREAM_KEY_INVALID',
  LIVE_INPUT_DISABLED: 'LIVE_INPUT_DISABLED',
  LIVE_INPUT_BUSY: 'LIVE_INPUT_BUSY',
  NODE_AT_CAPACITY: 'NODE_AT_CAPACITY',
  TOO_MANY_AUTH_FAILURES: 'TOO_MANY_AUTH_FAILURES',
  SHUTTING_DOWN: 'SHUTTING_DOWN',
};

export interface WhipIngestOptions {
  handler: IngestHandler;
  logger: Logger;
  session: WhipSessionSettings;
  /** Sessions not yet connected, per publisher address. */
  maxPendingPerAddress: number;
  /** WHIP sessions (pending or connected) on this node. */
  maxSessions: number;
  /** Wait before answering a refused key, to slow down guessing. */
  authFailureDelayMs: number;
}

export interface PublishOffer {
  /** The live input uid from the path, or undefined when the path held the key itself. */
  liveInputUid: string | undefined;
  streamKey: string;
  sdp: string;
  remoteAddress: string;
}

/** The WHIP sessions of this node: creation with limits and authentication, lookup, shutdown. */
export class WhipIngest {
  readonly #opts: WhipIngestOptions;
  readonly #sessions = new Map<string, WhipSession>();
  #closing = false;

  constructor(opts: WhipIngestOptions) {
    this.#opts = opts;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Checks the offer, then the key, and only then sets up WebRTC; resolves with the answer. */
  async publish(offer: PublishOffer): Promise<{ session: WhipSession; answer: string }> {
    if (this.#closing) throw new WhipError('SHUTTING_DOWN', 'the server is shutting down');
    const analysis = analyzeOffer(offer.sdp);
    if (!analysis.ok) {
      throw new WhipError(analysis.status === 406 ? 'WHIP_CODECS_UNSUPPORTED' : 'WHIP_SDP_INVALID', analysis.reason);
    }
    // A pending session of the input named in the URL does not count: a retry replaces it.
    this.#checkLimits(offer.remoteAddress, offer.liveInputUid);
    const publish = await this.#authenticate(offer);
    // The limits again: other offers may have been accepted while we were authenticating.
    try {
      this.#checkLimits(offer.remoteAddress, publish.liveInputUid);
    } catch (error) {
      publish.end('protocol_error');
      throw error;
    }
    return this.#open(offer, analysis.choice, publish);
  }

  #checkLimits(remoteAddress: string, replacing: string | undefined): void {
    const replaced = replacing === undefined ? undefined : this.#pendingOf(replacing);
    if (this.#sessions.size - (replaced ? 1 : 0) >= this.#opts.maxSessions) {
      throw new WhipError('NODE_AT_CAPACITY', 'this node holds its maximum of WHIP sessions');
    }
    let pending = 0;
    for (const s of this.#sessions.values()) if (s !== replaced && s.remoteAddress === remoteAddress && s.state !== 'connected') pending++;
    if (pending >= this.#opts.maxPendingPerAddress) {
      throw new WhipError('WHIP_TOO_MANY_PENDING', 'too many WHIP sessions from this address are still connecting');
    }
  }

  /** The session of this input that has not connected (yet), if any. */
  #pendingOf(liveInputUid: string): WhipSession | undefined {
    for (const s of this.#sessions.values()) {
      if (s.liveInputUid === liveInputUid && (s.state === 'new' || s.state === 'pending')) return s;
    }
    return undefined;
  }

  async #authenticate(offer: PublishOffer): Promise<PublishSession> {
    const request = {
      protocol: 'whip' as const,
      streamKey: offer.streamKey,
      remoteAddress: offer.remoteAddress,
      ...(offer.liveInputUid ? { liveInputUid: offer.liveInputUid } : {}),
    };
    try {
      try {
        return await this.#opts.handler.openPublish(request);
      } catch (error) {
        // The key was right (the input is busy): a session of this input that never connected
        // is a publisher's abandoned attempt (a reloaded page, a retrying encoder). It gives way
        // to this offer instead of locking the input out until it times out. Connected ones stay.
        const stale = error instanceof IngestRefusal && error.code === 'LIVE_INPUT_BUSY' && error.liveInputUid ? this.#pendingOf(error.liveInputUid) : undefined;
        if (!stale) throw error;
        this.#opts.logger.info({ liveInputUid: stale.liveInputUid, whipSession: stale.id, remoteAddress: offer.remoteAddress }, 'whip pending session replaced by a new offer');
        // Ends its publish at once (the peer and the bridge go in the background).
        void stale.close('client_disconnect');
        return await this.#opts.handler.openPublish(request);
      }
    } catch (error) {
      if (error instanceof IngestRefusal) {
        this.#opts.logger.info({ code: error.code, liveInputUid: error.liveInputUid, remoteAddress: offer.remoteAddress }, 'whip publish refused');
        if (error.code === 'STREAM_KEY_UNKNOWN') await delay(this.#opts.authFailureDelayMs);
        throw new WhipError(REFUSAL_CODES[error.code], error.message);
      }
      const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      this.#opts.logger.warn({ error: text.replaceAll(offer.streamKey, '[redacted]') }, 'whip publish authorisation failed');
      throw new WhipError('INTERNAL', 'the publish could not be authorised');
    }
  }

  async #open(offer: PublishOffer, choice: OfferChoice, publish: PublishSession) {
    const session = new WhipSession({
      choice,
      offer: offer.sdp,
      publish,
      remoteAddress: offer.remoteAddress,
      settings: this.#opts.session,
      logger: this.#opts.logger,
      onClosed: (s) => {
        if (this.#sessions.get(s.id) === s) this.#sessions.delete(s.id);
      },
    });
    this.#sessions.set(session.id, session);
    try {
      const answer = await session.start();
      this.#opts.logger.info(
        { liveInputUid: session.liveInputUid, whipSession: session.id, video: choice.video.codec, audio: Boolean(choice.audio), ms: Date.now() - session.createdAt },
        'whip session answered',
      );
      return { session, answer };
    } catch (error) {
      this.#opts.logger.warn({ err: error, liveInputUid: session.liveInputUid }, 'whip session setup failed');
      await session.close('protocol_error');
      throw new WhipError('WHIP_SDP_INVALID', 'the offer could not be answered');
    }
  }

  /** The session at `/whip/<uid>/sessions/<id>`, only if it belongs to that input. */
  find(liveInputUid: string, sessionId: string): WhipSession {
    const session = this.#sessions.get(sessionId);
    if (!session || session.liveInputUid !== liveInputUid) throw new WhipError('WHIP_SESSION_NOT_FOUND', 'no such WHIP session');
    return session;
  }

  /** DELETE: the publisher is done. */
  async end(liveInputUid: string, sessionId: string): Promise<void> {
    await this.find(liveInputUid, sessionId).close('client_disconnect');
  }

  /** PATCH with a trickle-ice-sdpfrag: trickled candidates are accepted, ICE restarts are not. */
  patch(liveInputUid: string, sessionId: string, ifMatch: string | undefined, fragment: string): void {
    const session = this.find(liveInputUid, sessionId);
    if (ifMatch !== undefined && ifMatch !== '*' && ifMatch !== session.etag) {
      throw new WhipError('WHIP_ETAG_MISMATCH', 'If-Match does not match the session ETag');
    }
    const ufrag = fragmentUfrag(fragment);
    if (ufrag !== undefined && session.offerUfrag !== undefined && ufrag !== session.offerUfrag) {
      throw new WhipError('WHIP_ICE_RESTART_UNSUPPORTED', 'ICE restarts are not supported; DELETE this session and POST a new offer');
    }
    session.acceptTrickle();
  }

  /** Ends every session. Idempotent. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all([...this.#sessions.values()].map((s) => s.close('client_disconnect')));
  }
}

function delay(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}
