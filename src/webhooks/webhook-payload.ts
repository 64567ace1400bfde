import { randomUUID } from 'node:crypto';
import type { LiveInputEvent } from '../events/event-bus.ts';

/**
 * What a receiver gets, following Cloudflare Stream: live input events as a notification
 * (`{name, text, data: {notification_name, input_id, event_type, updated_at, …}, ts}`), video
 * events as the video object itself. Both carry our `id` (also the `Webhook-Id` header): the same
 * across retries of one event, so a receiver can drop duplicates.
 */

export const NOTIFICATION_NAME = 'Stream Live Input';

export interface LiveInputNotification {
  id: string;
  name: string;
  text: string;
  data: {
    notification_name: string;
    input_id: string;
    event_type: LiveInputEvent['type'];
    updated_at: string;
    /** Tributary: why the publisher went away (client_disconnect, timeout, input_disabled, …). */
    reason?: string;
    live_input_errored?: {
      error: { code: string; message: string };
      video_codec: string;
      audio_codec: string;
    };
  };
  ts: number;
}

export function newEventId(): string {
  return randomUUID();
}

export function liveInputNotification(event: LiveInputEvent, at: Date, id: string = newEventId()): LiveInputNotification {
  const updatedAt = at.toISOString();
  const data: LiveInputNotification['data'] = {
    notification_name: NOTIFICATION_NAME,
    input_id: event.liveInputUid,
    event_type: event.type,
    updated_at: updatedAt,
  };
  if (event.type === 'live_input.disconnected') data.reason = event.reason;
  if (event.type === 'live_input.errored') {
    data.live_input_errored = {
      error: { code: event.code, message: event.message },
      video_codec: event.videoCodec ?? '',
      audio_codec: event.audioCodec ?? '',
    };
  }
  return {
    id,
    name: NOTIFICATION_NAME,
    text: `Notification type: ${NOTIFICATION_NAME}\nInput ID: ${event.liveInputUid}\nEvent type: ${event.type}\nUpdated at: ${updatedAt}`,
    data,
    ts: Math.floor(at.getTime() / 1000),
  };
}

/** A video event: the video object as the API shows it, with the event id in front. */
export function videoNotification(video: Record<string, unknown>, id: string = newEventId()): Record<string, unknown> {
  return { id, ...video };
}
