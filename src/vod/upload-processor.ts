import { rm } from 'node:fs/promises';
import { DelayedError, UnrecoverableError, type Job, type Queue } from 'bullmq';
import type { JobQueues } from '../jobs/job-queues.ts';
import type { Logger } from '../observability/logger.ts';
import { finalizeVideo, type FinalizeDeps } from './finalize.ts';
import type { ProbedUpload } from './upload-probe.ts';
import { FfmpegFailedError, transcodeUpload, type UploadTranscodeSettings } from './upload-transcode.ts';
import { setVideoStatus, type EmitVideoEvent } from './video-state.ts';

/**
 * The durable `video-processing` queue (BullMQ): one job per accepted upload, transcoded by at
 * most `concurrency` FFmpeg ladders at once on this node. A job interrupted by a shutdown goes
 * back to the queue without using up an attempt; one interrupted by a crash is found stalled by
 * BullMQ and run again. The source file stays under the uploads directory until the job is done.
 */

export const VIDEO_PROCESSING_QUEUE = 'video-processing';

export interface ProcessingJobData {
  uid: string;
  /** The uploaded file, under the uploads directory. */
  file: string;
  probe: ProbedUpload;
}

export interface UploadProcessorOptions {
  jobs: JobQueues;
  deps: FinalizeDeps;
  emit: EmitVideoEvent;
  settings: UploadTranscodeSettings;
  concurrency: number;
  attempts: number;
  /** Removes whatever an earlier attempt stored for the video. */
  deleteMedia: (uid: string) => Promise<void>;
  logger: Logger;
}

/** How often pctComplete is written while a job runs. */
const PROGRESS_INTERVAL_MS = 1000;
/** A transcode shorter than the probed duration by more than this is a file cut short. */
const DURATION_SLACK = 0.1;

export class UploadProcessor {
  readonly #opts: UploadProcessorOptions;
  readonly #log: Logger;
  readonly #running = new Set<AbortController>();
  #queue: Queue<ProcessingJobData> | undefined;
  #closing = false;

  constructor(opts: UploadProcessorOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'uploads' });
  }

  /** Starts this node's worker; jobs left by a previous run (queued or interrupted) are picked up. */
  /** Opens the queue (uploads are enqueued on every node); `work: false` runs no worker here. */
  start({ work = true }: { work?: boolean } = {}): void {
    const { jobs, concurrency } = this.#opts;
    this.#queue = jobs.queue<ProcessingJobData>(VIDEO_PROCESSING_QUEUE);
    if (!work) return;
    jobs.worker<ProcessingJobData>(VIDEO_PROCESSING_QUEUE, (job, token) => this.#process(job, token), {
      concurrency,
      // A ladder transcode holds the event loop busy at times; a generous lock avoids false stalls.
      extra: { lockDuration: 60_000, stalledInterval: 30_000, maxStalledCount: 3 },
    });
  }

  async enqueue(data: ProcessingJobData): Promise<void> {
    if (!this.#queue) throw new Error('upload processor not started');
    await this.#queue.add('process', data, {
      jobId: data.uid,
      attempts: this.#opts.attempts,
      backoff: { type: 'exponential', delay: 5000 },
      removeOnComplete: true,
      removeOnFail: 1000,
    });
  }

  /** Interrupts running transcodes (their jobs go back to the queue). Call before JobQueues.close(). */
  close(): void {
    this.#closing = true;
    for (const controller of this.#running) controller.abort();
  }

  async #process(job: Job<ProcessingJobData>, token: string | undefined): Promise<void> {
    const { uid, file, probe } = job.data;
    const { deps, emit, settings } = this.#opts;
    const log = this.#log.child({ video: uid, attempt: job.attemptsMade + 1 });
    if (this.#closing) return this.#postpone(job, token);
    const record = await deps.videos.get(uid);
    if (!record) {
      log.info('video deleted before processing; dropping its upload');
      await rm(file, { force: true });
      return;
    }
    if (record.status.state === 'ready') {
      // Finished before a crash kept BullMQ from hearing so: nothing left to do.
      await rm(file, { force: true });
      return;
    }
    const controller = new AbortController();
    this.#running.add(controller);
    const started = Date.now();
    try {
      // An earlier attempt (failed, or cut short by a shutdown) may have stored segments: start clean.
      if (job.attemptsMade > 0 || (await deps.videos.readManifest(uid)).length > 0) await this.#opts.deleteMedia(uid);
      await deps.videos.clearManifest(uid);
      await setVideoStatus(deps.videos, emit, uid, { state: 'inprogress', pctComplete: '0.000000' });
      let lastWrite = 0;
      let progress = Promise.resolve();
      const duration = await transcodeUpload(
        deps,
        settings,
        {
          uid,
          file,
          probe,
          signal: controller.signal,
          onProgress: (pct) => {
            const now = Date.now();
            if (now - lastWrite < PROGRESS_INTERVAL_MS) return;
            lastWrite = now;
            progress = progress
              .then(async () => {
                const pctComplete = Math.min(99.9, pct).toFixed(6);
                // Deleted while processing: stop spending FFmpeg time on it.
                if (!(await setVideoStatus(deps.videos, emit, uid, { state: 'inprogress', pctComplete }))) controller.abort();
              })
              .catch((error: unknown) => log.warn({ err: error }, 'could not record progress'));
          },
        },
        log,
      );
      await progress;
      if (duration < probe.duration * (1 - DURATION_SLACK) - 0.5) {
        throw new FfmpegFailedError(`only ${duration.toFixed(1)} s of ${probe.duration.toFixed(1)} s could be decoded`);
      }
      // finalizeVideo reports the video's new state (ready) through deps.onEvent, as for recordings.
      await finalizeVideo(deps, uid);
      await rm(file, { force: true });
      log.info({ ms: Date.now() - started, duration, realtime: duration / ((Date.now() - started) / 1000) }, 'upload processed');
    } catch (error) {
      if (this.#closing && controller.signal.aborted) return this.#postpone(job, token);
      if (!(await deps.videos.get(uid).catch(() => 'unknown'))) {
        log.info('video deleted while processing; its media and upload are removed');
        await this.#opts.deleteMedia(uid).catch((e: unknown) => log.warn({ err: e }, 'could not remove the media of a deleted video'));
        await rm(file, { force: true });
        return;
      }
      const malformed = error instanceof FfmpegFailedError;
      const last = malformed || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.warn({ err: error, last }, 'upload processing failed');
      if (last) {
        await setVideoStatus(deps.videos, emit, uid, {
          state: 'error',
          errorReasonCode: malformed ? 'ERR_MALFORMED_VIDEO' : 'ERR_UNKNOWN',
        }).catch((e: unknown) => log.error({ err: e }, 'could not mark the video as failed'));
        // What the failed attempt stored is no use to anyone.
        await this.#opts.deleteMedia(uid).catch((e: unknown) => log.warn({ err: e }, 'could not remove the media of a failed upload'));
        await deps.videos.clearManifest(uid).catch(() => {});
        await rm(file, { force: true });
        // Nothing to retry: the job ends here, failed.
        throw new UnrecoverableError(error instanceof Error ? error.message : String(error));
      }
      throw error;
    } finally {
      this.#running.delete(controller);
    }
  }

  /** Shutting down: back to the queue, due at once, without counting as an attempt. */
  async #postpone(job: Job<ProcessingJobData>, token: string | undefined): Promise<never> {
    this.#log.info({ video: job.data.uid }, 'processing interrupted by shutdown; it resumes at the next start');
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  }
}
