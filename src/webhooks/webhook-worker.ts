import { DelayedError, Job } from 'bullmq';
import type { JobQueues } from '../jobs/job-queues.ts';
import type { Logger } from '../observability/logger.ts';
import { signatureHeader } from './webhook-signer.ts';
import { sendWebhook, type SendResult } from './webhook-sender.ts';
import type { DeliveryAttempt, WebhookStore } from './webhook-store.ts';
import type { TargetGuard } from './target-guard.ts';

export const WEBHOOK_QUEUE = 'webhooks';

/** One event to deliver; the body is serialized once, so every retry signs the same bytes. */
export interface WebhookJob {
  eventId: string;
  eventType: string;
  /** Ordering key: the live input (or the video, for a video without one). */
  subject: string;
  /** Position of the event among its subject's events (1, 2, …). */
  seq: number;
  /** When the event happened (ms); retries stop `maxRetrySeconds` after it. */
  occurredAt: number;
  body: string;
}

export interface WebhookDeliverySettings {
  timeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  maxRetrySeconds: number;
  concurrency: number;
}

/**
 * How often an event whose predecessor is still pending looks again. Its predecessor wakes it when
 * done, so this only matters when that wake-up is missed (a race, a crash).
 */
const ORDER_WAIT_MS = 2000;
/** BullMQ's attempt limit; the real bound is time (maxRetrySeconds). */
const MAX_ATTEMPTS = 100_000;

/** Delay before retry `attempt + 1` (attempt ≥ 1): exponential, capped. */
export function retryDelayMs(attempt: number, s: Pick<WebhookDeliverySettings, 'initialBackoffMs' | 'maxBackoffMs'>): number {
  return Math.min(s.maxBackoffMs, s.initialBackoffMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
}

export const webhookJobOptions = {
  attempts: MAX_ATTEMPTS,
  backoff: { type: 'webhook' },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 1000 },
} as const;

export interface WebhookWorkerOptions {
  jobs: JobQueues;
  store: WebhookStore;
  guard: TargetGuard;
  settings: WebhookDeliverySettings;
  logger: Logger;
  /** Told every attempt's outcome (metrics). Must not throw. */
  onAttempt?: (outcome: DeliveryAttempt['outcome']) => void;
}

/**
 * Delivers queued events: signed, at least once, in order per subject (an event waits until its
 * predecessor was delivered or given up), retried with exponential backoff until
 * `maxRetrySeconds` after the event. Every attempt goes into the delivery log.
 */
export class WebhookWorker {
  readonly #opts: WebhookWorkerOptions;
  readonly #log: Logger;

  constructor(opts: WebhookWorkerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'webhooks' });
  }

  start(): void {
    const { settings } = this.#opts;
    this.#opts.jobs.worker<WebhookJob, string>(WEBHOOK_QUEUE, (job, token) => this.#process(job, token), {
      concurrency: settings.concurrency,
      extra: { settings: { backoffStrategy: (attemptsMade: number) => retryDelayMs(attemptsMade, settings) } },
    });
  }

  async #process(job: Job<WebhookJob, string>, token: string | undefined): Promise<string> {
    const { store, settings } = this.#opts;
    const d = job.data;
    const deadline = d.occurredAt + settings.maxRetrySeconds * 1000;
    const finished = await store.finishedSequence(d.subject);
    if (d.seq <= finished) return 'duplicate';
    // Its predecessor is still on its way: wait (not an attempt). Past the deadline the order
    // gives way, so a lost predecessor cannot hold its successors forever.
    if (d.seq > finished + 1 && Date.now() < deadline) {
      await job.moveToDelayed(Date.now() + ORDER_WAIT_MS, token);
      // The predecessor may have finished in between, too early to see this job delayed.
      if ((await store.finishedSequence(d.subject)) >= d.seq - 1) await job.promote().catch(() => undefined);
      throw new DelayedError();
    }

    const attempt = job.attemptsMade + 1;
    const webhook = await store.get();
    if (!webhook) {
      await this.#record(d, attempt, 'dropped', { ok: false, status: null, error: 'no webhook is configured any more' }, 0);
      await this.#finish(d);
      return 'dropped';
    }

    const started = Date.now();
    let result: SendResult;
    try {
      // Checked here as well as in the connection's lookup: Node skips the lookup for an address
      // literal, and the config may have changed since the URL was set.
      const url = await this.#opts.guard.check(webhook.notificationUrl);
      result = await sendWebhook({
        url,
        body: d.body,
        headers: {
          'webhook-id': d.eventId,
          'webhook-event': d.eventType,
          'webhook-signature': signatureHeader(webhook.secret, d.body),
        },
        timeoutMs: settings.timeoutMs,
        lookup: this.#opts.guard.connectLookup,
      });
    } catch (error) {
      result = { ok: false, status: null, error: (error as Error).message };
    }
    const durationMs = Date.now() - started;
    if (result.ok) {
      await this.#record(d, attempt, 'delivered', result, durationMs);
      await this.#finish(d);
      return 'delivered';
    }
    const nextAt = Date.now() + retryDelayMs(attempt, settings);
    if (nextAt > deadline) {
      await this.#record(d, attempt, 'failed', result, durationMs);
      await this.#finish(d);
      this.#log.warn({ event: d.eventType, eventId: d.eventId, attempts: attempt }, 'webhook given up: not delivered in time');
      return 'failed';
    }
    await this.#record(d, attempt, 'retrying', result, durationMs, nextAt);
    throw new Error(result.error);
  }

  /** Marks the event done in its subject's order and wakes the next one if it is waiting. */
  async #finish(d: WebhookJob): Promise<void> {
    await this.#opts.store.markFinished(d.subject, d.seq);
    const nextId = await this.#opts.store.eventAt(d.subject, d.seq + 1);
    if (!nextId) return;
    const next = await Job.fromId(this.#opts.jobs.queue(WEBHOOK_QUEUE), nextId);
    // Not delayed (yet): it is running or about to look again by itself.
    if (next && (await next.isDelayed())) await next.promote().catch(() => undefined);
  }

  async #record(
    d: WebhookJob,
    attempt: number,
    outcome: DeliveryAttempt['outcome'],
    result: SendResult,
    durationMs: number,
    nextAt?: number,
  ): Promise<void> {
    this.#opts.onAttempt?.(outcome);
    const entry: DeliveryAttempt = {
      eventId: d.eventId,
      eventType: d.eventType,
      subject: d.subject,
      attempt,
      outcome,
      responseCode: result.status,
      durationMs,
      at: new Date().toISOString(),
    };
    if (!result.ok) entry.error = result.error.slice(0, 300);
    if (nextAt !== undefined) entry.nextAttemptAt = new Date(nextAt).toISOString();
    await this.#opts.store.logAttempt(entry).catch((error: unknown) => this.#log.warn({ err: error }, 'could not log a webhook attempt'));
  }
}
