import type { EventBus, TributaryEvent } from '../events/event-bus.ts';
import type { JobQueues } from '../jobs/job-queues.ts';
import type { Logger } from '../observability/logger.ts';
import { liveInputNotification, newEventId, videoNotification } from './webhook-payload.ts';
import { WEBHOOK_QUEUE, webhookJobOptions, type WebhookJob } from './webhook-worker.ts';
import type { WebhookStore } from './webhook-store.ts';

/** The video states a webhook is sent for (Cloudflare sends ready and error; we add live). */
const VIDEO_STATES = new Set(['live-inprogress', 'ready', 'error']);

export interface WebhookDispatcherOptions {
  events: EventBus;
  jobs: JobQueues;
  store: WebhookStore;
  /** The video as the API shows it, at the moment of the event; undefined when it is gone. */
  renderVideo: (uid: string) => Promise<Record<string, unknown> | undefined>;
  logger: Logger;
}

/**
 * Turns domain events into durable delivery jobs. Events of one subject are queued one after the
 * other (a promise chain per subject), so their sequence numbers follow the order they happened.
 */
export class WebhookDispatcher {
  readonly #opts: WebhookDispatcherOptions;
  readonly #log: Logger;
  readonly #chains = new Map<string, Promise<void>>();
  #unsubscribe: (() => void) | undefined;

  constructor(opts: WebhookDispatcherOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'webhooks' });
  }

  start(): void {
    this.#unsubscribe ??= this.#opts.events.on((event) => this.#onEvent(event));
  }

  /** Stops listening and waits for events already taken to reach the queue. */
  async close(): Promise<void> {
    this.#unsubscribe?.();
    await Promise.allSettled([...this.#chains.values()]);
  }

  #onEvent(event: TributaryEvent): void {
    if (event.type === 'video.state' && !VIDEO_STATES.has(event.state)) return;
    const at = new Date();
    const subject = event.type === 'video.state' ? (event.liveInputUid ?? event.videoUid) : event.liveInputUid;
    const previous = this.#chains.get(subject) ?? Promise.resolve();
    const next = previous
      .then(() => this.#enqueue(event, subject, at))
      .catch((error: unknown) => this.#log.error({ err: error, event: eventType(event) }, 'could not queue a webhook'));
    this.#chains.set(subject, next);
    void next.finally(() => {
      if (this.#chains.get(subject) === next) this.#chains.delete(subject);
    });
  }

  async #enqueue(event: TributaryEvent, subject: string, at: Date): Promise<void> {
    const { store, jobs } = this.#opts;
    if (!(await store.get())) return;
    const eventId = newEventId();
    let body: Record<string, unknown>;
    if (event.type === 'video.state') {
      const video = await this.#opts.renderVideo(event.videoUid);
      if (!video) return;
      // The state of the event, even if the video has moved on since.
      body = videoNotification({ ...video, status: { ...(video['status'] as object), state: event.state } }, eventId);
    } else {
      body = liveInputNotification(event, at, eventId) as unknown as Record<string, unknown>;
    }
    const seq = await store.nextSequence(subject, eventId);
    const job: WebhookJob = { eventId, eventType: eventType(event), subject, seq, occurredAt: at.getTime(), body: JSON.stringify(body) };
    await jobs.queue<WebhookJob>(WEBHOOK_QUEUE).add(job.eventType, job, { ...webhookJobOptions, jobId: eventId });
  }
}

export function eventType(event: TributaryEvent): string {
  return event.type === 'video.state' ? `video.${event.state}` : event.type;
}
