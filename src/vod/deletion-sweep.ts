import type { JobQueues } from '../jobs/job-queues.ts';
import type { Logger } from '../observability/logger.ts';
import type { VideoRepository } from '../state/video-repo.ts';

export interface DeletionSweepOptions {
  videos: VideoRepository;
  jobs: JobQueues;
  logger: Logger;
  /** How often the sweep runs (one run per interval across every node sharing the Redis). */
  intervalMs: number;
  /** Deletes a video's media and record (what `DELETE /v1/videos/{uid}` does). */
  remove: (uid: string) => Promise<void>;
  now?: () => number;
}

const QUEUE = 'video-deletions';
const SCHEDULER = 'sweep';
const BATCH = 100;

/**
 * Scheduled deletion (`scheduledDeletion` on a video): a repeatable BullMQ job — one scheduler
 * for the whole deployment, whatever the number of nodes — takes the videos that are due from a
 * sorted-set index kept with the records, and deletes each. The record is the truth: it is read
 * again before anything is deleted, and deleting twice is harmless, so a job that runs twice or
 * is cut short by a crash does no wrong.
 */
export class DeletionSweep {
  readonly #o: DeletionSweepOptions;
  readonly #log: Logger;
  readonly #now: () => number;

  constructor(opts: DeletionSweepOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'deletion-sweep' });
    this.#now = opts.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.#o.jobs.worker(QUEUE, () => this.sweep(), { concurrency: 1 });
    await this.#o.jobs
      .queue(QUEUE)
      .upsertJobScheduler(SCHEDULER, { every: this.#o.intervalMs }, { name: 'sweep', opts: { removeOnComplete: true, removeOnFail: 100 } });
  }

  /** Deletes every video due now; returns how many. */
  async sweep(): Promise<number> {
    const { videos } = this.#o;
    let deleted = 0;
    const skipped = new Set<string>();
    for (;;) {
      const now = this.#now();
      const due = (await videos.dueForDeletion(now, BATCH + skipped.size)).filter((uid) => !skipped.has(uid));
      if (due.length === 0) break;
      for (const uid of due) {
        const record = await videos.get(uid);
        if (!record) {
          await videos.unscheduleDeletion(uid);
          continue;
        }
        const at = record.scheduledDeletion === null ? NaN : Date.parse(record.scheduledDeletion);
        if (!(at <= now)) {
          // The index is behind the record (a write from an older version): rewrite it from the record.
          await videos.update(uid, (r) => r);
          skipped.add(uid);
          continue;
        }
        if (record.status.state === 'live-inprogress') {
          skipped.add(uid); // still being recorded: deleted once it has ended
          continue;
        }
        try {
          await this.#o.remove(uid);
          deleted++;
          this.#log.info({ video: uid, scheduledDeletion: record.scheduledDeletion }, 'scheduled deletion: video deleted');
        } catch (error) {
          skipped.add(uid);
          this.#log.warn({ err: error, video: uid }, 'scheduled deletion failed; retried at the next sweep');
        }
      }
      if (due.length < BATCH) break;
    }
    return deleted;
  }
}
