/**
 * The contract between an ingest adapter (RTMP, WHIP, …) and the live session layer.
 * Ingest adapters import only this file from `live/`.
 */

export type IngestProtocol = 'rtmp' | 'rtmps' | 'whip' | 'srt';

export type IngestRefusalCode =
  | 'STREAM_KEY_UNKNOWN'
  | 'LIVE_INPUT_DISABLED'
  | 'LIVE_INPUT_BUSY'
  | 'NODE_AT_CAPACITY'
  | 'TOO_MANY_AUTH_FAILURES'
  | 'SHUTTING_DOWN';

/** Thrown by `openPublish` when a publish must be refused. `message` never contains the key. */
export class IngestRefusal extends Error {
  readonly code: IngestRefusalCode;
  readonly liveInputUid: string | undefined;
  constructor(code: IngestRefusalCode, message: string, liveInputUid?: string) {
    super(message);
    this.name = 'IngestRefusal';
    this.code = code;
    this.liveInputUid = liveInputUid;
  }
}

// The media unit ingest hands over: defined with the FLV code in media/, named here for adapters.
export type { FlvTag } from '../media/flv-tag.ts';
import type { FlvTag } from '../media/flv-tag.ts';

export type PublishEndReason = 'client_disconnect' | 'protocol_error' | 'timeout';
export type TerminateReason = 'input_disabled' | 'input_deleted' | 'shutdown' | 'transcoder_failed' | 'over_limit';

/** One accepted publish. Created by `openPublish`, ended by `end` or by the session terminating it. */
/** Why a live session wants a keyframe from its publisher. */
export type KeyframeWant = 'restart' | 'playback';

export interface PublishSession {
  readonly liveInputUid: string;
  /** Media in. Synchronous, never throws; the session queues or drops, it never blocks ingest. */
  pushFlvTag(tag: FlvTag): void;
  /** The publisher went away. Idempotent. */
  end(reason: PublishEndReason): void;
  /** The session wants the publisher gone (the adapter closes the connection). Called at most once. */
  onTerminate(listener: (reason: TerminateReason) => void): void;
  /**
   * The session needs a keyframe soon: its FFmpeg restarts at the next one (`restart`), or a WHEP
   * viewer joined (`playback`). A publisher that can make one on request (WHIP: a PLI) listens and
   * rate-limits what it must; others just keep sending.
   */
  onKeyframeWanted?(listener: (why: KeyframeWant) => void): void;
}

export interface PublishRequest {
  protocol: IngestProtocol;
  /** The secret presented by the publisher (RTMP stream name, WHIP bearer). Never logged. */
  streamKey: string;
  /** Peer address, for logs and rate limits. */
  remoteAddress: string;
  /** When the publisher named its live input (WHIP URL), the key must belong to that input. */
  liveInputUid?: string;
}

/** Implemented by `live/`: authenticates a publisher and opens its session. */
export interface IngestHandler {
  /** Resolves with the session, or rejects with `IngestRefusal`. */
  openPublish(request: PublishRequest): Promise<PublishSession>;
}
