import type { PublishEndReason, TerminateReason } from './ingest-contract.ts';

/**
 * The live input's connection states (Cloudflare Stream's), and the pure rules that pick the state
 * a session's end leaves the input in. `disconnected` is ours: the server ended the broadcast
 * (input disabled or deleted, shutdown).
 */
export type ConnectionState =
  | 'connected'
  | 'reconnecting'
  | 'reconnected'
  | 'client_disconnect'
  | 'ttl_exceeded'
  | 'failed_to_connect'
  | 'disconnected';

export type SessionEndReason = PublishEndReason | TerminateReason;

const PUBLISHER_REASONS: ReadonlySet<string> = new Set<PublishEndReason>(['client_disconnect', 'protocol_error', 'timeout']);

/**
 * The state after a session ended: `reconnecting` while the recording's window waits for the
 * publisher; `failed_to_connect` when the broadcast never went live (no usable media, FFmpeg did
 * not start); `client_disconnect` when the publisher left; `disconnected` when the server ended it.
 */
export function stateAfterSession(reason: SessionEndReason, opts: { wentLive: boolean; windowOpen: boolean }): ConnectionState {
  if (!opts.wentLive && (reason === 'transcoder_failed' || reason === 'protocol_error' || reason === 'timeout')) return 'failed_to_connect';
  if (opts.windowOpen) return 'reconnecting';
  if (PUBLISHER_REASONS.has(reason)) return 'client_disconnect';
  return 'disconnected';
}

/** The state once the reconnect window closed without the publisher coming back. */
export const WINDOW_EXPIRED_STATE: ConnectionState = 'ttl_exceeded';

/** A publish opened: a return within the window continues the broadcast. */
export function stateOnPublish(withinWindow: boolean): ConnectionState {
  return withinWindow ? 'reconnected' : 'connected';
}
