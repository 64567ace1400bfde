import { Queue, Worker, type Processor, type QueueOptions, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';

export interface JobQueuesOptions {
  /**
   * Opens a new Redis connection for BullMQ. BullMQ needs `maxRetriesPerRequest: null` on the
   * connections its workers block on; the factory is called once per queue and per worker.
   */
  connect: () => Redis;
  /** Key prefix for every queue (derived from `redis.keyPrefix`, so nodes sharing a Redis agree). */
  prefix: string;
  logger: Logger;
}

export interface WorkerSettings {
  /** Jobs of this queue processed at once on this node. */
  concurrency: number;
  /** Passed through to BullMQ (lock duration, limiter, …). */
  extra?: Omit<WorkerOptions, 'connection' | 'prefix' | 'concurrency'>;
}

/**
 * Durable job queues in Redis (BullMQ): webhook deliveries, upload processing, downloads,
 * scheduled deletion. Every node may run workers; a job survives restarts of any node.
 * One instance per process; `close()` waits for running jobs to finish their current step.
 */
export class JobQueues {
  readonly #opts: JobQueuesOptions;
  readonly #log: Logger;
  readonly #queues = new Map<string, Queue>();
  readonly #workers: Worker[] = [];
  readonly #connections: Redis[] = [];
  #closed = false;

  constructor(opts: JobQueuesOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'jobs' });
  }

  #connection(): Redis {
    const connection = this.#opts.connect();
    this.#connections.push(connection);
    return connection;
  }

  /** The producer side of a queue (one per name, shared). */
  queue<Data = unknown>(name: string, defaults: Omit<QueueOptions, 'connection' | 'prefix'> = {}): Queue<Data> {
    if (this.#closed) throw new Error('job queues are closed');
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = new Queue(name, { ...defaults, connection: this.#connection(), prefix: this.#opts.prefix });
      queue.on('error', (err) => this.#log.warn({ err, queue: name }, 'job queue error'));
      this.#queues.set(name, queue);
    }
    return queue as unknown as Queue<Data>;
  }

  /** Starts a worker on this node for a queue. Errors thrown by `processor` fail the job (and retry per its options). */
  worker<Data = unknown, Result = unknown>(name: string, processor: Processor<Data, Result>, settings: WorkerSettings): Worker<Data, Result> {
    if (this.#closed) throw new Error('job queues are closed');
    const worker = new Worker<Data, Result>(name, processor, {
      ...settings.extra,
      concurrency: settings.concurrency,
      connection: this.#connection(),
      prefix: this.#opts.prefix,
    });
    worker.on('error', (err) => this.#log.warn({ err, queue: name }, 'job worker error'));
    worker.on('failed', (job, err) =>
      this.#log.warn({ queue: name, jobId: job?.id, attempts: job?.attemptsMade, err: { message: err.message } }, 'job failed'),
    );
    this.#workers.push(worker as unknown as Worker);
    return worker;
  }

  /** Stops workers (letting running jobs finish), then the queues and their connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#workers.map((w) => w.close()));
    await Promise.allSettled([...this.#queues.values()].map((q) => q.close()));
    await Promise.allSettled(this.#connections.map((c) => c.quit()));
  }
}
