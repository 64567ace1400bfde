import { describe, expect, it } from 'vitest';
import { stateAfterSession, stateOnPublish, WINDOW_EXPIRED_STATE } from '../../../src/live/live-status.ts';
import { enterState, STATUS_HISTORY_LENGTH, type LiveInputStatus } from '../../../src/state/live-input-record.ts';

describe('live input connection states', () => {
  it.each([
    ['client_disconnect', true, false, 'client_disconnect'],
    ['timeout', true, false, 'client_disconnect'],
    ['protocol_error', true, false, 'client_disconnect'],
    ['client_disconnect', true, true, 'reconnecting'],
    ['client_disconnect', false, true, 'reconnecting'],
    ['timeout', false, false, 'failed_to_connect'],
    ['protocol_error', false, false, 'failed_to_connect'],
    ['transcoder_failed', false, false, 'failed_to_connect'],
    ['transcoder_failed', false, true, 'failed_to_connect'],
    ['transcoder_failed', true, false, 'disconnected'],
    ['input_disabled', true, false, 'disconnected'],
    ['input_deleted', true, false, 'disconnected'],
    ['shutdown', true, false, 'disconnected'],
    ['client_disconnect', false, false, 'client_disconnect'],
  ] as const)('a session ended by %s (went live: %s, window open: %s) leaves %s', (reason, wentLive, windowOpen, expected) => {
    expect(stateAfterSession(reason, { wentLive, windowOpen })).toBe(expected);
  });

  it('a publish is connected, or reconnected within the window; a window that closes is ttl_exceeded', () => {
    expect(stateOnPublish(false)).toBe('connected');
    expect(stateOnPublish(true)).toBe('reconnected');
    expect(WINDOW_EXPIRED_STATE).toBe('ttl_exceeded');
  });

  it('keeps the previous states with their timestamps, newest first, bounded', () => {
    let status: LiveInputStatus = null;
    const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
    status = enterState(status, 'connected', t(0));
    expect(status).toEqual({ current: { state: 'connected', statusEnteredAt: t(0).toISOString() }, history: [] });
    status = enterState(status, 'reconnecting', t(5), 'client_disconnect');
    status = enterState(status, 'reconnected', t(7));
    expect(status.current).toEqual({ state: 'reconnected', statusEnteredAt: t(7).toISOString() });
    expect(status.history).toEqual([
      { state: 'reconnecting', statusEnteredAt: t(5).toISOString(), reason: 'client_disconnect' },
      { state: 'connected', statusEnteredAt: t(0).toISOString() },
    ]);
    for (let i = 0; i < 30; i++) status = enterState(status, i % 2 ? 'connected' : 'client_disconnect', t(10 + i));
    expect(status.history).toHaveLength(STATUS_HISTORY_LENGTH);
    expect(status.history![0]!.statusEnteredAt).toBe(t(38).toISOString());
  });
});
