import { describe, expect, it } from 'vitest';
import { liveInputNotification, videoNotification } from '../../../src/webhooks/webhook-payload.ts';
import { retryDelayMs } from '../../../src/webhooks/webhook-worker.ts';

const UID = 'eb222fcca08eeb1ae84c981ebe8aeeb6';
const AT = new Date('2026-01-13T11:43:41.855Z');

describe('webhook payloads', () => {
  it('a live input event follows Cloudflare Stream’s notification shape, with our id', () => {
    expect(liveInputNotification({ type: 'live_input.connected', liveInputUid: UID, ingestProtocol: 'rtmp' }, AT, 'id-1')).toEqual({
      id: 'id-1',
      name: 'Stream Live Input',
      text: `Notification type: Stream Live Input\nInput ID: ${UID}\nEvent type: live_input.connected\nUpdated at: 2026-01-13T11:43:41.855Z`,
      data: {
        notification_name: 'Stream Live Input',
        input_id: UID,
        event_type: 'live_input.connected',
        updated_at: '2026-01-13T11:43:41.855Z',
      },
      ts: 1768304621,
    });
  });

  it('an errored event carries the code, message and the codecs seen', () => {
    const body = liveInputNotification(
      { type: 'live_input.errored', liveInputUid: UID, code: 'ERR_UNSUPPORTED_VIDEO_CODEC', message: 'video codec hevc is not supported', videoCodec: 'hevc', audioCodec: 'aac' },
      AT,
    );
    expect(body.data.live_input_errored).toEqual({
      error: { code: 'ERR_UNSUPPORTED_VIDEO_CODEC', message: 'video codec hevc is not supported' },
      video_codec: 'hevc',
      audio_codec: 'aac',
    });
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a disconnect says why; a video event is the video object with the event id', () => {
    const body = liveInputNotification({ type: 'live_input.disconnected', liveInputUid: UID, reason: 'client_disconnect' }, AT);
    expect(body.data.reason).toBe('client_disconnect');
    expect(videoNotification({ uid: UID, status: { state: 'ready' } }, 'id-2')).toEqual({ id: 'id-2', uid: UID, status: { state: 'ready' } });
  });

  it('retries back off exponentially up to the cap', () => {
    const s = { initialBackoffMs: 1000, maxBackoffMs: 60_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8, 100].map((a) => retryDelayMs(a, s))).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });
});
