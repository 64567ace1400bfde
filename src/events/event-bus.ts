/**
 * In-process domain events: what happened to live inputs and videos. Producers (sessions,
 * recorder, uploads) emit; consumers (webhooks, metrics, console) listen. Listeners run
 * synchronously and must not throw; anything slow (a webhook delivery) goes to a job queue.
 */

export type LiveInputEvent =
  | { type: 'live_input.connected'; liveInputUid: string; ingestProtocol: string; remoteAddress?: string }
  | { type: 'live_input.disconnected'; liveInputUid: string; reason: string }
  | {
      type: 'live_input.errored';
      liveInputUid: string;
      /** ERR_GOP_OUT_OF_RANGE, ERR_UNSUPPORTED_VIDEO_CODEC, ERR_UNSUPPORTED_AUDIO_CODEC, ERR_STORAGE_QUOTA_EXHAUSTED, … */
      code: string;
      message: string;
      videoCodec?: string;
      audioCodec?: string;
    };

/** A video's `status.state` changed (recordings and uploads alike). */
export interface VideoEvent {
  type: 'video.state';
  videoUid: string;
  state: 'pendingupload' | 'queued' | 'inprogress' | 'live-inprogress' | 'ready' | 'error';
  liveInputUid?: string;
  errorReasonCode?: string;
}

export type TributaryEvent = LiveInputEvent | VideoEvent;

export type EventListener = (event: TributaryEvent) => void;

export class EventBus {
  readonly #listeners = new Set<EventListener>();
  readonly #onListenerError: (error: unknown, event: TributaryEvent) => void;

  constructor(onListenerError: (error: unknown, event: TributaryEvent) => void = () => {}) {
    this.#onListenerError = onListenerError;
  }

  /** Returns the unsubscribe function. */
  on(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(event: TributaryEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }
}
