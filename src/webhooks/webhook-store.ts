import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '../state/keys.ts';

/** The one notification target of this deployment (Cloudflare Stream's account webhook). */
export interface WebhookSettings {
  notificationUrl: string;
  /** HMAC key of `Webhook-Signature`; a new one on every PUT. */
  secret: string;
  modified: string;
}

export type DeliveryOutcome = 'delivered' | 'retrying' | 'failed' | 'dropped';

/** One delivery attempt, as `GET /v1/webhook/deliveries` shows it. */
export interface DeliveryAttempt {
  /** The event id (also `Webhook-Id`): the same across retries of one event. */
  eventId: string;
  eventType: string;
  /** The live input (or video) whose order the event keeps. */
  subject: string;
  attempt: number;
  outcome: DeliveryOutcome;
  /** HTTP status of the target's answer; null when there was none (refused, timeout, network). */
  responseCode: number | null;
  error?: string;
  durationMs: number;
  at: string;
  /** When the next attempt is due (outcome `retrying`). */
  nextAttemptAt?: string;
}

// max(current, seq): a late duplicate never moves the mark back.
const MARK_FINISHED = `
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`;
const NEXT_SEQUENCE = `
local n = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3] .. n, ARGV[2], 'EX', ARGV[1])
return n`;

export interface WebhookStoreOptions {
  redis: Redis;
  keys: RedisKeys;
  /** Attempts kept in the log. */
  deliveriesKept: number;
  /**
   * Idle lifetime of the per-subject ordering counters. Both expire together, so an idle subject
   * restarts at 0 consistently; it must exceed the longest an event can stay undelivered.
   */
  sequenceTtlSeconds: number;
}

/** Webhook settings, the per-subject ordering counters and the delivery log, in Redis. */
export class WebhookStore {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #kept: number;
  readonly #ttl: number;

  constructor(opts: WebhookStoreOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#kept = opts.deliveriesKept;
    this.#ttl = opts.sequenceTtlSeconds;
  }

  async get(): Promise<WebhookSettings | undefined> {
    const raw = await this.#redis.get(this.#keys.webhook());
    if (raw === null) return undefined;
    const parsed = JSON.parse(raw) as Partial<WebhookSettings>;
    if (typeof parsed.notificationUrl !== 'string' || typeof parsed.secret !== 'string') {
      throw new Error(`stored record ${this.#keys.webhook()} is corrupt`);
    }
    return parsed as WebhookSettings;
  }

  /** Sets the target and issues a new secret. */
  async set(notificationUrl: string, now = new Date()): Promise<WebhookSettings> {
    const settings: WebhookSettings = { notificationUrl, secret: randomBytes(32).toString('hex'), modified: now.toISOString() };
    await this.#redis.set(this.#keys.webhook(), JSON.stringify(settings));
    return settings;
  }

  async delete(): Promise<boolean> {
    return (await this.#redis.del(this.#keys.webhook())) > 0;
  }

  /** The next position in the subject's order, for the event (job) `eventId`. */
  async nextSequence(subject: string, eventId: string): Promise<number> {
    // The job key's name ends in the number the script allocates.
    const jobKeyPrefix = this.#keys.webhookJob(subject, 0).slice(0, -1);
    const n = await this.#redis.eval(
      NEXT_SEQUENCE,
      3,
      this.#keys.webhookSequence(subject),
      this.#keys.webhookFinished(subject),
      jobKeyPrefix,
      this.#ttl,
      eventId,
    );
    return Number(n);
  }

  /** The event (job) id at position `seq` of the subject's order, if known. */
  async eventAt(subject: string, seq: number): Promise<string | undefined> {
    return (await this.#redis.get(this.#keys.webhookJob(subject, seq))) ?? undefined;
  }

  async finishedSequence(subject: string): Promise<number> {
    return Number((await this.#redis.get(this.#keys.webhookFinished(subject))) ?? 0);
  }

  async markFinished(subject: string, seq: number): Promise<void> {
    await this.#redis.eval(MARK_FINISHED, 1, this.#keys.webhookFinished(subject), seq, this.#ttl);
    await this.#redis.del(this.#keys.webhookJob(subject, seq));
  }

  async logAttempt(attempt: DeliveryAttempt): Promise<void> {
    await this.#redis
      .multi()
      .lpush(this.#keys.webhookDeliveries(), JSON.stringify(attempt))
      .ltrim(this.#keys.webhookDeliveries(), 0, this.#kept - 1)
      .exec();
  }

  /** Newest first. */
  async deliveries(limit: number): Promise<DeliveryAttempt[]> {
    const raw = await this.#redis.lrange(this.#keys.webhookDeliveries(), 0, Math.min(limit, this.#kept) - 1);
    return raw.map((r) => JSON.parse(r) as DeliveryAttempt);
  }
}
